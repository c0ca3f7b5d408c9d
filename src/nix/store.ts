// Reads a closure out of a Nix store with a handful of processes (not one per path): one query for
// the closure, one `nix-store --dump-db` per batch of paths for registration info, then the files.
import { lstatSync, readFileSync } from 'node:fs';
import { readFile, lstat } from 'node:fs/promises';
import { NixPlanError } from '../core/errors.js';
import { parseHash, toHex } from '../core/hash.js';
import type { ObjectKind } from '../core/bundle/manifest.js';
import type { CommandRunner } from './runner.js';

/** One path's registration in the store's database, as `nix-store --dump-db` prints it. */
export interface PathInfo {
  readonly path: string;
  /** sha256 of the path's NAR, lower-case hex. */
  readonly narHash: string;
  readonly narSize: number;
  /** The derivation that produced it, or "". */
  readonly deriver: string;
  readonly references: readonly string[];
}

export type { ObjectKind };

/** A closure member with its registration and kind. */
export interface ClosureObject extends PathInfo {
  readonly kind: ObjectKind;
}

/** Where the store is and how to reach it. */
export interface NixStoreOptions {
  /** A Nix store URI passed as `--store` (undefined: Nix's default). */
  readonly store?: string | undefined;
  /**
   * Where the store's files physically are, when it differs from the logical store dir and cannot
   * be derived from the store URI (`root=` or `real=` parameters, or a bare path).
   */
  readonly realStoreDir?: string | undefined;
}

/**
 * Parses `nix-store --dump-db` output: per path its name, NAR hash, NAR size, deriver (or an empty
 * line), the number of references and the references, each on its own line.
 */
export function parseDumpDb(text: string): PathInfo[] {
  const lines = text.split('\n');
  const out: PathInfo[] = [];
  let i = 0;
  const bad = (detail: string): NixPlanError =>
    new NixPlanError('nix', `unexpected nix-store --dump-db output at line ${i + 1}: ${detail}`);
  while (i < lines.length && lines[i] !== '') {
    const path = lines[i] ?? '';
    const hashText = lines[i + 1];
    const sizeText = lines[i + 2];
    const deriver = lines[i + 3];
    const countText = lines[i + 4];
    if (hashText === undefined || sizeText === undefined || deriver === undefined || countText === undefined)
      throw bad(`truncated entry for '${path}'`);
    const count = Number(countText);
    const narSize = Number(sizeText);
    if (!Number.isSafeInteger(count) || count < 0 || !/^\d+$/.test(countText))
      throw bad('bad reference count');
    if (!Number.isSafeInteger(narSize) || !/^\d+$/.test(sizeText)) throw bad('bad NAR size');
    let narHash: string;
    try {
      const h = parseHash(hashText, 'sha256');
      if (h.algo !== 'sha256') throw new Error(h.algo);
      narHash = toHex(h.bytes);
    } catch {
      throw bad(`bad NAR hash '${hashText}'`);
    }
    const references = lines.slice(i + 5, i + 5 + count);
    if (references.length !== count) throw bad(`truncated references of '${path}'`);
    out.push({ path, narHash, narSize, deriver, references });
    i += 5 + count;
  }
  return out;
}

/** Parses `nix-store --version` ("nix-store (Nix) 2.8.0", "nix-store (Lix, like Nix) 2.91.1"). */
export function parseNixVersion(text: string): string {
  const m = /(\d+\.\d+(?:\.\d+)?(?:[-+.\w]*)?)\s*$/.exec(text.trim().split('\n')[0] ?? '');
  if (m === null) throw new NixPlanError('nix', `cannot read the Nix version from '${text.trim()}'`);
  return m[1] ?? '';
}

/** Parameters of a store URI (`local?root=/x&real=/y`, `/x`, `daemon`). */
function storeUriParams(uri: string): { root?: string; real?: string } {
  if (uri.startsWith('/')) return { root: uri.split('?')[0] ?? uri };
  const q = uri.indexOf('?');
  if (q < 0) return {};
  const params = storeUriQuery(uri.slice(q + 1), uri);
  const root = params.get('root');
  const real = params.get('real');
  return { ...(root !== undefined && { root }), ...(real !== undefined && { real }) };
}

