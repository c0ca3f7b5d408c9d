// Nix's base-32 encoding ("nix32"): its own alphabet and a little-endian, reversed bit order.
import { MalformedError } from './errors.js';

/** The 32 characters of nix32, in digit order (no e, o, u, t). */
export const NIX32_ALPHABET = '0123456789abcdfghijklmnpqrsvwxyz';

const DIGIT = new Int8Array(256).fill(-1);
for (let i = 0; i < NIX32_ALPHABET.length; i++) DIGIT[NIX32_ALPHABET.charCodeAt(i)] = i;

/** Length of the nix32 text for `n` bytes. */
export function nix32Length(n: number): number {
  return Math.ceil((n * 8) / 5);
}

/** The alphabet as bytes. */
const ALPHABET_BYTES = Buffer.from(NIX32_ALPHABET, 'latin1');

/** Where nix32Encode writes its digits before they become one string (a store path's hash is 32). */
const scratch = Buffer.alloc(128);

/**
 * Encodes bytes as nix32 text; the first character holds the highest bits. The digits are written
 * as bytes and read out as one string: adding them to a string one by one made a string per digit
 * (52 for a sha256), and relocation encodes several hashes for every .drv.
 */
export function nix32Encode(bytes: Uint8Array): string {
  const len = nix32Length(bytes.length);
  const n = bytes.length;
  const out = len <= scratch.length ? scratch : Buffer.alloc(len);
  for (let k = len - 1, w = 0; k >= 0; k--, w++) {
    const bit = k * 5;
    const i = bit >> 3;
    const j = bit & 7;
    const lo = bytes[i]!;
    const hi = i + 1 < n ? bytes[i + 1]! : 0;
    out[w] = ALPHABET_BYTES[((lo >> j) | (hi << (8 - j))) & 0x1f]!;
  }
  return out.toString('latin1', 0, len);
}

/** True when `c` (a char code) is a nix32 digit. */
export function isNix32Char(c: number): boolean {
  return c < 256 && (DIGIT[c] ?? -1) >= 0;
}

/** Decodes nix32 text to bytes; refuses foreign characters and set bits beyond the byte length. */
export function nix32Decode(text: string): Uint8Array {
  const n = Math.floor((text.length * 5) / 8);
  if (nix32Length(n) !== text.length)
    throw new MalformedError('nix32', undefined, `invalid length ${text.length}`);
  const out = new Uint8Array(n);
  for (let pos = 0; pos < text.length; pos++) {
    const digit = DIGIT[text.charCodeAt(pos)] ?? -1;
    if (digit < 0) throw new MalformedError('nix32', pos, `invalid character ${JSON.stringify(text[pos])}`);
    const bit = (text.length - 1 - pos) * 5;
    const i = bit >> 3;
    const j = bit & 7;
    out[i] = (out[i] ?? 0) | ((digit << j) & 0xff);
    const carry = digit >> (8 - j);
    if (carry !== 0) {
      if (i + 1 >= n) throw new MalformedError('nix32', pos, 'excess bits in last digit');
      out[i + 1] = (out[i + 1] ?? 0) | carry;
    }
  }
  return out;
}
