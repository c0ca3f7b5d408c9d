// parseDerivationSpans leaves the environment's keys where they are written: the keys it gives,
// their order check and the outputs found by them must be the full parser's, for any drv.
import { describe, expect, test } from '@jest/globals';
import fc from 'fast-check';
import {
  outputNamed,
  outputNamedAt,
  parseDerivation,
  parseDerivationSpans,
  serialiseDerivation,
} from '../../../src/core/derivation/index.js';
import { derivationArb } from '../../support/derivation-arb.js';

/** The error a parse throws, or undefined. */
function errorOf(parse: () => unknown): string | undefined {
  try {
    parse();
    return undefined;
  } catch (e) {
    return (e as Error).message;
  }
}

describe('parseDerivationSpans', () => {
  test('gives the keys the full parse gives, and says where each is written (property)', () => {
    fc.assert(
      fc.property(derivationArb, (drv) => {
        const bytes = serialiseDerivation(drv);
        const { tail } = parseDerivationSpans(bytes);
        const full = parseDerivation(bytes);
        expect(tail.keys.map((k) => [...k])).toEqual(full.env.map((e) => [...e.key]));
        expect(tail.keySpans).toHaveLength(3 * full.env.length);
        full.env.forEach((e, i) => {
          const [start, end, escapes] = tail.keySpans.slice(3 * i, 3 * i + 3) as [number, number, number];
          expect(end - start - escapes).toBe(e.key.length);
          if (escapes === 0) expect([...bytes.subarray(start, end)]).toEqual([...e.key]);
          const o = outputNamed(full.outputs, e.key);
          if (escapes === 0) expect(outputNamedAt(full.outputs, bytes, start, end)).toBe(o);
        });
      }),
      { numRuns: 1000 },
    );
  });

  test('refuses an environment out of order or repeated as the full parse does (property)', () => {
    fc.assert(
      fc.property(derivationArb, fc.nat(), fc.boolean(), (drv, at, repeat) => {
        fc.pre(drv.env.length >= 2);
        const i = at % (drv.env.length - 1);
        const env = [...drv.env];
        if (repeat) env[i + 1] = { key: env[i]!.key, value: env[i + 1]!.value };
        else [env[i], env[i + 1]] = [env[i + 1]!, env[i]!];
        const bytes = serialiseDerivation({ ...drv, env });
        const expected = errorOf(() => parseDerivation(bytes));
        expect(expected).toMatch(
          repeat ? /duplicate environment variable/ : /environment variable out of order/,
        );
        expect(errorOf(() => parseDerivationSpans(bytes))).toBe(expected);
      }),
      { numRuns: 1000 },
    );
  });
});
