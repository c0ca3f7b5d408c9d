// Import without trust: turn a verified export stream into a temporary `file://` binary cache whose
// narinfos carry `CA:` (and, with a key, `Sig:`), then let `nix copy` add it through the daemon.
import { closeSync, openSync, writeSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BundleManifest } from '../core/bundle/index.js';
import { identifyContentAddress } from '../core/content-address.js';
import { NixPlanError } from '../core/errors.js';
import { readExport, type ExportLimits } from '../core/export-stream.js';
import { parseSecretKey, publicKeyOf, formatPublicKey, type SecretKey } from '../core/signing.js';
import { narinfoText, signNarinfo } from '../core/narinfo.js';
import { baseName } from '../core/store-path.js';

import { NixCommandError, isSignatureRefusal } from '../nix/errors.js';
import { copyPaths } from '../nix/import.js';
import { NixStore } from '../nix/store.js';
import { progressOf, type Deps } from './deps.js';

/**
 * The untrusted route of `importPlan`: adds a verified export stream (the bytes importPlan
 * verified, never the bundle decoded again) to the store `options.store`.
 */
export type CopyImport = (
  stream: AsyncIterable<Uint8Array>,
  options: { store?: string | undefined; manifest: BundleManifest; workDir?: string | undefined },
  deps: Deps,
) => Promise<void>;

/** Subdirectories Nix's local binary-cache store creates on opening (2.8 and 2.34). */
const CACHE_DIRS = ['nar', 'realisations', 'log', 'debuginfo'];

/** Options of importViaBinaryCache. */
export interface BinaryCacheImportOptions {
  /** The store dir every path of the stream must be in (the bundle's `storeDir`). */
  readonly storeDir: string;
  /** Destination store URI (`nix copy --to`); default: Nix's default store (usually the daemon). */
  readonly store?: string | undefined;
  /**
   * Signs every narinfo, so build outputs (input-addressed, which Nix accepts from an untrusted
   * user only with a signature by a key in `trusted-public-keys`) can be imported too.
   */
  readonly signingKey?: SecretKey | undefined;
  /** Directory for the temporary cache (default: the OS temp dir). It needs room for the NARs. */
  readonly workDir?: string | undefined;
  /** Limits for reading the stream (merged over the defaults). */
  readonly limits?: Partial<ExportLimits> | undefined;
}

/** What importViaBinaryCache did. */
export interface BinaryCacheImportResult {
  /** Every path of the stream, in stream (dependency) order. */
  readonly paths: readonly string[];
  /** Paths that were not valid before and are now. */
  readonly imported: number;
  /** Paths that were valid already. */
  readonly alreadyValid: number;
  /** Paths that went in by their content address (no signature needed). */
  readonly contentAddressed: number;
}

/** One narinfo's facts, kept per path until `nix copy` runs (no NAR bytes: those are on disk). */
export interface CachedPath {
  readonly path: string;
  readonly references: readonly string[];
  readonly ca: string | undefined;
}

/**
 * The paths `nix copy` must be named so that it copies all of `cached`: those no other cached path
 * refers to (their closures cover the rest), `.drv` files apart from the others. A `.drv` named on
 * the command line means its outputs unless `--derivation` is given, and `--derivation` turns any
 * other path into its deriver, so the two kinds need separate calls.
 */
export function copyTargets(cached: readonly CachedPath[]): { drvs: string[]; others: string[] } {
  const referenced = new Set<string>();
  for (const c of cached) for (const r of c.references) if (r !== c.path) referenced.add(r);
  const tops = cached.map((c) => c.path).filter((p) => !referenced.has(p));
  return { drvs: tops.filter((p) => p.endsWith('.drv')), others: tops.filter((p) => !p.endsWith('.drv')) };
}

/** The error for build outputs an untrusted user cannot add without a trusted signature. */
function needsSignature(paths: readonly string[], key: SecretKey | undefined): NixPlanError {
  const example = paths[0] ?? '';
  const how =
    key === undefined
      ? 'Either import as a user the daemon trusts (`trusted-users` in nix.conf), or sign them on import: ' +
        'pass a secret key (`nix-plan keygen NAME`) whose public key root has added to ' +
        '`trusted-public-keys` in the nix.conf of the host (then restart nix-daemon).'
      : `They were signed with '${key.name}', so the daemon does not trust that key: root must add ` +
        `'${formatPublicKey(publicKeyOf(key))}' to \`trusted-public-keys\` in the host's nix.conf ` +
        '(then restart nix-daemon).';
  return new NixPlanError(
    'signature',
    `${paths.length} path${paths.length === 1 ? ' is a build output' : 's are build outputs'} ` +
      `(input-addressed, e.g. '${example}'), which Nix accepts from a user it does not trust only with ` +
      `a signature by a key in its \`trusted-public-keys\`. ${how}`,
  );
}

/**
 * Adds the paths of an export stream to a store as a user the Nix daemon does not trust: writes
 * them as a temporary `file://` binary cache (NARs streamed to disk as they are read, never the
 * whole closure in memory), with each narinfo's `CA:` field from `identifyContentAddress` so Nix
 * re-derives content-addressed paths instead of asking for signatures, then runs
 * `nix copy --from file://DIR [--derivation] PATHS…`. Build outputs need `signingKey`, whose
 * public key the daemon must trust; without it they are refused before anything is copied.
 * The stream should already be verified (the bundle verifier); it is validated again as it is read.
 */
