import type { FastifyInstance } from 'fastify';

export interface ListedRoute {
  readonly method: string;
  readonly url: string;
  readonly hidden: boolean;
}

const lists = new WeakMap<FastifyInstance, ListedRoute[]>();

/** Records every route added to `app` from now on (for the API description check and operators). */
export function trackRoutes(app: FastifyInstance): void {
  const list: ListedRoute[] = [];
  lists.set(app, list);
  app.addHook('onRoute', (route) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    for (const method of methods)
      list.push({
        method: String(method),
        url: route.url,
        hidden: Boolean((route.schema as { hide?: boolean } | undefined)?.hide),
      });
  });
}

/** The routes `app` has, as recorded by `trackRoutes`. */
export function routesOf(app: FastifyInstance): readonly ListedRoute[] {
  return lists.get(app) ?? [];
}

/**
 * The hooks Fastify runs for one route, by phase, each by its function's name ('anonymous' for
 * an unnamed one), as Fastify itself lists them (printRoutes with hooks). Known only once the
 * app is ready: Fastify settles each route's hooks just before.
 */
export function hooksOfRoute(app: FastifyInstance, method: string, url: string): Map<string, string[]> {
  const lines = app.printRoutes({ method, includeHooks: true, commonPrefix: false }).split('\n');
  const start = lines.findIndex((line) => line.includes(`── ${url} (${method})`));
  if (start < 0) throw new Error(`${method} ${url} is not a registered route`);
  const hooks = new Map<string, string[]>();
  for (const line of lines.slice(start + 1)) {
    // A hook line reads `• (onRequest) ["requireRole()","anonymous()"]`; the route's end is the first other line.
    const match = /•\s+\((\w+)\)\s+(\[.*\])\s*$/.exec(line);
    if (!match) break;
    const names = (JSON.parse(match[2] as string) as string[]).map((name) => name.replace(/\(\)$/, ''));
    hooks.set(match[1] as string, names);
  }
  return hooks;
}
