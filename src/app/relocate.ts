// relocatePlan: bundle for store dir A → bundle for store dir B. One streaming pass over a
// verified private copy collects what relocation needs (drv/text bytes, in a scratch file when
// there are many; source NAR hashes and, when they are small, the sources' NARs); the new bundle
// is written straight from the relocation. Only sources too large to hold need a second pass to
// copy their NARs through.
import { join } from 'node:path';
import { NixPlanError } from '../core/errors.js';
import {
  DEFAULT_READER_LIMITS,
  RELOCATE_LEVEL,
  RELOCATE_WINDOW_LOG,
  checkWritten,
  emptyCounts,
  manifestSigners,
  readBundleHead,
  writeBundle,
  type WrittenPlan,
  type ManifestDraft,
  type Promotion,
  trustReportOf,
  type TrustReport,
} from '../core/bundle/index.js';
import {
  fixedOutputAddress,
  outputKind,
  parseDerivation,
  parseDerivationOutputs,
} from '../core/derivation/index.js';
import type { ContentAddress } from '../core/content-address.js';
import { writeExport } from '../core/export-stream.js';
import { regularFileNarSize } from '../core/nar-write.js';
import {
  relocateLazily,
  relocateRoot,
  type RelocatedObject,
  type RelocationReport,
  type RelocObject,
} from '../core/relocate/index.js';
import { assertStoreDir } from '../core/store-path.js';
import { outputsOf } from '../core/derivation/index.js';
import { rfc3339 } from '../core/provenance.js';
import { parsePublicKey, parseSecretKey, secretKeyTexts } from '../core/signing.js';
import { progressOf, type Deps } from './deps.js';
import { assertWritable } from './files.js';
import { assertSignable } from './signing-policy.js';
import { privateBundle } from './private-copy.js';
import { keptEntries, rereadEntries } from './relocated-export.js';
import { ScratchFile } from './scratch-file.js';
import { verifyWithProgress } from './verify.js';
import { optionSet, type OptionNames } from '../core/option-names.js';
import { TOOL_VERSION } from './version.js';

/** A recursive source that is one file bigger than this is relocated without holding its bytes. */
export const KEEP_SOURCE_FILE_UP_TO = 16 * 1024 * 1024;

/** Source NARs up to this many bytes in total are kept from the verifying pass (no second pass). */
export const KEEP_SOURCE_NARS_UP_TO = 64 * 1024 * 1024;

/**
 * .drv and text bytes up to this many (by the manifest) are held in memory until each is
 * relocated; beyond, they are written to a scratch file in the private directory and read back
 * when relocation needs them, a window at a time (the page cache holds them, not the process: at
 * 10,000 drvs they are ~65 MB, at 30,000 ~180 MB).
 */
export const KEEP_CONTENTS_UP_TO = 16 * 1024 * 1024;

/** Options of relocatePlan. */
export interface RelocateOptions {
  /** The target store dir (realm). */
  readonly to: string;
  /** How messages name the options (default: the command line's flags; an action: its inputs). */
  readonly optionNames?: OptionNames | undefined;
  /** Where to write the relocated bundle. */
  readonly output: string;
  /** Secret keys (`NAME:base64`) to sign the new manifest with. */
  readonly signingKeys?: readonly string[] | undefined;
  /** One secret key; added to `signingKeys`. */
  readonly signingKey?: string | undefined;
  /**
   * Public keys; when given, the input bundle must be signed by one. Signing the output
   * (`signingKeys`) requires them, or `noCheckSigs`: a key signs only what was verified.
   */
  readonly trustedKeys?: readonly string[] | undefined;
  /**
   * The sha256 the input bundle must have (`sha256:<hex>` or hex): checked on the private copy
   * that is verified and relocated, not on the path.
   */
  readonly digest?: string | undefined;
  /** How messages name the input (default: the path given; the user's file when that is a private copy). */
  readonly name?: string | undefined;
  /** Accept (and sign) an input no trusted key vouches for; the promotion records it. */
  readonly noCheckSigs?: boolean | undefined;
  /** Append what the input was to the manifest's `promotions` (default true). */
  readonly recordPromotion?: boolean | undefined;
  /** The clock, for the promotion's time. */
  readonly now?: (() => Date) | undefined;
  /** zstd level 1–19 (default RELOCATE_LEVEL without long-distance matching). */
  readonly level?: number | undefined;
  /** Source NAR bytes to hold in memory at most (default KEEP_SOURCE_NARS_UP_TO); beyond, a second pass. */
  readonly keepSourceNarsUpTo?: number | undefined;
  /** .drv and text bytes to hold in memory at most (default KEEP_CONTENTS_UP_TO); beyond, a scratch file. */
  readonly keepContentsUpTo?: number | undefined;
}