export async function importViaBinaryCache(
  source: AsyncIterable<Uint8Array>,
  options: BinaryCacheImportOptions,
  deps: Deps,
): Promise<BinaryCacheImportResult> {
  const parent = options.workDir ?? tmpdir();
  const dir = await mkdtemp(join(parent, 'nix-plan-cache-'));
  try {
    // Readable by everyone: the Nix client may run as another user than this process (sudo -u),
    // and everything in it is about to enter the world-readable store anyway.
    await chmod(dir, 0o755);
    await writeFile(join(dir, 'nix-cache-info'), `StoreDir: ${options.storeDir}\nWantMassQuery: 0\n`);
    // Nix creates these when it opens a file:// cache; made here so a client that cannot write
    // the directory (another user) still opens it.
    for (const sub of CACHE_DIRS) await mkdir(join(dir, sub), { mode: 0o755 });
    const cached = await writeCache(source, dir, options, deps);
    const store = new NixStore(deps.runner, { store: options.store });
    const paths = cached.map((c) => c.path);
    const invalid = await store.invalidPaths(paths);
    const alreadyValid = paths.length - invalid.size;
    const unsigned = cached.filter((c) => c.ca === undefined && invalid.has(c.path)).map((c) => c.path);
    if (unsigned.length > 0 && options.signingKey === undefined) throw needsSignature(unsigned, undefined);
    if (invalid.size > 0) await runCopy(store, dir, cached, options, deps, unsigned);
    const still = await store.invalidPaths([...invalid]);
    if (still.size > 0)
      throw new NixPlanError(
        'nix',
        `nix copy finished but ${still.size} paths are still not valid, e.g. '${[...still][0]}'`,
      );
    return {
      paths,
      imported: invalid.size,
      alreadyValid,
      contentAddressed: cached.filter((c) => c.ca !== undefined).length,
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Reads the stream once, writing `nar/<n>.nar` and `<hash>.narinfo` for every path. */
async function writeCache(
  source: AsyncIterable<Uint8Array>,
  dir: string,
  options: BinaryCacheImportOptions,
  deps: Deps,
): Promise<CachedPath[]> {
  const cached: CachedPath[] = [];
  const task = progressOf(deps).start('writing a temporary binary cache');
  let fd: number | undefined;
  let fdIndex = -1;
  const narFile = (index: number): string => `nar/${index}.nar`;
  const closeNar = (): void => {
    if (fd !== undefined) closeSync(fd);
    fd = undefined;
  };
  try {
    const entries = readExport(source, options.limits, {
      storeDir: options.storeDir,
      // Synchronous writes: the reader hands over views without back-pressure, so writing them
      // before it continues keeps memory flat whatever the NAR sizes.
      onNarBytes: (chunk, index) => {
        if (index !== fdIndex) {
          closeNar();
          fd = openSync(join(dir, narFile(index)), 'wx', 0o644);
          fdIndex = index;
        }
        if (fd !== undefined) writeSync(fd, chunk);
      },
    });
    let index = 0;
    for await (const entry of entries) {
      closeNar();
      const ca = identifyContentAddress(
        {
          path: entry.path,
          references: entry.references,
          narHash: entry.nar.narHash,
          file: entry.nar.file,
        },
        options.storeDir,
      )?.ca;
      const facts = {
        path: entry.path,
        narHash: entry.nar.narHash,
        narSize: entry.nar.narSize,
        references: entry.references,
      };
      const text = narinfoText({
        ...facts,
        url: narFile(index),
        deriver: entry.deriver,
        ca,
        sig: options.signingKey === undefined ? undefined : signNarinfo(options.signingKey, facts),
      });
      const hashPart = baseName(entry.path).slice(0, 32);
      await writeFile(join(dir, `${hashPart}.narinfo`), text, { mode: 0o644, flag: 'wx' });
      cached.push({ path: entry.path, references: entry.references, ca });
      index++;
      task.tick(1, entry.nar.narSize);
    }
  } finally {
    closeNar();
    task.done();
  }
  return cached;
}

/** Runs `nix copy` for the cache's top-level paths, `.drv` files with `--derivation`. */
async function runCopy(
  store: NixStore,
  dir: string,
  cached: readonly CachedPath[],
  options: BinaryCacheImportOptions,
  deps: Deps,
  unsigned: readonly string[],
): Promise<void> {
  const { drvs, others } = copyTargets(cached);
  const from = `file://${dir}`;
  const what = 'nix copy from the temporary binary cache';
  deps.log.info(`adding ${cached.length} paths through a temporary binary cache (nix copy)`);
  try {
    await copyPaths(store, from, drvs, { derivation: true, what });
    await copyPaths(store, from, others, { what });
  } catch (e) {
    if (e instanceof NixCommandError && isSignatureRefusal(e) && unsigned.length > 0)
      throw needsSignature(unsigned, options.signingKey);
    throw e;
  }
}

/**
 * The `copyImport` route of `importPlan`: hands the verified export stream to
 * `importViaBinaryCache`. `signingKey` is the text of a Nix secret key file, or a parsed key.
 */
export function binaryCacheCopyImport(
  settings: { signingKey?: string | SecretKey | undefined; workDir?: string | undefined } = {},
): CopyImport {
  const key =
    typeof settings.signingKey === 'string' ? parseSecretKey(settings.signingKey) : settings.signingKey;
  return async (stream, options, deps) => {
    await importViaBinaryCache(
      stream,
      {
        storeDir: options.manifest.storeDir,
        store: options.store,
        signingKey: key,
        workDir: settings.workDir ?? options.workDir,
      },
      deps,
    );
  };
}
