import type { FastifyPluginAsync } from 'fastify';
import { InvalidInputError } from '../errors.js';
import { messageFromJson, messageToJson, ProtoJsonError } from '../xds/proto-json.js';
import { TYPE_URL, xdsProtos } from '../xds/protos.js';
import { contentVersion, isServiceName, type XdsResource } from '../xds/resources.js';
import type { XdsSnapshotCache } from '../xds/snapshot-cache.js';
import type { XdsStreamServer } from '../xds/stream-server.js';

export interface XdsRoutesOptions {
  readonly cache: XdsSnapshotCache;
  readonly streamServer: XdsStreamServer;
}

/**
 * The HTTP side of the control plane:
 * - `POST /v3/discovery:endpoints`, Envoy's REST EDS (`api_type: REST`): a proto3-JSON
 *   DiscoveryRequest in, a proto3-JSON DiscoveryResponse out with the same
 *   ClusterLoadAssignments the gRPC server sends; 304 when `version_info` is already current,
 *   as go-control-plane's REST gateway answers. Names that cannot be services are left out.
 * - `GET /v1/xds/clients`: every connected xDS stream, what it subscribes to, and the version
 *   sent, ACKed and last NACKed per type, so an operator sees which proxy is stuck.
 * Both need the read role: the first hands out every host's address, the second proxies' node
 * ids, peers and the services they watch.
 */
export const xdsRoutes: FastifyPluginAsync<XdsRoutesOptions> = async (app, { cache, streamServer }) => {
  app.post(
    '/v3/discovery::endpoints',
    {
      config: { access: 'read' },
      schema: {
        summary: "Envoy's REST EDS: ClusterLoadAssignments for the named services",
        description:
          'A proto3-JSON DiscoveryRequest in, a proto3-JSON DiscoveryResponse out; 304 when version_info is already current.',
        tags: ['xds'],
        body: {
          type: 'object',
          additionalProperties: true,
          description: 'envoy.service.discovery.v3.DiscoveryRequest as proto3 JSON',
        },
      },
    },
    async (request, reply) => {
      const protos = xdsProtos();
      let discoveryRequest: { version_info?: string; resource_names?: string[]; type_url?: string };
      try {
        discoveryRequest = messageFromJson(protos.discoveryRequest, request.body ?? {}, 'DiscoveryRequest');
      } catch (error) {
        if (error instanceof ProtoJsonError) throw new InvalidInputError(`Invalid DiscoveryRequest: ${error.message}`);
        throw error;
      }
      const typeUrl = discoveryRequest.type_url || TYPE_URL.clusterLoadAssignment;
      if (typeUrl !== TYPE_URL.clusterLoadAssignment) {
        throw new InvalidInputError(`This endpoint serves ${TYPE_URL.clusterLoadAssignment}, not '${typeUrl}'.`);
      }
      const names = [...new Set(discoveryRequest.resource_names ?? [])].filter(isServiceName).sort();
      const resources: XdsResource[] = [];
      for (const name of names) resources.push(await cache.endpoints(name));
      const version = contentVersion(resources.map((resource) => `${resource.name}:${resource.version}`));
      if (discoveryRequest.version_info === version) return reply.code(304).send();
      const response = protos.discoveryResponse.fromObject({
        version_info: version,
        resources: resources.map((resource) => ({ type_url: resource.typeUrl, value: resource.body })),
        type_url: typeUrl,
      });
      return reply.type('application/json').send(messageToJson(protos.discoveryResponse, response));
    },
  );

  app.get(
    '/v1/xds/clients',
    {
      config: { access: 'read' },
      schema: {
        summary: 'Connected xDS clients: node, subscriptions, versions sent and ACKed, last NACK',
        tags: ['xds'],
      },
    },
    async () => ({ clients: streamServer.clients(), watched_services: cache.watchedServices() }),
  );
};
