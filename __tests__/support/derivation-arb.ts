// Any derivation the ATerm format can hold (sorted lists, quote-free verbatim fields), for property
// tests of the parser, the serialiser and what reads .drv files.
import fc from 'fast-check';
import { anyString } from './code-points.js';
import { compareBytes } from '../../src/core/bytes.js';
import type { Derivation } from '../../src/core/derivation/index.js';

// Strings for verbatim fields (paths, output names, hash fields): no quote; anything else.
const rawField = anyString({ maxLength: 12 }).map((s) =>
  [...s]
    .map((c) => String.fromCharCode(c.charCodeAt(0) & 0xff))
    .join('')
    .replaceAll('"', ''),
);
const bytesArb = fc.uint8Array({ maxLength: 40 });
const sortedUniqueStrings = fc
  .uniqueArray(rawField, { maxLength: 4 })
  .map((a) => a.sort((x, y) => (x < y ? -1 : x > y ? 1 : 0)));

// An output's hash fields as Nix reads them: none, or a method prefix and an algorithm Nix knows
// beside any hash (the parser refuses the others, as Nix does).
const hashFields = fc.oneof(
  fc.constant({ hashAlgo: '', hash: '' }),
  fc.record({
    hashAlgo: fc
      .tuple(
        fc.constantFrom('', 'r:', 'text:', 'git:'),
        fc.constantFrom('md5', 'sha1', 'sha256', 'sha512', 'blake3'),
      )
      .map(([method, algo]) => method + algo),
    hash: rawField,
  }),
);

export const derivationArb: fc.Arbitrary<Derivation> = fc.record({
  version: fc.option(fc.constant('xp-dyn-drv'), { nil: undefined }),
  outputs: fc
    .uniqueArray(
      fc.tuple(fc.record({ name: rawField, path: rawField }), hashFields).map(([o, h]) => ({ ...o, ...h })),
      { selector: (o) => o.name, maxLength: 4 },
    )
    .map((a) => a.sort((x, y) => (x.name < y.name ? -1 : 1))),
  inputDrvs: fc
    .uniqueArray(fc.record({ path: rawField, outputs: sortedUniqueStrings }), {
      selector: (i) => i.path,
      maxLength: 4,
    })
    .map((a) => a.sort((x, y) => (x.path < y.path ? -1 : 1))),
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
    .map((a) => a.sort((x, y) => compareBytes(x.key, y.key))),
});
