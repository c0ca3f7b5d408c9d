// importPlan: verify a bundle completely, then add it to a store: `nix-store --import` where the
// user may, otherwise the untrusted route through a temporary binary cache. Idempotent.
import { join } from 'node:path';
import { NixPlanError } from '../core/errors.js';
import { optionSet, type OptionNames } from '../core/option-names.js';
import {
  checkRealm,
  exportStream,
  readBundleHead,
  trustReportOf,
  type BundleManifest,
  type ReaderLimits,
  type TrustReport,
} from '../core/bundle/index.js';
import { parsePublicKey } from '../core/signing.js';
import { NixCommandError, isSignatureRefusal } from '../nix/errors.js';
import { checkShapes, type ShapeNeed } from '../core/derivation/index.js';
import { importExport, storeTrust, targetNix, type StoreTrust } from '../nix/import.js';
import { FileInput, cleanupRunner } from '../nix/runner.js';
import { NixStore } from '../nix/store.js';
import { binaryCacheCopyImport, type CopyImport } from './binary-cache.js';
import { progressOf, type Deps } from './deps.js';
import { VerifiedStreamFile, checkRoom, privateBundle } from './private-copy.js';
import { rollBack, withRollbackNote } from './rollback.js';
import { invalidAmong, settle, ValidityQueries } from './validity.js';
import { verifyWithProgress } from './verify.js';

/** How to add paths: decide (`auto`), `nix-store --import`, or the binary-cache `copy`. */
export type ImportMethod = 'auto' | 'import' | 'copy';

/** The import methods, for option parsing. */
export const IMPORT_METHODS: readonly ImportMethod[] = ['auto', 'import', 'copy'];

/** Options of importPlan. */
export interface ImportOptions {
  /** Nix store URI (`--store`); default: Nix's default store. */
  readonly store?: string | undefined;
  /** Public keys; when given, the bundle must be signed by one. */
  readonly trustedKeys?: readonly string[] | undefined;
  readonly method?: ImportMethod | undefined;
  /** Accept build outputs no trusted signature proves (`--no-check-sigs`; warned, and reported). */
  readonly noCheckSigs?: boolean | undefined;
  /**
   * The sha256 the bundle file must have (`sha256:<hex>` or hex): checked on the private copy that
   * is verified and imported, not on the path (which could change in between).
   */
  readonly digest?: string | undefined;
  /**
   * How messages name the bundle (default: the path given): the user's file, when the path given
   * is a private copy of it (apply, deploy --build-on local, --max-age).
   */
  readonly name?: string | undefined;
  /** Largest uncompressed plan accepted, in bytes: what the import writes to the temp dir and the store. */
  readonly maxSize?: number | undefined;
  /**
   * What the caller refuses from the plan's manifest (realise: `--roots` naming no root): called
   * once the manifest's schema and checksum were read from the private copy, before the plan is
   * verified and before any of it reaches the store; what it throws is the import's error, unless
   * the plan is for another store dir: that refusal comes first.
   */
  readonly checkManifest?: ((manifest: BundleManifest) => void) | undefined;
  /** How messages name the options (default: the command line's flags; an action: its inputs). */
  readonly optionNames?: OptionNames | undefined;
}

/** What importPlan did. */
export interface ImportResult {
  readonly manifest: BundleManifest;
  /** Paths added by this run. */
  readonly imported: number;
  /** Paths that were valid already (skipped). */
  readonly alreadyValid: number;
  /** The method used (`none` when every path was valid already). */
  readonly method: 'import' | 'copy' | 'none';
  /** Trusted keys whose signatures verified. */
  readonly trustedSignatures: readonly string[];
  /** What was proven about who made the plan (CONTRACTS.md's trust report). */
  readonly trust: TrustReport;
  /** The paths this run added, in dependency order (a function: not part of the printed result). */
  readonly addedPaths: () => readonly string[];
  /** The output paths the plan's derivations declare (what building it can add). */
  readonly declaredOutputs: () => readonly string[];
  /** Build outputs accepted without proof (with `noCheckSigs`). */
  readonly unproven: number;
  readonly noCheckSigs: boolean;
  /**
   * Milliseconds spent copying and verifying the bundle (Nix's answers about the store included),
   * and adding its paths to the store and checking that they are valid.
   */
  readonly timings: { verifyMs: number; importMs: number };
}

/** Dependencies of importPlan: the usual ones and, optionally, the untrusted route. */
/**
 * Asks the store dir of `store` (Nix's default when undefined): the realm a plan must be for to be
 * imported there, for `withFreshness` to prefer a realm refusal to a stale one.
 */
export function storeDirAsker(deps: Pick<Deps, 'runner'>, store: string | undefined): () => Promise<string> {
  return () => new NixStore(deps.runner, { store }).storeDir();
}

export interface ImportDeps extends Deps {
  /** The untrusted route (default: `binaryCacheCopyImport()`, which cannot sign build outputs). */
  readonly copyImport?: CopyImport | undefined;
}

