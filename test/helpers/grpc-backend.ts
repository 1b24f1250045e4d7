import * as grpc from '@grpc/grpc-js';

export const WHO_METHOD = '/discovery.test.Backend/Who';

/** A tiny gRPC backend on `ip` (any 127/8 address) answering WHO_METHOD with its own name. */
export async function startBackend(
  ip: string,
  name: string = ip,
): Promise<{ port: number; calls: () => number; close(): Promise<void> }> {
  const server = new grpc.Server();
  let calls = 0;
  const identity = (value: Buffer) => value;
  server.addService(
    {
      Who: {
        path: WHO_METHOD,
        requestStream: false,
        responseStream: false,
        requestSerialize: identity,
        requestDeserialize: identity,
        responseSerialize: identity,
        responseDeserialize: identity,
      },
    },
    {
      Who: (_call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
        calls++;
        callback(null, Buffer.from(name));
      },
    },
  );
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${ip}:0`, grpc.ServerCredentials.createInsecure(), (error, bound) =>
      error ? reject(error) : resolve(bound),
    ),
  );
  return {
    port,
    calls: () => calls,
    close: () =>
      new Promise<void>((resolve) => {
        server.tryShutdown(() => resolve());
        setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, 1000).unref();
      }),
  };
}

/** One WHO_METHOD call through `client`; resolves with the backend's name or the error's message. */
export function who(client: grpc.Client, deadlineMs = 2000): Promise<{ name?: string; error?: string }> {
  return new Promise((resolve) => {
    client.makeUnaryRequest(
      WHO_METHOD,
      (value: Buffer) => value,
      (value: Buffer) => value,
      Buffer.alloc(0),
      { deadline: Date.now() + deadlineMs },
      (error, value) => resolve(error ? { error: error.message } : { name: value?.toString() }),
    );
  });
}
