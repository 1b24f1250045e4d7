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
