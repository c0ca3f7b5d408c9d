// Store paths: parsing and validation, and the fingerprints Nix hashes to name every kind of object.
import { NixPlanError, MalformedError } from './errors.js';
import { foldHash, sha256, toHex, type Hash } from './hash.js';
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
  const fingerprint = `${type}:sha256:${innerHex}:${storeDir}:${name}`;
  return `${storeDir}/${nix32Encode(foldHash(sha256(fingerprint)))}-${name}`;
}

/** Type prefix for an object with references (`text` or `source`): each reference, sorted, then `self`. */
function typeWithReferences(type: string, references: Iterable<string>, self: boolean): string {
  const refs = Array.isArray(references) ? (references as readonly string[]) : [...references];
  // References usually come sorted already (a .drv's are): sort only a copy, and only when not.
  const sorted = isSorted(refs) ? refs : [...refs].sort(compareStrings);
  // One join makes a flat string; repeated += would make a rope that hashing must flatten first.
  return (sorted.length === 0 ? type : type + ':' + sorted.join(':')) + (self ? ':self' : '');
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
  return makeStorePath(typeWithReferences('text', references, false), toHex(contentSha256), name, storeDir);
}

/** Path of a recursive sha256 source (path literal, `builtins.path`) from its NAR's sha256. */
export function makeSourcePath(
  name: string,
  narSha256: Uint8Array,
  storeDir: string,
  references: Iterable<string> = [],
  self = false,
): string {
  return makeStorePath(typeWithReferences('source', references, self), toHex(narSha256), name, storeDir);
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
