import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import Type from 'typebox';
import { HINT_QUEUE_MAX, HINT_PATH, type ChangeFeed } from '../replication/change-feed.js';
import { EVERY_SERVICE, SERVICES_PER_CHANGE_MAX } from '../hosts/change-log.js';
import { ErrorBody, NoContent, ServiceName } from './schemas.js';

/** A replica id as ChangeFeed makes them: URL-safe base64, no `/`. */
const ReplicaId = Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9_-]+$', description: 'replica id' });

/** `POST /v1/feed/hints`: the change records a peer replica just made (ChangeHint in change-feed.ts). */
const HintBody = Type.Object(
  {
    replica: ReplicaId,
    changes: Type.Array(
      Type.Object(
        {
          key: Type.String({ minLength: 1, maxLength: 128, description: 'the change record key' }),
          replica: ReplicaId,
          services: Type.Array(Type.Union([ServiceName, Type.Literal(EVERY_SERVICE)]), {
            maxItems: SERVICES_PER_CHANGE_MAX,
          }),
          at: Type.Number({ description: 'epoch milliseconds, the writer’s clock' }),
        },
        { additionalProperties: false },
      ),
      { maxItems: HINT_QUEUE_MAX },
    ),
  },
  { additionalProperties: false },
);

/**
 * Where peer replicas sharing one DynamoDB table tell this one what they just changed, so its
 * caches and xDS streams re-read those services at once instead of at the next read of the
 * change log (docs/replicas.md). Register access: peers send `PEER_TOKEN`, a register token.
 */
export const feedRoutes: FastifyPluginAsyncTypebox<{ readonly changeFeed: ChangeFeed | undefined }> = async (
  app,
  { changeFeed },
) => {
  app.post(
    HINT_PATH,
    {
      config: { access: 'register' },
      schema: {
        summary: 'Take a peer replica’s change hint (replicas on one DynamoDB table only)',
        operationId: 'takeChangeHint',
        tags: ['replicas'],
        body: HintBody,
        response: { 204: NoContent, 400: ErrorBody, 404: ErrorBody },
      },
    },
    async (request, reply) => {
      if (!changeFeed)
        return reply
          .code(404)
          .send({ error: 'this replica follows no change feed (a store of one process, or CHANGE_FEED=false)' });
      changeFeed.receiveHint(request.body);
      return reply.code(204).send(null);
    },
  );
};
