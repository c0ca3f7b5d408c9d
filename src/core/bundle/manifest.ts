// The plan bundle's manifest: versioned schema, strict validation of untrusted JSON, canonical form, checksum, signatures.
//
// The manifest is stored as its canonical JSON (keys sorted, no whitespace) and carries a sha256 of
// itself (`checksum`, over the canonical JSON without that field). A reader requires the stored
// bytes to be exactly the canonical form of what they parse to and the checksum to match, so any
// change to the frame's bytes is refused, not just those that break the JSON. Signatures cover the
// canonical JSON without `checksum` and `signatures`, behind a domain-separation prefix; since the
// manifest records the sha256 of both the compressed and the uncompressed stream, a signature covers
// every byte of the bundle.
import { MalformedError, NixPlanError } from '../errors.js';
import { sha256, toHex } from '../hash.js';
import { parseStorePath, storeDirProblem } from '../store-path.js';
import { checkDetached, signRaw, type PublicKey, type SecretKey } from '../signing.js';
import { MAX_MANIFEST_DEPTH, assertJsonDepth } from './json-limits.js';

/** The `format` every bundle manifest names. */
export const MANIFEST_FORMAT = 'nix-plan';
/** The manifest schema this code reads and writes. */
export const MANIFEST_FORMAT_VERSION = 1;
/** Prefix of the bytes a manifest signature covers, so no other signed message can pass for one. */
export const SIGNATURE_DOMAIN = 'nix-plan manifest v1\n';
/** Default limit on the manifest's size; it lists roots, not paths, so it stays small. */
export const DEFAULT_MAX_MANIFEST_SIZE = 16 * 1024 * 1024;

/** What a bundle holds: the plan (`drvs`), plus fixed-output sources, or the built outputs. */
export type Include = 'drvs' | 'sources' | 'outputs';
/** What a store object in a plan is: a .drv, a text file (toFile), a source, or a build output. */
export type ObjectKind = 'drv' | 'text' | 'source' | 'output';
/** Every object kind, in the order counts are listed. */
export const OBJECT_KINDS: readonly ObjectKind[] = ['drv', 'text', 'source', 'output'];
const INCLUDES: readonly Include[] = ['drvs', 'sources', 'outputs'];

/** A root the plan was made for: how it was named, its derivation, and its outputs. */
export interface BundleRoot {
  installable?: string;
  attribute?: string;
  drvPath: string;
  /** Output name → output path ("" for a deferred content-addressed output). */
  outputs: Record<string, string>;
}

/** What relocation changed (relocate.ts's RelocationReport, as recorded in the manifest). */
export interface RelocationSummary {
  objects: Record<'drv' | 'text' | 'source', number>;
  hashesRewritten: number;
  bareHashRewrites: number;
  bareStoreDirMentions: { path: string; count: number }[];
  warnings: string[];
}

/** A signature over the manifest: key name and base64 of the 64-byte ed25519 signature. */
export interface ManifestSignature {
  key: string;
  sig: string;
}

/** The export stream's size and digests (hex sha256), uncompressed and as the compressed data frame. */
export interface StreamInfo {
  sha256: string;
  size: number;
  compressedSha256: string;
  compressedSize: number;
}

/** Version 1 of the manifest (see docs/bundle-format.md). */
export interface BundleManifest {
  format: typeof MANIFEST_FORMAT;
  formatVersion: typeof MANIFEST_FORMAT_VERSION;
  /** The tool that wrote the bundle, e.g. "nix-plan 0.1.0". */
  tool: string;
  /** Version of the Nix that evaluated. */
  nixVersion: string;
  storeDir: string;
  systems: string[];
  include: Include;
  roots: BundleRoot[];
  counts: Record<ObjectKind, number>;
  narBytes: Record<ObjectKind, number>;
  /** Number of store paths in the stream (the sum of `counts`). */
  paths: number;
  stream: StreamInfo;
  relocatedFrom?: { storeDir: string; report: RelocationSummary };
  signatures: ManifestSignature[];
  /** sha256 (hex) of the canonical manifest without this field. */
  checksum: string;
}

