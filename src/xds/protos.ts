import { accessSync, constants } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import protobuf from 'protobufjs';

/** v3 type URLs of the resources discovery serves. */
export const TYPE_URL = {
  listener: 'type.googleapis.com/envoy.config.listener.v3.Listener',
  routeConfiguration: 'type.googleapis.com/envoy.config.route.v3.RouteConfiguration',
  cluster: 'type.googleapis.com/envoy.config.cluster.v3.Cluster',
  clusterLoadAssignment: 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment',
  httpConnectionManager:
    'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
  router: 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router',
} as const;

export type ResourceTypeUrl =
  | typeof TYPE_URL.listener
  | typeof TYPE_URL.routeConfiguration
  | typeof TYPE_URL.cluster
  | typeof TYPE_URL.clusterLoadAssignment;

/** The message types discovery encodes and decodes, resolved once from the Envoy API protos. */
export interface XdsProtos {
  readonly root: protobuf.Root;
  readonly discoveryRequest: protobuf.Type;
  readonly discoveryResponse: protobuf.Type;
  /** Looks a message type up by its type URL (`type.googleapis.com/<full name>`), or undefined. */
  typeOf(typeUrl: string): protobuf.Type | undefined;
}

/** The Envoy API files discovery needs; imports are followed from these. */
const ENTRY_FILES = [
  'envoy/service/discovery/v3/ads.proto',
  'envoy/service/endpoint/v3/eds.proto',
  'envoy/config/listener/v3/listener.proto',
  'envoy/config/route/v3/route.proto',
  'envoy/config/cluster/v3/cluster.proto',
  'envoy/config/endpoint/v3/endpoint.proto',
  'envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto',
  'envoy/extensions/filters/http/router/v3/router.proto',
];

let loaded: XdsProtos | undefined;

/**
 * The Envoy xDS v3 protos, loaded on first use (a noticeable part of start-up, so not before) from the copies that ship inside
 * `@grpc/grpc-js-xds` (`deps/envoy-api`, `deps/xds`, `deps/googleapis`, `deps/protoc-gen-validate`),
 * so the repository carries no `.proto` files of its own and the definitions match what the
 * gRPC xDS client decodes. Field names keep their proto spelling (`keepCase`).
 */
export function xdsProtos(): XdsProtos {
  if (loaded) return loaded;
  const require = createRequire(import.meta.url);
  const deps = path.join(path.dirname(require.resolve('@grpc/grpc-js-xds/package.json')), 'deps');
  const includeDirs = ['envoy-api', 'xds', 'googleapis', 'protoc-gen-validate'].map((dir) => path.join(deps, dir));
  // protobufjs bundles only some google/protobuf files; the Envoy annotations import descriptor.proto too.
  const descriptorJson = require('protobufjs/google/protobuf/descriptor.json') as {
    nested: { google: { nested: { protobuf: { nested: Record<string, unknown> } } } };
  };
  protobuf.common(
    'descriptor',
    descriptorJson.nested.google.nested.protobuf.nested as Record<string, protobuf.INamespace>,
  );

  const root = new protobuf.Root();
  const fallback = root.resolvePath.bind(root);
  root.resolvePath = (origin, target) => {
    if (path.isAbsolute(target)) return target;
    for (const dir of includeDirs) {
      const candidate = path.join(dir, target);
      try {
        accessSync(candidate, constants.R_OK);
        return candidate;
      } catch {
        // not in this include dir
      }
    }
    // google/protobuf/*.proto: protobufjs serves its bundled copies for these paths.
    return fallback(origin, target);
  };
  root.loadSync(ENTRY_FILES, { keepCase: true });
  root.resolveAll();
  const types = new Map<string, protobuf.Type | undefined>();
  loaded = {
    root,
    discoveryRequest: root.lookupType('envoy.service.discovery.v3.DiscoveryRequest'),
    discoveryResponse: root.lookupType('envoy.service.discovery.v3.DiscoveryResponse'),
    typeOf(typeUrl: string) {
      if (!types.has(typeUrl)) {
        const name = typeUrl.slice(typeUrl.lastIndexOf('/') + 1);
        let type: protobuf.Type | undefined;
        try {
          type = name === '' ? undefined : root.lookupType(name);
        } catch {
          type = undefined;
        }
        types.set(typeUrl, type);
      }
      return types.get(typeUrl);
    },
  };
  return loaded;
}

/** Encodes a plain object (proto field names) as the message `typeUrl` names. */
export function encodeMessage(typeUrl: string, value: Record<string, unknown>): Uint8Array {
  const type = xdsProtos().typeOf(typeUrl);
  if (!type) throw new Error(`unknown message type ${typeUrl}`);
  return type.encode(type.fromObject(value)).finish();
}

/** A `google.protobuf.Any` holding `value` encoded as `typeUrl`, as a plain object protobufjs encodes. */
export function packAny(typeUrl: string, value: Record<string, unknown>): { type_url: string; value: Uint8Array } {
  return { type_url: typeUrl, value: encodeMessage(typeUrl, value) };
}
