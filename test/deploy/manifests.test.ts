import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { loadConfig } from '../../src/config.js';
import { run } from '../helpers/buildah.js';

/**
 * deploy/: the Kubernetes manifests and the systemd unit agree with the code they run: every
 * setting they give is one src/config.ts reads and accepts, the probes ask the health routes,
 * the ports and user are the image's, and the selectors select the pods.
 */

const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const KUBERNETES = path.join(REPO_ROOT, 'deploy', 'kubernetes');
const SYSTEMD = path.join(REPO_ROOT, 'deploy', 'systemd');

/** Every setting name src/config.ts reads by its literal name. */
function settingNames(): Set<string> {
  const source = readFileSync(path.join(REPO_ROOT, 'src', 'config.ts'), 'utf8');
  return new Set([...source.matchAll(/'([A-Z][A-Z0-9_]{2,})'/g)].map((match) => match[1] as string));
}

interface Manifest {
  kind: string;
  metadata: { name: string };
  spec?: Record<string, unknown>;
  data?: Record<string, string>;
}

interface Container {
  name: string;
  ports: { name: string; containerPort: number }[];
  readinessProbe?: { httpGet?: { path: string; port: string | number } };
  livenessProbe?: { httpGet?: { path: string; port: string | number } };
  startupProbe?: { httpGet?: { path: string; port: string | number } };
  lifecycle?: { preStop?: { exec?: { command: string[] } } };
  envFrom?: { configMapRef?: { name: string }; secretRef?: { name: string; optional?: boolean } }[];
  securityContext?: { allowPrivilegeEscalation?: boolean; readOnlyRootFilesystem?: boolean };
}

interface PodTemplate {
  metadata: { labels: Record<string, string> };
  spec: {
    containers: Container[];
    terminationGracePeriodSeconds?: number;
    securityContext?: { runAsNonRoot?: boolean; runAsUser?: number; runAsGroup?: number };
  };
}

function manifests(): Manifest[] {
  const kustomization = parseYaml(readFileSync(path.join(KUBERNETES, 'kustomization.yaml'), 'utf8')) as {
    resources: string[];
  };
  const files = readdirSync(KUBERNETES).filter((name) => name.endsWith('.yaml') && name !== 'kustomization.yaml');
  assert.deepEqual([...kustomization.resources].sort(), files.sort(), 'kustomization.yaml lists every manifest');
  return files.flatMap((file) =>
    parseAllDocuments(readFileSync(path.join(KUBERNETES, file), 'utf8')).map((document) => {
      assert.deepEqual(document.errors, [], file);
      return document.toJS() as Manifest;
    }),
  );
}

function one(all: Manifest[], kind: string): Manifest {
  const found = all.filter((manifest) => manifest.kind === kind);
  assert.equal(found.length, 1, `one ${kind}`);
  return found[0] as Manifest;
}

/** The `USER uid:gid` of the Containerfile's runtime stage. */
function imageUser(): { uid: number; gid: number } {
  const containerfile = readFileSync(path.join(REPO_ROOT, 'Containerfile'), 'utf8');
  const match = /^USER (\d+):(\d+)$/m.exec(containerfile);
  assert.ok(match, 'the Containerfile sets a numeric USER uid:gid');
  return { uid: Number(match[1]), gid: Number(match[2]) };
}

/** Settings as the process would see them, without this machine's environment. */
function load(settings: Record<string, string>) {
  return loadConfig({ ...settings, APPLICATION_DIR: '/var/lib/discovery' }, '/');
}

