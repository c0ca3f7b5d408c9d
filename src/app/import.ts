// importPlan: verify a bundle completely, then add it to a store: `nix-store --import` where the
// user may, otherwise the untrusted route through a temporary binary cache. Idempotent.
import { closeSync, openSync, writeSync } from 'node:fs';
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NixPlanError } from '../core/errors.js';
import { exportStream, openBundle, type BundleManifest } from '../core/bundle/index.js';
import { NixCommandError, isSignatureRefusal } from '../nix/errors.js';
import { importExport, storeTrust, type StoreTrust } from '../nix/import.js';
import { FileInput } from '../nix/runner.js';
import { NixStore } from '../nix/store.js';
import { binaryCacheCopyImport, type CopyImport } from './binary-cache.js';
import type { Deps } from './deps.js';
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
}

export type { CopyImport } from './binary-cache.js';
export { storeTrust, type StoreTrust } from '../nix/import.js';

/** Dependencies of importPlan: the usual ones and, optionally, the untrusted route. */
export interface ImportDeps extends Deps {
  /** The untrusted route (default: `binaryCacheCopyImport()`, which cannot sign build outputs). */
  readonly copyImport?: CopyImport | undefined;
}

/**
 * A promise that never rejects, for work started ahead of need: its outcome, replayed (value or
 * error) when it is finally needed, and no unhandled rejection if it never is.
 */
function settle<T>(p: Promise<T>): Promise<() => T> {
  return p.then(
    (v) => () => v,
    (e: unknown) => () => {
      throw e;
    },
  );
}

/** Paths needing one query each this many at least, before the query is split. */
const PATHS_PER_QUERY = 1000;

/**
 * Which of the paths handed to `add` are invalid in the store, asked a batch at a time while the
 * caller is still busy verifying: Nix's answer does not depend on the bundle, and each query is
 * mostly a process start and a database open, which overlap with the verification. Batches are
 * large because starting a process blocks this thread for a few milliseconds.
 */
class ValidityQueries {
  private batch: string[] = [];
  private readonly answers: Promise<() => Set<string>>[] = [];

  constructor(
    private readonly store: NixStore,
    private readonly batchSize = 4 * PATHS_PER_QUERY,
  ) {}

  add(path: string): void {
    this.batch.push(path);
    if (this.batch.length >= this.batchSize) this.send();
  }

  private send(): void {
    if (this.batch.length === 0) return;
    this.answers.push(settle(this.store.invalidPaths(this.batch)));
    this.batch = [];
  }

  /** The invalid paths among all added. */
  async invalid(): Promise<Set<string>> {
    this.send();
    const out = new Set<string>();
    for (const answer of await Promise.all(this.answers)) for (const p of answer()) out.add(p);
    return out;
  }
}

/**
 * The invalid ones of `paths`, asking Nix in up to four concurrent `--check-validity` runs: each
 * is a process start and a database open, which is most of its cost, and they overlap.
 */
async function invalidAmong(store: NixStore, paths: readonly string[]): Promise<Set<string>> {
  const parts = Math.max(1, Math.min(4, Math.floor(paths.length / PATHS_PER_QUERY)));
  const queries = new ValidityQueries(store, Math.ceil(paths.length / parts));
  for (const p of paths) queries.add(p);
  return queries.invalid();
}

/**
 * A private file that receives the verified export stream as the verifier decompresses it, so
 * `nix-store --import` can read it straight from disk: no second decompression and no second
 * verification. Only this process can write it (0600 in a 0700 directory), so what Nix reads is
 * byte for byte what was verified. If writing fails (a full disk), it gives up quietly and the
 * caller falls back to decompressing the private bundle copy again.
 */
class VerifiedStreamFile {
  private fd: number | undefined;
  failure: string | undefined;

  constructor(readonly path: string) {
    this.fd = openSync(path, 'wx', 0o600);
  }

  /** Appends a chunk (synchronously: the page cache takes 1 MiB in well under a millisecond). */
  write(chunk: Uint8Array): void {
    if (this.fd === undefined) return;
    try {
      for (let at = 0; at < chunk.length;) at += writeSync(this.fd, chunk, at, chunk.length - at);
    } catch (e) {
      this.failure = (e as Error).message;
      this.close();
    }
  }

