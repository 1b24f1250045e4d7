import type { FastifyInstance, RouteOptions } from 'fastify';
import type { Role } from './auth.js';
import type { Authorizer } from './auth.js';

/**
 * Who may call a route: anyone (`public`), or a caller proving `read`, `register` or `admin`
 * (a role also has the rights of those below it). Every route declares one in its options,
 * `config: { access }`; docs/operations.md has the table of every route and why.
 */
export type Access = 'public' | Role;

export const ACCESS_LEVELS: readonly Access[] = ['public', 'read', 'register', 'admin'];

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Who may call the route (see route-policy.ts); a route without it stops start-up. */
    access?: Access;
  }
}

/** Set on a scope by `declarePluginRoutes`; inherited by the scopes a plugin makes inside it. */
const PLUGIN_ROUTES_ACCESS = Symbol('discovery.pluginRoutesAccess');

type ScopeWithDefault = FastifyInstance & { [PLUGIN_ROUTES_ACCESS]?: Access };

/**
 * Declares the access of every route a third-party plugin registered in `scope` adds, for
 * plugins whose routes take no per-route options (swagger-ui and the @fastify/static it
 * registers). A route's own declaration still wins. Use it on a scope holding nothing else.
 */
export function declarePluginRoutes(scope: FastifyInstance, access: Access): void {
  Object.defineProperty(scope, PLUGIN_ROUTES_ACCESS, { value: access, enumerable: false });
}

/**
 * The one place route access is applied. `install` adds an onRoute hook to the root app before
 * any route: each route's declared access becomes an onRequest check in front of its own hooks,
 * or no hook at all where no credential is needed (public routes, and reads while no read
 * credential is configured, so the open hot path pays nothing). A route declaring no access
 * throws at registration, so start-up fails naming it. HEAD routes Fastify adds for a GET are
 * registered with the GET's options, so they carry its declaration.
 *
 * The fast paths, which answer two routes before Fastify, ask `credentialNeeded` for the same
 * routes once they are registered, so a changed declaration changes them too.
 */
export class RoutePolicy {
  private readonly declared = new Map<string, Access>();

  constructor(private readonly authorizer: Authorizer) {}

  /** Registers the hook on `app`; call it before any route or plugin with routes. */
  install(app: FastifyInstance): void {
    const apply = (scope: FastifyInstance, route: RouteOptions) => this.apply(scope as ScopeWithDefault, route);
    // Fastify calls onRoute hooks with the scope the route is registered in as `this`.
    app.addHook('onRoute', function (this: FastifyInstance, route: RouteOptions) {
      apply(this, route);
    });
  }

  /** The access declared for a registered route, or undefined when there is no such route. */
  accessOf(method: string, url: string): Access | undefined {
    return this.declared.get(key(method, url));
  }

  /**
   * The role a caller of this registered route must prove, or undefined when none is needed
   * (public, or the role is not protected). Throws when the route is not registered.
   */
  credentialNeeded(method: string, url: string): Role | undefined {
    const access = this.accessOf(method, url);
    if (access === undefined)
      throw new Error(`route policy: ${method} ${url} is not registered, so its access is unknown`);
    return access === 'public' || !this.authorizer.isProtected(access) ? undefined : access;
  }

  /**
   * The statuses the route answers a caller lacking its role with: 401 without a valid
   * credential, and 403 when a weaker credential exists to present. Empty when none is needed.
   * The API description and the request metrics both take them from here.
   */
  authFailureStatuses(method: string, url: string): number[] {
    const role = this.credentialNeeded(method, url);
    if (role === undefined) return [];
    return this.authorizer.weakerCredentialsExist(role) ? [401, 403] : [401];
  }

  private apply(scope: ScopeWithDefault, route: RouteOptions): void {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    const name = `${methods.join(',')} ${route.url}`;
    let access = route.config?.access;
    if (access === undefined) {
      access = scope[PLUGIN_ROUTES_ACCESS];
      if (access === undefined) {
        throw new Error(
          `route policy: ${name} declares no access; add config: { access: 'public' | 'read' | 'register' | 'admin' } to its options`,
        );
      }
      // Written into the route's config, so request.routeOptions.config.access is always there.
      route.config = { ...route.config, access };
    }
    if (!ACCESS_LEVELS.includes(access))
      throw new Error(`route policy: ${name} declares unknown access '${String(access)}'`);
    for (const method of methods) this.declared.set(key(String(method), route.url), access);
    if (access === 'public' || !this.authorizer.isProtected(access)) return;
    // First, so a caller without the right gets 401/403 before any body parsing or other hook.
    const existing =
      route.onRequest === undefined ? [] : Array.isArray(route.onRequest) ? route.onRequest : [route.onRequest];
    route.onRequest = [this.authorizer.require(access), ...existing];
  }
}

function key(method: string, url: string): string {
  return `${method} ${url}`;
}