/** What relocatePlan wrote. */
export interface RelocateResult extends WrittenPlan {
  readonly report: RelocationReport;
  /** What was proven about who made the input (its signatures against `trustedKeys`). */
  readonly trust: TrustReport;
  /** Milliseconds spent verifying the input bundle, and relocating and writing the new one. */
  readonly timings: { verifyMs: number; relocateMs: number };
}

/**
 * Refuses a build output of the bundle, saying what it is: a fixed output whose hash nix-plan
 * cannot check (blake3, or a directory hashed by git), or an output evaluation read (import from
 * derivation, `builtins.storePath`), which native evaluation in `to` would build again.
 */
function refuseBuildOutput(
  output: { path: string; deriver: string },
  objects: readonly RelocObject[],
  to: string,
  names: OptionNames | undefined,
): never {
  const drv = objects.find((o) => o.path === output.deriver && o.kind === 'drv');
  const bytes = drv?.contents ?? drv?.readContents?.();
  const declared =
    bytes === undefined
      ? undefined
      : parseDerivationOutputs(bytes).outputs.find((o) => o.path === output.path);
  if (declared !== undefined && outputKind(declared) === 'fixed')
    throw new NixPlanError(
      'relocate',
      `cannot relocate ${output.path}: it is the fixed output of ${output.deriver}, hashed as ` +
        `${declared.hashAlgo}, which nix-plan cannot compute from its bytes ` +
        `(${uncheckable(fixedOutputAddress(declared, output.deriver))}), ` +
        `so it cannot prove the output is what the path says; relocate a bundle ${madeWith(names, 'drvs')}, ` +
        'and the output is built where the plan is realised',
    );
  const by = output.deriver === '' ? 'a derivation the bundle does not name' : output.deriver;
  throw new NixPlanError(
    'relocate',
    `cannot relocate ${output.path}: it is a build output of ${by} that evaluation read (import ` +
      'from derivation, or builtins.storePath), not content-addressed by its bytes: native ' +
      `evaluation in ${to} would build it again, to bytes nix-plan cannot know; evaluate the plan ` +
      `in ${to} instead`,
  );
}

/** How a bundle that carries `include` was made: exported with the flag, or by the plan action's input. */
function madeWith(names: OptionNames | undefined, include: string): string {
  if (names?.style !== 'input') return `exported with ${optionSet(names, 'include', include)}`;
  return `made with the plan action's ${optionSet(names, 'include', include)}`;
}

/** Why a fixed output's hash cannot be computed by nix-plan from a bundle's copy of it. */
function uncheckable(ca: ContentAddress): string {
  if (ca.hash.algo === 'blake3') return 'blake3 is not among the hashes Node computes';
  if (ca.method === 'git') return 'a directory hashed by git, as a git tree';
  return 'a bundle carries the NAR hash of an output in sha256 only';
}

