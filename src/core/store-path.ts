// Store paths: parsing and validation, and the fingerprints Nix hashes to name every kind of object.
import { NixPlanError, MalformedError } from './errors.js';
import { hash as oneShotHash } from 'node:crypto';
import { sha256, toHex, type Hash } from './hash.js';
import { isNix32Char, nix32Encode } from './nix32.js';

/** Length of the hash part of a store path's base name. */
export const HASH_PART_LENGTH = 32;
/** Longest name Nix accepts after the hash and dash. */
export const MAX_NAME_LENGTH = 211;

/** A store path split into its parts. */
export interface StorePath {
  readonly storeDir: string;
  readonly hashPart: string;
  readonly name: string;
}

const NAME_CHAR = /^[A-Za-z0-9+\-._?=]+$/;
const STORE_DIR = /^(\/[A-Za-z0-9._+-]+)+$/;

/** Why `storeDir` cannot be a realm, or undefined if it can. */
export function storeDirProblem(storeDir: string): string | undefined {
  if (!storeDir.startsWith('/')) return 'it is not absolute';
  if (storeDir.endsWith('/')) return 'it ends with a slash';
  if (!STORE_DIR.test(storeDir)) return 'it may only contain A-Z a-z 0-9 . _ + - and single slashes';
  if (storeDir.split('/').some((c) => c === '.' || c === '..')) return 'it contains . or .. components';
  return undefined;
}

/** Throws a 'realm' error unless `storeDir` is a valid store directory. */
export function assertStoreDir(storeDir: string): void {
  const problem = storeDirProblem(storeDir);
  if (problem !== undefined)
    throw new NixPlanError('realm', `invalid store directory '${storeDir}': ${problem}`);
}

/** Why `name` is not a valid store path name, or undefined if it is. */
export function nameProblem(name: string): string | undefined {
  if (name.length === 0) return 'the name is empty';
  if (name.length > MAX_NAME_LENGTH) return `the name is longer than ${MAX_NAME_LENGTH} characters`;
  if (name === '.' || name === '..') return `the name is '${name}'`;
  if (name.startsWith('.')) return 'the name starts with a period';
  if (!NAME_CHAR.test(name)) return 'the name has a character outside A-Z a-z 0-9 + - . _ ? =';
  return undefined;
}

/** True when `s` is 32 nix32 characters. */
export function isHashPart(s: string): boolean {
  if (s.length !== HASH_PART_LENGTH) return false;
  for (let i = 0; i < s.length; i++) if (!isNix32Char(s.charCodeAt(i))) return false;
  return true;
}

/** Parses a full store path under `storeDir`; throws a MalformedError naming the problem. */
export function parseStorePath(path: string, storeDir: string): StorePath {
  const prefix = storeDir + '/';
  if (!path.startsWith(prefix))
    throw new MalformedError(
      'store path',
      undefined,
      `'${path}' is not in the store directory '${storeDir}'`,
    );
  const base = path.slice(prefix.length);
  const hashPart = base.slice(0, HASH_PART_LENGTH);
  if (!isHashPart(hashPart) || base[HASH_PART_LENGTH] !== '-')
    throw new MalformedError(
      'store path',
      undefined,
      `'${path}' does not start with a 32-character nix32 hash and a dash`,
    );
  const name = base.slice(HASH_PART_LENGTH + 1);
  const problem = nameProblem(name);
  if (problem !== undefined) throw new MalformedError('store path', undefined, `'${path}': ${problem}`);
  return { storeDir, hashPart, name };
}

/** True when `path` is a valid store path under `storeDir`. */
export function isStorePath(path: string, storeDir: string): boolean {
  try {
    parseStorePath(path, storeDir);
    return true;
  } catch {
    return false;
  }
}

