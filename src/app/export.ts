// exportPlan: evaluate once, collect the closure from the store, write it as one plan bundle.
import { rm } from 'node:fs/promises';
import { NixPlanError } from '../core/errors.js';
import { optionName, optionSet, type OptionNames } from '../core/option-names.js';
import {
  DEFAULT_READER_LIMITS,
  EXPORT_COMPRESSION,
  checkWritten,
  emptyCounts,
  entryLimitProblem,
  tempPathNear,
  writeBundle,
  type ReaderLimits,
  type WrittenPlan,
  type BundleRoot,
  type Include,
  type ManifestDraft,
  type ObjectKind,
} from '../core/bundle/index.js';
import { writeExport, type ExportEntry } from '../core/export-stream.js';
import { rfc3339 } from '../core/provenance.js';
import { formatPublicKey, parseSecretKey, publicKeyOf, secretKeyTexts } from '../core/signing.js';
import { streamClosure } from '../nix/collect.js';
import {
  describeBuiltInput,
  findBuiltInputs,
  type BuiltInput,
  type ClosureMember,
} from '../nix/built-inputs.js';
import { checkEvaluateRequest, evaluate, type EvaluateRequest } from '../nix/evaluate.js';
import { narOf } from '../nix/fs-tree.js';
import { regularFileNar } from '../core/nar-write.js';
import { NixStore, type ClosureObject } from '../nix/store.js';
import { progressOf, type Deps } from './deps.js';
import { assertWritable } from './files.js';
import { collectProvenance, type ProvenanceSources } from './provenance.js';
import { relocatePlan } from './relocate.js';
import { TOOL_VERSION } from './version.js';

/** What to export and how. */
export interface ExportOptions extends EvaluateRequest {
  /** Where to write the bundle. */
  readonly output: string;
  /** What to carry (default `drvs`). */
  readonly include?: Include | undefined;
  /** zstd level 1–19 (default: EXPORT_COMPRESSION, a tuned level 10). */
  readonly level?: number | undefined;
  /** Secret keys (Nix's `NAME:base64` text) to sign the manifest with. */
  readonly signingKeys?: readonly string[] | undefined;
  /** One secret key (the Action's single input); added to `signingKeys`. */
  readonly signingKey?: string | undefined;
  /** Relocate the plan to this store dir before writing. */
  readonly relocateTo?: string | undefined;
  /** Nix store URI (`--store`). */
  readonly store?: string | undefined;
  /** Physical location of the store dir when it differs and the URI does not say. */
  readonly realStoreDir?: string | undefined;
  /**
   * The limits the bundle's readers apply (default: theirs, DEFAULT_READER_LIMITS): a bundle they
   * would refuse is not written.
   */
  readonly readerLimits?: Partial<ReaderLimits> | undefined;
  /** Where provenance is read from (the environment for GitHub Actions runs, the worktree). */
  readonly provenance?: ProvenanceSources | undefined;
  /** The clock (the plan's `createdAt` is when evaluation started). */
  readonly now?: (() => Date) | undefined;
  /** How messages name the options (default: the command line's flags; the plan action: its inputs). */
  readonly optionNames?: OptionNames | undefined;
}

/** What exportPlan produced. */
export interface ExportResult extends WrittenPlan {
  readonly timings: { evaluateMs: number; collectMs: number; writeMs: number };
}

/** Counts and NAR bytes per kind. */
export function tally(objects: readonly ClosureObject[]): {
  counts: Record<ObjectKind, number>;
  narBytes: Record<ObjectKind, number>;
} {
  const counts = emptyCounts();
  const narBytes = emptyCounts();
  for (const o of objects) {
    counts[o.kind]++;
    narBytes[o.kind] += o.narSize;
  }
  return { counts, narBytes };
}

