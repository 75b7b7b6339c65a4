// Option-object key checks for the library API: a misspelt option key is an error naming it,
// with the valid keys listed, instead of being silently ignored.

/**
 * Throws when `opts` is not a plain object or has a key outside `validKeys`.
 * `where` names the call and its argument as the user wrote it, e.g. "loadModel options".
 */
export function checkOptionKeys(
  where: string,
  opts: unknown,
  validKeys: readonly string[],
  makeError: (message: string) => Error = (message) => new TypeError(message),
): void {
  if (opts === undefined) return;
  if (opts === null || typeof opts !== "object" || Array.isArray(opts)) {
    throw makeError(`${where} must be an object, got ${describeValue(opts)}`);
  }
  for (const key of Object.keys(opts)) {
    if (validKeys.includes(key)) continue;
    const near = nearestKey(key, validKeys);
    const hint = near === null ? "" : ` (did you mean "${near}"?)`;
    throw makeError(`${where}: unknown option "${key}"${hint}; valid options: ${validKeys.join(", ")}`);
  }
}

function describeValue(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  return typeof v === "string" ? JSON.stringify(v) : `${typeof v} ${String(v)}`;
}

/** The valid key closest to `key` (case-insensitive edit distance at most 2), or null. */
function nearestKey(key: string, validKeys: readonly string[]): string | null {
  const MAX_DISTANCE = 2;
  let best: string | null = null;
  let bestDistance = MAX_DISTANCE + 1;
  for (const candidate of validKeys) {
    const d = editDistance(key.toLowerCase(), candidate.toLowerCase());
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return best;
}

/** Levenshtein distance; keys are short (bounded by the 64 characters looked at). */
function editDistance(a: string, b: string): number {
  const MAX_LENGTH = 64;
  const s = a.slice(0, MAX_LENGTH);
  const t = b.slice(0, MAX_LENGTH);
  let previous = Array.from({ length: t.length + 1 }, (_, j) => j);
  for (let i = 1; i <= s.length; i++) {
    const current = [i];
    for (let j = 1; j <= t.length; j++) {
      const substitution = (previous[j - 1] as number) + (s[i - 1] === t[j - 1] ? 0 : 1);
      current[j] = Math.min((previous[j] as number) + 1, (current[j - 1] as number) + 1, substitution);
    }
    previous = current;
  }
  return previous[t.length] as number;
}
