/**
 * The rule for service and repo names, in one place: 1 to NAME_MAX_LENGTH characters, none of
 * them a slash (a name is one URL path segment) or a control character (names reach logs,
 * statsd names and Envoy resources).
 */
export const NAME_MAX_LENGTH = 256;

/** The characters no name holds, as the inside of a regular expression's character class. */
export const NAME_FORBIDDEN_CHARACTERS = '/\\u0000-\\u001f\\u007f';

/** The request schemas' pattern for a name (its length is bounded by the schema's maxLength). */
export const NAME_PATTERN = `^[^${NAME_FORBIDDEN_CHARACTERS}]+$`;
/** The same for an optional name, where `""` means none (`service_repo_name`). */
export const OPTIONAL_NAME_PATTERN = `^[^${NAME_FORBIDDEN_CHARACTERS}]*$`;

const NAME = new RegExp(NAME_PATTERN);

export function isName(text: string): boolean {
  return text.length <= NAME_MAX_LENGTH && NAME.test(text);
}
