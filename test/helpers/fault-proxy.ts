import net from 'node:net';

/** What a FaultProxy does with connections: pass bytes, refuse them, or take them and never answer. */
export type ProxyMode = 'pass' | 'cut' | 'blackhole';

/**
 * A TCP proxy on loopback in front of one server (a dynalite, a replica's HTTP port), for tests
 * that break the connection between two real processes the way networks break:
 * - `cut()`: every open connection is reset and new ones are refused at once (ECONNRESET /
 *   ECONNREFUSED), as when the far side is down;
 * - `blackhole()`: open connections stop carrying bytes and new ones are accepted and never
 *   answered, as behind a firewall that drops packets: only the client's own timeout ends a call;
 * - `heal()`: connections pass again (the ones open during a black hole are reset, as a
 *   dropped connection's would be once the network returns).
 */
export class FaultProxy {
  private mode: ProxyMode = 'pass';
  private readonly open = new Set<net.Socket>();

  private constructor(
    private readonly server: net.Server,
    /** `http://127.0.0.1:<port>` */
    readonly url: string,
    readonly port: number,
  ) {}

  static async start(target: { host: string; port: number }, port = 0): Promise<FaultProxy> {
    const server = net.createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', resolve);
    });
    const bound = (server.address() as net.AddressInfo).port;
    const proxy = new FaultProxy(server, `http://127.0.0.1:${bound}`, bound);
    // Nobody has its address before this returns, so no connection arrives before the handler.
    server.on('connection', (client) => proxy.accept(client, target));
    return proxy;
  }

  /** A proxy in front of `url`'s host and port (`http://127.0.0.1:4567`). */
  static async inFrontOf(url: string, port = 0): Promise<FaultProxy> {
    const { hostname, port: targetPort } = new URL(url);
    return FaultProxy.start({ host: hostname, port: Number(targetPort) }, port);
  }

  get current(): ProxyMode {
    return this.mode;
  }

  cut(): void {
    this.mode = 'cut';
    this.dropAll();
  }

  blackhole(): void {
    this.mode = 'blackhole';
    for (const socket of this.open) {
      socket.pause();
      (socket as net.Socket & { peer?: net.Socket }).peer?.pause();
    }
  }

  heal(): void {
    const wasBlackhole = this.mode === 'blackhole';
    this.mode = 'pass';
    if (wasBlackhole) this.dropAll();
  }

  async close(): Promise<void> {
    this.dropAll();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private dropAll(): void {
    for (const socket of this.open) reset(socket);
    this.open.clear();
  }

  private accept(client: net.Socket, target: { host: string; port: number }): void {
    if (this.mode === 'cut') {
      reset(client);
      return;
    }
    this.open.add(client);
    client.on('close', () => this.open.delete(client));
    client.on('error', () => undefined);
    if (this.mode === 'blackhole') {
      // Taken, never answered: what the client wrote is read and dropped.
      client.on('data', () => undefined);
      return;
    }
    const upstream = net.connect(target.port, target.host);
    this.open.add(upstream);
    (client as net.Socket & { peer?: net.Socket }).peer = upstream;
    upstream.on('close', () => {
      this.open.delete(upstream);
      client.destroy();
    });
    upstream.on('error', () => reset(client));
    client.on('close', () => upstream.destroy());
    client.pipe(upstream);
    upstream.pipe(client);
  }
}

/**
 * Resets `socket` (RST, as a dropped connection looks to the far side), or only destroys it once
 * its own end was sent: libuv refuses to reset a socket that is shutting down (a pipe ends its
 * destination when the source ends), and Node then never closes its handle, so the process
 * spins at exit waiting for it.
 */
function reset(socket: net.Socket): void {
  if (socket.writableEnded || socket.destroyed) socket.destroy();
  else socket.resetAndDestroy();
}