/**
 * Copies the bundle into a private directory and verifies the copy completely, so nothing
 * unverified can reach the store even if the original changes meanwhile; the verified export
 * stream is kept in a private file as it is checked, and that file is what Nix imports.
 * Paths already valid are skipped; running it twice, or twice at once, is safe (Nix locks paths).
 * If the import fails or is interrupted (`deps.signal`), the paths it made valid are removed again
 * before the error is thrown, and the error says so: the store's valid paths are what they were.
 */
export async function importPlan(
  bundlePath: string,
  options: ImportOptions,
  deps: ImportDeps,
): Promise<ImportResult> {
  const store = new NixStore(deps.runner, { store: options.store });
  const started = performance.now();
  // The first Nix process runs alone: on a store that does not exist yet it creates the
  // database, and two Nix 2.34 processes starting at once on a new store can fail with
  // "SQLite database is busy". Every other Nix process of the import waits for it; the copy and
  // verification of the bundle, which need no store, run meanwhile.
  const storeDirKnown = store.storeDir();
  const storeDirAnswer = settle(storeDirKnown);
  // Nix's other answers do not depend on the bundle: ask while copying and verifying it. No Nix
  // process outlives the call: once it has ended (`ended`), a query not started yet is not
  // started, and one running is waited for.
  let ended = false;
  const trusts =
    options.method === undefined || options.method === 'auto'
      ? settle(
          storeDirKnown.then(() => {
            if (ended) throw new NixPlanError('internal', 'the import ended before its store was asked');
            return storeTrust(store);
          }),
        )
      : undefined;
  const validity = new ValidityQueries(store, undefined, storeDirKnown);
  const finish = async (): Promise<void> => {
    ended = true;
    await storeDirAnswer;
    await trusts;
    await validity.close();
  };
  const settled = async (e: unknown): Promise<never> => {
    await finish();
    throw e;
  };
  // Messages name the user's file, not the private copy they are about.
  const copy = await privateBundle(bundlePath, {
    digest: options.digest,
    name: options.name,
    prefix: 'nix-plan-import-',
    optionNames: options.optionNames,
  }).catch(settled);
  const { dir, source } = copy;
  try {
    const { manifest: claimed } = await readBundleHead(source);
    // A plan for another store dir is refused with that error whatever else is wrong with it, as
    // when its store dir was checked first: a verification that fails waits for the store dir,
    // and a store dir that differs stops the verification. So does the caller's own refusal of
    // the manifest (realise: roots that name none of the plan's): no choice of roots can make a
    // plan for another realm importable here, and the realm's message says what would (relocate).
    const realm = new AbortController();
    const realmChecked = settle(
      storeDirKnown.then((storeDir) => {
        checkRealm(claimed, storeDir, source.name, options.optionNames);
        return storeDir;
      }),
    );
    void realmChecked.then((r) => {
      try {
        r();
      } catch (e) {
        realm.abort(e);
      }
    });
    try {
      options.checkManifest?.(claimed);
    } catch (e) {
      (await realmChecked)();
      throw e;
    }
    await checkRoom(claimed, dir, options.maxSize, options.optionNames);
    // Whatever the route, what reaches the store is the stream verified here.
    const verified = new VerifiedStreamFile(join(dir, 'export'));
    const paths: string[] = [];
    const limits: Partial<ReaderLimits> =
      options.maxSize === undefined ? {} : { maxStreamSize: options.maxSize };
    let report;
    try {
      report = await verifyWithProgress(
        source,
        {
          trustedKeys: options.trustedKeys,
          noCheckSigs: options.noCheckSigs,
          limits,
          optionNames: options.optionNames,
          // Asked with the last of the bundle's paths, in one Nix process.
          validInStore: async (missing) => {
            const invalid = await validity.sendWith(missing);
            return new Set(missing.filter((p) => !invalid.has(p)));
          },
          readStoreDerivation: (p) => storeDirKnown.then(() => readStoreFile(store, p)),
          // Only each entry's path is kept: its bytes need not be copied out of the stream.
          keptFiles: 'view',
          onEntry: (e) => {
            paths.push(e.path);
            validity.add(e.path);
          },
          onStreamBytes: (c: Uint8Array) => verified.write(c),
        },
        deps.progress,
        deps.signal === undefined ? realm.signal : AbortSignal.any([deps.signal, realm.signal]),
      );
    } catch (e) {
      (await realmChecked)();
      throw e;
    } finally {
      verified.close();
    }
    const storeDir = (await realmChecked)();
    if (verified.failure !== undefined)
      deps.log.debug(`cannot keep the verified stream (${verified.failure}): decompressing it again`);
    const { manifest } = report;
    const proof = {
      trustedSignatures: report.trustedSignatures,
      unproven: report.unproven,
      noCheckSigs: report.noCheckSigs,
      declaredOutputs: report.declaredOutputs,
      trust: trustReportOf(manifest, (options.trustedKeys ?? []).map(parsePublicKey), {
        noCheckSigs: report.noCheckSigs,
        unproven: report.unproven,
      }),
    };
    if (report.unproven > 0)
      deps.log.warn(
        `${optionSet(options.optionNames, 'noCheckSigs')}: importing ${report.unproven} build output${report.unproven === 1 ? '' : 's'} no trusted signature proves`,
      );
    const invalid = await validity.invalid();
    const verifiedAt = performance.now();
    const timings = (): ImportResult['timings'] => ({
      verifyMs: Math.round(verifiedAt - started),
      importMs: Math.round(performance.now() - verifiedAt),
    });
    const alreadyValid = paths.length - invalid.size;
    if (invalid.size === 0) {
      deps.log.info(`all ${paths.length} paths are valid already`);
      return {
        manifest,
        imported: 0,
        alreadyValid,
        method: 'none',
        addedPaths: () => [],
        ...proof,
        timings: timings(),
      };
    }
    // A .drv the target's Nix cannot read stops `nix-store --import` at that .drv: refused here,
    // before anything reaches the store.
    await checkTargetReads(store, report.shapes, deps);
    // From here on the store changes: whatever stops the import, what it added is removed again.
    const added = paths.filter((p) => invalid.has(p));
    try {
      const { method, reported } = await addPaths(store, manifest, options, deps, {
        trusts,
        count: invalid.size,
        stream: () => (verified.complete ? new FileInput(verified.path) : exportStream(source)),
      });
      deps.signal?.throwIfAborted();
      // nix-store --import exits 0 and lists every path of the stream only when each one was
      // added or valid already: then that is the answer, without asking Nix again path by path.
      const still = everyPathReported(paths, reported) ? new Set<string>() : await invalidAmong(store, paths);
      if (still.size > 0)
        throw new NixPlanError(
          'nix',
          `after importing, ${still.size} paths are still not valid, e.g. '${[...still][0]}'`,
        );
      return {
        manifest,
        imported: invalid.size,
        alreadyValid,
        method,
        addedPaths: () => added,
        ...proof,
        timings: timings(),
      };
    } catch (e) {
      deps.log.info(`the import failed: removing the paths it added…`);
      const cleanup = new NixStore(cleanupRunner(deps.runner), { store: options.store });
      cleanup.setStoreDir(storeDir);
      throw withRollbackNote(e, await rollBack(cleanup, added));
    }
  } finally {
    await finish();
    await copy.dispose();
  }
}