/**
 * A store URI's query as Nix reads it (`decodeQuery`): `&`-separated `key=value` pairs, values
 * only percent-decoded (a `+` stays a `+`, unlike in HTML forms), a pair without `=` ignored,
 * and the first of two equal keys kept. A malformed `%` escape is an error, as in Nix.
 */
export function storeUriQuery(query: string, uri = query): Map<string, string> {
  const out = new Map<string, string>();
  for (const pair of query.split('&')) {
    const eq = pair.indexOf('=');
    if (eq < 0) continue;
    const key = pair.slice(0, eq);
    let value: string;
    try {
      value = decodeURIComponent(pair.slice(eq + 1));
    } catch {
      throw new NixPlanError(
        'usage',
        `invalid store URI '${uri}': '${pair}' is not percent-encoded correctly`,
      );
    }
    if (!out.has(key)) out.set(key, value);
  }
  return out;
}

/**
 * Where the files of `storeDir` physically are: `realStoreDir` when given, else the store URI's
 * `real=`, else `<root>/nix/store` for a chroot store (`root=`, or a URI that is a path: Nix puts
 * the files there whatever the logical store dir is), else the store dir itself (NIX_STORE_DIR
 * stores are real).
 */
export function physicalStoreDir(storeDir: string, options: NixStoreOptions = {}): string {
  if (options.realStoreDir !== undefined) return options.realStoreDir;
  if (options.store === undefined) return storeDir;
  const { root, real } = storeUriParams(options.store);
  if (real !== undefined) return real;
  if (root !== undefined) return root.replace(/\/+$/, '') + '/nix/store';
  return storeDir;
}

/** Most bytes of paths passed on one command line (Linux allows ~2 MB of argv and environment). */
export const ARGV_BUDGET = 256 * 1024;

/** Splits `paths` into command-line-sized batches. */
export function batchPaths(paths: readonly string[], budget = ARGV_BUDGET): string[][] {
  const batches: string[][] = [];
  let current: string[] = [];
  let size = 0;
  for (const p of paths) {
    if (current.length > 0 && size + p.length + 1 > budget) {
      batches.push(current);
      current = [];
      size = 0;
    }
    current.push(p);
    size += p.length + 1;
  }
  if (current.length > 0) batches.push(current);
  return batches;
}

