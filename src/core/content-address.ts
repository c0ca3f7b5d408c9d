// Content addresses: a typed `text` / `flat` / `nar` method with its hash, parsed from and written
// as Nix writes it (a narinfo's `CA:` field, a derivation output's `hashAlgo`), the one function
// that makes a content-addressed store path, and the check of which objects name themselves by
// their content (bundle entries; the `CA:` that lets an untrusted user import them).
import { MalformedError } from './errors.js';
import { formatHash, hashBytes, isHashAlgo, parseHash, sha256, type Hash, type HashAlgo } from './hash.js';
import { gitBlobHash, type GitHashAlgo } from './git-hash.js';
import { nix32Encode } from './nix32.js';
import { makeFixedOutputPath, makeSourcePath, makeTextPath, nameOf } from './store-path.js';

/**
 * How an object's hash covers it: `text` (a file's bytes, with references: `.drv` files and
 * `builtins.toFile`), `flat` (a single file's bytes), `nar` (its NAR serialisation, "recursive")
 * or `git` (as git hashes it: a file as a blob, a directory as a tree; Nix's experimental
 * `git-hashing`, sha1 or sha256 only).
 */
export type ContentAddressMethod = 'text' | 'flat' | 'nar' | 'git';

/** The `CA:` prefix of each method (Nix's `renderPrefixModern`). */
const CA_PREFIX: Readonly<Record<ContentAddressMethod, string>> = {
  text: 'text:',
  nar: 'fixed:r:',
  git: 'fixed:git:',
  flat: 'fixed:',
};

/** A content address: the method and the hash (nix-compat's `CAHash`). */
export interface ContentAddress {
  readonly method: ContentAddressMethod;
  readonly hash: Hash;
}

function bad(text: string, detail: string): never {
  throw new MalformedError('content address', undefined, `'${text}': ${detail}`);
}

/**
 * The method of a narinfo `CA:` value from its prefix alone (`text:sha256:`, `fixed:r:`,
 * `fixed:git:`, `fixed:`), or undefined for any other: for callers that need no digest.
 */
export function contentAddressMethod(text: string): ContentAddressMethod | undefined {
  if (text.startsWith('text:sha256:')) return 'text';
  if (text.startsWith('fixed:r:')) return 'nar';
  if (text.startsWith('fixed:git:')) return 'git';
  if (text.startsWith('fixed:')) return 'flat';
  return undefined;
}

/**
 * Parses a narinfo `CA:` value: `text:sha256:<hash>`, `fixed:r:<algo>:<hash>`,
 * `fixed:git:<algo>:<hash>` or `fixed:<algo>:<hash>`.
 */
export function parseContentAddress(text: string): ContentAddress {
  const method = contentAddressMethod(text);
  if (method === undefined) bad(text, "it does not start with 'text:sha256:' or 'fixed:'");
  const ca: ContentAddress = { method, hash: parseHash(text.slice(CA_PREFIX[method].length)) };
  checkMethodAlgo(ca, text);
  return ca;
}

/** Refuses an algorithm the method cannot take, as Nix does. */
function checkMethodAlgo(ca: ContentAddress, text: string): void {
  if (ca.method === 'text' && ca.hash.algo !== 'sha256') bad(text, 'a text-hashed output must use sha256');
  if (ca.method === 'git' && ca.hash.algo !== 'sha1' && ca.hash.algo !== 'sha256')
    bad(text, 'git hashing must use sha1 or sha256');
}

/** A content address as a narinfo's `CA:` field writes it (the digest in nix32). */
export function formatContentAddress(ca: ContentAddress): string {
  return CA_PREFIX[ca.method] + formatHash(ca.hash, 'nix32', true);
}

/**
 * The content address a fixed output declares in a .drv: `hashAlgo` as written (`r:sha256`,
 * `text:sha256`, `sha1`, …) and `hash`, a bare hex (or nix32) digest.
 */
export function parseOutputHashAlgo(hashAlgo: string, hash: string): ContentAddress {
  let method: ContentAddressMethod = 'flat';
  let algo = hashAlgo;
  for (const m of ['nar', 'text', 'git'] as const)
    if (algo.startsWith(ALGO_PREFIX[m])) {
      method = m;
      algo = algo.slice(ALGO_PREFIX[m].length);
      break;
    }
  if (!isHashAlgo(algo)) bad(hashAlgo, 'unsupported hash algorithm');
  if (hash.includes(':') || hash.includes('-')) bad(hash, 'the output hash is not a bare digest');
  const ca: ContentAddress = { method, hash: parseHash(hash, algo) };
  checkMethodAlgo(ca, hashAlgo);
  return ca;
}

/** The `hashAlgo` prefix of each method in a .drv (Nix's `makeFileIngestionPrefix`). */
const ALGO_PREFIX: Readonly<Record<ContentAddressMethod, string>> = {
  nar: 'r:',
  text: 'text:',
  git: 'git:',
  flat: '',
};

/** A content address as a .drv's output `hashAlgo` field writes it (`r:sha256`, `git:sha1`, `sha1`). */
export function formatOutputHashAlgo(ca: ContentAddress): string {
  return ALGO_PREFIX[ca.method] + ca.hash.algo;
}