  /** True when every chunk was written. */
  get complete(): boolean {
    return this.failure === undefined;
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}

/**
 * Copies the bundle into a private directory and verifies the copy completely, so nothing
 * unverified can reach the store even if the original changes meanwhile; the verified export
 * stream is kept in a private file as it is checked, and that file is what Nix imports.
 * Paths already valid are skipped; running it twice, or twice at once, is safe (Nix locks paths).
 */
export async function importPlan(
  bundlePath: string,
  options: ImportOptions,
  deps: ImportDeps,
): Promise<ImportResult> {
  const store = new NixStore(deps.runner, { store: options.store });
  const dir = await mkdtemp(join(tmpdir(), 'nix-plan-import-'));
  try {
    const copy = join(dir, 'bundle.nixplan');
    // The first Nix process runs alone: on a store that does not exist yet it creates the
    // database, and two Nix 2.34 processes starting at once on a new store can fail with
    // "SQLite database is busy".
    const storeDir = await store.storeDir();
    // Nix's other answers do not depend on the bundle: ask while copying and verifying it.
    const trusts =
      options.method === undefined || options.method === 'auto' ? settle(storeTrust(store)) : undefined;
    await copyFile(bundlePath, copy).catch((e: unknown) => {
      throw new NixPlanError('usage', `cannot read bundle '${bundlePath}': ${(e as Error).message}`);
    });
    const source = await openBundle(copy);
    // Whatever the route, what reaches the store is the stream verified here.
    const verified = new VerifiedStreamFile(join(dir, 'export'));
    try {
      const paths: string[] = [];
      const validity = new ValidityQueries(store);
      let report;
      try {
        report = await verifyWithProgress(
          source,
          {
            trustedKeys: options.trustedKeys,
            storeDir,
            isValidInStore: async (p) => (await store.invalidPaths([p])).size === 0,
            onEntry: (e) => {
              paths.push(e.path);
              validity.add(e.path);
            },
            ...(verified !== undefined && { onStreamBytes: (c: Uint8Array) => verified.write(c) }),
          },
          deps.progress,
        );
      } finally {
        verified.close();
      }
      if (verified.failure !== undefined)
        deps.log.debug(`cannot keep the verified stream (${verified.failure}): decompressing it again`);
      const { manifest } = report;
      const invalid = await validity.invalid();
      const alreadyValid = paths.length - invalid.size;
      if (invalid.size === 0) {
        deps.log.info(`all ${paths.length} paths are valid already`);
        return { manifest, imported: 0, alreadyValid, method: 'none' };
      }
      let method = options.method ?? 'auto';
      if (method === 'auto') {
        const trust: StoreTrust = await (trusts ?? settle(storeTrust(store))).then((r) => r());
        method = trust === 'untrusted' ? 'copy' : 'import';
        if (trust === 'unknown') deps.log.debug('store trust unknown: trying nix-store --import first');
      }
      // The verified stream: the private file, or (when it could not be kept) decompressed again.
      const stream = (): AsyncIterable<Uint8Array> =>
        verified.complete ? new FileInput(verified.path) : exportStream(source);
      if (method === 'import') {
        deps.log.info(`importing ${invalid.size} paths with nix-store --import…`);
        try {
          await importExport(store, stream());
        } catch (e) {
          if (options.method === 'import' || !(e instanceof NixCommandError) || !isSignatureRefusal(e))
            throw e;
          deps.log.info(
            'the store wants signatures from this user: importing through a binary cache instead',
          );
          method = 'copy';
        }
      }
      if (method === 'copy') {
        const copyImport: CopyImport = deps.copyImport ?? binaryCacheCopyImport();
        await copyImport(stream(), { store: options.store, manifest }, deps);
      }
      const still = await invalidAmong(store, paths);
      if (still.size > 0)
        throw new NixPlanError(
          'nix',
          `after importing, ${still.size} paths are still not valid, e.g. '${[...still][0]}'`,
        );
      return { manifest, imported: invalid.size, alreadyValid, method };
    } finally {
      await source.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