/**
 * Refuses a plan with a .drv the target store's Nix cannot read (a shape it reads only with an
 * experimental feature it has off, or not at all), naming the first; warns of the shapes that
 * cannot be checked (a daemon's features). Asks the store only for a plan with such shapes.
 */
export async function checkTargetReads(
  store: NixStore,
  shapes: readonly (ShapeNeed & { readonly count: number })[],
  deps: Pick<Deps, 'log'>,
): Promise<void> {
  if (shapes.length === 0) return;
  const verdict = checkShapes(shapes, await targetNix(store));
  if (verdict.refusal !== undefined)
    throw new NixPlanError('bundle', `the plan cannot be imported into this store: ${verdict.refusal}`);
  for (const w of verdict.unchecked) deps.log.warn(w);
}

/** A .drv of the target store, read from its file (undefined when it is not there). */
function readStoreFile(store: NixStore, path: string): Uint8Array | undefined {
  try {
    return store.readRegularFileSync(path)?.bytes;
  } catch {
    return undefined;
  }
}

/** True when `reported` (Nix's list, in stream order) is exactly `paths`. */
function everyPathReported(paths: readonly string[], reported: readonly string[] | undefined): boolean {
  return (
    reported !== undefined && reported.length === paths.length && reported.every((p, i) => p === paths[i])
  );
}

/**
 * Adds the verified stream to the store by `nix-store --import` or the binary-cache route; with
 * `nix-store --import`, also the paths it reported.
 */
async function addPaths(
  store: NixStore,
  manifest: BundleManifest,
  options: ImportOptions,
  deps: ImportDeps,
  how: {
    trusts: Promise<() => StoreTrust> | undefined;
    count: number;
    stream: () => AsyncIterable<Uint8Array>;
  },
): Promise<{ method: 'import' | 'copy'; reported?: string[] }> {
  let method = options.method ?? 'auto';
  if (method === 'auto') {
    const trust: StoreTrust = await (how.trusts ?? settle(storeTrust(store))).then((r) => r());
    method = trust === 'untrusted' ? 'copy' : 'import';
    if (trust === 'unknown') deps.log.debug('store trust unknown: trying nix-store --import first');
  }
  if (method === 'import') {
    // nix-store --import prints each path it adds: one tick per line.
    const importing = progressOf(deps).start('importing with nix-store --import', how.count);
    try {
      const reported = await importExport(store, how.stream(), (n) => importing.tick(n));
      return { method: 'import', reported };
    } catch (e) {
      if (options.method === 'import' || !(e instanceof NixCommandError) || !isSignatureRefusal(e)) throw e;
      deps.log.info('the store wants signatures from this user: importing through a binary cache instead');
    } finally {
      importing.done();
    }
  }
  const copyImport: CopyImport = deps.copyImport ?? binaryCacheCopyImport();
  // The cache is made beside (not inside) the private dir: the Nix client may be another user.
  await copyImport(how.stream(), { store: options.store, manifest }, deps);
  return { method: 'copy' };
}