/** The fields a writer knows before the stream has been written. */
export type ManifestDraft = Omit<
  BundleManifest,
  'format' | 'formatVersion' | 'stream' | 'signatures' | 'checksum'
>;

/**
 * Canonical JSON: object keys sorted by UTF-16 code units, no whitespace, `undefined` members
 * dropped. Only JSON's own value types; numbers as JavaScript prints them (a manifest holds integers).
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value === 'boolean' || typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new NixPlanError('internal', `canonical JSON cannot hold ${value}`);
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  throw new NixPlanError('internal', `canonical JSON cannot hold a ${typeof value}`);
}

/** sha256 hex of the canonical manifest without `checksum`. */
export function manifestChecksum(manifest: Omit<BundleManifest, 'checksum'> | BundleManifest): string {
  const { checksum: _checksum, ...rest } = manifest as BundleManifest;
  return toHex(sha256(canonicalJson(rest)));
}

/** The bytes manifest signatures cover: the domain prefix and the canonical manifest without signatures. */
export function signedBytes(manifest: Omit<BundleManifest, 'checksum' | 'signatures'>): Uint8Array {
  const { checksum: _c, signatures: _s, ...rest } = manifest as BundleManifest;
  return new Uint8Array(Buffer.from(SIGNATURE_DOMAIN + canonicalJson(rest), 'utf8'));
}

/**
 * Completes a manifest: adds a signature by each key (replacing earlier ones by the same key
 * name) and recomputes the checksum. Validates the result, so a writer cannot emit a manifest
 * its own reader would refuse.
 */
export function finaliseManifest(
  manifest: Omit<BundleManifest, 'checksum' | 'signatures'> & { signatures?: ManifestSignature[] },
  keys: readonly SecretKey[] = [],
): BundleManifest {
  const message = signedBytes(manifest);
  const names = new Set(keys.map((k) => k.name));
  const signatures = [
    ...(manifest.signatures ?? []).filter((s) => !names.has(s.key)),
    ...keys.map((k) => ({ key: k.name, sig: Buffer.from(signRaw(k, message)).toString('base64') })),
  ];
  const { checksum: _c, ...rest } = manifest as BundleManifest;
  const unsigned = { ...rest, signatures };
  const full: BundleManifest = { ...unsigned, checksum: manifestChecksum(unsigned) };
  validateManifest(JSON.parse(canonicalJson(full)) as unknown);
  return full;
}

/**
 * The manifest's bytes as stored in the bundle (canonical JSON, UTF-8), refused ('bundle') when
 * its own reader would refuse them for their size or depth.
 */
export function encodeManifest(manifest: BundleManifest, maxSize = DEFAULT_MAX_MANIFEST_SIZE): Uint8Array {
  const text = canonicalJson(manifest);
  assertJsonDepth(text, MAX_MANIFEST_DEPTH, 'the manifest to write');
  const bytes = new Uint8Array(Buffer.from(text, 'utf8'));
  if (bytes.length > maxSize)
    throw new NixPlanError(
      'bundle',
      `the manifest to write is ${bytes.length} bytes, more than the ${maxSize} bytes a reader accepts`,
    );
  return bytes;
}

/**
 * Parses and validates untrusted manifest bytes: JSON, format and version (a newer version asks
 * the user to upgrade), every field's type and range, store paths inside `storeDir`, canonical
 * form, then the checksum. Throws 'bundle' errors naming the field, 'limit' for oversize input.
 */
export function parseManifest(bytes: Uint8Array, maxSize = DEFAULT_MAX_MANIFEST_SIZE): BundleManifest {
  if (bytes.length > maxSize)
    throw new NixPlanError(
      'bundle',
      `bundle manifest of ${bytes.length} bytes exceeds the limit of ${maxSize} bytes`,
    );
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new MalformedError('bundle manifest', undefined, 'not valid UTF-8');
  }
  assertJsonDepth(text, MAX_MANIFEST_DEPTH, 'bundle manifest');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new MalformedError('bundle manifest', undefined, `not valid JSON (${(e as Error).message})`);
  }
  const manifest = validateManifest(value);
  if (canonicalJson(manifest) !== text)
    throw new NixPlanError(
      'bundle',
      'bundle manifest is not in canonical form (sorted keys, no whitespace, no duplicate keys): it was altered after it was written',
    );
  const expected = manifestChecksum(manifest);
  if (manifest.checksum !== expected)
    throw new NixPlanError(
      'bundle',
      `bundle manifest checksum mismatch (recorded ${manifest.checksum}, computed ${expected}): the manifest is corrupt or was altered`,
    );
  return manifest;
}

