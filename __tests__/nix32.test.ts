import { describe, expect, test } from '@jest/globals';
import fc from 'fast-check';
import { nix32Decode, nix32Encode } from '../src/core/nix32.js';
import { formatHash, hashBytes, parseHash } from '../src/core/hash.js';
import { makeTextPath } from '../src/core/store-path.js';
import { sha256 } from '../src/core/hash.js';

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