/**
 * The store path of a content-addressed object (Nix's `makeFixedOutputPathFromCA`): the one
 * constructor every caller uses. `text` takes references; `nar` over sha256 takes references and
 * `self` (a source); any other may have neither.
 */
export function makeContentAddressedPath(
  name: string,
  ca: ContentAddress,
  storeDir: string,
  references: Iterable<string> = [],
  self = false,
): string {
  if (ca.method === 'text') {
    if (ca.hash.algo !== 'sha256' || self) bad(formatContentAddress(ca), 'not a valid text address');
    return makeTextPath(name, ca.hash.bytes, references, storeDir);
  }
  if (ca.method === 'nar' && ca.hash.algo === 'sha256')
    return makeSourcePath(name, ca.hash.bytes, storeDir, references, self);
  if (self || !isEmpty(references))
    bad(formatContentAddress(ca), 'only text and sha256 NAR addresses can have references');
  return makeFixedOutputPath(name, ca.hash, ca.method, storeDir);
}

function isEmpty(items: Iterable<string>): boolean {
  if (Array.isArray(items)) return items.length === 0;
  for (const _ of items) return false;
  return true;
}

/** The kinds of content-addressed object: `drv` and `text` files (text-addressed), and sources. */
export type ContentAddressedKind = 'drv' | 'text' | 'source';

/** Every content-addressed kind, in the order counts are listed. */
export const CONTENT_ADDRESSED_KINDS: readonly ContentAddressedKind[] = ['drv', 'text', 'source'];

/** How a store object is content-addressed. */
export interface ContentAddressed {
  /** `drv` and `text` are text-addressed files; `source` is a fixed (flat or recursive) object. */
  readonly kind: ContentAddressedKind;
  /** The narinfo `CA:` value: `text:sha256:<nix32>`, `fixed:r:sha256:<nix32>` or `fixed:<algo>:<nix32>`. */
  readonly ca: string;
}

/** What is known of a store object: enough to recompute its path. */
export interface ObjectFacts {
  readonly path: string;
  readonly references: readonly string[];
  /**
   * sha256 of the object's NAR serialisation, or what computes it: it is asked for only when the
   * object is not a text file (a reader puts off hashing the NAR of a kept file; see tryReadFileNar).
   * Without it, the object is not recognised as a recursive source.
   */
  readonly narHash?: Uint8Array | (() => Uint8Array) | undefined;
  /** The contents, when the object is a single regular file (always the case for drv and text). */
  readonly file?: { readonly executable: boolean; readonly contents: Uint8Array } | undefined;
  /** sha256 of `file.contents` when the caller computed it already (a NAR reader does). */
  readonly fileSha256?: Uint8Array | undefined;
}

const FLAT_ALGOS: readonly HashAlgo[] = ['sha256', 'sha1', 'sha512', 'md5'];
const GIT_ALGOS: readonly GitHashAlgo[] = ['sha1', 'sha256'];

/**
 * Determines how `obj` is content-addressed by recomputing its path every way Nix could have
 * named it, or undefined when none matches (an input-addressed build output, or a forgery).
 * Flat fixed outputs are found for every algorithm nix-plan can compute (not blake3), git-hashed
 * ones for single files (git blobs; a directory's git tree is not computed); recursive ones only
 * for sha256, the only NAR hash a bundle carries.
 */
export function identifyContentAddress(obj: ObjectFacts, storeDir: string): ContentAddressed | undefined {
  const name = nameOf(obj.path);
  const file = obj.file;
  if (file !== undefined && !file.executable) {
    const hash: Hash = { algo: 'sha256', bytes: obj.fileSha256 ?? sha256(file.contents) };
    if (makeContentAddressedPath(name, { method: 'text', hash }, storeDir, obj.references) === obj.path)
      return { kind: name.endsWith('.drv') ? 'drv' : 'text', ca: `text:sha256:${nix32Encode(hash.bytes)}` };
  }
  const others = obj.references.filter((r) => r !== obj.path);
  const self = others.length !== obj.references.length;
  const narHash = typeof obj.narHash === 'function' ? obj.narHash() : obj.narHash;
  if (narHash !== undefined) {
    const ca: ContentAddress = { method: 'nar', hash: { algo: 'sha256', bytes: narHash } };
    if (makeContentAddressedPath(name, ca, storeDir, others, self) === obj.path)
      return { kind: 'source', ca: formatContentAddress(ca) };
  }
  if (file !== undefined && obj.references.length === 0) {
    // A git-hashed file is its git blob, whatever its executable bit.
    for (const algo of GIT_ALGOS) {
      const ca: ContentAddress = { method: 'git', hash: gitBlobHash(algo, file.contents) };
      if (makeContentAddressedPath(name, ca, storeDir) === obj.path)
        return { kind: 'source', ca: formatContentAddress(ca) };
    }
  }
  if (file !== undefined && !file.executable && obj.references.length === 0) {
    for (const algo of FLAT_ALGOS) {
      const hash =
        algo === 'sha256' && obj.fileSha256 !== undefined
          ? { algo, bytes: obj.fileSha256 }
          : hashBytes(algo, file.contents);
      const ca: ContentAddress = { method: 'flat', hash };
      if (makeContentAddressedPath(name, ca, storeDir) === obj.path)
        return { kind: 'source', ca: formatContentAddress(ca) };
    }
  }
  return undefined;
}
