// The relocation oracle for one expression: instantiate it natively in store dirs A and B,
// relocate A's closure to B, and require the result to be B's closure path for path and byte for
// byte; import it into an empty store with dir B, build it there, and compare what it builds with
// the native build in B; relocate it back and require A's closure exactly.
import { expect } from '@jest/globals';
import { join } from 'node:path';
import { ScratchStore, type NixVersion } from './nix.js';
import { asInput, importRelocated, readClosure, text, type StoreClosure } from '../fixtures/relocate/closure.js';
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
export function expectNativeClosure(relocated: Relocation, original: StoreClosure, native: StoreClosure): void {
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
  for (const attr of c.build ?? []) {
    const i = c.attrs.indexOf(attr);
    const native = await realise(b, rootsB[i]!);
    const mine = await realise(target, relocated.pathMap.get(rootsA[i]!)!);
    expect(mine).toEqual(native);
  }

  const back = relocate(await asInput(relocated.objects, closureA.byPath), b.storeDir, a.storeDir);
  const byPath = new Map(back.objects.map((o) => [o.path, o]));
  expect([...byPath.keys()].sort()).toEqual([...closureA.byPath.keys()].sort());
  for (const r of back.objects) {
    const o = closureA.byPath.get(r.path)!;
    expect({ path: r.path, text: text(r.contents), refs: [...r.references].sort() }).toEqual({
      path: o.path,
      text: text(o.contents),
      refs: [...o.references].sort(),
    });
  }
  return { a, b, rootsA, rootsB, closureA, relocated, target };
}

/** Builds `drv` in `store`; returns each output's name, path and NAR hash. */
async function realise(store: ScratchStore, drv: string): Promise<{ path: string; nar: string }[]> {
  const { stdout } = await store.run('nix-store', ['--realise', drv]);
  const outs = stdout.toString('utf8').trim().split('\n');
  const { stdout: db } = await store.run('nix-store', ['--query', '--hash', ...outs]);
  const hashes = db.toString('utf8').trim().split('\n');
  return outs.map((path, i) => ({ path, nar: hashes[i]! }));
}
