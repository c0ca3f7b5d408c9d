// Reading a plan bundle: the streaming verifier, over the bundle's source (source.ts), its
// decoding (decode.ts) and the rules it applies (policy.ts), whose public names it re-exports.
//
// Verification is one streaming pass that checks everything `nix-store --import` relies on before
// a byte reaches Nix: the skippable frame and the manifest (schema, checksum, realm, signatures),
// limits (absolute and compression ratio) before decompressing, the data frame's structure (one
// frame ending at end of file), both digests and sizes, every NAR and entry, store paths, that
// references are closed over bundle ∪ store and come first, that every .drv/text/source path is
// the hash of its content, counts and roots. Memory is bounded by the limits, not by the bundle.
import { NixPlanError } from '../errors.js';
import { readExport, type ExportLimits } from '../export-stream.js';
import type { PublicKey } from '../signing.js';
import type { FrameInfo } from './frame.js';
import { emptyCounts, type BundleManifest, type ObjectKind } from './manifest.js';
import { decompressedStream, readBundleHead } from './decode.js';
import type { DerivationHead, DerivationHeadLayout, DerivationTail, ShapeNeed } from '../derivation/index.js';
import { DerivationOutputChecks } from './drv-outputs.js';
import type { StoreDerivationReader } from './store-derivations.js';
import { ClosureCheck } from './closure-check.js';
import { DEFAULT_READER_LIMITS, checkSizeLimits, exportLimitsFor, type ReaderLimits } from './limits.js';
import type { OptionNames } from '../option-names.js';
import {
  DerivationChecks,
  checkRealm,
  checkRunningTotals,
  checkSignatures,
  checkTotals,
  classifyEntry,
  declaredNarBytes,
  type VerifiedEntry,
} from './policy.js';
import { PathProofs } from './proof.js';
import { openBundle, type BundleSource } from './source.js';

/** What to require of a bundle beyond its own consistency. */
export interface VerifyOptions {
  /** The store dir of the store it is for; a bundle for another realm is refused. */
  readonly storeDir?: string | undefined;
  /** Public keys (`NAME:base64` or parsed); when given, a valid signature by one is required. */
  readonly trustedKeys?: readonly (string | PublicKey)[] | undefined;
  /** Whether a signature is required (default: when trustedKeys are given). */
  readonly requireSignature?: boolean | undefined;
  /**
   * Which of the paths the bundle refers to without holding them are valid in the target store:
   * asked once, at the end, with all of them (default: `isValidInStore` for each, else none is).
   */
  readonly validInStore?: ((paths: readonly string[]) => Promise<ReadonlySet<string>>) | undefined;
  /** Whether one path outside the bundle is valid in the target store (see `validInStore`). */
  readonly isValidInStore?: ((path: string) => boolean | Promise<boolean>) | undefined;
  /**
   * Reads a `.drv` the plan's derivations use but the bundle does not hold from the target store,
   * so their output paths can be checked as Nix will (none: such a plan is refused).
   */
  readonly readStoreDerivation?: StoreDerivationReader | undefined;
  /**
   * Accept build outputs no trusted signature proves (`--no-check-sigs`): counted in the report's
   * `unproven` instead of refused.
   */
  readonly noCheckSigs?: boolean | undefined;
  readonly limits?: Partial<ReaderLimits> | undefined;
  /** How messages name the options (default: the command line's flags; an action: its inputs). */
  readonly optionNames?: OptionNames | undefined;
  /** Called for each entry once it is checked (the bundle as a whole is valid only at the end). */
  readonly onEntry?: ((entry: CheckedEntry) => void | Promise<void>) | undefined;
  /**
   * The raw NAR bytes of entry `index`, before the entry is checked and handed to `onEntry`
   * (chunks may be views of a larger buffer: copy what is kept).
   */
  readonly onNarBytes?: ((chunk: Uint8Array, index: number) => void) | undefined;
  /**
   * Every byte of the decompressed export stream, in order and in large chunks, before it is
   * parsed: exactly the bytes verified, so a caller can keep a private copy to import once
   * verification succeeded (the stream is valid only when verifyBundle returns).
   */
  readonly onStreamBytes?: ((chunk: Uint8Array) => void) | undefined;
  /**
   * How entries' kept `.drv` and text bytes (`nar.file`) are handed to `onEntry`: 'copy'
   * (default), or 'view' for a caller that copies or writes each before the next entry (see
   * `readExport`'s option of the same name).
   */
  readonly keptFiles?: 'copy' | 'view' | undefined;
  /**
   * Default true: every .drv is parsed and validated to its end, and checked against its entry
   * and the manifest (references = inputs, systems, roots' outputs). false: no .drv is parsed
   * here, for a caller that parses every one whole itself before it writes anything (relocation
   * does): it must pass each parsed .drv to the report's `derivations.check` and, once all are,
   * call `derivations.finish()`; the bundle is valid only then.
   */
  readonly parseDerivations?: boolean | undefined;
  /**
   * .drv files a verification of another plan of the same store dir checked (a diff's other
   * side): one at a path it holds is checked against its path as every entry is, and its other
   * checks (against the manifest, its output paths as Nix computes them) are taken from there
   * instead of parsing and hashing it again. Used only with `parseDerivations`.
   */
  readonly known?: KnownDerivations | undefined;
}

