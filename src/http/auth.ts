import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest, onRequestHookHandler } from 'fastify';

/** Who may do what; a role also has the rights of the roles below it (admin > register > read). */
export type Role = 'read' | 'register' | 'admin';

/**
 * Credentials per role: a password for HTTP basic auth (the user name is the role's name) and
 * bearer tokens. Writes need a credential once any register or admin credential is set; reads
 * need one once a read credential is set.
 */
export interface AuthConfig {
  readonly passwords: Readonly<Partial<Record<Role, string>>>;
  readonly tokens: Readonly<Record<Role, readonly string[]>>;
}

export const ROLES: readonly Role[] = ['read', 'register', 'admin'];

const RANK: Record<Role, number> = { read: 0, register: 1, admin: 2 };

/**
 * Checks credentials for a role. Off (everything allowed) until a credential is configured for
 * the role or one above it, so the original's clients keep working. Secrets are compared as
 * SHA-256 digests with `timingSafeEqual`, so neither their content nor their length leaks
 * through timing; they are never logged (the logger redacts the Authorization header).
 */
export class Authorizer {
  private readonly passwordDigests: Array<{ role: Role; digest: Buffer }>;
  private readonly tokenDigests: Array<{ role: Role; digest: Buffer }>;

  constructor(private readonly config: AuthConfig) {
    this.passwordDigests = ROLES.flatMap((role) =>
      config.passwords[role] ? [{ role, digest: sha256(config.passwords[role]) }] : [],
    );
    this.tokenDigests = ROLES.flatMap((role) => config.tokens[role].map((token) => ({ role, digest: sha256(token) })));
  }

  /**
   * Whether calls needing `role` need a credential at all. Every write is locked as soon as any
   * write credential exists (a register token alone must not leave deletes open); reads are
   * locked only by read credentials of their own.
   */
  isProtected(role: Role): boolean {
    const configured = (candidate: Role) =>
      this.config.passwords[candidate] !== undefined || this.config.tokens[candidate].length > 0;
    return role === 'read' ? configured('read') : configured('register') || configured('admin');
  }

  /**
   * The schemes a caller can prove `role` with here: `basic` when a password is configured for it
   * or a role above it, `bearer` likewise for tokens (what the API description offers).
   */
  schemesFor(role: Role): Array<'basic' | 'bearer'> {
    const atLeast = ROLES.filter((candidate) => RANK[candidate] >= RANK[role]);
    const schemes: Array<'basic' | 'bearer'> = [];
    if (atLeast.some((candidate) => this.config.passwords[candidate] !== undefined)) schemes.push('basic');
    if (atLeast.some((candidate) => this.config.tokens[candidate].length > 0)) schemes.push('bearer');
    return schemes;
  }

  /** Whether a credential of a role below `role` is configured, so a valid caller can still get a 403. */
  weakerCredentialsExist(role: Role): boolean {
    return ROLES.some(
      (candidate) =>
        RANK[candidate] < RANK[role] &&
        (this.config.passwords[candidate] !== undefined || this.config.tokens[candidate].length > 0),
    );
  }

  /** Whether any write needs a credential (the dashboard then asks for one). */
  get writesProtected(): boolean {
    return this.isProtected('register');
  }

  /** The role an Authorization header proves, or undefined when it proves nothing. */
  roleOf(header: string | undefined): Role | undefined {
    if (!header) return undefined;
    const space = header.indexOf(' ');
    if (space < 0) return undefined;
    const scheme = header.slice(0, space).toLowerCase();
    const value = header.slice(space + 1).trim();
    if (scheme === 'bearer') return best(this.tokenDigests, sha256(value));
    if (scheme === 'basic') {
      const decoded = Buffer.from(value, 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      if (colon < 0) return undefined;
      const user = decoded.slice(0, colon);
      const password = sha256(decoded.slice(colon + 1));
      // Every configured password is compared, whatever the user name, so timing says nothing about which exist.
      const matched = this.passwordDigests.filter((entry) => timingSafeEqual(entry.digest, password));
      return matched.find((entry) => entry.role === user)?.role;
    }
    return undefined;
  }

  /** Whether a request with this Authorization header may make calls needing `role`. */
  permits(role: Role, header: string | undefined): boolean {
    if (!this.isProtected(role)) return true;
    const proven = this.roleOf(header);
    return proven !== undefined && RANK[proven] >= RANK[role];
  }

  /** An onRequest hook answering 401 without a valid credential and 403 with one too weak for `role`. */
  require(role: Role): onRequestHookHandler {
    const requireRole = (request: FastifyRequest, reply: FastifyReply, done: (error?: Error) => void) => {
      if (!this.isProtected(role)) return done();
      const header = request.headers.authorization;
      const proven = this.roleOf(header);
      if (proven === undefined) {
        // Refusals are part of the audit trail: a probe with stolen or guessed credentials shows.
        request.log.info(
          {
            reqId: request.id,
            client: request.socket.remoteAddress,
            route: request.routeOptions.url,
            needs: role,
            credential: header ? 'invalid' : 'none',
          },
          `refused: 401, this call needs the '${role}' role`,
        );
        reply
          .code(401)
          .header('www-authenticate', 'Basic realm="discovery", charset="UTF-8", Bearer realm="discovery"')
          .send({
            error: header ? 'Invalid credentials.' : `Authentication required: this call needs the '${role}' role.`,
          });
        return;
      }
      if (RANK[proven] < RANK[role]) {
        request.log.info(
          {
            reqId: request.id,
            client: request.socket.remoteAddress,
            route: request.routeOptions.url,
            needs: role,
            role: proven,
          },
          `refused: 403, this call needs the '${role}' role; the credential has '${proven}'`,
        );
        reply
          .code(403)
          .send({ error: `Forbidden: this call needs the '${role}' role; the credential has '${proven}'.` });
        return;
      }
      done();
    };
    return requireRole;
  }
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

function best(entries: Array<{ role: Role; digest: Buffer }>, digest: Buffer): Role | undefined {
  let found: Role | undefined;
  for (const entry of entries) {
    if (timingSafeEqual(entry.digest, digest) && (found === undefined || RANK[entry.role] > RANK[found]))
      found = entry.role;
  }
  return found;
}
