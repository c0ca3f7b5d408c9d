// The tests' stand-in for fast-check's `unit: 'binary'` (see __tests__/support/code-points.ts):
// every code point but the surrogates, and the way back from a string to the index it came from.
import { describe, expect, test } from '@jest/globals';
import fc from 'fast-check';
import { anyString, codePoint, codePointToIndex, indexToCodePoint } from '../support/code-points.js';

describe('codePoint', () => {
  test('draws exactly one code point, never a lone surrogate, over the whole range', () => {
    const seen = { low: false, high: false, astral: false };
    for (const s of fc.sample(codePoint, { seed: 1, numRuns: 20_000 })) {
      expect([...s]).toHaveLength(1);
      const cp = s.codePointAt(0) ?? -1;
      expect(cp < 0xd800 || cp > 0xdfff).toBe(true);
      expect(cp).toBeLessThanOrEqual(0x10ffff);
      if (cp < 0xd800) seen.low = true;
      else if (cp <= 0xffff) seen.high = true;
      else seen.astral = true;
    }
    expect(seen).toEqual({ low: true, high: true, astral: true });
  });

  test('the way back gives the index each side of the surrogates, and refuses what it cannot draw', () => {
    const edges: [number, string][] = [
      [0, '\u0000'],
      [0xd7ff, '\ud7ff'],
      [0xd800, '\ue000'],
      [0xffff - 0x800, '\uffff'],
      [0x10000 - 0x800, '\u{10000}'],
      [0x10ffff - 0x800, '\u{10ffff}'],
    ];
    for (const [i, s] of edges) {
      expect(indexToCodePoint(i)).toBe(s);
      expect(codePointToIndex(s)).toBe(i);
      expect(codePoint.canShrinkWithoutContext(s)).toBe(true);
    }
    fc.assert(
      fc.property(fc.nat({ max: 0x10ffff - 0x800 }), (i) => codePointToIndex(indexToCodePoint(i)) === i),
    );
    for (const bad of ['\ud800', '\udfff', '\udc00\ud800', 'ab', '', 65, null]) {
      expect(() => codePointToIndex(bad)).toThrow();
      expect(codePoint.canShrinkWithoutContext(bad)).toBe(false);
    }
  });

  test('a string of them still gets the names fast-check slips in, like toString', () => {
    const drawn = fc.sample(anyString({ maxLength: 20 }), { seed: 7, numRuns: 5_000 });
    expect(drawn).toContain('toString');
    expect(anyString().canShrinkWithoutContext('x\u{1f680}\u0000')).toBe(true);
  });
});
