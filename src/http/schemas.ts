import Type, { type Static } from 'typebox';
import { INSTANCE_STATUSES, PORT_MAX, PORT_MIN, WEIGHT_MAX, WEIGHT_MIN } from '../hosts/model.js';
import { NAME_MAX_LENGTH, NAME_PATTERN, OPTIONAL_NAME_PATTERN } from '../hosts/names.js';

export { NAME_MAX_LENGTH } from '../hosts/names.js';

/**
 * Request schemas: the single source for validation (Fastify), types (Static) and the API
 * description. Limits keep one request from costing much memory or storage.
 */

export const TAG_COUNT_MAX = 64;
/** Longer than any status name, short enough that a wrong one costs nothing to refuse. */
const STATUS_TEXT_MAX = 32;
const STATUS_LIST = INSTANCE_STATUSES.join(', ');
/** Tags as JSON text, the form field's bound; tags sent as a JSON object are held to it too, whatever BODY_LIMIT_BYTES allows. */
export const TAGS_TEXT_MAX = 16 * 1024;

export const ServiceName = Type.String({
  minLength: 1,
  maxLength: NAME_MAX_LENGTH,
  pattern: NAME_PATTERN,
  description: 'service name',
});

export const RepoName = Type.String({
  minLength: 1,
  maxLength: NAME_MAX_LENGTH,
  pattern: NAME_PATTERN,
  description: 'service repository name',
});

/** Textual form only; `requireIp` (validation.ts) checks that it is an IPv4 or IPv6 address. */
export const IpAddressText = Type.String({ minLength: 1, maxLength: 64, description: 'IPv4 or IPv6 address' });

/**
 * The port as sent: form text or a JSON number. Listed as two types, not as an integer, so the
 * schema check never coerces text such as `Infinity`, `1e3` or `80.0` into a number; validation.ts
 * (`parsePort`) applies the rule, the original's `int()`: digits only, 1..65535.
 */
export const PortText = Type.Unsafe<string | number>({
  type: ['string', 'integer'],
  // No pattern here: the text rule's message (parsePort) says what a port is, ajv's would quote a regex.
  maxLength: 32,
  minimum: PORT_MIN,
  maximum: PORT_MAX,
  description: 'integer 1..65535, written as digits (a JSON number or form text)',
});

export const LoadBalancingWeight = Type.Integer({ minimum: WEIGHT_MIN, maximum: WEIGHT_MAX });

export const Tags = Type.Object(
  {
    az: Type.String({ minLength: 1, maxLength: NAME_MAX_LENGTH, description: 'availability zone' }),
    region: Type.String({ minLength: 1, maxLength: NAME_MAX_LENGTH }),
    instance_id: Type.String({ minLength: 1, maxLength: NAME_MAX_LENGTH }),
    canary: Type.Optional(Type.Boolean()),
    load_balancing_weight: Type.Optional(LoadBalancingWeight),
  },
  {
    additionalProperties: true,
    maxProperties: TAG_COUNT_MAX,
    propertyNames: { maxLength: NAME_MAX_LENGTH },
    description: 'host tags; keys other than the named ones are kept and returned as given',
  },
);
export type Tags = Static<typeof Tags>;

export const ServiceParams = Type.Object({ service: ServiceName });
export const RepoParams = Type.Object({ service_repo_name: RepoName });
export const HostParams = Type.Object({ service: ServiceName, ip_address: IpAddressText });
/** One instance: its port as the path writes it, read by parsePort (so `+80` and ` 80` are 80, as in a heartbeat). */
export const InstanceParams = Type.Object({
  service: ServiceName,
  ip_address: IpAddressText,
  port: Type.String({ maxLength: 16, description: 'the instance port, 1..65535' }),
});

/**
 * A heartbeat as form fields (every value a string, `tags` a JSON string) or as a JSON object
 * (`tags` an object or a JSON string). Unknown fields are ignored, as the original did.
 */
export const RegistrationBody = Type.Object(
  {
    ip: Type.Optional(IpAddressText),
    auto_ip: Type.Optional(Type.Union([Type.Boolean(), Type.String({ maxLength: 16 })])),
    port: PortText,
    revision: Type.String({ minLength: 1, maxLength: NAME_MAX_LENGTH }),
    service_repo_name: Type.Optional(Type.String({ maxLength: NAME_MAX_LENGTH, pattern: OPTIONAL_NAME_PATTERN })),
    tags: Type.Union([Type.String({ maxLength: TAGS_TEXT_MAX }), Type.Object({}, { additionalProperties: true })]),
    // Bounded here, read by parseReportedStatus (validation.ts), whose message names the statuses.
    status: Type.Optional(
      Type.String({ maxLength: STATUS_TEXT_MAX, description: `the host's own status: ${STATUS_LIST}; absent: UP` }),
    ),
  },
  { additionalProperties: true },
);
export type RegistrationBody = Static<typeof RegistrationBody>;

