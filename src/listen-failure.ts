/** The settings that chose one listener's port and address, for messages that name them. */
export interface ListenerSettings {
  /** e.g. `PORT` or `XDS_PORT`. */
  readonly portSetting: string;
  readonly port: number;
  /** e.g. `LISTEN_ADDRESS` or `XDS_LISTEN_ADDRESS`. */
  readonly addressSetting: string;
  readonly address: string;
  /** Another way out, said last (e.g. turning the listener off). */
  readonly alternative?: string;
}

/**
 * One line saying why a listener could not bind and what to change. Node's net errors carry a
 * `code`; grpc-js folds them into its message ("No address added ... [listen EADDRINUSE ...]").
 */
export function describeListenFailure(error: unknown, settings: ListenerSettings): string {
  const message = error instanceof Error ? error.message : String(error);
  const code =
    (error as { code?: unknown } | undefined)?.code ?? /\b(EADDRINUSE|EACCES|EADDRNOTAVAIL)\b/.exec(message)?.[1];
  const { portSetting, port, addressSetting, address } = settings;
  const alternative = settings.alternative ? `, or ${settings.alternative}` : '';
  switch (code) {
    case 'EADDRINUSE':
      return (
        `${portSetting}=${port} is already in use on ${address}: another process listens there. ` +
        `Stop it, or set ${portSetting} to a free port (0 picks one)${alternative}.`
      );
    case 'EACCES':
      return (
        `${portSetting}=${port} on ${address} needs privileges this process does not have (ports below 1024 do). ` +
        `Set ${portSetting} to 1024 or above, or grant CAP_NET_BIND_SERVICE${alternative}.`
      );
    case 'EADDRNOTAVAIL':
      return (
        `${addressSetting}=${address} is not an address of this machine. ` +
        `Set ${addressSetting} to one of its addresses, 0.0.0.0 (all IPv4), :: (all) or 127.0.0.1 (local only)${alternative}.`
      );
    default:
      return `could not listen on ${portSetting}=${port}, ${addressSetting}=${address}: ${message}`;
  }
}