/**
 * Checks the manifest's signatures against trusted keys. Returns the names of the trusted keys
 * with a valid signature; throws a 'signature' error when a trusted key's signature is wrong or
 * when no trusted key signed. Signatures by keys not in `trusted` are ignored, as Nix does.
 */
export function verifyManifestSignatures(manifest: BundleManifest, trusted: readonly PublicKey[]): string[] {
  const message = signedBytes(manifest);
  const valid: string[] = [];
  for (const s of manifest.signatures) {
    const check = checkDetached(message, `${s.key}:${s.sig}`, trusted);
    if (check === 'invalid' || check === 'malformed')
      throw new NixPlanError(
        'signature',
        `the bundle's signature by key '${s.key}' does not verify: the manifest was altered or signed with another key`,
      );
    if (check === 'valid') valid.push(s.key);
  }
  if (valid.length === 0) {
    const by = manifest.signatures.map((s) => `'${s.key}'`).join(', ');
    throw new NixPlanError(
      'signature',
      `the bundle is not signed by a trusted key (trusted: ${trusted.map((k) => `'${k.name}'`).join(', ') || 'none'}; signed by: ${by || 'nobody'})`,
    );
  }
  return valid;
}

// ---- validation of untrusted values ----

const MAX_STRING = 4096;
const MAX_ROOTS = 100_000;
const MAX_LIST = 100_000;
// No control characters: these strings reach terminals.
// eslint-disable-next-line no-control-regex
const TEXT = /^[^\x00-\x1f\x7f]*$/;
const SYSTEM = /^[A-Za-z0-9_.+-]{1,64}$/;
const OUTPUT_NAME = /^[A-Za-z0-9+\-._?=]{1,211}$/;
const HEX64 = /^[0-9a-f]{64}$/;
const B64SIG = /^[A-Za-z0-9+/]{86}==$/;

function bad(field: string, detail: string): NixPlanError {
  return new NixPlanError('bundle', `bundle manifest: ${field} ${detail}`);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function record(
  v: unknown,
  field: string,
  required: readonly string[],
  optional: readonly string[] = [],
): Record<string, unknown> {
  if (!isRecord(v)) throw bad(field, 'must be an object');
  for (const k of Object.keys(v))
    if (!required.includes(k) && !optional.includes(k))
      throw bad(
        field,
        `has an unknown field '${k.slice(0, 64)}' (written by a newer nix-plan? upgrade nix-plan)`,
      );
  for (const k of required) if (!(k in v)) throw bad(field, `lacks the field '${k}'`);
  return v;
}

function str(v: unknown, field: string, max = MAX_STRING, pattern: RegExp = TEXT): string {
  if (typeof v !== 'string') throw bad(field, 'must be a string');
  if (v.length > max) throw bad(field, `is longer than ${max} characters`);
  if (!pattern.test(v)) throw bad(field, `has a forbidden character or format: '${v.slice(0, 80)}'`);
  return v;
}

function int(v: unknown, field: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0)
    throw bad(field, 'must be a non-negative integer');
  return v;
}

function list<T>(v: unknown, field: string, max: number, item: (x: unknown, f: string) => T): T[] {
  if (!Array.isArray(v)) throw bad(field, 'must be an array');
  if (v.length > max)
    throw new NixPlanError('bundle', `bundle manifest: ${field} has more than ${max} entries`);
  return v.map((x, i) => item(x, `${field}[${i}]`));
}

function storePath(v: unknown, field: string, storeDir: string): string {
  const p = str(v, field);
  try {
    parseStorePath(p, storeDir);
  } catch (e) {
    throw bad(field, `is not a valid store path in ${storeDir}: ${(e as Error).message}`);
  }
  return p;
}

