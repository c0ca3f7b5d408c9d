// What a bundle must satisfy to be accepted, as pure functions over its manifest and entries: the
// limits, the realm, the signatures, each entry's kind, the .drv files against the manifest, the
// closure's order and completeness, and the totals. The streaming verifier (reader.ts) applies
// them in one pass; nothing here reads a file or a store (store validity is a function passed in).
import { LimitError, NixPlanError } from '../errors.js';
import { identifyContentAddress } from '../content-address.js';
import {
  compareBytes,
  derivationReferences,
  parseDerivation,
  type Derivation,
  type DerivationHead,
} from '../derivation/index.js';
import { DEFAULT_EXPORT_LIMITS, type ExportLimits, type ExportedPath } from '../export-stream.js';
import { parsePublicKey, type PublicKey } from '../signing.js';
import { DEFAULT_MAX_WINDOW_LOG } from './frame.js';
import {
  DEFAULT_MAX_MANIFEST_SIZE,
  OBJECT_KINDS,
  verifyManifestSignatures,
  type BundleManifest,
  type ObjectKind,
} from './manifest.js';

/** Bounds that keep a hostile bundle from exhausting memory, disk or time. */
export interface ReaderLimits {
  maxManifestSize: number;
  /** Largest uncompressed export stream accepted. */
  maxStreamSize: number;
  /**
   * Largest uncompressed/compressed ratio accepted above `ratioFloor` (a zip bomb has a huge
   * one: a small file that costs a lot of time to read).
   */
  maxRatio: number;
  /**
   * Streams up to this many bytes are accepted at any ratio: a big value (a derivation with a
   * 256 MB attribute) compresses beyond any ratio a zip bomb would need, and reading this much
   * costs about a second, whatever the file's size.
   */
  ratioFloor: number;
  /** Largest zstd window (log2); 27 is stock zstd's default limit. */
  maxWindowLog: number;
  /** Limits of the export stream reader (paths, references, NAR structure, kept file size). */
  export: Partial<ExportLimits>;
  /**
   * Most distinct paths the bundle may refer to without holding them (each must then be valid in
   * the target store: asked in one query at the end), and most bytes of their names.
   */
  maxMissingReferences: number;
  maxMissingReferenceBytes: number;
}

/**
 * The largest .drv (or other single file) the reader holds whole by default: 512 MiB, room for a
 * 256 MB attribute. The reader cannot know a NAR is a .drv's before its path, which follows it, so
 * any single-file NAR up to this size is held: it bounds what a hostile bundle can make it hold,
 * and a 1 GiB file of zeros still streams through.
 */
export const MAX_KEPT_FILE = 2 ** 29;

/**
 * The default bound on a bundle's uncompressed size: what an import writes to the temp dir (its
 * verified stream) and then to the store. Overridable (`--max-size`; docs/security.md, Limits).
 */
export const DEFAULT_MAX_STREAM_SIZE = 64 * 1024 ** 3;

/** Defaults: generous for real closures (drv closures compress about 20×), tight for bombs. */
export const DEFAULT_READER_LIMITS: Readonly<ReaderLimits> = Object.freeze({
  maxManifestSize: DEFAULT_MAX_MANIFEST_SIZE,
  maxStreamSize: DEFAULT_MAX_STREAM_SIZE,
  maxRatio: 1000,
  ratioFloor: 2 ** 30,
  maxWindowLog: DEFAULT_MAX_WINDOW_LOG,
  // A .drv is held whole to be checked and relocated: one with a big attribute is as big. Held
  // one entry at a time (and only up to this size), so memory stays bounded by it.
  export: Object.freeze({ keepFileUpTo: MAX_KEPT_FILE }),
  maxMissingReferences: 100_000,
  maxMissingReferenceBytes: 32 * 1024 * 1024,
});

/**
 * What a writer checks before it calls a bundle done: that its readers, with `limits`, would
 * accept it. `entries` are the limits of single paths (as `entryLimitProblem` found them while
 * writing); throws a LimitError naming the first problem.
 */
export function checkWritten(
  manifest: BundleManifest,
  limits: ReaderLimits,
  entries: readonly string[] = [],
): void {
  try {
    checkSizeLimits(manifest, limits);
    const maxPaths = limits.export.maxPaths ?? DEFAULT_EXPORT_LIMITS.maxPaths;
    if (manifest.paths > maxPaths)
      throw new LimitError(`the bundle holds ${manifest.paths} paths, more than the limit of ${maxPaths}`);
    if (entries.length > 0) throw new LimitError(entries[0]!);
  } catch (e) {
    if (!(e instanceof LimitError)) throw e;
    throw new LimitError(`the bundle was not written, as its readers would refuse it: ${e.message}`);
  }
}

