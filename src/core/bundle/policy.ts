// What a bundle must satisfy to be accepted, as pure functions over its manifest and entries: the
// realm, the signatures, each entry's kind, the .drv files against the manifest, and the totals
// (the limits are in limits.ts, the closure rule in closure-check.ts). The streaming verifier
// (reader.ts) applies them in one pass; nothing here reads a file or a store.
import { LimitError, NixPlanError } from '../errors.js';
import { compareBytes } from '../bytes.js';
import { identifyContentAddress } from '../content-address.js';
import {
  derivationReferences,
  parseDerivationSpans,
  PlanShapes,
  type DerivationHead,
  type DerivationHeadLayout,
  type DerivationTail,
} from '../derivation/index.js';
import { DEFAULT_EXPORT_LIMITS, type ExportLimits, type ExportedPath } from '../export-stream.js';
import { parsePublicKey, type PublicKey } from '../signing.js';
import { relocateAdvice, type OptionNames } from '../option-names.js';
import { OBJECT_KINDS, verifyManifestSignatures, type BundleManifest, type ObjectKind } from './manifest.js';

function bad(message: string): NixPlanError {
  return new NixPlanError('bundle', message);
}

/**
 * Refuses a bundle made for another store dir than `storeDir` (when one is required); the
 * message says how to relocate it as `names` spells that (default: the command line).
 */
export function checkRealm(
  manifest: BundleManifest,
  storeDir: string | undefined,
  name: string,
  names?: OptionNames,
): void {
  if (storeDir !== undefined && storeDir !== manifest.storeDir)
    throw new NixPlanError(
      'realm',
      `'${name}' is a plan for the store dir ${manifest.storeDir}, but this store's dir is ${storeDir}; relocate it first (${relocateAdvice(names, storeDir)})`,
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
  /** The shapes of the .drv files that Nix reads only with an experimental feature on. */
  readonly shapes = new PlanShapes();

  constructor(private readonly manifest: BundleManifest) {
    this.rootDrvs = new Set(manifest.roots.map((r) => r.drvPath));
  }

  /** Checks a parsed .drv against its entry (the same .drv may be passed again). */
  check(path: string, references: readonly string[], drv: DerivationHead): void {
    const inputs = derivationReferences(drv);
    if (inputs.length !== references.length || inputs.some((r, i) => r !== references[i]))
      throw bad(`the references of '${path}' differ from the inputs its contents name`);
    this.shapes.add(path, drv);
    const { system } = drv;
    if (this.lastSystem === undefined || compareBytes(system, this.lastSystem) !== 0) {
      this.systems.add(Buffer.from(system.buffer, system.byteOffset, system.byteLength).toString('latin1'));
      this.lastSystem = system.slice(); // a view would pin the bytes around it
    }
    this.checked(path, drv.outputs);
  }

  /**
   * Records a .drv whose bytes and references were parsed and checked under the same path in
   * another bundle of the same store dir: a .drv path is the hash of both (checked for this entry
   * by `classifyEntry`), so only what this manifest must agree with is left, its system and outputs.
   */
  checkSame(path: string, system: string, outputs: readonly { name: string; path: string }[]): void {
    this.systems.add(system);
    this.checked(path, outputs);
  }

  /** Records that the .drv at `path` was checked: a root's outputs are the ones it names. */
  private checked(path: string, outputs: readonly { name: string; path: string }[]): void {
    if (this.rootDrvs.has(path) && !this.rootOutputs.has(path))
      this.rootOutputs.set(path, new Map(outputs.map((o) => [o.name, o.path])));
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
  onDerivation?: (
    head: DerivationHead,
    tail: DerivationTail,
    bytes: Uint8Array,
    layout: DerivationHeadLayout,
  ) => void,
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
      // Validated whole as parseDerivation validates it; its environment is not made (the output
      // checks read what they need of it from the bytes).
      const layout = { outputPaths: [], inputDrvsStart: 0, inputDrvsEnd: 0 };
      const { head, tail } = parseNamed(entry.path, () => parseDerivationSpans(bytes, layout));
      derivations.check(entry.path, entry.references, head);
      onDerivation?.(head, tail, bytes, layout);
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

/** `parse()`, with a .drv that does not parse named in the error (exit 3, as any malformed .drv). */
function parseNamed<T>(drvPath: string, parse: () => T): T {
  try {
    return parse();
  } catch (e) {
    if (e instanceof NixPlanError && e.code === 'malformed')
      throw new NixPlanError('malformed', `${e.message} (in '${drvPath}')`);
    throw e;
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
