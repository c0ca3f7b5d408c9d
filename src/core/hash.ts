// Hashes as Nix writes them: algorithms, the four text encodings, parsing, and folding.
import { createHash, hash as oneShotHash } from 'node:crypto';
import { MalformedError, NixPlanError } from './errors.js';
import { nix32Decode, nix32Encode, nix32Length } from './nix32.js';

/**
 * Hash algorithms Nix understands (blake3 since Nix 2.31, experimental `blake3-hashes`: a
 * content address nix-plan can read and name paths by, but not compute).
 */
export type HashAlgo = 'md5' | 'sha1' | 'sha256' | 'sha512' | 'blake3';

/** Digest size in bytes of each algorithm. */
export const HASH_SIZE: Readonly<Record<HashAlgo, number>> = {
  md5: 16,
  sha1: 20,
  sha256: 32,
  sha512: 64,
  blake3: 32,
};

/** A digest together with its algorithm. */
export interface Hash {
  readonly algo: HashAlgo;
  readonly bytes: Uint8Array;
}

/** Text encodings of a hash, as in Nix's `HashFormat`. */
export type HashFormat = 'base16' | 'nix32' | 'base64' | 'sri';

/** True for the algorithm names Nix accepts. */
export function isHashAlgo(s: string): s is HashAlgo {
  return s === 'md5' || s === 'sha1' || s === 'sha256' || s === 'sha512' || s === 'blake3';
}

/** True for the algorithms nix-plan can compute (Node's crypto has no blake3). */
export function canCompute(algo: HashAlgo): boolean {
  return algo !== 'blake3';
}

/**
 * The bytes of a digest given as a `binary` (latin1) string. Digests are asked for that way, not
 * as a Buffer: a Buffer is memory outside the JS heap, allocated and later freed for every hash
 * (relocating 10,000 .drvs takes some 85,000), while a short string and a 32-byte array live on
 * the heap.
 */
export function digestBytes(binary: string): Uint8Array {
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < out.length; i++) out[i] = binary.charCodeAt(i);
  return out;
}

/** Digest of `data` (bytes or a string, taken as UTF-8). */
export function hashBytes(algo: HashAlgo, ...data: (Uint8Array | string)[]): Hash {
  if (!canCompute(algo)) throw new NixPlanError('internal', `nix-plan cannot compute ${algo} hashes`);
  const h = createHash(algo);
  for (const d of data) h.update(d);
  return { algo, bytes: digestBytes(h.digest('binary')) };
}

/** Where `sha256` joins byte inputs for the one-shot hash (reused: hashing is synchronous). */
const JOINED = new Uint8Array(256 * 1024);

/** sha256 of the arguments, as raw bytes. */
export function sha256(...data: (Uint8Array | string)[]): Uint8Array {
  // The one-shot hash skips a Hash object (a native object the GC must finalise); several
  // inputs (a .drv around its replaced input list, twice per .drv) are joined for it first,
  // which costs less than the object while they fit.
  if (data.length === 1) return digestBytes(oneShotHash('sha256', data[0] as Uint8Array | string, 'binary'));
  let size = 0;
  for (const d of data) {
    if (typeof d === 'string') return hashBytes('sha256', ...data).bytes;
    size += d.length;
  }
  if (size > JOINED.length) return hashBytes('sha256', ...data).bytes;
  let at = 0;
  for (const d of data as Uint8Array[]) {
    JOINED.set(d, at);
    at += d.length;
  }
  return digestBytes(oneShotHash('sha256', JOINED.subarray(0, size), 'binary'));
}

/** Where `toHex` puts a digest to encode it (reused: encoding is synchronous). */
const HEX_SCRATCH = Buffer.allocUnsafeSlow(64);

/**
 * Lower-case hex of bytes. A digest is copied into a buffer of its own first: a typed array of up
 * to 64 bytes lives inside the JS heap, and reading its `.buffer` (to view it as a Buffer) makes
 * V8 move it out to memory of its own, about 0.9 µs per digest against 0.1 µs for the copy.
 */
export function toHex(bytes: Uint8Array): string {
  if (bytes.length <= HEX_SCRATCH.length) {
    HEX_SCRATCH.set(bytes);
    return HEX_SCRATCH.toString('hex', 0, bytes.length);
  }
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}

/** Compresses a digest to `size` bytes by XOR-ing, as Nix does for store path hashes. */
export function foldHash(bytes: Uint8Array, size = 20): Uint8Array {
  const out = new Uint8Array(size);
  for (let i = 0; i < bytes.length; i++) out[i % size] = (out[i % size] ?? 0) ^ (bytes[i] ?? 0);
  return out;
}

/** Encodes the digest alone (no algorithm prefix), except SRI which always carries it. */
export function formatHash(hash: Hash, format: HashFormat, withAlgo = false): string {
  switch (format) {
    case 'base16':
      return (withAlgo ? `${hash.algo}:` : '') + toHex(hash.bytes);
    case 'nix32':
      return (withAlgo ? `${hash.algo}:` : '') + nix32Encode(hash.bytes);
    case 'base64':
      return (withAlgo ? `${hash.algo}:` : '') + Buffer.from(hash.bytes).toString('base64');
    case 'sri':
      return `${hash.algo}-${Buffer.from(hash.bytes).toString('base64')}`;
  }
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const HEX = /^[0-9a-fA-F]*$/;

function decodeDigest(algo: HashAlgo, text: string, what: string): Uint8Array {
  const size = HASH_SIZE[algo];
  if (text.length === size * 2 && HEX.test(text)) return new Uint8Array(Buffer.from(text, 'hex'));
  if (text.length === nix32Length(size)) return nix32Decode(text);
  if (text.length === Math.ceil(size / 3) * 4 && BASE64.test(text)) {
    const bytes = new Uint8Array(Buffer.from(text, 'base64'));
    if (bytes.length === size) return bytes;
  }
  throw new MalformedError(
    what,
    undefined,
    `hash '${text}' is not a valid ${algo} digest in hex, nix32 or base64`,
  );
}

/**
 * Parses a hash as Nix accepts it: `algo:digest`, SRI `algo-base64`, or a bare digest when
 * `defaultAlgo` is given. The digest may be hex, nix32 or base64.
 */
export function parseHash(text: string, defaultAlgo?: HashAlgo): Hash {
  const sri = /^(md5|sha1|sha256|sha512|blake3)-(.*)$/.exec(text);
  if (sri?.[1] !== undefined && sri[2] !== undefined && isHashAlgo(sri[1])) {
    const bytes = new Uint8Array(Buffer.from(sri[2], 'base64'));
    if (bytes.length !== HASH_SIZE[sri[1]] || !BASE64.test(sri[2]))
      throw new MalformedError('hash', undefined, `SRI hash '${text}' has the wrong length or alphabet`);
    return { algo: sri[1], bytes };
  }
  const colon = text.indexOf(':');
  if (colon >= 0) {
    const algo = text.slice(0, colon);
    if (!isHashAlgo(algo)) throw new MalformedError('hash', undefined, `unknown hash algorithm '${algo}'`);
    return { algo, bytes: decodeDigest(algo, text.slice(colon + 1), 'hash') };
  }
  if (defaultAlgo === undefined)
    throw new MalformedError('hash', undefined, `hash '${text}' does not name its algorithm`);
  return { algo: defaultAlgo, bytes: decodeDigest(defaultAlgo, text, 'hash') };
}

/** True when two hashes are the same algorithm and digest. */
export function hashEquals(a: Hash, b: Hash): boolean {
  return a.algo === b.algo && Buffer.compare(a.bytes, b.bytes) === 0;
}
