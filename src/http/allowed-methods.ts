import FindMyWay from 'find-my-way';
import type { ListedRoute } from './route-list.js';

/**
 * Which methods the app serves on a concrete path, for the answers the original's framework
 * gave: `405 Method Not Allowed` with `Allow` for a known path asked with another method, and
 * `OPTIONS` answered with `Allow`. Matched by the same router Fastify routes with, over the
 * routes the app registered, so the answer cannot drift from the routes themselves.
 */
export class AllowedMethods {
  private router: FindMyWay.Instance<FindMyWay.HTTPVersion.V1> | undefined;
  private methods: string[] = [];

  constructor(
    private readonly routes: () => readonly ListedRoute[],
    private readonly maxParamLength: number,
  ) {}

  /** The methods routes serve on `path` (no query string); empty for an unknown path. */
  on(path: string): string[] {
    const router = this.build();
    return this.methods.filter((method) => router.find(method as FindMyWay.HTTPMethod, path) !== null);
  }

  /** Built on first use: by then every route is registered (the app is ready before it answers anything). */
  private build(): FindMyWay.Instance<FindMyWay.HTTPVersion.V1> {
    if (this.router) return this.router;
    const router = FindMyWay({ maxParamLength: this.maxParamLength });
    const seen = new Set<string>();
    for (const { method, url } of this.routes()) {
      const key = `${method} ${url}`;
      if (seen.has(key)) continue;
      seen.add(key);
      router.on(method as FindMyWay.HTTPMethod, url, () => undefined);
    }
    this.methods = [...new Set(this.routes().map((route) => route.method))].sort();
    this.router = router;
    return router;
  }
}