function kinds<K extends string>(v: unknown, field: string, keys: readonly K[]): Record<K, number> {
  const r = record(v, field, keys);
  const out = {} as Record<K, number>;
  for (const k of keys) out[k] = int(r[k], `${field}.${k}`);
  return out;
}

function root(v: unknown, field: string, storeDir: string): BundleRoot {
  const r = record(v, field, ['drvPath', 'outputs'], ['installable', 'attribute']);
  const drvPath = storePath(r['drvPath'], `${field}.drvPath`, storeDir);
  if (!drvPath.endsWith('.drv')) throw bad(`${field}.drvPath`, 'must be a .drv path');
  const outputsIn = r['outputs'];
  if (!isRecord(outputsIn)) throw bad(`${field}.outputs`, 'must be an object');
  const outputs: Record<string, string> = {};
  const names = Object.keys(outputsIn);
  if (names.length > 1000)
    throw new NixPlanError('bundle', `bundle manifest: ${field}.outputs has more than 1000 outputs`);
  for (const name of names) {
    str(name, `${field}.outputs key`, 211, OUTPUT_NAME);
    const p = outputsIn[name];
    outputs[name] = p === '' ? '' : storePath(p, `${field}.outputs.${name}`, storeDir);
  }
  const out: BundleRoot = { drvPath, outputs };
  if (r['installable'] !== undefined) out.installable = str(r['installable'], `${field}.installable`);
  if (r['attribute'] !== undefined) out.attribute = str(r['attribute'], `${field}.attribute`);
  return out;
}

function relocation(
  v: unknown,
  field: string,
  storeDir: string,
): { storeDir: string; report: RelocationSummary } {
  const r = record(v, field, ['storeDir', 'report']);
  const from = str(r['storeDir'], `${field}.storeDir`);
  const problem = storeDirProblem(from);
  if (problem !== undefined) throw bad(`${field}.storeDir`, `'${from}' is not a store directory: ${problem}`);
  const rep = record(r['report'], `${field}.report`, [
    'objects',
    'hashesRewritten',
    'bareHashRewrites',
    'bareStoreDirMentions',
    'warnings',
  ]);
  const report: RelocationSummary = {
    objects: kinds(rep['objects'], `${field}.report.objects`, ['drv', 'text', 'source'] as const),
    hashesRewritten: int(rep['hashesRewritten'], `${field}.report.hashesRewritten`),
    bareHashRewrites: int(rep['bareHashRewrites'], `${field}.report.bareHashRewrites`),
    bareStoreDirMentions: list(
      rep['bareStoreDirMentions'],
      `${field}.report.bareStoreDirMentions`,
      MAX_LIST,
      (x, f) => {
        const m = record(x, f, ['path', 'count']);
        return { path: storePath(m['path'], `${f}.path`, storeDir), count: int(m['count'], `${f}.count`) };
      },
    ),
    warnings: list(rep['warnings'], `${field}.report.warnings`, MAX_LIST, (x, f) => str(x, f)),
  };
  return { storeDir: from, report };
}

/**
 * Checks that an untrusted value (parsed JSON) is a version-1 manifest and returns it typed. An
 * unknown format or version is refused first, with a message that says to upgrade nix-plan.
 */