/**
 * Why a path of `kind`, with `references` and a NAR of `narSize` bytes (`fileSize` when it is one
 * regular file), breaks the reader's `limits`; undefined when it does not.
 */
export function entryLimitProblem(
  entry: {
    path: string;
    kind: ObjectKind;
    references: readonly string[];
    /** Its NAR's size, and the size of the file when it is one (else the NAR's size is taken). */
    narSize: number;
    fileSize: number | undefined;
  },
  limits: ReaderLimits,
): string | undefined {
  const lim = { ...DEFAULT_EXPORT_LIMITS, ...limits.export };
  if (entry.references.length > lim.maxReferences)
    return `'${entry.path}' has ${entry.references.length} references, more than the limit of ${lim.maxReferences}`;
  if (entry.path.length > lim.maxPathLength)
    return `'${entry.path}' is longer than the limit of ${lim.maxPathLength} bytes`;
  if (entry.kind === 'drv' && (entry.fileSize ?? entry.narSize) > lim.keepFileUpTo)
    return `'${entry.path}' is larger than the limit of ${lim.keepFileUpTo} bytes for a .drv`;
  return undefined;
}

function bad(message: string): NixPlanError {
  return new NixPlanError('bundle', message);
}

/** Refuses, before decompressing, a stream whose recorded size breaks the limits. */
export function checkSizeLimits(manifest: BundleManifest, limits: ReaderLimits): void {
  const { size, compressedSize } = manifest.stream;
  if (size > limits.maxStreamSize)
    throw new LimitError(
      `the bundle's export stream is ${size} bytes, more than the limit of ${limits.maxStreamSize} bytes (raise it with --max-size)`,
    );
  if (size > limits.ratioFloor && size > compressedSize * limits.maxRatio)
    throw new LimitError(
      `the bundle decompresses ${compressedSize} bytes to ${size} (ratio ${Math.round(size / compressedSize)}), more than the limit of ${limits.maxRatio}: refusing a possible zip bomb`,
    );
}

/** The export reader's limits for a bundle: the given ones, no looser than what its manifest records. */
export function exportLimitsFor(manifest: BundleManifest, limits: ReaderLimits): Partial<ExportLimits> {
  return {
    ...limits.export,
    // One more than the manifest says: the verifier refuses that entry as a lie ('bundle'), which
    // it is, rather than as a limit reached.
    maxPaths: Math.min(limits.export.maxPaths ?? DEFAULT_EXPORT_LIMITS.maxPaths, manifest.paths + 1),
    maxTotalBytes: Math.min(
      limits.export.maxTotalBytes ?? DEFAULT_EXPORT_LIMITS.maxTotalBytes,
      manifest.stream.size,
    ),
  };
}

/** Refuses a bundle made for another store dir than `storeDir` (when one is required). */
export function checkRealm(manifest: BundleManifest, storeDir: string | undefined, name: string): void {
  if (storeDir !== undefined && storeDir !== manifest.storeDir)
    throw new NixPlanError(
      'realm',
      `'${name}' is a plan for the store dir ${manifest.storeDir}, but this store's dir is ${storeDir}; relocate it first (nix-plan relocate --to ${storeDir})`,
    );
}

/**
 * The names of the trusted keys whose signatures verify on the manifest: none asked for when no
 * key is given and none is required; otherwise at least one must verify ('signature' error).
 */
export function checkSignatures(
  manifest: BundleManifest,
  trustedKeys: readonly (string | PublicKey)[] | undefined,
  requireSignature: boolean | undefined,
): string[] {
  const keys = (trustedKeys ?? []).map((k) => (typeof k === 'string' ? parsePublicKey(k) : k));
  if (requireSignature === true && keys.length === 0)
    throw new NixPlanError('usage', 'a signature is required, but no trusted public keys were given');
  return keys.length > 0 || requireSignature === true ? verifyManifestSignatures(manifest, keys) : [];
}

/** What the verifier knows of an entry when it hands it on. */
export interface VerifiedEntry extends ExportedPath {
  readonly kind: ObjectKind;
  /** The narinfo `CA:` value for content-addressed entries. */
  readonly ca: string | undefined;
}

/**
 * The checks of a bundle's .drv files against their entries and the manifest: each .drv's
 * references are its inputs (`check`, as each is parsed), and the manifest's systems and its
 * roots' outputs are the ones the .drv files give (`finish`, once all are checked). Errors are
 * 'bundle' NixPlanErrors, whoever parses the .drv files.
 */
