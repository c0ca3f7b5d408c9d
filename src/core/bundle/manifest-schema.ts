// Strict validation of an untrusted manifest (parsed JSON) against schema version 1 or 2: every
// field's type, range and format, store paths in the bundle's store dir, and the cross-field rules.
import { NixPlanError } from '../errors.js';
import { parseStorePath, storeDirProblem } from '../store-path.js';
import { unsafeCharacter } from '../text.js';
import {
  INCLUDE_KINDS,
  MANIFEST_FORMAT,
  MANIFEST_FORMAT_VERSION,
  OBJECT_KINDS,
  READABLE_FORMAT_VERSIONS,
  type BundleManifest,
  type BundleRoot,
  type FlakeProvenance,
  type Include,
  type ManifestFormatVersion,
  type Promotion,
  type Provenance,
  type RelocationSummary,
  type StreamInfo,
} from './manifest-types.js';

const MAX_STRING = 4096;
const MAX_ROOTS = 100_000;
const MAX_LIST = 100_000;
/** Most promotions a plan records (each relocation adds one). */
export const MAX_PROMOTIONS = 256;
/** Most locked inputs recorded of a flake (nixpkgs-scale locks have a few hundred). */
export const MAX_FLAKE_INPUTS = 10_000;
const ANY = /^/s;
const SYSTEM = /^[A-Za-z0-9_.+-]{1,64}$/;
const OUTPUT_NAME = /^[A-Za-z0-9+\-._?=]{1,211}$/;
const HEX64 = /^[0-9a-f]{64}$/;
const B64SIG = /^[A-Za-z0-9+/]{86}==$/;
const KEY_NAME = /^[\x21-\x39\x3b-\x7e]+$/;
const SHA256_DIGEST = /^sha256:[0-9a-f]{64}$/;
const COMMIT = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/;
const NO_SPACE = /^\S+$/;
const HTTPS_URL = /^https:\/\/\S+$/;
const SRI = /^(?:sha1|sha256|sha512)-[A-Za-z0-9+/]+={0,2}$/;
/** RFC 3339 in UTC with whole seconds, as nix-plan writes times: `2026-12-06T10:17:30Z`. */
const RFC3339_UTC = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})Z$/;

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
        `has an unknown field '${k.slice(0, 64).replace(/[^\x20-\x7e]/g, '?')}' (written by a newer nix-plan? upgrade nix-plan)`,
      );
  for (const k of required) if (!(k in v)) throw bad(field, `lacks the field '${k}'`);
  return v;
}

/**
 * A string of at most `max` characters matching `pattern`, and free of the characters no
 * manifest string may hold (controls, C1, bidi, separators, lone surrogates: see core/text.ts).
 */
function str(v: unknown, field: string, max = MAX_STRING, pattern: RegExp = ANY): string {
  if (typeof v !== 'string') throw bad(field, 'must be a string');
  if (v.length > max) throw bad(field, `is longer than ${max} characters`);
  const unsafe = unsafeCharacter(v);
  if (unsafe !== undefined)
    throw bad(
      field,
      `holds the character ${unsafe.codePoint} (at index ${unsafe.index}), which is not allowed`,
    );
  if (!pattern.test(v)) throw bad(field, `has a forbidden character or format: '${v.slice(0, 80)}'`);
  return v;
}

function int(v: unknown, field: string, min = 0): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min)
    throw bad(field, min === 0 ? 'must be a non-negative integer' : `must be an integer of at least ${min}`);
  return v;
}