/** The .drv files a verification checked, for `VerifyOptions.known`. */
export interface KnownDerivations {
  /** The system and outputs of the .drv checked at `drvPath`, or undefined. */
  head(drvPath: string): { readonly system: string; readonly outputs: readonly OutputHead[] } | undefined;
  /** That verification's output checks (`VerifyReport.outputChecks`). */
  readonly checks: DerivationOutputChecks;
}

/** An output of a .drv: its name and path ("" when known only once built). */
interface OutputHead {
  readonly name: string;
  readonly path: string;
}

/** An entry as `onEntry` gets it: a .drv parsed here comes with its parsed form. */
export interface CheckedEntry extends VerifiedEntry {
  /** The head of a .drv parsed (and checked) here; undefined for other entries and `known` ones. */
  readonly derivation?: DerivationHead | undefined;
}

/** The outcome of a successful verification (a failed one throws). */
export interface VerifyReport {
  readonly manifest: BundleManifest;
  readonly bundleBytes: number;
  readonly paths: number;
  readonly counts: Record<ObjectKind, number>;
  readonly narBytes: Record<ObjectKind, number>;
  /** Trusted keys whose signatures verified (empty when none were required). */
  readonly trustedSignatures: readonly string[];
  /** References found valid in the store instead of in the bundle. */
  readonly storeReferences: number;
  /** Build outputs no trusted signature proves, accepted because of `noCheckSigs` (else refused). */
  readonly unproven: number;
  /** Whether the caller opted out of proof (`noCheckSigs`). */
  readonly noCheckSigs: boolean;
  /** The output paths the plan's derivations declare (what building it can add to a store). */
  readonly declaredOutputs: () => string[];
  readonly frame: Pick<FrameInfo, 'windowSize' | 'blocks'>;
  /**
   * The .drv files Nix reads only with an experimental feature on (the first of each shape, in
   * plan order): what the target store's Nix must have (`checkShapes`).
   */
  readonly shapes: readonly (ShapeNeed & { readonly count: number })[];
  /** With `parseDerivations: false`, the checks of the .drv files left to the caller. */
  readonly derivations?: DerivationChecks | undefined;
  /** With `parseDerivations`, the output checks of its .drv files (for `VerifyOptions.known`). */
  readonly outputChecks?: DerivationOutputChecks | undefined;
}

/**
 * Verifies a bundle completely in one streaming pass (see the module comment) and returns what
 * it holds; throws a NixPlanError ('bundle', 'malformed', 'limit', 'closure', 'realm',
 * 'signature') at the first problem. Pass a path or an open source.
 */
export async function verifyBundle(
  bundle: string | BundleSource,
  options: VerifyOptions = {},
): Promise<VerifyReport> {
  const source = typeof bundle === 'string' ? await openBundle(bundle) : bundle;
  try {
    return await verifySource(source, options);
  } finally {
    if (typeof bundle === 'string') await source.close();
  }
}

