import assert from 'node:assert/strict';
import { request } from 'node:https';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { pino } from 'pino';
import { Writable } from 'node:stream';
import { composeRegistry, xdsExposureWarning, type Registry } from '../../src/compose.js';
import { ConfigError, loadConfig } from '../../src/config.js';
import { TYPE_URL } from '../../src/xds/protos.js';
import { RawXdsStream } from '../helpers/ads-client.js';
import { makeCertificates, type Certificates } from '../helpers/certificates.js';
import { tempDir } from '../helpers/temp-dir.js';
import { endpointsOf } from '../helpers/xds-wire.js';
import { NO_STATS } from '../../src/stats.js';

const CLUSTER_TYPE = 'type.googleapis.com/envoy.config.cluster.v3.Cluster';

function httpsGet(
  url: string,
  options: { ca: Buffer; cert?: Buffer; key?: Buffer },
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { ...options, timeout: 5000 }, (response) => {
      let body = '';
      response.on('data', (chunk: Buffer) => (body += chunk.toString()));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.end();
  });
}

describe('transport security', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let certs: Certificates;
  before(async () => {
    dir = await tempDir();
    certs = makeCertificates(dir.path);
  });
  after(async () => dir.remove());

  async function start(
    env: Record<string, string>,
  ): Promise<{ registry: Registry; httpPort: number; xdsPort: number }> {
    const config = loadConfig({ BACKEND_STORAGE: 'InMemory', XDS_PORT: '0', XDS_LISTEN_ADDRESS: '127.0.0.1', ...env });
    const registry = await composeRegistry(config, pino({ level: 'silent' }), { stats: NO_STATS });
    await registry.app.listen({ port: 0, host: '127.0.0.1' });
    const address = registry.app.server.address();
    const xdsPort = (await registry.startXds()) ?? 0;
    return { registry, httpPort: typeof address === 'object' && address ? address.port : 0, xdsPort };
  }

  test('HTTPS on the HTTP port: a client trusting the CA is served; plain HTTP is not', async () => {
    const { registry, httpPort } = await start({ TLS_CERT_FILE: certs.serverCert, TLS_KEY_FILE: certs.serverKey });
    try {
      const response = await httpsGet(`https://127.0.0.1:${httpPort}/healthcheck`, { ca: certs.read(certs.caCert) });
      assert.deepEqual(response, { status: 200, body: 'OK' });
      await assert.rejects(fetch(`http://127.0.0.1:${httpPort}/healthcheck`));
      await assert.rejects(
        httpsGet(`https://127.0.0.1:${httpPort}/healthcheck`, { ca: certs.read(certs.strangerCert) }),
        /self.signed|unable to verify|certificate/i,
      );
    } finally {
      await registry.close();
    }
  });

  test('mutual TLS on the HTTP port refuses a client without a certificate from the CA', async () => {
    const { registry, httpPort } = await start({
      TLS_CERT_FILE: certs.serverCert,
      TLS_KEY_FILE: certs.serverKey,
      TLS_CA_FILE: certs.caCert,
    });
    try {
      const ca = certs.read(certs.caCert);
      const ok = await httpsGet(`https://127.0.0.1:${httpPort}/healthcheck`, {
        ca,
        cert: certs.read(certs.clientCert),
        key: certs.read(certs.clientKey),
      });
      assert.equal(ok.status, 200);
      await assert.rejects(httpsGet(`https://127.0.0.1:${httpPort}/healthcheck`, { ca }));
      await assert.rejects(
        httpsGet(`https://127.0.0.1:${httpPort}/healthcheck`, {
          ca,
          cert: certs.read(certs.strangerCert),
          key: certs.read(certs.strangerKey),
        }),
      );
    } finally {
      await registry.close();
    }
  });

  test('mutual TLS on the xDS port: a client with a certificate from the CA gets EDS and ADS; others are refused in the handshake', async () => {
    const { registry, xdsPort } = await start({
      XDS_TLS_CERT_FILE: certs.serverCert,
      XDS_TLS_KEY_FILE: certs.serverKey,
      XDS_TLS_CA_FILE: certs.caCert,
    });
    const target = `127.0.0.1:${xdsPort}`;
    const ca = certs.read(certs.caCert);
    const trusted = new grpc.Client(
      target,
      grpc.credentials.createSsl(ca, certs.read(certs.clientKey), certs.read(certs.clientCert)),
    );
    const anonymous = new grpc.Client(target, grpc.credentials.createSsl(ca));
    const stranger = new grpc.Client(
      target,
      grpc.credentials.createSsl(ca, certs.read(certs.strangerKey), certs.read(certs.strangerCert)),
    );
    const plaintext = new grpc.Client(target, grpc.credentials.createInsecure());
    const streams: RawXdsStream[] = [];
    try {
      await registry.hostService.heartbeat({
        service: 'users',
        ip_address: '10.0.3.17',
        port: 9211,
        revision: 'r1',
        service_repo_name: 'users-repo',
        tags: { az: 'us-east-1a', region: 'us-east-1', instance_id: 'i-0a1b2c' },
      });
      const eds = new RawXdsStream(trusted, 'eds');
      streams.push(eds);
      eds.send({
        node: { id: 'envoy-1', cluster: 'edge' },
        type_url: TYPE_URL.clusterLoadAssignment,
        resource_names: ['users'],
      });
      const endpoints = await eds.next(5000);
      assert.equal(endpoints.type_url, TYPE_URL.clusterLoadAssignment);
      assert.deepEqual(endpointsOf(endpoints), { users: ['10.0.3.17:9211'] });
      const ads = new RawXdsStream(trusted);
      streams.push(ads);
      ads.send({ node: { id: 'envoy-1', cluster: 'edge' }, type_url: CLUSTER_TYPE, resource_names: ['users'] });
      assert.equal((await ads.next(5000)).type_url, CLUSTER_TYPE);
      for (const [name, client] of [
        ['no client certificate', anonymous],
        ['a certificate from another CA', stranger],
        ['plaintext', plaintext],
      ] as const) {
        for (const kind of ['eds', 'ads'] as const) {
          const refused = new RawXdsStream(client, kind);
          streams.push(refused);
          let answered = false;
          refused.onResponse = () => (answered = true);
          refused.send({
            node: { id: 'intruder' },
            type_url: TYPE_URL.clusterLoadAssignment,
            resource_names: ['users'],
          });
          const status = await Promise.race([
            refused.status,
            new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${name}: no status`)), 10_000)),
          ]);
          assert.equal(status.code, grpc.status.UNAVAILABLE, `${name} (${kind}): ${status.details}`);
          assert.equal(answered, false, `${name} (${kind}) got a response`);
        }
      }
      assert.deepEqual(
        registry.xds.streamServer.clients().map((client) => client.node?.id),
        ['envoy-1', 'envoy-1'],
        'no refused client ever had a stream',
      );
    } finally {
      for (const client of [trusted, anonymous, stranger, plaintext]) client.close();
      await registry.close();
    }
  });

  test('half a TLS setting stops start-up with one line naming the missing file', () => {
    assert.throws(
      () => loadConfig({ TLS_CERT_FILE: certs.serverCert }),
      (error: unknown) => error instanceof ConfigError && /TLS_KEY_FILE/.test(error.message),
    );
    assert.throws(
      () => loadConfig({ XDS_TLS_CA_FILE: certs.caCert }),
      (error: unknown) => error instanceof ConfigError && /XDS_TLS_CA_FILE/.test(error.message),
    );
    assert.throws(
      () => loadConfig({ TLS_CERT_FILE: '/nonexistent.pem', TLS_KEY_FILE: certs.serverKey }),
      /TLS_CERT_FILE="\/nonexistent.pem": expected a readable file/,
    );
  });

  describe('read credentials with an open xDS port', () => {
    const READ = { AUTH_READ_TOKENS: 'tok-read-0123456789' };
    const MUTUAL = () => ({
      XDS_TLS_CERT_FILE: certs.serverCert,
      XDS_TLS_KEY_FILE: certs.serverKey,
      XDS_TLS_CA_FILE: certs.caCert,
    });

    test('warn at start-up, naming XDS_TLS_CA_FILE and XDS_ENABLED=false as the fix', async () => {
      const lines: Array<{ level: number; msg: string; fix?: string[] }> = [];
      const sink = new Writable({
        write(chunk: Buffer, _encoding, callback) {
          for (const line of chunk.toString().split('\n').filter(Boolean))
            lines.push(JSON.parse(line) as (typeof lines)[number]);
          callback();
        },
      });
      const config = loadConfig({
        BACKEND_STORAGE: 'InMemory',
        XDS_PORT: '0',
        XDS_LISTEN_ADDRESS: '127.0.0.1',
        ...READ,
      });
      const registry = await composeRegistry(config, pino({ level: 'info' }, sink), { stats: NO_STATS });
      await registry.close();
      const warnings = lines.filter((line) => line.level === 40);
      assert.equal(warnings.length, 1, JSON.stringify(lines));
      assert.match(warnings[0]!.msg, /AUTH_READ_\*.*xDS port 0 \(plaintext\).*XDS_TLS_CA_FILE.*XDS_ENABLED=false/s);
      assert.deepEqual(warnings[0]!.fix, ['XDS_TLS_CA_FILE', 'XDS_ENABLED=false']);
    });

    test('warn too with TLS but no client certificates; not with mutual TLS, the xDS server off, or reads open', () => {
      const warning = (env: Record<string, string>) =>
        xdsExposureWarning(loadConfig({ BACKEND_STORAGE: 'InMemory', ...env }));
      assert.match(warning(READ) ?? '', /xDS port 18000 \(plaintext\)/);
      assert.match(
        warning({ ...READ, AUTH_READ_TOKENS: '', AUTH_READ_PASSWORD: 'readers-only-please' }) ?? '',
        /plaintext/,
      );
      assert.match(
        warning({ ...READ, XDS_TLS_CERT_FILE: certs.serverCert, XDS_TLS_KEY_FILE: certs.serverKey }) ?? '',
        /TLS without client certificates/,
      );
      assert.equal(warning({ ...READ, ...MUTUAL() }), undefined);
      assert.equal(warning({ ...READ, XDS_ENABLED: 'false' }), undefined);
      assert.equal(warning({}), undefined, 'reads open on HTTP too: nothing extra is exposed');
      assert.equal(
        warning({ AUTH_REGISTER_TOKENS: 'tok-register-0123456789', AUTH_ADMIN_PASSWORD: 'operators-only-please' }),
        undefined,
        'write credentials alone leave reads open',
      );
    });
  });
});
