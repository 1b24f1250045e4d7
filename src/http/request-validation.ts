import { AjvCompiler } from '@fastify/ajv-compiler';
import type { FastifySchemaCompiler } from 'fastify';
import { RegistrationBody } from './schemas.js';
import type { SchemaIssue } from './error-handler.js';

/** A compiled schema check as Fastify runs it: coerces and fills `data` in place, issues in `errors`. */
export type Validate = ((data: unknown) => boolean) & { errors?: SchemaIssue[] | null };

/**
 * Validators built exactly as Fastify builds its own (its ajv compiler with its default
 * options: coercion, defaults, no extra keys removed from open objects). The heartbeat route
 * and the heartbeat fast path run the one compiled body check (in RegistrationAnswers).
 */
export class RequestValidation {
  readonly compile: FastifySchemaCompiler<unknown>;
  readonly heartbeatBody: Validate;

  constructor() {
    // allowUnionTypes: the port is `type: ['string', 'integer']`, so text is never coerced (see PortText).
    const compile = AjvCompiler()({}, { customOptions: { allowUnionTypes: true }, plugins: [] });
    this.compile = compile as unknown as FastifySchemaCompiler<unknown>;
    this.heartbeatBody = compile({
      schema: RegistrationBody,
      method: 'POST',
      url: '/v1/registration/:service',
      httpPart: 'body',
    }) as unknown as Validate;
  }

  /**
   * The validator compiler of the heartbeat route: its params are Fastify's to check, its body
   * is left to RegistrationAnswers.heartbeat, which runs `heartbeatBody` for both transports
   * (and counts a refused body as a rejected heartbeat). The route keeps the body schema for
   * the API description.
   */
  readonly heartbeatRouteCompiler: FastifySchemaCompiler<unknown> = (route) =>
    route.httpPart === 'body' ? () => true : this.compile(route);
}
