// The relocation oracle for one expression: instantiate it natively in store dirs A and B,
// relocate A's closure to B, and require the result to be B's closure path for path and byte for
// byte; import it into an empty store with dir B, build it there, and compare what it builds with
// the native build in B; relocate it back and require A's closure exactly.
import { expect } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { main } from '../../src/cli/main.js';
import type { CliIo } from '../../src/cli/terminal.js';
import { readExport } from '../../src/core/export-stream.js';
import { ScratchStore, type NixVersion } from './nix.js';
import {
  asInput,
  importRelocated,
  readClosure,
  text,
  type StoreClosure,
} from '../fixtures/relocate/closure.js';
import { relocateClosure, type RelocObject, type Relocation } from '../../src/core/relocate.js';

/** One expression to relocate: `nix-instantiate [args] file -A attr…`. */
export interface OracleCase {
  readonly file: string;
  readonly attrs: readonly string[];
  /** Extra arguments of nix-instantiate (e.g. experimental features). */
  readonly args?: readonly string[];
  /** nix.conf lines every store of the case needs (e.g. experimental features for import). */
  readonly conf?: string;
  /** Attributes (of `attrs`, by position) whose relocated .drv is built in B and compared. */
  readonly build?: readonly string[];
}

/** Stores of one oracle run under `root`, disposed together. */
export class OracleStores {
  private readonly stores: ScratchStore[] = [];
  constructor(
    readonly version: NixVersion,
    readonly root: string,
  ) {}

  /** A new store with store dir `<root>/<dir>` and its state under `<root>/<name>-state`. */
  store(name: string, dir: string, conf = ''): ScratchStore {
    const s = new ScratchStore(this.version, {
      root: join(this.root, `${name}-state`),
      storeDir: join(this.root, dir),
      extraConf: conf,
    });
    this.stores.push(s);
    return s;
  }

  dispose(): void {
    for (const s of this.stores) s.dispose();
  }
}

/** `nix-instantiate` of a case: one .drv per attribute. */
export async function instantiateCase(store: ScratchStore, c: OracleCase): Promise<string[]> {
  const { stdout } = await store.run('nix-instantiate', [
    ...(c.args ?? []),
    c.file,
    ...c.attrs.flatMap((a) => ['-A', a]),
  ]);
  return stdout
    .toString('utf8')
    .trim()
    .split('\n')
    .filter((l) => l !== '');
}

/** Asserts that a relocation is, path for path and byte for byte, the native closure. */
export function expectNativeClosure(
  relocated: Relocation,
  original: StoreClosure,
  native: StoreClosure,
): void {
  expect(relocated.objects.map((o) => o.path).sort()).toEqual(native.objects.map((o) => o.path).sort());
  for (const r of relocated.objects) {
    const n = native.byPath.get(r.path)!;
    const o = original.byPath.get(r.oldPath)!;
    // A source keeps its bytes: native evaluation copied the same ones.
    if (r.kind === 'source')
      expect({ path: r.path, nar: Buffer.from(n.narHash!).toString('hex') }).toEqual({
        path: r.path,
        nar: Buffer.from(o.narHash!).toString('hex'),
      });
    expect({ path: r.path, kind: r.kind, refs: [...r.references].sort() }).toEqual({
      path: n.path,
      kind: n.kind,
      refs: [...n.references].sort(),
    });
    if (r.contents !== undefined)
      expect({ path: r.path, text: text(r.contents) }).toEqual({ path: n.path, text: text(n.contents) });
  }
}

/** What `runOracle` found, for a test's own further checks. */
export interface OracleRun {
  readonly a: ScratchStore;
  readonly b: ScratchStore;
  readonly rootsA: string[];
  readonly rootsB: string[];
  readonly closureA: StoreClosure;
  readonly relocated: Relocation;
  /** The store (dir B) the relocated closure was imported into and built in. */
  readonly target: ScratchStore;
}

/**
 * The whole oracle for `c`: A is `a` (instantiated here), B a new store at `<root>/<dirB>`.
 * Relocates A → B and compares with native B; imports into a fresh store with dir B
 * (`nix-store --import` recomputes every .drv's outputs) and builds `c.build` there, comparing
 * every output's bytes with B's native build; relocates B → A and compares with A.
 */