describe('Kubernetes manifests', () => {
  const all = manifests();
  const configMap = one(all, 'ConfigMap');
  const deployment = one(all, 'Deployment');
  const template = (deployment.spec as { template: PodTemplate }).template;
  const container = template.spec.containers[0] as Container;

  test('a Deployment, Service, ConfigMap and PodDisruptionBudget, three replicas', () => {
    for (const kind of ['Deployment', 'Service', 'ConfigMap', 'PodDisruptionBudget', 'ServiceAccount']) one(all, kind);
    assert.equal(deployment.spec?.replicas, 3);
    assert.equal(template.spec.containers.length, 1);
  });

  test('the ConfigMap gives only settings src/config.ts reads, and it accepts them', () => {
    const data = configMap.data ?? {};
    const known = settingNames();
    for (const name of Object.keys(data)) assert.ok(known.has(name), `${name} is a setting src/config.ts reads`);
    const config = load(data);
    assert.equal(config.applicationEnv, 'production', 'production: no embedded store, AWS credentials required');
    assert.equal(config.backendStorage, 'DynamoDB');
    assert.equal(config.debug, false, '500s carry no error details in production');
    assert.deepEqual(
      container.envFrom?.map((source) => source.configMapRef?.name ?? source.secretRef?.name),
      [configMap.metadata.name, 'discovery-auth'],
    );
    assert.equal(container.envFrom?.[1]?.secretRef?.optional, true, 'the auth Secret is optional');
  });

  test('the container ports are the ones the settings make the server listen on', () => {
    const config = load(configMap.data ?? {});
    const port = (name: string) => container.ports.find((entry) => entry.name === name)?.containerPort;
    assert.equal(port('http'), config.port);
    assert.equal(port('xds'), config.xds.port);
    assert.equal(config.listenAddress, '0.0.0.0', 'reachable from the kubelet and the Service');
  });

  test('readiness asks /readyz, liveness and start-up /livez, on the http port', () => {
    assert.deepEqual(container.readinessProbe?.httpGet, { path: '/readyz', port: 'http' });
    assert.deepEqual(container.livenessProbe?.httpGet, { path: '/livez', port: 'http' });
    assert.deepEqual(container.startupProbe?.httpGet, { path: '/livez', port: 'http' });
    const containerfile = readFileSync(path.join(REPO_ROOT, 'Containerfile'), 'utf8');
    assert.match(containerfile, /^HEALTHCHECK[^\n]*\\\n[^\n]*\/readyz/m, "the image's HEALTHCHECK asks /readyz too");
  });

  test('pods run as the image user, non-root, and have time to shut down cleanly', () => {
    const user = imageUser();
    assert.equal(template.spec.securityContext?.runAsNonRoot, true);
    assert.equal(template.spec.securityContext?.runAsUser, user.uid);
    assert.equal(template.spec.securityContext?.runAsGroup, user.gid);
    assert.equal(container.securityContext?.allowPrivilegeEscalation, false);
    assert.equal(container.securityContext?.readOnlyRootFilesystem, true);
    const preStop = container.lifecycle?.preStop?.exec?.command ?? [];
    assert.equal(preStop[0], 'sleep');
    // main.js exits at most 10 s after SIGTERM; the preStop pause comes before it.
    assert.ok((template.spec.terminationGracePeriodSeconds ?? 30) >= Number(preStop[1]) + 10 + 5);
  });

  test('the Service and the PodDisruptionBudget select the Deployment pods, by port name', () => {
    const labels = template.metadata.labels;
    const matches = (selector: Record<string, string>) =>
      Object.entries(selector).every(([key, value]) => labels[key] === value);
    const service = one(all, 'Service').spec as {
      selector: Record<string, string>;
      ports: { targetPort: string }[];
    };
    assert.ok(matches(service.selector), 'Service selector');
    const names = container.ports.map((port) => port.name);
    for (const port of service.ports) assert.ok(names.includes(port.targetPort), `targetPort ${port.targetPort}`);
    const budget = one(all, 'PodDisruptionBudget').spec as {
      selector: { matchLabels: Record<string, string> };
      maxUnavailable?: number;
    };
    assert.ok(matches(budget.selector.matchLabels), 'PodDisruptionBudget selector');
    assert.equal(budget.maxUnavailable, 1);
    const deploymentSelector = (deployment.spec as { selector: { matchLabels: Record<string, string> } }).selector;
    assert.ok(matches(deploymentSelector.matchLabels), 'Deployment selector');
  });
});

describe('systemd unit', () => {
  test('systemd-analyze verify finds nothing to say about it', async () => {
    const result = await run('systemd-analyze', ['verify', path.join(SYSTEMD, 'discovery.service')], {
      timeoutMs: 60_000,
      allowFailure: true,
    });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stderr.trim(), '', 'no warnings');
  });

  test('its environment file gives only settings src/config.ts reads, and it accepts them', () => {
    const settings = Object.fromEntries(
      readFileSync(path.join(SYSTEMD, 'discovery.env'), 'utf8')
        .split('\n')
        .filter((line) => line.trim() !== '' && !line.startsWith('#'))
        .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]),
    );
    const known = settingNames();
    for (const name of Object.keys(settings)) assert.ok(known.has(name), `${name} is a setting src/config.ts reads`);
    const config = load(settings);
    assert.equal(config.applicationEnv, 'production');
    const unit = readFileSync(path.join(SYSTEMD, 'discovery.service'), 'utf8');
    assert.match(unit, /^ExecStart=\S*node \S*dist\/src\/main\.js$/m, 'runs the built server');
    assert.match(unit, /^KillSignal=SIGTERM$/m);
    assert.match(unit, /^EnvironmentFile=\/etc\/discovery\/discovery\.env$/m);
  });
});
