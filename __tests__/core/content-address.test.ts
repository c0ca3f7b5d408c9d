// The typed content address and the derivation kind, without Nix: parse/format round trips, the
// one path constructor against the path functions Nix's oracle tests pin, and every refusal.
import { createHash } from 'node:crypto';
import { describe, expect, test } from '@jest/globals';
import fc from 'fast-check';
import { anyString } from '../support/code-points.js';
import {
  contentAddressMethod,
  formatContentAddress,
  formatOutputHashAlgo,
  makeContentAddressedPath,
  parseContentAddress,
  parseOutputHashAlgo,
  type ContentAddress,
} from '../../src/core/content-address.js';
import { classifyDerivation, derivationKind, isFixedOutput } from '../../src/core/derivation/index.js';
import { NixPlanError } from '../../src/core/errors.js';
import { foldHash, hashBytes, sha256, toHex } from '../../src/core/hash.js';
import { nix32Encode } from '../../src/core/nix32.js';
import {
  makeFixedOutputPath,
  makeOutputPath,
  makeSourcePath,
  makeTextPath,
} from '../../src/core/store-path.js';

const STORE = '/nix/store';
const REF = '/nix/store/7h7qgvs4kgzsn8a6rb273saxyqh4jxlz-dep';
const digest = sha256('contents');
const sha1 = hashBytes('sha1', new TextEncoder().encode('contents'));

describe('content address: parse and format', () => {
  const cases: [string, ContentAddress][] = [
    ['text', { method: 'text', hash: { algo: 'sha256', bytes: digest } }],
    ['nar', { method: 'nar', hash: { algo: 'sha256', bytes: digest } }],
    ['flat', { method: 'flat', hash: sha1 }],
  ];
  test.each(cases)('%s round-trips through the narinfo CA: form and the hashAlgo form', (_, ca) => {
    const text = formatContentAddress(ca);
    expect(parseContentAddress(text)).toEqual(ca);
    expect(contentAddressMethod(text)).toBe(ca.method);
    const back = parseOutputHashAlgo(formatOutputHashAlgo(ca), toHex(ca.hash.bytes));
    expect(back).toEqual(ca);
  });

  test('spells them as Nix does', () => {
    expect(formatContentAddress(cases[0]![1])).toMatch(/^text:sha256:[0-9a-z]{52}$/);
    expect(formatContentAddress(cases[1]![1])).toMatch(/^fixed:r:sha256:[0-9a-z]{52}$/);
    expect(formatContentAddress(cases[2]![1])).toMatch(/^fixed:sha1:[0-9a-z]{32}$/);
    expect(formatOutputHashAlgo(cases[1]![1])).toBe('r:sha256');
    expect(formatOutputHashAlgo(cases[0]![1])).toBe('text:sha256');
  });

  test.each([
    ['source:sha256:abc'],
    ['text:sha1:' + '0'.repeat(32)],
    ['fixed:r:sha257:' + '0'.repeat(52)],
    ['fixed:sha256:short'],
  ])('refuses %s', (text) => {
    expect(() => parseContentAddress(text)).toThrow(NixPlanError);
  });

  test.each([
    ['r:sha257', toHex(digest)],
    ['sha256', `sha256:${toHex(digest)}`],
    ['text:sha1', toHex(sha1.bytes)],
  ])('refuses the output hashAlgo %s with hash %s', (algo, hash) => {
    expect(() => parseOutputHashAlgo(algo, hash)).toThrow(NixPlanError);
  });
});

describe('makeContentAddressedPath', () => {
  test('makes the path each store-path function makes for its method', () => {
    const text: ContentAddress = { method: 'text', hash: { algo: 'sha256', bytes: digest } };
    expect(makeContentAddressedPath('t.txt', text, STORE, [REF])).toBe(
      makeTextPath('t.txt', digest, [REF], STORE),
    );
    const nar: ContentAddress = { method: 'nar', hash: { algo: 'sha256', bytes: digest } };
    expect(makeContentAddressedPath('src', nar, STORE, [REF], true)).toBe(
      makeSourcePath('src', digest, STORE, [REF], true),
    );
    const narSha1: ContentAddress = { method: 'nar', hash: sha1 };
    expect(makeContentAddressedPath('x', narSha1, STORE)).toBe(makeFixedOutputPath('x', sha1, 'nar', STORE));
    const flat: ContentAddress = { method: 'flat', hash: sha1 };
    expect(makeContentAddressedPath('x', flat, STORE)).toBe(makeFixedOutputPath('x', sha1, 'flat', STORE));
  });

  test('refuses references where Nix cannot have them', () => {
    const flat: ContentAddress = { method: 'flat', hash: sha1 };
    expect(() => makeContentAddressedPath('x', flat, STORE, [REF])).toThrow(NixPlanError);
    const text: ContentAddress = { method: 'text', hash: { algo: 'sha256', bytes: digest } };
    expect(() => makeContentAddressedPath('x', text, STORE, [], true)).toThrow(NixPlanError);
  });
});

