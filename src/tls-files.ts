/**
 * Certificate material read from files named in settings (config.ts reads them), for the
 * HTTP port (app.ts) and the xDS port (xds/grpc-server.ts).
 * With `ca`, the peer must present a certificate signed by it (mutual TLS).
 */
export interface TlsFiles {
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly ca: Buffer | undefined;
}