/** Relocates a bundle to store dir `options.to` and writes the result to `options.output`. */
export async function relocatePlan(
  bundlePath: string,
  options: RelocateOptions,
  deps: Deps,
): Promise<RelocateResult> {
  assertStoreDir(options.to);
  await assertWritable(options.output);
  const keys = secretKeyTexts(options).map(parseSecretKey);
  const trusted = (options.trustedKeys ?? []).map(parsePublicKey);
  assertSignable(keys.length > 0, trusted.length > 0, options.noCheckSigs === true);
  const keepUpTo = options.keepSourceNarsUpTo ?? KEEP_SOURCE_NARS_UP_TO;
  // Messages name the user's file, not the private copy they are about.
  const copy = await privateBundle(bundlePath, {
    digest: options.digest,
    name: options.name,
    prefix: 'nix-plan-relocate-',
    optionNames: options.optionNames,
  });
  const { dir, source: bundle } = copy;
  try {
    // The promotion records the digest of exactly the bytes verified: the private copy's.
    const inputDigest = options.recordPromotion === false ? undefined : copy.digest;
    let scratch: ScratchFile | undefined;
    const started = performance.now();
    try {
      // Pass 1: verify everything and keep what relocation reads. The manifest's (not yet
      // verified) source size only decides whether to try keeping source NARs; what is kept is
      // counted, and a bundle whose sources outgrow the cap falls back to a second pass.
      const head = await readBundleHead(bundle);
      let keepSources = head.manifest.narBytes.source <= keepUpTo;
      const { narBytes: declared } = head.manifest;
      if (declared.drv + declared.text > (options.keepContentsUpTo ?? KEEP_CONTENTS_UP_TO))
        scratch = new ScratchFile(join(dir, 'contents'));
      let keptBytes = 0;
      let narChunks: Uint8Array[] = [];
      const sourceNars = new Map<string, Uint8Array>();
      const derivers = new Map<string, string>();
      const closurePaths = new Set<string>();
      let objects: RelocObject[] = [];
      const narSizes = new Map<string, number>();
      const outputs: { path: string; deriver: string }[] = [];
      const { manifest, derivations, unproven } = await verifyWithProgress(
        bundle,
        {
          trustedKeys: trusted,
          noCheckSigs: options.noCheckSigs,
          optionNames: options.optionNames,
          // Relocation parses every .drv whole, and refuses a malformed one, before the new
          // bundle is moved into place: it passes each to the verifier's checks (below), as
          // parsing them here as well would be done twice.
          parseDerivations: false,
          // Kept .drv and text bytes are views of the decompressed stream, not copies. With a
          // scratch file each goes there at once (a copy's shared block would outlive it; 140 MB
          // more at 30,000 drvs); without one, the views hold the stream's chunks (with their NAR
          // framing and sources) until the objects in them are relocated: about 5 MB more than
          // copies at 10,000 drvs, for 30 ms less of the main thread's time.
          keptFiles: 'view',
          ...(keepSources && { onNarBytes: (c: Uint8Array) => narChunks.push(c) }),
          onEntry: (e) => {
            const chunks = narChunks;
            narChunks = [];
            if (e.kind === 'output') {
              // Refused once the bundle is verified, when the derivations can say what it is.
              outputs.push({ path: e.path, deriver: e.deriver });
              return;
            }
            if (e.kind === 'source') {
              narSizes.set(e.path, e.nar.narSize);
              if (keepSources) {
                keptBytes += e.nar.narSize;
                if (keptBytes > keepUpTo) {
                  keepSources = false;
                  sourceNars.clear();
                } else sourceNars.set(e.path, Buffer.concat(chunks)); // a copy: chunks are views
              }
            }
            if (e.deriver !== '') derivers.set(e.path, e.deriver);
            closurePaths.add(e.path);
            // A recursive source is relocated by its NAR hash: its bytes are held only when small
            // (the reader keeps files up to a .drv's limit; a flat source needs its bytes).
            const file =
              e.kind === 'source' &&
              e.ca?.startsWith('fixed:r:') === true &&
              (e.nar.file?.contents.length ?? 0) > KEEP_SOURCE_FILE_UP_TO
                ? undefined
                : e.nar.file?.contents;
            objects.push({
              path: e.path,
              kind: e.kind,
              references: e.references,
              ...(file !== undefined &&
                (scratch === undefined
                  ? { contents: file }
                  : e.kind === 'source'
                    ? { contents: file.slice() } // a view would pin the chunk it is in
                    : { readContents: scratch.append(file) })),
              // A source's new path is made from it; a .drv's or text's NAR is never hashed.
              ...(e.kind === 'source' && { narHash: e.nar.narHash }),
              // Whether a source's bytes mention the store dir, when they were kept to look at.
              ...(e.kind === 'source' &&
                file === undefined &&
                sourceNars.has(e.path) && {
                  mentionsStoreDir: Buffer.from(sourceNars.get(e.path)!).includes(head.manifest.storeDir),
                }),
              ca: e.ca, // verified from the contents just now: relocation checks the path against it
            });
          },
        },
        deps.progress,
      );
      narChunks = [];
      if (outputs[0] !== undefined) refuseBuildOutput(outputs[0], objects, options.to, options.optionNames);
      const verified = performance.now();
      const from = manifest.storeDir;
      const promotion: Promotion | undefined =
        inputDigest === undefined
          ? undefined
          : {
              digest: inputDigest,
              storeDir: from,
              checksum: manifest.checksum,
              signedBy: manifestSigners(manifest, trusted),
              // Only an input no key was asked to vouch for is "accepted without proof".
              ...(options.noCheckSigs === true && trusted.length === 0 && { noCheckSigs: true as const }),
              at: rfc3339(options.now?.() ?? new Date()),
            };
      if (from === options.to)
        throw new NixPlanError('realm', `the bundle is already for store dir ${from}; nothing to relocate`);
      deps.log.info(`relocating ${objects.length} paths from ${from} to ${options.to}…`);
      // Relocated objects are written as they are made: zstd compresses on the threadpool
      // meanwhile, and neither the old nor the new bytes of the closure are all held at once.
      if (derivations === undefined)
        throw new NixPlanError('internal', 'the verifier did not hand over the checks of the .drv files');
      const { relocation, steps } = relocateLazily(objects, from, options.to, {
        onDerivation: (o, drv) => derivations.check(o.path, o.references, drv),
        optionNames: options.optionNames,
      });
      objects = [];
      const narBytes = emptyCounts();
      const rootDrvs = new Set(manifest.roots.map((r) => r.drvPath));
      const rootContents = new Map<string, Uint8Array>();
      const task = progressOf(deps).start('relocating and writing', manifest.paths);
      const seen = (o: RelocatedObject): void => {
        narBytes[o.kind] +=
          o.contents !== undefined ? regularFileNarSize(o.contents.length) : (narSizes.get(o.oldPath) ?? 0);
        if (o.contents !== undefined && rootDrvs.has(o.oldPath)) rootContents.set(o.oldPath, o.contents);
        task.tick(1);
      };
      // Known only once every object is relocated; the writer asks for it after the data, and
      // moves the new bundle into place only if the input's .drv files passed the last checks.
      const draft = (): ManifestDraft => {
        derivations.finish();
        const promotions = [...(manifest.promotions ?? []), ...(promotion === undefined ? [] : [promotion])];
        return {
          tool: TOOL_VERSION,
          nixVersion: manifest.nixVersion,
          // Freshness is about the plan's content: relocation keeps when and where it was made.
          ...(manifest.createdAt !== undefined && { createdAt: manifest.createdAt }),
          provenance: manifest.provenance ?? {},
          ...(promotions.length > 0 && { promotions }),
          storeDir: options.to,
          systems: manifest.systems,
          include: manifest.include,
          roots: manifest.roots.map((r) => {
            const moved = relocateRoot(r, relocation.pathMap);
            const drv = rootContents.get(r.drvPath);
            // Output paths come from the relocated .drv itself, the source of truth Nix will check.
            return drv === undefined ? moved : { ...moved, outputs: outputsOf(parseDerivation(drv)) };
          }),
          counts: manifest.counts,
          narBytes,
          paths: manifest.paths,
          relocatedFrom: { storeDir: from, report: relocation.report },
        };
      };
      try {
        const entries = keepSources
          ? keptEntries(steps, relocation, { derivers, nars: sourceNars, paths: closurePaths }, seen)
          : rereadEntries(bundle, steps, relocation, seen);
        const { manifest: written, bundleBytes } = await writeBundle(
          options.output,
          draft,
          writeExport(entries),
          {
            level: options.level ?? RELOCATE_LEVEL,
            longDistanceMatching: options.level !== undefined,
            ...(options.level === undefined && { windowLog: RELOCATE_WINDOW_LOG }),
            keys,
            // Whatever it relocated to, its readers must accept it (a bundle that grew past a limit).
            check: (m) => checkWritten(m, DEFAULT_READER_LIMITS),
          },
        );
        for (const w of relocation.report.warnings) deps.log.warn(w);
        return {
          bundlePath: options.output,
          manifest: written,
          bundleBytes,
          report: relocation.report,
          trust: trustReportOf(manifest, trusted, { noCheckSigs: options.noCheckSigs, unproven }),
          timings: {
            verifyMs: Math.round(verified - started),
            relocateMs: Math.round(performance.now() - verified),
          },
        };
      } finally {
        task.done();
      }
    } finally {
      scratch?.close();
    }
  } finally {
    await copy.dispose();
  }
}