export class DerivationChecks {
  private readonly systems = new Set<string>();
  /** The system of the last .drv checked: nearly all are the same, and need no string made. */
  private lastSystem: Uint8Array | undefined;
  private readonly rootOutputs = new Map<string, Map<string, string>>();
  private readonly rootDrvs: Set<string>;
  private anyChecked = false;

  constructor(private readonly manifest: BundleManifest) {
    this.rootDrvs = new Set(manifest.roots.map((r) => r.drvPath));
  }

  /** Checks a parsed .drv against its entry (the same .drv may be passed again). */
  check(path: string, references: readonly string[], drv: DerivationHead): void {
    const inputs = derivationReferences(drv);
    if (inputs.length !== references.length || inputs.some((r, i) => r !== references[i]))
      throw bad(`the references of '${path}' differ from the inputs its contents name`);
    const { system } = drv;
    if (this.lastSystem === undefined || compareBytes(system, this.lastSystem) !== 0) {
      this.systems.add(Buffer.from(system.buffer, system.byteOffset, system.byteLength).toString('latin1'));
      this.lastSystem = system.slice(); // a view would pin the bytes around it
    }
    if (this.rootDrvs.has(path) && !this.rootOutputs.has(path))
      this.rootOutputs.set(path, new Map(drv.outputs.map((o) => [o.name, o.path])));
    this.anyChecked = true;
  }

  /** The checks of the manifest against all the .drv files, once each was checked. */
  finish(): void {
    // A root's outputs must be the ones its .drv names (when the .drv is in the bundle).
    for (const root of this.manifest.roots) {
      const outputs = this.rootOutputs.get(root.drvPath);
      if (outputs !== undefined)
        for (const [name, path] of Object.entries(root.outputs))
          if (outputs.get(name) !== path)
            throw bad(
              `the manifest gives output '${name}' of root '${root.drvPath}' as '${path}', but the .drv says '${outputs.get(name) ?? 'no such output'}'`,
            );
    }
    const drvSystems = [...this.systems].sort();
    const { systems } = this.manifest;
    if (this.anyChecked && drvSystems.join(' ') !== systems.join(' '))
      throw bad(
        `the manifest lists the systems [${systems.join(', ')}], but the bundle's .drv files are for [${drvSystems.join(', ')}]`,
      );
  }
}

/**
 * The kind of an entry, refusing a .drv that is not text-addressed (or, given `derivations` to
 * check it with, whose parse fails or whose references are not its inputs), and outputs in a
 * plan-only bundle.
 */
export function classifyEntry(
  entry: ExportedPath,
  manifest: BundleManifest,
  limits: Partial<ExportLimits>,
  derivations: DerivationChecks | undefined,
  onDerivation?: (drv: Derivation, bytes: Uint8Array) => void,
): VerifiedEntry {
  const ca = identifyContentAddress(
    {
      path: entry.path,
      references: entry.references,
      narHash: () => entry.nar.narHash, // not asked for a .drv or text: its NAR is never hashed
      file: entry.nar.file,
      fileSha256: entry.nar.fileHash,
    },
    manifest.storeDir,
  );
  if (entry.path.endsWith('.drv')) {
    if (entry.nar.file === undefined && entry.nar.fileHash !== undefined)
      throw new LimitError(
        `'${entry.path}' is larger than the limit of ${limits.keepFileUpTo ?? DEFAULT_EXPORT_LIMITS.keepFileUpTo} bytes for a .drv`,
      );
    if (ca?.kind !== 'drv')
      throw bad(`'${entry.path}' is not the hash of its contents and references: the bundle was altered`);
    if (derivations !== undefined) {
      const bytes = entry.nar.file?.contents ?? new Uint8Array(0);
      const drv = parseDerivation(bytes);
      derivations.check(entry.path, entry.references, drv);
      onDerivation?.(drv, bytes);
    }
    return { ...entry, kind: 'drv', ca: ca.ca };
  }
  const kind: ObjectKind = ca?.kind ?? 'output';
  if (kind === 'output' && manifest.include === 'drvs')
    throw bad(
      `'${entry.path}' is not the hash of its contents, but a 'drvs' bundle holds only content-addressed paths: the bundle was altered`,
    );
  return { ...entry, kind, ca: ca?.ca };
}

/**
 * The closure rule, entry by entry: every reference is the entry itself, an entry before it, or a
 * path valid in the target store. A reference met later in the stream is out of dependency order;
 * the others not in the bundle are gathered (bounded in number and bytes) and asked about in one
 * query at the end (`missing`, then `finish` with the valid ones): one missing is a 'closure' error.
 */