export function validateManifest(value: unknown): BundleManifest {
  if (!isRecord(value) || value['format'] !== MANIFEST_FORMAT)
    throw new NixPlanError(
      'bundle',
      `not a nix-plan bundle manifest (its format is not '${MANIFEST_FORMAT}')`,
    );
  const version = value['formatVersion'];
  if (version !== MANIFEST_FORMAT_VERSION) {
    const tool = typeof value['tool'] === 'string' ? ` by ${value['tool'].slice(0, 64)}` : '';
    throw new NixPlanError(
      'bundle',
      typeof version === 'number' && Number.isSafeInteger(version) && version > MANIFEST_FORMAT_VERSION
        ? `this bundle was written${tool} in bundle format version ${version}; this nix-plan reads version ${MANIFEST_FORMAT_VERSION} only: upgrade nix-plan`
        : `bundle manifest: formatVersion must be ${MANIFEST_FORMAT_VERSION}, not ${JSON.stringify(version)?.slice(0, 32)}`,
    );
  }
  const r = record(
    value,
    'manifest',
    [
      'format',
      'formatVersion',
      'tool',
      'nixVersion',
      'storeDir',
      'systems',
      'include',
      'roots',
      'counts',
      'narBytes',
      'paths',
      'stream',
      'signatures',
      'checksum',
    ],
    ['relocatedFrom'],
  );
  const storeDir = str(r['storeDir'], 'storeDir');
  const problem = storeDirProblem(storeDir);
  if (problem !== undefined) throw bad('storeDir', `'${storeDir}' is not a store directory: ${problem}`);
  const include = str(r['include'], 'include', 16);
  if (!INCLUDES.includes(include as Include)) throw bad('include', `must be one of ${INCLUDES.join(', ')}`);
  const counts = kinds(r['counts'], 'counts', OBJECT_KINDS);
  const narBytes = kinds(r['narBytes'], 'narBytes', OBJECT_KINDS);
  const paths = int(r['paths'], 'paths');
  if (paths !== OBJECT_KINDS.reduce((n, k) => n + counts[k], 0))
    throw bad('paths', 'is not the sum of counts');
  for (const k of OBJECT_KINDS)
    if ((counts[k] === 0) !== (narBytes[k] === 0)) throw bad(`narBytes.${k}`, `disagrees with counts.${k}`);
  if (include === 'drvs' && counts.output > 0)
    throw bad('counts.output', "must be 0 in a 'drvs' bundle (it holds only content-addressed paths)");
  const s = record(r['stream'], 'stream', ['sha256', 'size', 'compressedSha256', 'compressedSize']);
  const stream: StreamInfo = {
    sha256: str(s['sha256'], 'stream.sha256', 64, HEX64),
    size: int(s['size'], 'stream.size'),
    compressedSha256: str(s['compressedSha256'], 'stream.compressedSha256', 64, HEX64),
    compressedSize: int(s['compressedSize'], 'stream.compressedSize'),
  };
  // Every entry is at least its NAR plus a marker, a path, a count and a deriver; the end is 8 bytes.
  const minSize = 8 + OBJECT_KINDS.reduce((n, k) => n + narBytes[k], 0) + paths * 48;
  if (stream.size < minSize)
    throw bad('stream.size', `is smaller than its ${paths} paths need (${minSize} bytes)`);
  if (stream.compressedSize < 9) throw bad('stream.compressedSize', 'is too small for a zstd frame');
  const manifest: BundleManifest = {
    format: MANIFEST_FORMAT,
    formatVersion: MANIFEST_FORMAT_VERSION,
    tool: str(r['tool'], 'tool', 256),
    nixVersion: str(r['nixVersion'], 'nixVersion', 256),
    storeDir,
    systems: list(r['systems'], 'systems', 64, (x, f) => str(x, f, 64, SYSTEM)),
    include: include as Include,
    roots: list(r['roots'], 'roots', MAX_ROOTS, (x, f) => root(x, f, storeDir)),
    counts,
    narBytes,
    paths,
    stream,
    signatures: list(r['signatures'], 'signatures', 64, (x, f) => {
      const g = record(x, f, ['key', 'sig']);
      return {
        key: str(g['key'], `${f}.key`, 256, /^[\x21-\x39\x3b-\x7e]+$/),
        sig: str(g['sig'], `${f}.sig`, 88, B64SIG),
      };
    }),
    checksum: str(r['checksum'], 'checksum', 64, HEX64),
  };
  if (manifest.roots.length === 0) throw bad('roots', 'is empty: a plan needs at least one root');
  if (r['relocatedFrom'] !== undefined) {
    manifest.relocatedFrom = relocation(r['relocatedFrom'], 'relocatedFrom', storeDir);
    if (manifest.relocatedFrom.storeDir === storeDir)
      throw bad('relocatedFrom.storeDir', 'equals storeDir: a relocation changes the store directory');
  }
  return manifest;
}
