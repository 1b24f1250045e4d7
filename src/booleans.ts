const TRUE_WORDS = new Set(['true', '1', 'yes', 'on', 'y', 't']);
const FALSE_WORDS = new Set(['false', '0', 'no', 'off', 'n', 'f']);

/**
 * The one rule for a yes/no written as text (settings, form fields, agent flags): true/false
 * for the usual spellings, case-insensitive, undefined for anything else. Callers say what an
 * undefined means where they are (a start-up error, a 400).
 */
export function parseBoolean(text: string): boolean | undefined {
  const word = text.trim().toLowerCase();
  if (TRUE_WORDS.has(word)) return true;
  if (FALSE_WORDS.has(word)) return false;
  return undefined;
}