/** The base name (`<hash>-<name>`) of a store path. */
export function baseName(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

/** The 32-character hash part of a full store path (no validation). */
export function hashPartOf(path: string): string {
  return baseName(path).slice(0, HASH_PART_LENGTH);
}

/** The name part of a full store path (no validation). */
export function nameOf(path: string): string {
  return baseName(path).slice(HASH_PART_LENGTH + 1);
}

/**
 * Nix's `makeStorePath`: `storeDir/nix32(fold20(sha256(type:sha256:innerHex:storeDir:name)))-name`.
 * The store dir is in the fingerprint, which is why every path changes with the realm.
 */
export function makeStorePath(type: string, innerHex: string, name: string, storeDir: string): string {
  return storePathFrom(type, undefined, false, innerHex, name, storeDir);
}

/**
 * Where a store path's fingerprint is written to be hashed (reused: hashing is synchronous). A
 * text object's fingerprint names every reference (a few KB for a .drv); made as a string, it was
 * a joined string, a template string around it and the flat copy hashing makes of that, for each
 * of the tens of thousands of paths a plan's reader checks.
 */
const FINGERPRINT = Buffer.allocUnsafeSlow(64 * 1024);
const HEX_DIGITS = Buffer.from('0123456789abcdef', 'latin1');
/** The digest folded to 20 bytes, for nix32Encode (reused, as FINGERPRINT). */
const FOLDED = new Uint8Array(20);

/** Writes the ASCII string `s` into FINGERPRINT at `at`; -1 when it is not ASCII, does not fit, or `at` is -1. */
function putAscii(s: string, at: number): number {
  if (at < 0 || at + s.length > FINGERPRINT.length) return -1;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 0x7f) return -1;
    FINGERPRINT[at++] = c;
  }
  return at;
}

/**
 * `makeStorePath` of type `type` followed by `references` (each after a colon) and `:self` when
 * `self`, with the inner hash given as its digest or its hex. The fingerprint is written as bytes
 * into FINGERPRINT when it is ASCII and fits (the usual case), and made as a string otherwise:
 * the same bytes either way (a string is hashed as UTF-8).
 */
function storePathFrom(
  type: string,
  references: readonly string[] | undefined,
  self: boolean,
  inner: Uint8Array | string,
  name: string,
  storeDir: string,
): string {
  let at = putAscii(type, 0);
  if (references !== undefined)
    for (let i = 0; i < references.length && at >= 0; i++) at = putAscii(references[i]!, putAscii(':', at));
  if (self) at = putAscii(':self', at);
  at = putAscii(':sha256:', at);
  if (typeof inner === 'string') at = putAscii(inner, at);
  else if (at >= 0 && at + 2 * inner.length <= FINGERPRINT.length)
    for (let i = 0; i < inner.length; i++) {
      FINGERPRINT[at++] = HEX_DIGITS[inner[i]! >> 4]!;
      FINGERPRINT[at++] = HEX_DIGITS[inner[i]! & 15]!;
    }
  else at = -1;
  at = putAscii(name, putAscii(':', putAscii(storeDir, putAscii(':', at))));
  let digest: string;
  if (at >= 0) digest = oneShotHash('sha256', FINGERPRINT.subarray(0, at), 'binary');
  else {
    const refs = references === undefined || references.length === 0 ? '' : ':' + references.join(':');
    const innerHex = typeof inner === 'string' ? inner : toHex(inner);
    const fingerprint = `${type}${refs}${self ? ':self' : ''}:sha256:${innerHex}:${storeDir}:${name}`;
    digest = oneShotHash('sha256', fingerprint, 'binary');
  }
  // foldHash of the digest (Nix's compressHash), without making an array of either.
  FOLDED.fill(0);
  for (let i = 0; i < digest.length; i++) {
    const k = i % 20;
    FOLDED[k] = FOLDED[k]! ^ digest.charCodeAt(i);
  }
  return `${storeDir}/${nix32Encode(FOLDED)}-${name}`;
}

