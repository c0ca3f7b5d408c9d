// derivationSystem: the system found by skipping to it equals the full parser's, for any drv.
import { describe, expect, test } from '@jest/globals';
import fc from 'fast-check';
import {
  derivationReferences,
  derivationSystem,
  parseDerivation,
  scanDerivation,
  serialiseDerivation,
} from '../../../src/core/derivation/index.js';
import { MalformedError } from '../../../src/core/errors.js';
import { derivationArb } from '../../support/derivation-arb.js';

describe('derivationSystem', () => {
  test('equals the full parse for any derivation (property)', () => {
    fc.assert(
      fc.property(derivationArb, (drv) => {
        const bytes = serialiseDerivation(drv);
        const field = drv.version === undefined ? 3 : 4;
        expect(derivationSystem(bytes, field)).toBe(
          Buffer.from(parseDerivation(bytes).system).toString('latin1'),
        );
      }),
      { numRuns: 500 },
    );
  });

  test('scanDerivation finds the references the full parse gives (property)', () => {
    fc.assert(
      fc.property(derivationArb, (drv) => {
        const bytes = serialiseDerivation(drv);
        const full = parseDerivation(bytes);
        const scanned = scanDerivation(bytes, drv.version !== undefined);
        expect(scanned.references).toEqual(derivationReferences(full));
        expect(scanned.system).toBe(Buffer.from(full.system).toString('latin1'));
      }),
      { numRuns: 500 },
    );
  });

  test('a file it cannot follow is reported by the full parser, with its offset', () => {
    const bytes = new Uint8Array(Buffer.from('Derive([("out","/s/x","","")],[],[]'));
    expect(() => derivationSystem(bytes, 3)).toThrow(MalformedError);
  });
});