/** Evaluates, collects and writes the bundle. */
export async function exportPlan(options: ExportOptions, deps: Deps): Promise<ExportResult> {
  const keyTexts = secretKeyTexts(options);
  const keys = keyTexts.map(parseSecretKey);
  const include = options.include ?? 'drvs';
  const names = options.optionNames;
  await assertWritable(options.output);
  // A request that cannot be evaluated is refused before the evaluation's progress line starts.
  const request = await checkEvaluateRequest(options);
  const store = new NixStore(deps.runner, { store: options.store, realStoreDir: options.realStoreDir });
  const t0 = performance.now();
  const createdAt = rfc3339(options.now?.() ?? new Date());
  const nixVersion = await store.version();
  const evaluating = progressOf(deps).start(`evaluating with Nix ${nixVersion}`);
  const { roots, storeDir } = await evaluate(request, store, deps.nixLog).finally(() => evaluating.done());
  const t1 = performance.now();
  // Provenance (git, the flake's lock) is read while the closure is: neither needs the other.
  const [closure, provenance] = await Promise.all([
    // Returns once the .drv files are read; Nix still describes the paths while writing starts.
    streamClosure(
      store,
      storeDir,
      roots.map((r) => r.drvPath),
      include,
      {
        onRealise: (what, n) =>
          deps.log.info(`realising ${n} ${what} for ${optionSet(names, 'include', include)}…`),
      },
      // The stream needs no NAR hashes; Nix's database is asked only about the other paths.
      { drvsFromFiles: true },
    ),
    collectProvenance(options, store, options.provenance ?? {}, deps.log),
  ]);
  const t2 = performance.now();
  // A build output evaluation read proves itself to nobody: a `sources` plan carries one signed.
  const unsigned = keys.length === 0 ? closure.builtInputs?.find((b) => b.path === b.output) : undefined;
  if (unsigned !== undefined)
    throw builtInputRefusal(
      unsigned,
      "a 'sources' bundle carries a build output only signed, since nothing else proves what it holds: " +
        `${exportWith(names)} ${optionName(names, 'signKey')} (readers then give the public key with ${optionName(names, 'trustedKey')})`,
    );
  const { counts, narBytes } = tally([]);
  let paths = 0;
  // Counts, sizes, systems and the roots' outputs are known once the stream has been written.
  const draft = (): ManifestDraft => {
    const { rootOutputs, systems } = closure.summary();
    const bundleRoots: BundleRoot[] = roots.map((r) => ({
      ...(r.installable !== undefined && { installable: r.installable }),
      ...(r.attribute !== undefined && { attribute: r.attribute }),
      drvPath: r.drvPath,
      outputs: rootOutputs.get(r.drvPath) ?? {},
    }));
    return {
      tool: TOOL_VERSION,
      nixVersion,
      createdAt,
      provenance,
      storeDir,
      systems,
      include,
      roots: bundleRoots,
      counts,
      narBytes,
      paths,
    };
  };
  const task = progressOf(deps).start('writing bundle', closure.count);
  // What is not a .drv, to find the build outputs evaluation read (import from derivation).
  const members: ClosureMember[] = [];
  const carried = new Set<string>();
  const readerLimits: ReaderLimits = {
    ...DEFAULT_READER_LIMITS,
    ...options.readerLimits,
    export: { ...DEFAULT_READER_LIMITS.export, ...options.readerLimits?.export },
  };
  // Paths the bundle's readers would refuse, found as they are written.
  const overLimits: string[] = [];
  async function* entries(): AsyncGenerator<ExportEntry> {
    for await (const o of closure.objects) {
      carried.add(o.path);
      if (o.kind !== 'drv') members.push({ path: o.path, kind: o.kind, deriver: o.deriver });
      // A 'drvs' bundle carries only what evaluation writes.
      if (o.kind === 'output' && include === 'drvs')
        throw builtInputRefusal(
          { path: o.path, output: o.path, deriver: o.deriver },
          `a 'drvs' bundle carries only what evaluation writes: ${exportWith(names)} ${optionSet(names, 'include', 'sources')} ${names?.style === 'input' ? 'and ' : ''}${optionName(names, 'signKey')} to carry it ` +
            '(relocating the plan to another store dir is then refused: native evaluation there would build it again)',
        );
      const problem = entryLimitProblem({ ...o, fileSize: o.file?.bytes.length }, readerLimits);
      if (problem !== undefined) overLimits.push(problem);
      yield {
        path: o.path,
        references: [...o.references],
        deriver: o.deriver,
        // Read synchronously when its turn comes, once (a .drv was read to stream the closure).
        nar:
          o.file === undefined
            ? narOf(store.realPathSync(o.path))
            : regularFileNar(o.file.bytes, o.file.executable),
      };
      counts[o.kind]++;
      narBytes[o.kind] += o.narSize;
      paths++;
      task.tick(1, o.narSize);
    }
  }
  deps.log.debug(`${closure.count} paths`);
  const target = options.relocateTo === undefined ? options.output : tempPathNear(options.output);
  let written;
  try {
    written = await writeBundle(target, draft, writeExport(entries()), {
      ...(options.level === undefined ? EXPORT_COMPRESSION : { level: options.level }),
      // With --relocate-to the plan is signed twice: here, so relocation can check that what it
      // reads is what was just written, and after relocation.
      keys,
      check: (m) => checkWritten(m, readerLimits, overLimits),
    });
  } finally {
    task.done();
  }
  let { manifest, bundleBytes } = written;
  const builtInputs =
    closure.builtInputs ?? (include === 'drvs' ? await findBuiltInputs(store, storeDir, members) : []);
  for (const b of builtInputs) deps.log.warn(explainBuiltInput(b, include, carried.has(b.deriver), names));
  if (options.relocateTo !== undefined) {
    try {
      const relocated = await relocatePlan(
        target,
        {
          to: options.relocateTo,
          output: options.output,
          signingKeys: keyTexts,
          trustedKeys: keys.map((k) => formatPublicKey(publicKeyOf(k))),
          // One step from evaluation: relocatedFrom says where it was evaluated; no promotion.
          recordPromotion: false,
          level: options.level,
        },
        deps,
      );
      manifest = relocated.manifest;
      bundleBytes = relocated.bundleBytes;
    } finally {
      await rm(target, { force: true });
    }
  }
  const t3 = performance.now();
  if (manifest.paths !== closure.count)
    throw new NixPlanError('internal', 'the written bundle does not hold the collected closure');
  return {
    bundlePath: options.output,
    manifest,
    bundleBytes,
    timings: {
      evaluateMs: Math.round(t1 - t0),
      collectMs: Math.round(t2 - t1),
      writeMs: Math.round(t3 - t2),
    },
  };
}

/**
 * The refusal of a build output the plan depends on (evaluation read it: import from derivation, or
 * builtins.storePath), naming it, and `why` the bundle cannot carry it.
 */
function builtInputRefusal(b: BuiltInput, why: string): NixPlanError {
  return new NixPlanError('closure', `${describeBuiltInput(b)}; the plan depends on it, and ${why}`);
}

/** What export tells the user about a build output the plan depends on, and what --include does. */
function explainBuiltInput(
  b: BuiltInput,
  include: string,
  derivationCarried: boolean,
  names: OptionNames | undefined,
): string {
  const what = describeBuiltInput(b);
  if (b.path === b.output)
    return `${what}: the bundle carries it (${optionSet(names, 'include', include)}), but relocating the plan to another store dir is refused, as native evaluation there would build it again`;
  return derivationCarried
    ? `${what}: the plan carries that derivation, so relocation can name the copy in another store dir`
    : `${what}: relocating the plan needs that derivation to name the copy in another store dir; ${exportWith(names)} ${optionSet(names, 'include', 'sources')} to carry it`;
}

/** How a message asks for an export option: the command line exports with a flag, an action is given an input. */
function exportWith(names: OptionNames | undefined): string {
  return names?.style === 'input' ? 'give' : 'export with';
}