async function verifySource(source: BundleSource, options: VerifyOptions): Promise<VerifyReport> {
  const limits: ReaderLimits = { ...DEFAULT_READER_LIMITS, ...options.limits };
  const head = await readBundleHead(source, limits.maxManifestSize);
  const { manifest } = head;
  checkRealm(manifest, options.storeDir, source.name, options.optionNames);
  const trustedSignatures = checkSignatures(manifest, options.trustedKeys, options.requireSignature);
  checkSizeLimits(manifest, limits, options.optionNames);

  const exportLimits: Partial<ExportLimits> = exportLimitsFor(manifest, limits);
  const counts = emptyCounts();
  const narBytes = emptyCounts();
  const closure = new ClosureCheck(limits);
  const derivations = new DerivationChecks(manifest);
  const parseDerivations = options.parseDerivations !== false;
  // Output paths are checked as Nix checks them on import; relocation recomputes them instead.
  const outputs = parseDerivations
    ? new DerivationOutputChecks(manifest.storeDir, {
        readStore: options.readStoreDerivation,
        indexOutputs: true,
      })
    : undefined;
  const known =
    outputs !== undefined && options.known?.checks.storeDir === manifest.storeDir ? options.known : undefined;
  const noCheckSigs = options.noCheckSigs === true;
  const proofs = new PathProofs({
    include: manifest.include,
    signed: trustedSignatures.length > 0,
    noCheckSigs,
    optionNames: options.optionNames,
  });
  // Every NAR byte counts against what the manifest declares, as it arrives.
  const declared = declaredNarBytes(manifest);
  let narSeen = 0;
  const onNarBytes = (chunk: Uint8Array, index: number): void => {
    narSeen += chunk.length;
    if (narSeen > declared)
      throw new NixPlanError(
        'bundle',
        `'${source.name}' holds more than the ${declared} NAR bytes its manifest records (entry ${index}): the bundle is corrupt or lies about its sizes`,
      );
    options.onNarBytes?.(chunk, index);
  };

  let frame: FrameInfo | undefined;
  const decoded = decompressedStream(source, head, limits, { onFrame: (info) => (frame = info) });
  const data = options.onStreamBytes === undefined ? decoded : tapChunks(decoded, options.onStreamBytes);
  type Parsed = {
    head: DerivationHead;
    tail: DerivationTail;
    bytes: Uint8Array;
    layout: DerivationHeadLayout;
  };
  let parsed: Parsed | undefined;
  const onDerivation = (
    head: DerivationHead,
    tail: DerivationTail,
    bytes: Uint8Array,
    layout: DerivationHeadLayout,
  ): void => {
    parsed = { head, tail, bytes, layout };
  };
  for await (const entry of readExport(data, exportLimits, {
    storeDir: manifest.storeDir,
    onNarBytes,
    ...(options.keptFiles !== undefined && { keptFiles: options.keptFiles }),
  })) {
    closure.arrive(entry.path);
    parsed = undefined;
    const same =
      known !== undefined && entry.path.endsWith('.drv') && known.checks.checked(entry.path)
        ? known.head(entry.path)
        : undefined;
    const verified = classifyEntry(
      entry,
      manifest,
      exportLimits,
      parseDerivations && same === undefined ? derivations : undefined,
      onDerivation,
    );
    const drv = parsed as Parsed | undefined; // set by classifyEntry, through onDerivation
    if (same !== undefined) {
      derivations.checkSame(entry.path, same.system, same.outputs);
      outputs!.adopt(entry.path, same.outputs, known!.checks);
    } else if (outputs !== undefined && drv !== undefined) {
      const pending = outputs.checkSpans(entry.path, drv.head, drv.tail, drv.bytes, drv.layout);
      if (pending !== undefined) await pending;
    }
    proofs.entry(entry.path, verified.kind, entry.deriver);
    closure.add(entry.path, entry.references);
    counts[verified.kind]++;
    narBytes[verified.kind] += entry.nar.narSize;
    checkRunningTotals(manifest, verified.kind, counts, narBytes, source.name);
    await options.onEntry?.(drv === undefined ? verified : { ...verified, derivation: drv.head });
  }
  checkTotals(manifest, { counts, narBytes, has: (p) => closure.has(p) }, source.name);
  if (parseDerivations) derivations.finish();
  if (outputs !== undefined)
    proofs.finish(
      (p) => outputs.declarations(p),
      (p) => p.endsWith('.drv') && closure.has(p),
    );
  // One question to the store, about every path the bundle refers to but does not hold.
  closure.finish(await validAmong(closure.missing(), options));
  if (frame === undefined) throw new NixPlanError('internal', 'the data frame was not scanned to its end');
  return {
    manifest,
    bundleBytes: head.bundleBytes,
    paths: closure.paths,
    counts,
    narBytes,
    trustedSignatures,
    storeReferences: closure.storeReferences,
    unproven: proofs.unproven,
    noCheckSigs,
    declaredOutputs: () => outputs?.declaredPaths() ?? [],
    shapes: derivations.shapes.needs(),
    frame: { windowSize: frame.windowSize, blocks: frame.blocks },
    ...(!parseDerivations && { derivations }),
    ...(outputs !== undefined && { outputChecks: outputs }),
  };
}

/** Which of `paths` are valid in the target store, by the options' batch or per-path question. */
async function validAmong(paths: readonly string[], options: VerifyOptions): Promise<ReadonlySet<string>> {
  if (paths.length === 0) return new Set();
  if (options.validInStore !== undefined) return options.validInStore(paths);
  const valid = new Set<string>();
  if (options.isValidInStore !== undefined)
    for (const p of paths) if (await options.isValidInStore(p)) valid.add(p);
  return valid;
}

/** Passes each chunk to `fn` before handing it on. */
async function* tapChunks(
  source: AsyncIterable<Uint8Array>,
  fn: (chunk: Uint8Array) => void,
): AsyncGenerator<Uint8Array> {
  for await (const chunk of source) {
    fn(chunk);
    yield chunk;
  }
}