function bool(v: unknown, field: string): boolean {
  if (typeof v !== 'boolean') throw bad(field, 'must be true or false');
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

function storeDirField(v: unknown, field: string): string {
  const dir = str(v, field);
  const problem = storeDirProblem(dir);
  if (problem !== undefined) throw bad(field, `'${dir}' is not a store directory: ${problem}`);
  return dir;
}

/** An RFC 3339 UTC time with whole seconds that names a real instant (no 30 February). */
export function timestamp(v: unknown, field: string): string {
  const s = str(v, field, 64);
  const m = RFC3339_UTC.exec(s);
  const ms = Date.parse(s);
  if (m === null || Number.isNaN(ms) || new Date(ms).toISOString() !== `${s.slice(0, 19)}.000Z`)
    throw bad(field, `must be an RFC 3339 UTC time like 2026-12-06T10:17:30Z, not '${s}'`);
  return s;
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
  const names = Object.keys(outputsIn);
  if (names.length > 1000)
    throw new NixPlanError('bundle', `bundle manifest: ${field}.outputs has more than 1000 outputs`);
  // Own keys, each name as it is: an output may be named `__proto__` (assigning it would drop it).
  const outputs: Record<string, string> = Object.fromEntries(
    names.map((name) => {
      str(name, `${field}.outputs key`, 211, OUTPUT_NAME);
      const p = outputsIn[name];
      return [name, p === '' ? '' : storePath(p, `${field}.outputs.${name}`, storeDir)];
    }),
  );
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
  const from = storeDirField(r['storeDir'], `${field}.storeDir`);
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

function flake(v: unknown, field: string): FlakeProvenance {
  const r = record(v, field, ['url', 'inputs']);
  const inputs = list(r['inputs'], `${field}.inputs`, MAX_FLAKE_INPUTS, (x, f) => {
    const i = record(x, f, ['name', 'url'], ['narHash', 'lastModified']);
    return {
      name: str(i['name'], `${f}.name`, 256, NO_SPACE),
      url: str(i['url'], `${f}.url`, MAX_STRING, NO_SPACE),
      ...(i['narHash'] !== undefined && { narHash: str(i['narHash'], `${f}.narHash`, 256, SRI) }),
      ...(i['lastModified'] !== undefined && { lastModified: int(i['lastModified'], `${f}.lastModified`) }),
    };
  });
  for (let i = 1; i < inputs.length; i++)
    if (!((inputs[i - 1]?.name ?? '') < (inputs[i]?.name ?? '')))
      throw bad(`${field}.inputs[${i}].name`, 'must come after the name before it (sorted, no duplicates)');
  return { url: str(r['url'], `${field}.url`, MAX_STRING, NO_SPACE), inputs };
}

/** The `provenance` object of a version-2 manifest. */
function provenance(v: unknown, field: string): Provenance {
  const r = record(
    v,
    field,
    [],
    ['repository', 'commit', 'ref', 'dirty', 'workflow', 'runUrl', 'runAttempt', 'flake'],
  );
  const p: Provenance = {};
  if (r['repository'] !== undefined)
    p.repository = str(r['repository'], `${field}.repository`, 1024, NO_SPACE);
  if (r['commit'] !== undefined) p.commit = str(r['commit'], `${field}.commit`, 64, COMMIT);
  if (r['ref'] !== undefined) p.ref = str(r['ref'], `${field}.ref`, 1024, NO_SPACE);
  if (r['dirty'] !== undefined) p.dirty = bool(r['dirty'], `${field}.dirty`);
  if (r['workflow'] !== undefined) p.workflow = str(r['workflow'], `${field}.workflow`, 1024);
  if (r['runUrl'] !== undefined) p.runUrl = str(r['runUrl'], `${field}.runUrl`, 2048, HTTPS_URL);
  if (r['runAttempt'] !== undefined) p.runAttempt = int(r['runAttempt'], `${field}.runAttempt`, 1);
  if (r['flake'] !== undefined) p.flake = flake(r['flake'], `${field}.flake`);
  return p;
}

function promotion(v: unknown, field: string): Promotion {
  const r = record(v, field, ['digest', 'storeDir', 'checksum', 'signedBy', 'at'], ['noCheckSigs']);
  const signedBy = list(r['signedBy'], `${field}.signedBy`, 64, (x, f) => {
    const s = record(x, f, ['key', 'fingerprint']);
    return {
      key: str(s['key'], `${f}.key`, 256, KEY_NAME),
      fingerprint: str(s['fingerprint'], `${f}.fingerprint`, 71, SHA256_DIGEST),
    };
  });
  const p: Promotion = {
    digest: str(r['digest'], `${field}.digest`, 71, SHA256_DIGEST),
    storeDir: storeDirField(r['storeDir'], `${field}.storeDir`),
    checksum: str(r['checksum'], `${field}.checksum`, 64, HEX64),
    signedBy,
    at: timestamp(r['at'], `${field}.at`),
  };
  if (r['noCheckSigs'] !== undefined) {
    if (r['noCheckSigs'] !== true) throw bad(`${field}.noCheckSigs`, 'must be true when present');
    if (signedBy.length > 0)
      throw bad(`${field}.signedBy`, 'must be empty when the input was accepted with noCheckSigs');
    p.noCheckSigs = true;
  }
  return p;
}

const V1_FIELDS = [
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
] as const;

/**
 * Checks that an untrusted value (parsed JSON) is a version-1 or version-2 manifest and returns
 * it typed. An unknown format or version is refused first, with a message that says to upgrade
 * nix-plan for a newer one.
 */
export function validateManifest(value: unknown): BundleManifest {
  if (!isRecord(value) || value['format'] !== MANIFEST_FORMAT)
    throw new NixPlanError(
      'bundle',
      `not a nix-plan bundle manifest (its format is not '${MANIFEST_FORMAT}')`,
    );
  const version = value['formatVersion'];
  if (typeof version !== 'number' || !READABLE_FORMAT_VERSIONS.includes(version)) {
    const tool = typeof value['tool'] === 'string' ? ` by ${value['tool'].slice(0, 64)}` : '';
    throw new NixPlanError(
      'bundle',
      typeof version === 'number' && Number.isSafeInteger(version) && version > MANIFEST_FORMAT_VERSION
        ? `this bundle was written${tool} in bundle format version ${version}; this nix-plan reads versions ${READABLE_FORMAT_VERSIONS.join(' and ')}: upgrade nix-plan`
        : `bundle manifest: formatVersion must be ${READABLE_FORMAT_VERSIONS.join(' or ')}, not ${JSON.stringify(version)?.slice(0, 32)}`,
    );
  }
  const formatVersion = version as ManifestFormatVersion;
  const r = record(
    value,
    'manifest',
    [...V1_FIELDS, ...(formatVersion >= 2 ? ['provenance'] : [])],
    ['relocatedFrom', ...(formatVersion >= 2 ? ['createdAt', 'promotions'] : [])],
  );
  const storeDir = storeDirField(r['storeDir'], 'storeDir');
  const include = str(r['include'], 'include', 16);
  if (!INCLUDE_KINDS.includes(include as Include))
    throw bad('include', `must be one of ${INCLUDE_KINDS.join(', ')}`);
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
    formatVersion,
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
        key: str(g['key'], `${f}.key`, 256, KEY_NAME),
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
  if (formatVersion >= 2) versionTwo(r, manifest);
  return manifest;
}

/** The fields version 2 adds, and how they must agree with each other and with relocatedFrom. */
function versionTwo(r: Record<string, unknown>, manifest: BundleManifest): void {
  manifest.provenance = provenance(r['provenance'], 'provenance');
  if (r['promotions'] !== undefined) {
    const promotions = list(r['promotions'], 'promotions', MAX_PROMOTIONS, promotion);
    if (promotions.length === 0)
      throw bad('promotions', 'is empty: leave it out when the plan was never promoted');
    // Each promotion moved the plan out of its store dir: into the next one's, the last into storeDir.
    promotions.forEach((p, i) => {
      const into = promotions[i + 1]?.storeDir ?? manifest.storeDir;
      if (p.storeDir === into)
        throw bad(`promotions[${i}].storeDir`, `equals the store dir it was promoted into (${into})`);
    });
    const last = promotions[promotions.length - 1];
    if (manifest.relocatedFrom === undefined)
      throw bad('promotions', 'is set, but relocatedFrom is not: a promotion is a relocation');
    if (last !== undefined && last.storeDir !== manifest.relocatedFrom.storeDir)
      throw bad(
        `promotions[${promotions.length - 1}].storeDir`,
        `is ${last.storeDir}, but relocatedFrom.storeDir is ${manifest.relocatedFrom.storeDir}`,
      );
    manifest.promotions = promotions;
  }
  if (r['createdAt'] !== undefined) manifest.createdAt = timestamp(r['createdAt'], 'createdAt');
  else if (manifest.promotions === undefined)
    throw bad(
      'createdAt',
      'is missing: only a plan promoted from a version-1 bundle (whose age is unknown) may leave it out',
    );
}

/** Checks an untrusted `provenance` value (for writers that take values from outside). */
export function validateProvenance(value: unknown): Provenance {
  return provenance(value, 'provenance');
}
