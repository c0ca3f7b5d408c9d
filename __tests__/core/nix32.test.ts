import { describe, expect, test } from '@jest/globals';
import fc from 'fast-check';
import { anyString } from '../support/code-points.js';
import { nix32Decode, nix32Encode } from '../../src/core/nix32.js';
import { createHash } from 'node:crypto';
import {
  digestBytes,
  foldHash,
  formatHash,
  hashBytes,
  parseHash,
  sha256,
  toHex,
} from '../../src/core/hash.js';
import { makeSourcePath, makeTextPath } from '../../src/core/store-path.js';

describe('nix32', () => {
  test('known vector: sha256 of the empty string', () => {
    // `nix hash to-base32 sha256:e3b0c442...` = 0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73
    expect(formatHash(hashBytes('sha256', ''), 'nix32')).toBe(
      '0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73',
    );
  });
  test('round-trips random bytes (past the 128 digits the encoder writes in place, too)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 120 }), (b) => {
        expect(nix32Decode(nix32Encode(b))).toEqual(b);
      }),
    );
  });
  test('parseHash accepts every encoding', () => {
    const h = hashBytes('sha256', 'abc');
    for (const f of ['base16', 'nix32', 'base64'] as const)
      expect(parseHash(formatHash(h, f, true))).toEqual(h);
    expect(parseHash(formatHash(h, 'sri'))).toEqual(h);
  });
  test('text path of builtins.toFile "hello" "hi"', () => {
    // nix-instantiate --eval -E 'builtins.toFile "hello" "hi"'
    expect(makeTextPath('hello', sha256('hi'), [], '/nix/store')).toMatch(
      /^\/nix\/store\/[0-9a-z]{32}-hello$/,
    );
  });
});

describe('sha256 and hashBytes', () => {
  const reference = (algo: string, parts: (Uint8Array | string)[]): Uint8Array => {
    const h = createHash(algo);
    for (const p of parts) h.update(p);
    return new Uint8Array(h.digest());
  };
  // Byte parts are joined in a 256 KiB buffer for the one-shot hash; strings and larger inputs
  // take the streaming hash. Every mix must give the digest of the concatenation.
  const part = fc.oneof(
    fc.uint8Array({ maxLength: 64 }),
    anyString({ maxLength: 16 }),
    fc.integer({ min: 0, max: 300 * 1024 }).map((n) => new Uint8Array(n).fill(n % 251)),
  );
  test('give the digest of their inputs one after the other, whatever their kind and size', () => {
    fc.assert(
      fc.property(fc.array(part, { maxLength: 4 }), (parts) => {
        expect(sha256(...parts)).toEqual(reference('sha256', parts));
        for (const algo of ['md5', 'sha1', 'sha512'] as const)
          expect(hashBytes(algo, ...parts).bytes).toEqual(reference(algo, parts));
      }),
      { numRuns: 60 },
    );
  });
  test('a digest is an array of its own, not a view of a buffer reused by the next hash', () => {
    const a = sha256(new Uint8Array([1]), new Uint8Array([2]));
    const b = sha256(new Uint8Array([3]), new Uint8Array([4]));
    expect(a).toEqual(reference('sha256', [new Uint8Array([1, 2])]));
    expect(b).toEqual(reference('sha256', [new Uint8Array([3, 4])]));
    expect(a.byteLength).toBe(a.buffer.byteLength);
  });
  test('digestBytes reads every byte value of a binary string', () => {
    const all = Uint8Array.from({ length: 256 }, (_, i) => i);
    expect(digestBytes(Buffer.from(all).toString('binary'))).toEqual(all);
  });
  // Up to 64 bytes toHex copies into a buffer it reuses; beyond, it views the bytes in place.
  test('toHex and formatHash encode arrays of any size, views into larger buffers and one after another', () => {
    const bytes = fc.oneof(
      fc.uint8Array({ maxLength: 130 }),
      fc
        .tuple(fc.uint8Array({ minLength: 1, maxLength: 200 }), fc.nat(), fc.nat())
        .map(([b, x, y]) => b.subarray(Math.min(x, y) % b.length, Math.max(x, y) % (b.length + 1))),
    );
    fc.assert(
      fc.property(bytes, bytes, (a, b) => {
        const hexA = toHex(a);
        expect(toHex(b)).toBe(Buffer.from(b).toString('hex'));
        expect(hexA).toBe(Buffer.from(a).toString('hex'));
        const hash = { algo: 'sha256' as const, bytes: a };
        expect(formatHash(hash, 'base16', true)).toBe(`sha256:${hexA}`);
        expect(formatHash(hash, 'base64')).toBe(Buffer.from(a).toString('base64'));
        expect(formatHash(hash, 'sri')).toBe(`sha256-${Buffer.from(a).toString('base64')}`);
      }),
      { numRuns: 200 },
    );
  });
});

describe('text and source paths', () => {
  const STORE = '/nix/store';
  const ref = fc.stringMatching(/^[0-9a-df-np-sv-z]{32}-[a-z]{1,8}$/).map((b) => `${STORE}/${b}`);
  // Nix's fingerprint, written out: type, each reference sorted, self, then the hash and names.
  const model = (type: string, refs: string[], self: boolean, hash: Uint8Array, name: string): string => {
    const parts = [type, ...[...refs].sort(), ...(self ? ['self'] : [])].join(':');
    const fingerprint = `${parts}:sha256:${toHex(hash)}:${STORE}:${name}`;
    return `${STORE}/${nix32Encode(foldHash(sha256(fingerprint)))}-${name}`;
  };
  test('follow the fingerprint whatever order the references come in', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(ref, { maxLength: 6 }),
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.boolean(),
        (refs, hash, self) => {
          const shuffled = [...refs].reverse();
          expect(makeTextPath('t', hash, shuffled, STORE)).toBe(model('text', refs, false, hash, 't'));
          expect(makeTextPath('t', hash, new Set(refs), STORE)).toBe(model('text', refs, false, hash, 't'));
          expect(makeSourcePath('s', hash, STORE, shuffled, self)).toBe(
            model('source', refs, self, hash, 's'),
          );
        },
      ),
    );
  });
});