/** The weight as a form field (a string) or a JSON number; checked by parseWeight (validation.ts) for the original's messages. */
export const WeightBody = Type.Object(
  { load_balancing_weight: Type.Optional(Type.Union([Type.String({ maxLength: 32 }), Type.Number()])) },
  { additionalProperties: true },
);
export type WeightBody = Static<typeof WeightBody>;

/** An operator's status override (PUT …/status) as a form field or JSON; checked by parseStatus (validation.ts). */
export const StatusBody = Type.Object(
  { status: Type.Optional(Type.String({ maxLength: STATUS_TEXT_MAX, description: STATUS_LIST })) },
  { additionalProperties: true },
);
export type StatusBody = Static<typeof StatusBody>;

/** The query of a host-list read: which statuses to list (absent: UP only, written as the original did). */
export const HostListQuery = Type.Object(
  {
    status: Type.Optional(
      Type.String({
        maxLength: STATUS_TEXT_MAX,
        description: `'all' or one of ${STATUS_LIST}: lists those hosts, each with its effective 'status'; absent: UP hosts only, without the key`,
      }),
    ),
  },
  { additionalProperties: true },
);
export type HostListQuery = Static<typeof HostListQuery>;

/** One host as every GET returns it (documentation of the wire format; bodies are pre-encoded). */
export const HostRecord = Type.Object({
  ip_address: Type.String(),
  last_check_in: Type.String({ description: 'UTC, YYYY-MM-DD HH:MM:SS.ffffff' }),
  port: Type.Integer(),
  revision: Type.String(),
  service: Type.String(),
  service_repo_name: Type.String({ description: '"" when never set' }),
  tags: Type.Object({}, { additionalProperties: true }),
  status: Type.Optional(
    Type.Union(
      INSTANCE_STATUSES.map((status) => Type.Literal(status)),
      { description: 'effective status; only on reads with ?status=' },
    ),
  ),
});

export const ServiceHostList = Type.Object({
  env: Type.String(),
  hosts: Type.Array(HostRecord),
  service: Type.String(),
});
export const RepoHostList = Type.Object({
  env: Type.String(),
  hosts: Type.Array(HostRecord),
  service_repo_name: Type.String(),
});
export const ErrorBody = Type.Object({ error: Type.String() }, { description: 'what was wrong, naming the field' });
export const EmptyObject = Type.Object({}, { additionalProperties: false });
export const NotModified = Type.Null({ description: 'Not Modified: If-None-Match named the current ETag' });
export const NoContent = Type.Null({ description: 'No Content' });

export const SERVICES_LIMIT_DEFAULT = 1000;
/** A page of 10,000 summaries is about 1 MB of JSON: the most one request may ask for. */
export const SERVICES_LIMIT_MAX = 10_000;

/**
 * `GET /v1/services`: a bounded page of service summaries by name. `cursor` is the opaque
 * `next_cursor` of the previous page (base64url), so pages stay consistent while services come and go.
 */
export const ServicesQuery = Type.Object({
  // Optional to callers (the description must not mark it required); validation fills in the default.
  limit: Type.Optional(
    Type.Integer({
      minimum: 1,
      maximum: SERVICES_LIMIT_MAX,
      default: SERVICES_LIMIT_DEFAULT,
      description: 'most services per page',
    }),
  ),
  prefix: Type.Optional(
    Type.String({
      maxLength: NAME_MAX_LENGTH,
      description: 'only services whose name starts with this (case-sensitive)',
    }),
  ),
  filter: Type.Optional(
    Type.String({ maxLength: NAME_MAX_LENGTH, description: 'only services whose name contains this, ignoring case' }),
  ),
  cursor: Type.Optional(
    Type.String({
      minLength: 1,
      maxLength: 400,
      pattern: '^[A-Za-z0-9_-]+$',
      description: 'next_cursor of the previous page',
    }),
  ),
});
export type ServicesQuery = Static<typeof ServicesQuery>;

/** One summary of `GET /v1/services` (documentation of the wire format; the body is pre-encoded). */
export const ServiceSummary = Type.Object({
  hosts: Type.Integer({ description: 'live hosts' }),
  revisions: Type.Integer({ description: 'distinct revisions among the live hosts' }),
  service: Type.String(),
  service_repo_names: Type.Array(Type.String(), { description: 'distinct repos among the live hosts' }),
  statuses: Type.Object(
    { DRAINING: Type.Integer(), OUT_OF_SERVICE: Type.Integer(), UP: Type.Integer() },
    { description: 'live hosts by effective status (they add up to hosts)' },
  ),
});

/** A page of `GET /v1/services`. */
export const ServicePage = Type.Object({
  env: Type.String(),
  next_cursor: Type.Union([Type.String(), Type.Null()], {
    description: 'pass as cursor for the next page; null on the last page',
  }),
  services: Type.Array(ServiceSummary),
  total: Type.Integer({ description: 'services matching prefix and filter, across every page' }),
});

/** A text body, documented with its media type (Fastify leaves strings unserialised). */
export function textBody(mediaType: string, description: string) {
  return { description, content: { [mediaType]: { schema: Type.String() } } };
}
