import type { FastifyPluginAsync } from 'fastify';
import Type from 'typebox';
import { InvalidInputError } from '../errors.js';
import { ErrorBody, NotModified } from './schemas.js';
import { messageFromJson, messageToJson, ProtoJsonError } from '../xds/proto-json.js';
import type { NodeLocality } from '../xds/locality-classes.js';
import { TYPE_URL, xdsProtos } from '../xds/protos.js';
import { resourceSetVersion } from '../xds/resources.js';
import type { XdsSnapshotCache } from '../xds/snapshot-cache.js';
import type { XdsStreamServer } from '../xds/stream-server.js';
import { requestedType, resourcesOf, serviceNamesOf } from '../xds/subscription.js';

/** A string, or null (OpenAPI 3.0 spells nullability `nullable`, which the serializer reads too). */
const NullableString = (description: string) =>
  Type.Unsafe<string | null>({ type: 'string', nullable: true, description });

/**
 * envoy.service.discovery.v3.DiscoveryResponse as proto3 JSON; each resource an Any with its
 * `@type`. Every field optional: proto3 JSON leaves out fields at their default (no resources).
 */
const DiscoveryResponseJson = Type.Object(
  {
    version_info: Type.Optional(Type.String()),
    resources: Type.Optional(Type.Array(Type.Object({ '@type': Type.String() }, { additionalProperties: true }))),
    type_url: Type.Optional(Type.String()),
  },
  { additionalProperties: true, description: 'envoy.service.discovery.v3.DiscoveryResponse as proto3 JSON' },
);

/** What `GET /v1/xds/clients` answers (ClientStatus and TypeStatus in stream-server.ts). */
const XdsClientsBody = Type.Object({
  clients: Type.Array(
    Type.Object({
      stream_id: Type.Integer(),
      kind: Type.Union([
        Type.Literal('ads'),
        Type.Literal('eds'),
        Type.Literal('delta-ads'),
        Type.Literal('delta-eds'),
      ]),
      peer: Type.String(),
      connected_at: Type.String({ format: 'date-time' }),
      node: Type.Unsafe<object | null>({
        type: 'object',
        nullable: true,
        description: 'the Node the client sent; null until it sends one',
        properties: {
          id: Type.String(),
          cluster: Type.String(),
          locality: {
            type: 'object',
            nullable: true,
            properties: { region: Type.String(), zone: Type.String(), sub_zone: Type.String() },
          },
          user_agent: Type.String(),
        },
      }),
      resources: Type.Array(
        Type.Object({
          type_url: Type.String(),
          wildcard: Type.Boolean({ description: 'subscribes to every resource of the type' }),
          resource_names: Type.Array(Type.String()),
          version_sent: NullableString('null until a response is sent'),
          nonce_sent: NullableString('null until a response is sent'),
          version_acked: NullableString('null until the client ACKs'),
          up_to_date: Type.Boolean({ description: 'the client ACKed the last response sent' }),
          nack_count: Type.Integer(),
          last_nack: Type.Unsafe<object | null>({
            type: 'object',
            nullable: true,
            properties: {
              error: Type.String(),
              nonce: Type.String(),
              version_kept: Type.String(),
              at: Type.String({ format: 'date-time' }),
            },
          }),
        }),
      ),
    }),
  ),
  watched_services: Type.Array(Type.String(), { description: 'services the control plane keeps resources for' }),
});

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
        operationId: 'fetchEndpoints',
        tags: ['xds'],
        body: {
          type: 'object',
          additionalProperties: true,
          description: 'envoy.service.discovery.v3.DiscoveryRequest as proto3 JSON',
        },
        response: { 200: DiscoveryResponseJson, 304: NotModified, 400: ErrorBody },
      },
    },
    async (request, reply) => {
      const protos = xdsProtos();
      let discoveryRequest: {
        version_info?: string;
        node?: { locality?: NodeLocality | null } | null;
        resource_names?: string[];
        type_url?: string;
      };
      try {
        discoveryRequest = messageFromJson(protos.discoveryRequest, request.body ?? {}, 'DiscoveryRequest');
      } catch (error) {
        if (error instanceof ProtoJsonError) throw new InvalidInputError(`Invalid DiscoveryRequest: ${error.message}`);
        throw error;
      }
      const typeUrl = TYPE_URL.clusterLoadAssignment;
      requestedType(
        discoveryRequest.type_url ?? '',
        true,
        (asked) => new InvalidInputError(`This endpoint serves ${typeUrl}, not '${asked}'.`),
      );
      // The stream's resolution, but a service that cannot be read fails the request: REST has no push to follow.
      const names = serviceNamesOf(discoveryRequest.resource_names ?? []);
      const resources = await resourcesOf(cache, typeUrl, names, discoveryRequest.node?.locality, (_service, error) => {
        throw error;
      });
      const version = resourceSetVersion(resources);
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
        operationId: 'listXdsClients',
        tags: ['xds'],
        response: { 200: XdsClientsBody },
      },
    },
    async () => ({ clients: streamServer.clients(), watched_services: cache.watchedServices() }),
  );
};
