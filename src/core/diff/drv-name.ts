// Package names and versions as Nix reads them: `builtins.parseDrvName` and
// `builtins.compareVersions` (libstore's names.cc), so a diff groups and orders exactly as Nix does.

/** A derivation name split as `builtins.parseDrvName` splits it. */
export interface DrvName {
  /** Everything before the first dash that is not followed by a letter (the whole name without one). */
  readonly name: string;
  /** The rest after that dash; "" when there is none. */
  readonly version: string;
}

/** C's `isalpha` in the C locale: ASCII letters only (Nix calls it on each byte of the name). */
function isAlpha(code: number): boolean {
  return (code >= 0x41 && code <= 0x5a) || (code >= 0x61 && code <= 0x7a);
}

function isDigit(code: number): boolean {
  return code >= 0x30 && code <= 0x39;
}

/**
 * `builtins.parseDrvName`: the name is everything up to the first `-` that is followed by a
 * character that is not a letter, the version everything after that dash
 * (`apache-httpd-2.0.48` → `apache-httpd`, `2.0.48`; `foo-` → `foo-`, ``).
 */
export function parseDrvName(fullName: string): DrvName {
  for (let i = 0; i + 1 < fullName.length; i++)
    if (fullName.charCodeAt(i) === 0x2d && !isAlpha(fullName.charCodeAt(i + 1)))
      return { name: fullName.slice(0, i), version: fullName.slice(i + 1) };
  return { name: fullName, version: '' };
}

/** Largest number a version component may be and still compare as a number (Nix parses an `int`). */
const INT_MAX = 2 ** 31 - 1;

/** The version components of `v`: runs of digits, or runs of anything but digits, `.` and `-`. */
function components(v: string): string[] {
  const out: string[] = [];
  let p = 0;
  while (p < v.length) {
    while (p < v.length && (v[p] === '.' || v[p] === '-')) p++;
    if (p === v.length) break;
    const start = p;
    if (isDigit(v.charCodeAt(p))) while (p < v.length && isDigit(v.charCodeAt(p))) p++;
    else while (p < v.length && !isDigit(v.charCodeAt(p)) && v[p] !== '.' && v[p] !== '-') p++;
    out.push(v.slice(start, p));
  }
  return out;
}

/** A component as the number Nix's `string2Int<int>` reads, or undefined (letters, empty, overflow). */
function asInt(c: string): number | undefined {
  if (c === '' || !isDigit(c.charCodeAt(0))) return undefined;
  const n = Number(c);
  return n <= INT_MAX ? n : undefined;
}

/** Nix's `componentsLT`: numbers by value, "" and "pre" before anything, numbers after words. */
function componentLess(c1: string, c2: string): boolean {
  const n1 = asInt(c1);
  const n2 = asInt(c2);
  if (n1 !== undefined && n2 !== undefined) return n1 < n2;
  if (c1 === '' && n2 !== undefined) return true;
  if (c1 === 'pre' && c2 !== 'pre') return true;
  if (c2 === 'pre') return false;
  // Nix: "Assume that `2.3a' < `2.3.1'."
  if (n2 !== undefined) return true;
  if (n1 !== undefined) return false;
  return c1 < c2;
}

/**
 * `builtins.compareVersions`: -1, 0 or 1. Components are compared in turn, a missing one being
 * "" (so `1.0` < `1.0.1`, `1.0pre1` < `1.0`, `2.3a` < `2.3.1`).
 */
export function compareVersions(v1: string, v2: string): -1 | 0 | 1 {
  const a = components(v1);
  const b = components(v2);
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const c1 = a[i] ?? '';
    const c2 = b[i] ?? '';
    if (componentLess(c1, c2)) return -1;
    if (componentLess(c2, c1)) return 1;
  }
  return 0;
}