export class ClosureCheck {
  private readonly seen = new Set<string>();
  /** Reference not yet seen → the first path that needs it. */
  private readonly pending = new Map<string, string>();
  private pendingBytes = 0;
  private storeValid = 0;

  constructor(
    private readonly limits: Pick<ReaderLimits, 'maxMissingReferences' | 'maxMissingReferenceBytes'>,
  ) {}

  /** Refuses an entry an earlier one needed but did not find (call before `add`). */
  arrive(path: string): void {
    const needer = this.pending.get(path);
    if (needer !== undefined)
      throw new NixPlanError(
        'closure',
        `'${needer}' refers to '${path}', which comes after it in the bundle: the bundle is out of dependency order`,
      );
  }

  /** Records an entry and its references. */
  add(path: string, references: readonly string[]): void {
    for (const r of references) {
      if (r === path || this.seen.has(r) || this.pending.has(r)) continue;
      this.pending.set(r, path);
      this.pendingBytes += r.length;
      if (
        this.pending.size > this.limits.maxMissingReferences ||
        this.pendingBytes > this.limits.maxMissingReferenceBytes
      )
        throw new LimitError(
          `the bundle refers to more than ${this.limits.maxMissingReferences} paths (or ${this.limits.maxMissingReferenceBytes} bytes of them) it does not hold, e.g. '${r}' (from '${path}')`,
        );
    }
    this.seen.add(path);
  }

  /** Whether `path` was an entry. */
  has(path: string): boolean {
    return this.seen.has(path);
  }

  /** How many entries were added. */
  get paths(): number {
    return this.seen.size;
  }

  /** The references the bundle does not hold (to be found valid in the store). */
  missing(): string[] {
    return [...this.pending.keys()];
  }

  /** How many references were found valid in the store instead of in the bundle. */
  get storeReferences(): number {
    return this.storeValid;
  }

  /** Refuses a reference that was neither an entry nor valid in the store (`valid`: those that are). */
  finish(valid: ReadonlySet<string>): void {
    for (const [missing, needer] of this.pending)
      if (!valid.has(missing))
        throw new NixPlanError(
          'closure',
          `'${needer}' refers to '${missing}', which is neither in the bundle nor valid in the store`,
        );
    this.storeValid = this.pending.size;
  }
}

/**
 * Refuses an entry that takes the bundle past what its manifest records: more paths or NAR bytes
 * of a kind than it says (checked as each entry arrives, so a bundle lying about its sizes is
 * refused before more than it declared was read).
 */
export function checkRunningTotals(
  manifest: BundleManifest,
  kind: ObjectKind,
  counts: Record<ObjectKind, number>,
  narBytes: Record<ObjectKind, number>,
  name: string,
): void {
  const paths = OBJECT_KINDS.reduce((n, k) => n + counts[k], 0);
  if (paths > manifest.paths)
    throw bad(
      `'${name}' holds more than the ${manifest.paths} paths its manifest says: the bundle is corrupt or lies about its sizes`,
    );
  if (counts[kind] > manifest.counts[kind] || narBytes[kind] > manifest.narBytes[kind])
    throw bad(
      `'${name}' holds more ${kind} paths or NAR bytes than its manifest says (${manifest.counts[kind]} paths, ${manifest.narBytes[kind]} bytes): the bundle is corrupt or lies about its sizes`,
    );
}

/** The total NAR bytes a manifest declares, of every kind. */
export function declaredNarBytes(manifest: BundleManifest): number {
  return OBJECT_KINDS.reduce((n, k) => n + manifest.narBytes[k], 0);
}

/** Refuses a bundle whose entries do not add up to what its manifest records, or that lacks a root. */
export function checkTotals(
  manifest: BundleManifest,
  found: {
    counts: Record<ObjectKind, number>;
    narBytes: Record<ObjectKind, number>;
    has(path: string): boolean;
  },
  name: string,
): void {
  const { counts, narBytes } = found;
  for (const k of OBJECT_KINDS)
    if (counts[k] !== manifest.counts[k] || narBytes[k] !== manifest.narBytes[k])
      throw bad(
        `'${name}' holds ${counts[k]} ${k} paths (${narBytes[k]} NAR bytes), but its manifest says ${manifest.counts[k]} (${manifest.narBytes[k]})`,
      );
  // Every root's .drv (so its outputs are checked against it), and an outputs bundle's outputs.
  for (const root of manifest.roots) {
    const wanted = [
      root.drvPath,
      ...(manifest.include === 'outputs' ? Object.values(root.outputs).filter((p) => p !== '') : []),
    ];
    for (const p of wanted) if (!found.has(p)) throw bad(`root '${p}' is not in the bundle '${name}'`);
  }
}