export async function runOracle(
  stores: OracleStores,
  a: ScratchStore,
  c: OracleCase,
  dirB: string,
  relocate: (objects: readonly RelocObject[], from: string, to: string) => Relocation = relocateClosure,
): Promise<OracleRun> {
  const tag = dirB.replace(/\//g, '-');
  const b = stores.store(`native-${tag}`, dirB, c.conf);
  const rootsA = await instantiateCase(a, c);
  const rootsB = await instantiateCase(b, c);
  const closureA = await readClosure(a, rootsA);
  const relocated = relocate(closureA.objects, a.storeDir, b.storeDir);
  expect(rootsA.map((p) => relocated.pathMap.get(p))).toEqual(rootsB);
  expectNativeClosure(relocated, closureA, await readClosure(b, rootsB));

  // The target shares store dir B with the native store (each has its own database): Nix
  // replaces a file it finds where it adds a path it does not know, as it does when building.
  const target = stores.store(`import-${tag}`, dirB, c.conf);
  await importRelocated(relocated.objects, a, target);
  expect(await target.validPaths()).toEqual(relocated.objects.map((o) => o.path).sort());
  const built = (c.build ?? []).map((attr) => c.attrs.indexOf(attr));
  if (built.length > 0) {
    const native = await realise(
      b,
      built.map((i) => rootsB[i]!),
    );
    const mine = await realise(
      target,
      built.map((i) => relocated.pathMap.get(rootsA[i]!)!),
    );
    expect(mine).toEqual(native);
  }

  const back = relocate(await asInput(relocated.objects, closureA.byPath), b.storeDir, a.storeDir);
  const byPath = new Map(back.objects.map((o) => [o.path, o]));
  expect([...byPath.keys()].sort()).toEqual([...closureA.byPath.keys()].sort());
  for (const r of back.objects) {
    const o = closureA.byPath.get(r.path)!;
    // A source's bytes never change (its NAR is the original's); the others' are compared.
    expect({ path: r.path, text: text(r.contents), refs: [...r.references].sort() }).toEqual({
      path: o.path,
      text: r.kind === 'source' ? undefined : text(o.contents),
      refs: [...o.references].sort(),
    });
  }
  return { a, b, rootsA, rootsB, closureA, relocated, target };
}

/** Builds `drvs` in `store` (one Nix process); returns every output's path and NAR hash, sorted. */
async function realise(
  store: ScratchStore,
  drvs: readonly string[],
): Promise<{ path: string; nar: string }[]> {
  const lines = async (args: string[]): Promise<string[]> =>
    (await store.run('nix-store', args)).stdout.toString('utf8').trim().split('\n');
  // What --realise prints: every output, also those known only once built (floating ones).
  const outs = [...new Set(await lines(['--realise', ...drvs]))].sort();
  const hashes = await lines(['--query', '--hash', ...outs]);
  return outs.map((path, i) => ({ path, nar: hashes[i]! }));
}

/** Runs the CLI in-process against `store`; returns exit code, stdout and stderr. */
export async function cli(
  store: ScratchStore,
  argv: readonly string[],
): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const io: CliIo = {
    stdout: { write: (s: string) => (out += s) },
    stderr: { write: (s: string) => (err += s) },
  };
  const code = await main([...argv], { io, runner: store.runner });
  return { code, out, err };
}

/** Each path of a bundle's export stream with its references and NAR hash (hex), by path. */
export async function bundleContents(
  bundle: string,
): Promise<Map<string, { references: string[]; nar: string }>> {
  const stream = execFileSync('zstd', ['-dc', bundle], { maxBuffer: 2 ** 31 });
  const out = new Map<string, { references: string[]; nar: string }>();
  for await (const e of readExport([new Uint8Array(stream)], { keepFileUpTo: 0 }))
    out.set(e.path, { references: e.references, nar: Buffer.from(e.nar.narHash).toString('hex') });
  return out;
}

/** Each valid path of `paths`' closure in `store` with its references and NAR hash (hex). */
export async function storeContents(
  store: ScratchStore,
  roots: readonly string[],
): Promise<Map<string, { references: string[]; nar: string }>> {
  const closure = await readClosure(store, roots);
  return new Map(
    closure.objects.map((o) => [
      o.path,
      { references: [...o.references].sort(), nar: Buffer.from(o.narHash!).toString('hex') },
    ]),
  );
}

/** One plan for the bundle oracle: what to export, and which roots to build. */
export interface BundleCase {
  /** `nix-plan export` arguments after `-o OUT` (e.g. `-f FILE -A attr --include sources`). */
  readonly exportArgs: readonly string[];
  /** The same plan evaluated natively: nix-instantiate arguments. */
  readonly native: OracleCase;
  /** Build the relocated roots in B and compare with the native build. */
  readonly build?: boolean;
  /** Relocate back to A and compare with the original bundle (default true). */
  readonly back?: boolean;
}

/**
 * The relocation oracle through the product: `export` in A, `verify`, `relocate` to B, `import`
 * into an empty store with dir B, then every path of the natively evaluated closure in B must be
 * there with the same NAR hash and references; `realise` (when asked) must build what B builds
 * natively; and relocating back must give A's bundle contents exactly.
 */
export async function runBundleOracle(
  stores: OracleStores,
  a: ScratchStore,
  c: BundleCase,
  dirB: string,
): Promise<{ bundle: string; relocated: string; target: ScratchStore; rootsB: string[] }> {
  const tag = dirB.replace(/\//g, '-');
  const bundle = join(stores.root, `${tag}.nixplan`);
  const exported = await cli(a, ['export', '-o', bundle, ...c.exportArgs]);
  expect({ code: exported.code, err: exported.err }).toMatchObject({ code: 0 });
  const verified = await cli(a, ['verify', bundle]);
  expect({ code: verified.code, err: verified.err }).toMatchObject({ code: 0 });

  const b = stores.store(`native-${tag}`, dirB, c.native.conf);
  const rootsB = await instantiateCase(b, c.native);
  const target = stores.store(`import-${tag}`, dirB, c.native.conf);
  const relocated = join(stores.root, `${tag}-relocated.nixplan`);
  const moved = await cli(target, ['relocate', bundle, '--to', b.storeDir, '-o', relocated]);
  expect({ code: moved.code, err: moved.err }).toMatchObject({ code: 0 });
  const imported = await cli(target, ['import', relocated]);
  expect({ code: imported.code, err: imported.err }).toMatchObject({ code: 0 });

  const native = await storeContents(b, rootsB);
  const mine = await storeContents(target, rootsB);
  expect(mine).toEqual(native);

  if (c.build === true) {
    const nativeOut = await realise(b, rootsB);
    const myOut = await realise(target, rootsB);
    expect(myOut).toEqual(nativeOut);
  }

  if (c.back === false) return { bundle, relocated, target, rootsB };
  const back = join(stores.root, `${tag}-back.nixplan`);
  const returned = await cli(target, ['relocate', relocated, '--to', a.storeDir, '-o', back]);
  expect({ code: returned.code, err: returned.err }).toMatchObject({ code: 0 });
  expect(await bundleContents(back)).toEqual(await bundleContents(bundle));
  return { bundle, relocated, target, rootsB };
}
