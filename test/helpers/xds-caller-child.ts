import * as grpc from '@grpc/grpc-js';
import * as grpcXds from '@grpc/grpc-js-xds';
import { who } from './grpc-backend.js';

/**
 * The child side of `startXdsCaller` (xds-caller-process.ts): a proxyless gRPC client dialling
 * XDS_CALLER_TARGET with the bootstrap in GRPC_XDS_BOOTSTRAP_CONFIG. Each IPC message
 * `{ id, count }` makes `count` calls in a row; the answer `{ id, names }` lists who answered
 * each (`error` for a failed call). It exits when its parent disconnects.
 */
grpcXds.register();
const target = process.env.XDS_CALLER_TARGET;
if (!target) throw new Error('XDS_CALLER_TARGET is not set');
const client = new grpc.Client(target, grpc.credentials.createInsecure());

process.on('message', (message: { id: number; count: number }) => {
  void (async () => {
    const names: string[] = [];
    for (let i = 0; i < message.count; i++) names.push((await who(client)).name ?? 'error');
    process.send?.({ id: message.id, names });
  })();
});
process.on('disconnect', () => {
  client.close();
  process.exit(0);
});
