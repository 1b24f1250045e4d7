import assert from 'node:assert/strict';
import { request } from 'node:https';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { pino } from 'pino';
import { composeRegistry, type Registry } from '../../src/compose.js';
import { ConfigError, loadConfig } from '../../src/config.js';
import { RawXdsStream } from '../helpers/ads-client.js';
import { makeCertificates, type Certificates } from '../helpers/certificates.js';
import { tempDir } from '../helpers/temp-dir.js';

const CLUSTER_TYPE = 'type.googleapis.com/envoy.config.cluster.v3.Cluster';

function httpsGet(url: string, options: { ca: Buffer; cert?: Buffer; key?: Buffer }): Promise<{ status: number; body: string }> {
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

  async function start(env: Record<string, string>): Promise<{ registry: Registry; httpPort: number; xdsPort: number }> {
    const config = loadConfig({ BACKEND_STORAGE: 'InMemory', XDS_PORT: '0', XDS_LISTEN_ADDRESS: '127.0.0.1', ...env });
    const registry = await composeRegistry(config, pino({ level: 'silent' }), { stats: { increment() {} } });
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
      await assert.rejects(httpsGet(`https://127.0.0.1:${httpPort}/healthcheck`, { ca: certs.read(certs.strangerCert) }), /self.signed|unable to verify|certificate/i);
    } finally {
      await registry.close();
    }
  });

  test('mutual TLS on the HTTP port refuses a client without a certificate from the CA', async () => {
    const { registry, httpPort } = await start({ TLS_CERT_FILE: certs.serverCert, TLS_KEY_FILE: certs.serverKey, TLS_CA_FILE: certs.caCert });
    try {
      const ca = certs.read(certs.caCert);
      const ok = await httpsGet(`https://127.0.0.1:${httpPort}/healthcheck`, { ca, cert: certs.read(certs.clientCert), key: certs.read(certs.clientKey) });
      assert.equal(ok.status, 200);
      await assert.rejects(httpsGet(`https://127.0.0.1:${httpPort}/healthcheck`, { ca }));
      await assert.rejects(httpsGet(`https://127.0.0.1:${httpPort}/healthcheck`, { ca, cert: certs.read(certs.strangerCert), key: certs.read(certs.strangerKey) }));
    } finally {
      await registry.close();
    }
  });

  test('mutual TLS on the xDS port: a client with a certificate from the CA streams; others are refused', async () => {
    const { registry, xdsPort } = await start({ XDS_TLS_CERT_FILE: certs.serverCert, XDS_TLS_KEY_FILE: certs.serverKey, XDS_TLS_CA_FILE: certs.caCert });
    const target = `127.0.0.1:${xdsPort}`;
    const ca = certs.read(certs.caCert);
    const trusted = new grpc.Client(target, grpc.credentials.createSsl(ca, certs.read(certs.clientKey), certs.read(certs.clientCert)));
    const anonymous = new grpc.Client(target, grpc.credentials.createSsl(ca));
    const stranger = new grpc.Client(target, grpc.credentials.createSsl(ca, certs.read(certs.strangerKey), certs.read(certs.strangerCert)));
    const plaintext = new grpc.Client(target, grpc.credentials.createInsecure());
    try {
      const good = new RawXdsStream(trusted);
      good.send({ node: { id: 'envoy-1', cluster: 'edge' }, type_url: CLUSTER_TYPE, resource_names: ['users'] });
      const response = await good.next(5000);
      assert.equal(response.type_url, CLUSTER_TYPE);
      for (const [name, client] of [['no client certificate', anonymous], ['a certificate from another CA', stranger], ['plaintext', plaintext]] as const) {
        const refused = new RawXdsStream(client);
        refused.send({ node: { id: 'intruder' }, type_url: CLUSTER_TYPE, resource_names: ['users'] });
        const status = await Promise.race([refused.status, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${name}: no status`)), 10_000))]);
        assert.equal(status.code, grpc.status.UNAVAILABLE, `${name}: ${status.details}`);
      }
    } finally {
      for (const client of [trusted, anonymous, stranger, plaintext]) client.close();
      await registry.close();
    }
  });

  test('half a TLS setting stops start-up with one line naming the missing file', () => {
    assert.throws(() => loadConfig({ TLS_CERT_FILE: certs.serverCert }), (error: unknown) => error instanceof ConfigError && /TLS_KEY_FILE/.test(error.message));
    assert.throws(() => loadConfig({ XDS_TLS_CA_FILE: certs.caCert }), (error: unknown) => error instanceof ConfigError && /XDS_TLS_CA_FILE/.test(error.message));
    assert.throws(() => loadConfig({ TLS_CERT_FILE: '/nonexistent.pem', TLS_KEY_FILE: certs.serverKey }), /TLS_CERT_FILE="\/nonexistent.pem": expected a readable file/);
  });
});