/** References as a fingerprint names them: sorted (duplicates are the caller's to drop). */
function sortedReferences(references: Iterable<string>): readonly string[] {
  const refs = Array.isArray(references) ? (references as readonly string[]) : [...references];
  // References usually come sorted already (a .drv's are): sort only a copy, and only when not.
  return isSorted(refs) ? refs : [...refs].sort(compareStrings);
}

/** True when `xs` is in ascending order (equal neighbours allowed). */
function isSorted(xs: readonly string[]): boolean {
  for (let i = 1; i < xs.length; i++) if ((xs[i - 1] as string) > (xs[i] as string)) return false;
  return true;
}

/** Path of a text object (a `.drv`, or a `builtins.toFile` result) from its contents' sha256. */
export function makeTextPath(
  name: string,
  contentSha256: Uint8Array,
  references: Iterable<string>,
  storeDir: string,
): string {
  return storePathFrom('text', sortedReferences(references), false, contentSha256, name, storeDir);
}

/** Path of a recursive sha256 source (path literal, `builtins.path`) from its NAR's sha256. */
export function makeSourcePath(
  name: string,
  narSha256: Uint8Array,
  storeDir: string,
  references: Iterable<string> = [],
  self = false,
): string {
  return storePathFrom('source', sortedReferences(references), self, narSha256, name, storeDir);
}

/** Path of a fixed-output object: recursive sha256 is a source; everything else is `output:out`. */
export function makeFixedOutputPath(
  name: string,
  hash: Hash,
  ingestion: FileIngestion,
  storeDir: string,
): string {
  if (ingestion === 'nar' && hash.algo === 'sha256') return makeSourcePath(name, hash.bytes, storeDir);
  const prefix = ingestion === 'nar' ? 'r:' : ingestion === 'git' ? 'git:' : '';
  const inner = toHex(sha256(`fixed:out:${prefix}${hash.algo}:${toHex(hash.bytes)}:`));
  return makeStorePath('output:out', inner, name, storeDir);
}

/**
 * How a fixed output's bytes were hashed (Nix's `FileIngestionMethod`): the file itself (`flat`),
 * its NAR (`nar`, "recursive"), or as git hashes it (`git`, experimental `git-hashing`).
 */
export type FileIngestion = 'flat' | 'nar' | 'git';

/** The derivation name of a .drv store path: its name without the `.drv` extension. */
export function drvName(drvPath: string): string {
  const name = nameOf(drvPath);
  if (!name.endsWith('.drv') || name.length <= 4)
    throw new NixPlanError(
      'malformed',
      `'${drvPath}' is not a derivation path (its name does not end in .drv)`,
    );
  return name.slice(0, -4);
}

/**
 * The placeholder Nix renders for output `output` of a derivation whose output paths are not
 * known before it is built (a floating content-addressed one, or one depending on it): its
 * dependents mention this hash, which relocation maps with the derivation's path (Nix's
 * `DownstreamPlaceholder`).
 */
export function downstreamPlaceholder(drvPath: string, output: string): string {
  const name = drvName(drvPath);
  return nix32Encode(sha256(`nix-upstream-output:${hashPartOf(drvPath)}:${outputPathName(name, output)}`));
}

/** Name of output `output` of a derivation named `drvName`. */
export function outputPathName(drvName: string, output: string): string {
  return output === 'out' ? drvName : `${drvName}-${output}`;
}

/** Path of output `output` of an input-addressed derivation with the given modulo hash. */
export function makeOutputPath(
  drvName: string,
  output: string,
  hashModuloHex: string,
  storeDir: string,
): string {
  return makeStorePath(`output:${output}`, hashModuloHex, outputPathName(drvName, output), storeDir);
}

/** Byte-wise comparison of strings (Nix sorts by bytes; for ASCII this equals code unit order). */
export function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** True when `xs` is in `compareStrings` order without duplicates. */
export function isStrictlySorted(xs: readonly string[]): boolean {
  for (let i = 1; i < xs.length; i++) if (!((xs[i - 1] as string) < (xs[i] as string))) return false;
  return true;
}