/** The non-empty lines a Nix command printed (store paths, one a line), trimmed. */
export function outputLines(out: Buffer): string[] {
  return out
    .toString('utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '');
}

/** A Nix store seen through its command-line tools and its files. */
export class NixStore {
  private storeDirCache: string | undefined;

  constructor(
    readonly runner: CommandRunner,
    readonly options: NixStoreOptions = {},
  ) {}

  /** `--store URI` when a store was chosen, for every Nix command that talks to it. */
  storeArgs(): string[] {
    return this.options.store === undefined ? [] : ['--store', this.options.store];
  }

  /** The version of the Nix on PATH (`nix-store --version`), e.g. "2.8.0". */
  async version(): Promise<string> {
    const { stdout } = await this.runner.run('nix-store', ['--version']);
    return parseNixVersion(stdout.toString('utf8'));
  }

  /** The store's logical directory (`builtins.storeDir`), asked once. */
  async storeDir(): Promise<string> {
    if (this.storeDirCache === undefined) {
      const { stdout } = await this.runner.run('nix-instantiate', [
        ...this.storeArgs(),
        '--eval',
        '--json',
        '-E',
        'builtins.storeDir',
      ]);
      const value: unknown = JSON.parse(stdout.toString('utf8'));
      if (typeof value !== 'string') throw new NixPlanError('nix', 'builtins.storeDir is not a string');
      this.storeDirCache = value;
    }
    return this.storeDirCache;
  }

  /** Tells the store its directory when it is already known (e.g. from an evaluated .drv path). */
  setStoreDir(storeDir: string): void {
    this.storeDirCache = storeDir;
  }

  /** The file-system location of a store path. */
  async realPath(path: string): Promise<string> {
    const storeDir = await this.storeDir();
    const real = physicalStoreDir(storeDir, this.options);
    return real === storeDir ? path : real + path.slice(storeDir.length);
  }

  /**
   * `realPath` without the round trip, once the store dir is known (`setStoreDir` or an awaited
   * `storeDir()`): for the thousands of paths of a closure.
   */
  realPathSync(path: string): string {
    const storeDir = this.storeDirCache;
    if (storeDir === undefined) throw new NixPlanError('internal', 'the store dir is not known yet');
    const real = physicalStoreDir(storeDir, this.options);
    return real === storeDir ? path : real + path.slice(storeDir.length);
  }

  /**
   * A store object that is one regular file, read synchronously: its bytes and executable bit, or
   * undefined when it is not a regular file. Store files are small and never change, and one
   * `lstat` + `readFile` on the calling thread costs microseconds, where each `fs.promises` call
   * is a round trip through libuv's thread pool (which zstd shares): for tens of thousands of
   * `.drv` files that waiting dominated.
   */
  readRegularFileSync(
    path: string,
    maxSize = Infinity,
  ): { bytes: Uint8Array; executable: boolean } | undefined {
    const real = this.realPathSync(path);
    const st = lstatSync(real);
    if (!st.isFile() || st.size > maxSize) return undefined;
    const buf = readFileSync(real);
    return {
      bytes: new Uint8Array(buf.buffer, buf.byteOffset, buf.length),
      executable: (st.mode & 0o100) !== 0,
    };
  }

  /** A store object's bytes when it is one regular file (a .drv, a text file). */
  async readFile(path: string): Promise<Uint8Array> {
    return new Uint8Array(await readFile(await this.realPath(path)));
  }

  /** Size and executable bit of a store object that is one regular file; undefined otherwise. */
  async fileInfo(path: string): Promise<{ size: number; executable: boolean } | undefined> {
    const st = await lstat(await this.realPath(path));
    return st.isFile() ? { size: st.size, executable: (st.mode & 0o100) !== 0 } : undefined;
  }

  /** The closure of `paths` (one `nix-store -q --requisites`), dependencies first. */
  async requisites(paths: readonly string[], includeOutputs = false): Promise<string[]> {
    const out: string[] = [];
    const seen = new Set<string>();
    const flags = ['--query', '--requisites', ...(includeOutputs ? ['--include-outputs'] : [])];
    await this.queryLines(flags, paths, (p) => {
      if (!seen.has(p)) {
        seen.add(p);
        out.push(p);
      }
    });
    return out;
  }

  /** Each line `nix-store FLAGS PATHS…` prints, run once per command-line-sized batch of `paths`. */
  private async queryLines(
    flags: readonly string[],
    paths: readonly string[],
    line: (text: string) => void,
  ): Promise<void> {
    for (const batch of batchPaths(paths)) {
      const { stdout } = await this.runner.run('nix-store', [...this.storeArgs(), ...flags, ...batch]);
      for (const l of outputLines(stdout)) line(l);
    }
  }

  /** Registration info of `paths` (one `nix-store --dump-db` per command-line-sized batch). */
  async pathInfos(paths: readonly string[]): Promise<Map<string, PathInfo>> {
    const infos = new Map<string, PathInfo>();
    for await (const batch of this.pathInfoBatches(paths, ARGV_BUDGET))
      for (const info of batch) infos.set(info.path, info);
    return infos;
  }

  /**
   * Registration info of `paths`, in their order, one batch (one `nix-store --dump-db`) at a
   * time, with up to `parallel` Nix processes answering ahead: a consumer starts on the first
   * batch while Nix answers the rest. The first processes start at the call, not at iteration.
   */
  pathInfoBatches(paths: readonly string[], budget = ARGV_BUDGET, parallel = 1): AsyncIterable<PathInfo[]> {
    // References name the same few thousand paths again and again: sharing one string per path
    // (instead of slices that keep each whole --dump-db output alive) keeps memory flat.
    const canonical = new Map<string, string>(paths.map((p) => [p, p]));
    const intern = (p: string): string => {
      const c = canonical.get(p);
      if (c !== undefined) return c;
      const copy = Buffer.from(p, 'utf8').toString('utf8');
      canonical.set(copy, copy);
      return copy;
    };
    const batches = batchPaths(paths, budget);
    const started: Promise<PathInfo[]>[] = [];
    const start = (i: number): void => {
      const batch = batches[i];
      if (batch === undefined || started[i] !== undefined) return;
      const answer = this.dumpDb(batch, intern);
      answer.catch(() => undefined); // awaited in turn; a consumer that stops early leaves it
      started[i] = answer;
    };
    for (let i = 0; i < parallel; i++) start(i);
    return (async function* () {
      for (let i = 0; i < batches.length; i++) {
        start(i);
        const infos = await started[i];
        start(i + parallel);
        if (infos !== undefined) yield infos;
      }
    })();
  }

  /** One `nix-store --dump-db` of `batch`: its registrations in the batch's order. */
  private async dumpDb(batch: readonly string[], intern: (p: string) => string): Promise<PathInfo[]> {
    const { stdout } = await this.runner.run('nix-store', [...this.storeArgs(), '--dump-db', ...batch]);
    const byPath = new Map<string, PathInfo>();
    for (const info of parseDumpDb(stdout.toString('utf8')))
      byPath.set(info.path, {
        path: intern(info.path),
        narHash: info.narHash,
        narSize: info.narSize,
        deriver: info.deriver === '' ? '' : intern(info.deriver),
        references: info.references.map(intern),
      });
    return batch.map((p) => {
      const info = byPath.get(p);
      if (info === undefined) throw new NixPlanError('nix', `nix-store --dump-db did not describe '${p}'`);
      return info;
    });
  }

  /** Which of `paths` are valid (one `nix-store --check-validity --print-invalid` per batch). */
  async invalidPaths(paths: readonly string[]): Promise<Set<string>> {
    const invalid = new Set<string>();
    await this.queryLines(['--check-validity', '--print-invalid'], paths, (p) => invalid.add(p));
    return invalid;
  }

  /** The deriver Nix registered for `path`, or undefined when it knows none (`unknown-deriver`). */
  async deriver(path: string): Promise<string | undefined> {
    const { stdout } = await this.runner.run('nix-store', [
      ...this.storeArgs(),
      '--query',
      '--deriver',
      path,
    ]);
    const drvPath = stdout.toString('utf8').trim();
    return drvPath.endsWith('.drv') ? drvPath : undefined;
  }

  /** `nix-store --export` of `paths`, handed to `onChunk` as Nix writes it (never held whole). */
  async export(paths: readonly string[], onChunk: (chunk: Uint8Array) => void): Promise<void> {
    await this.runner.run('nix-store', [...this.storeArgs(), '--export', ...paths], { onStdout: onChunk });
  }

  /**
   * Builds (or substitutes) `drvPaths`' outputs with one `nix-store --realise`; returns the output
   * paths it printed. `addRoot` makes indirect GC roots `addRoot`, `addRoot-2`, … as Nix names them;
   * `onLog` receives Nix's build log as it is written.
   */
  async realise(
    drvPaths: readonly string[],
    options: {
      addRoot?: string | undefined;
      extraArgs?: readonly string[] | undefined;
      onLog?: ((chunk: Uint8Array) => void) | undefined;
    } = {},
  ): Promise<string[]> {
    if (drvPaths.length === 0) return [];
    const rootArgs = options.addRoot === undefined ? [] : ['--add-root', options.addRoot, '--indirect'];
    const { stdout } = await this.runner.run(
      'nix-store',
      [...this.storeArgs(), '--realise', ...rootArgs, ...(options.extraArgs ?? []), ...drvPaths],
      { onStderr: options.onLog },
    );
    return outputLines(stdout);
  }
}
