/**
 * Redis glob patterns (`*`, `?`, `[...]`, `\` escapes), matched as the hub matches them
 * (service/core/globmatch.py), so the client routes a delivery to the subscriptions whose
 * channels or patterns it belongs to.
 * @module
 */

const SPECIAL = /[*?[\\]/;
/** @type {Map<string, RegExp>} */
const compiled = new Map();

/** @param {string} channel */
export const isPattern = (channel) => SPECIAL.test(channel);

/** @param {string} c */
const escape = (c) => c.replace(/[\\^$.*+?()[\]{}|/-]/g, "\\$&");

/**
 * @param {Array<[string, string]>} members ranges (a single character is [c, c])
 * @param {boolean} negate
 */
function classToRegex(members, negate) {
  if (members.length === 0) return negate ? "[\\s\\S]" : "(?!)";
  const parts = members.map(([lo, hi]) => (lo === hi ? escape(lo) : `${escape(lo)}-${escape(hi)}`));
  return `[${negate ? "^" : ""}${parts.join("")}]`;
}

/**
 * @param {string} pattern
 * @returns {string} a regular expression source matching what `pattern` matches, in full
 */
export function translate(pattern) {
  const out = [];
  let i = 0;
  const n = pattern.length;
  while (i < n) {
    const c = pattern[i];
    if (c === "*") {
      while (i < n && pattern[i] === "*") i++;
      out.push("[\\s\\S]*");
      continue;
    }
    if (c === "?") {
      out.push("[\\s\\S]");
    } else if (c === "[") {
      i++;
      const negate = i < n && pattern[i] === "^";
      if (negate) i++;
      /** @type {Array<[string, string]>} */
      const members = [];
      while (i < n && pattern[i] !== "]") {
        if (pattern[i] === "\\" && i + 1 < n) {
          i++;
          members.push([pattern[i], pattern[i]]);
        } else if (i + 2 < n && pattern[i + 1] === "-") {
          const [lo, hi] = [pattern[i], pattern[i + 2]].sort();
          members.push([lo, hi]);
          i += 2;
        } else {
          members.push([pattern[i], pattern[i]]);
        }
        i++;
      }
      out.push(classToRegex(members, negate));
    } else if (c === "\\" && i + 1 < n) {
      i++;
      out.push(escape(pattern[i]));
    } else {
      out.push(escape(c));
    }
    i++;
  }
  return out.join("");
}

/**
 * Whether one of `names` (channel names and patterns, as subscriptions hold them) is `channel`
 * or a pattern matching it.
 * @param {string[]} names
 * @param {string} channel
 */
export const covers = (names, channel) =>
  names.some((name) => name === channel || (isPattern(name) && globMatch(name, channel)));

/**
 * @param {string} pattern a channel name or a Redis glob
 * @param {string} channel
 */
export function globMatch(pattern, channel) {
  let regex = compiled.get(pattern);
  if (!regex) {
    regex = new RegExp(`^(?:${translate(pattern)})$`);
    compiled.set(pattern, regex);
  }
  return regex.test(channel);
}
