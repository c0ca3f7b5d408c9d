// Strings of any Unicode code point for property tests, without fast-check's `unit: 'binary'`.
//
// That unit draws an index below 1,112,064 (every code point but the surrogates) and maps it to a
// character. To take a string apart again (which `fc.string` does as soon as it is built, to slip in
// names like `__proto__`) it builds a Map from each of those 1,112,064 characters back to its
// index: about 90 MB of heap. fast-check caches it in its module, and jest loads modules afresh for
// each test file, so every file using the unit built it again, and the tables of earlier files
// stayed on the heap until V8 got round to them. They made up half of a jest worker's heap at the
// end of a run, which the worker has to free page by page as it exits.
//
// `codePoint` draws the same index the same way (`fc.nat` up to the last one) and maps it to the
// same character, but computes the way back, so it costs nothing to take a string apart.
import fc from 'fast-check';

const SURROGATE_FIRST = 0xd800;
const SURROGATE_COUNT = 0xe000 - SURROGATE_FIRST;
/** The index of U+10FFFF: the code points below the surrogates, then those above them. */
const LAST_INDEX = 0x10ffff - SURROGATE_COUNT;

/** The code point at index `i` of the 1,112,064 (the same order as fast-check's unit). */
export function indexToCodePoint(i: number): string {
  return String.fromCodePoint(i < SURROGATE_FIRST ? i : i + SURROGATE_COUNT);
}

/** The index `indexToCodePoint` maps to `value`; throws for anything it never gives. */
export function codePointToIndex(value: unknown): number {
  if (typeof value !== 'string') throw new Error('not a string');
  const cp = value.codePointAt(0);
  if (cp === undefined || value.length !== (cp > 0xffff ? 2 : 1)) throw new Error('not one code point');
  if (cp >= SURROGATE_FIRST && cp < SURROGATE_FIRST + SURROGATE_COUNT) throw new Error('a lone surrogate');
  return cp < SURROGATE_FIRST ? cp : cp - SURROGATE_COUNT;
}

/** One code point as a string (one or two UTF-16 units), never a lone surrogate: `unit: 'binary'`. */
export const codePoint: fc.Arbitrary<string> = fc
  .nat({ max: LAST_INDEX })
  .map(indexToCodePoint, codePointToIndex);

/** `fc.string({ ...constraints, unit: 'binary' })`, without the 90 MB table (see above). */
export function anyString(constraints: Omit<fc.StringConstraints, 'unit'> = {}): fc.Arbitrary<string> {
  return fc.string({ ...constraints, unit: codePoint });
}
