// derivationSystem: the system found by skipping to it equals the full parser's, for any drv.
import { describe, expect, test } from '@jest/globals';
import fc from 'fast-check';
import {
  derivationReferences,
  parseDerivation,
  serialiseDerivation,
  type Derivation,
} from '../src/core/derivation.js';
import { MalformedError } from '../src/core/errors.js';
import { derivationSystem, scanDerivation } from '../src/nix/collect.js';

// Verbatim fields (paths, output names, hash fields) hold no quote; anything else goes.
const rawField = fc.string({ unit: 'binary', maxLength: 12 }).map((s) =>
  [...s]
    .map((c) => String.fromCharCode(c.charCodeAt(0) & 0xff))
    .join('')
    .replaceAll('"', ''),
);
const bytesArb = fc.uint8Array({ maxLength: 40 });
const byString =
  <T>(key: (x: T) => string) =>
  (x: T, y: T) =>
    key(x) < key(y) ? -1 : 1;
const sortedUniqueStrings = fc.uniqueArray(rawField, { maxLength: 4 }).map((a) => a.sort(byString((x) => x)));

const derivationArb: fc.Arbitrary<Derivation> = fc.record({
  version: fc.option(fc.constant('xp-dyn-drv'), { nil: undefined }),
  outputs: fc
    .uniqueArray(fc.record({ name: rawField, path: rawField, hashAlgo: rawField, hash: rawField }), {
      selector: (o) => o.name,
      maxLength: 4,
    })
    .map((a) => a.sort(byString((o) => o.name))),
  inputDrvs: fc
    .uniqueArray(fc.record({ path: rawField, outputs: sortedUniqueStrings }), {
      selector: (i) => i.path,
      maxLength: 4,
    })
    .map((a) => a.sort(byString((i) => i.path))),
  inputSrcs: sortedUniqueStrings,
  // Verbatim too: any byte but a quote.
  system: bytesArb.map((u) => u.filter((c) => c !== 0x22)),
  builder: bytesArb,
  args: fc.array(bytesArb, { maxLength: 4 }),
  env: fc
    .uniqueArray(fc.record({ key: bytesArb, value: bytesArb }), {
      selector: (e) => Buffer.from(e.key).toString('latin1'),
      maxLength: 6,
    })
    .map((a) => a.sort((x, y) => Buffer.compare(x.key, y.key))),
});

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