describe('derivation kind', () => {
  const out = (
    name: string,
    hashAlgo: string,
    hash: string,
    path = '',
  ): {
    name: string;
    path: string;
    hashAlgo: string;
    hash: string;
  } => ({ name, path, hashAlgo, hash });
  const fixed = out('out', 'r:sha256', toHex(digest), '/nix/store/x-f');

  test.each([
    ['input-addressed', [out('dev', '', ''), out('out', '', '')]],
    ['fixed', [fixed]],
    ['floating', [out('out', 'sha256', '')]],
    // One algorithm, whatever the method: Nix compares only the algorithms.
    ['floating', [out('dev', 'text:sha256', ''), out('out', 'r:sha256', '')]],
    ['impure', [out('out', 'sha256', 'impure')]],
  ])('%s', (kind, outputs) => {
    expect(classifyDerivation({ outputs })).toEqual({ kind });
    expect(derivationKind({ outputs }, 'd')).toBe(kind);
    expect(isFixedOutput({ outputs })).toBe(kind === 'fixed');
  });

  test.each([
    ['no-outputs', []],
    ['mixed', [out('dev', '', ''), out('out', 'sha256', '')]],
    ['fixed-not-one-out', [{ ...fixed, name: 'bin' }]],
    ['floating-algos', [out('dev', 'r:sha512', ''), out('out', 'r:sha256', '')]],
    [
      'fixed-not-one-out',
      [
        { ...fixed, name: 'a' },
        { ...fixed, name: 'b' },
      ],
    ],
  ])('%s has no kind', (problem, outputs) => {
    expect(classifyDerivation({ outputs })).toEqual({ problem });
    expect(() => derivationKind({ outputs }, 'd')).toThrow(/derivation d: /);
    expect(isFixedOutput({ outputs })).toBe(false);
  });
});

describe('store path fingerprints', () => {
  /** Nix's makeStorePath as its definition reads, on strings (hashed as UTF-8). */
  const byDefinition = (type: string, innerHex: string, name: string, storeDir: string): string =>
    `${storeDir}/${nix32Encode(foldHash(new Uint8Array(createHash('sha256').update(`${type}:sha256:${innerHex}:${storeDir}:${name}`).digest())))}-${name}`;
  // Mostly store-path characters; now and then any code unit, or a long string, which the
  // fingerprint written as bytes does not take (it is then made as a string).
  const text = fc.oneof(
    { weight: 8, arbitrary: fc.string({ unit: fc.constantFrom(...'abz09-._+/?=') }) },
    { weight: 1, arbitrary: anyString() },
    { weight: 1, arbitrary: fc.string({ minLength: 30_000, maxLength: 40_000 }) },
  );

  test('are hashed as Nix defines them, whatever the strings (property)', () => {
    fc.assert(
      fc.property(
        text,
        fc.array(text, { maxLength: 5 }),
        fc.boolean(),
        text,
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        (name, refs, self, storeDir, inner) => {
          const sorted = [...refs].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
          const withRefs = (type: string): string =>
            (sorted.length === 0 ? type : `${type}:${sorted.join(':')}`) + (self ? ':self' : '');
          expect(makeTextPath(name, inner, refs, storeDir)).toBe(
            byDefinition(
              sorted.length === 0 ? 'text' : `text:${sorted.join(':')}`,
              toHex(inner),
              name,
              storeDir,
            ),
          );
          expect(makeSourcePath(name, inner, storeDir, refs, self)).toBe(
            byDefinition(withRefs('source'), toHex(inner), name, storeDir),
          );
          expect(makeOutputPath(name, 'out', toHex(inner), storeDir)).toBe(
            byDefinition('output:out', toHex(inner), name, storeDir),
          );
        },
      ),
      { numRuns: 300 },
    );
  });
});
