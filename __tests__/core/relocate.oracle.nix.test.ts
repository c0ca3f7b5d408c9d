// Relocation against real Nix: what relocateClosure writes for store dir B must be exactly what
// `nix-instantiate` writes natively in B, and Nix must accept, import and build it there.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { ScratchStore, nixVersions } from '../support/nix.js';
import { expectNativeClosure } from '../support/oracle.js';
import { PLAN_CASES, PLAN_FIXTURE, DYNAMIC_FLAGS, supportsDynamic } from '../fixtures/plan/fixture.js';
import {
  RELOCATE_FIXTURE,
  asInput,
  importRelocated,
  readClosure,
  text,
  type StoreClosure,
} from '../fixtures/relocate/closure.js';
import { relocateClosure } from '../../src/core/relocate/index.js';
import { NixPlanError } from '../../src/core/errors.js';
import { parseDerivation } from '../../src/core/derivation/index.js';

const RELOCATE_CASES = ['cases'];
const LIMIT_CASES = ['storeDirValue', 'fixedOffset', 'hashOfPath', 'lengthOfPath'];

/** Every case both fixture files define, instantiated in one store (`limits`: the limit cases). */
async function instantiateAll(store: ScratchStore, limits = false): Promise<string[]> {
  const roots = [
    ...(await store.instantiate(PLAN_FIXTURE, PLAN_CASES)),
    ...(await store.instantiate(RELOCATE_FIXTURE, limits ? LIMIT_CASES : RELOCATE_CASES)),
  ];
  if (!limits && supportsDynamic(store)) {
    // A fixed text-hashed output (Nix >= 2.18); `dynamic` itself is refused, tested below.
    const { stdout } = await store.run('nix-instantiate', [
      ...DYNAMIC_FLAGS,
      PLAN_FIXTURE,
      '-A',
      'fixedTextUser',
    ]);
    roots.push(stdout.toString('utf8').trim());
  }
  return roots;
}

function nameIs(suffix: string): (p: string) => boolean {
  return (p) => p.endsWith(suffix);
}

describe.each(nixVersions())('relocation oracle on Nix $label', (version) => {
  let root: string;
  let a: ScratchStore;
  let rootsA: string[];
  let closureA: StoreClosure;
  const stores: ScratchStore[] = [];
  const store = (name: string, storeDir: string): ScratchStore => {
    const s = new ScratchStore(version, { root: join(root, `${name}-state`), storeDir });
    stores.push(s);
    return s;
  };

  beforeAll(async () => {
    root = mkdtempSync('/tmp/nix-plan-reloc-');
    a = store('a', join(root, 'a', 'store'));
    rootsA = await instantiateAll(a);
    closureA = await readClosure(a, rootsA);
  });
  afterAll(() => {
    for (const s of stores) s.dispose();
    if (root !== undefined) rmSync(root, { recursive: true, force: true });
  });

  test.each([['b/s'], ['beta/store'], ['a/much/longer/realm/store']])(
    'relocating to …/%s gives exactly the native closure',
    async (dir) => {
      const b = store(dir.replace(/\//g, '-'), join(root, dir));
      const rootsB = await instantiateAll(b);
      const relocated = relocateClosure(closureA.objects, a.storeDir, b.storeDir);
      expect(rootsA.map((p) => relocated.pathMap.get(p))).toEqual(rootsB);
      expectNativeClosure(relocated, closureA, await readClosure(b, rootsB));

      // Every output path of every derivation is mapped to the native one.
      for (const r of relocated.objects.filter((o) => o.kind === 'drv')) {
        const oldDrv = parseDerivation(closureA.byPath.get(r.oldPath)!.contents!);
        const newDrv = parseDerivation(r.contents!);
        oldDrv.outputs.forEach((o, i) => {
          if (o.path !== '') expect(relocated.pathMap.get(o.path)).toBe(newDrv.outputs[i]!.path);
        });
      }
      const report = relocated.report;
      expect(report.objects).toEqual({
        drv: closureA.objects.filter((o) => o.kind === 'drv').length,
        text: closureA.objects.filter((o) => o.kind === 'text').length,
        source: closureA.objects.filter((o) => o.kind === 'source').length,
      });
      expect(report.objects.text).toBeGreaterThanOrEqual(3);
      expect(report.objects.source).toBeGreaterThanOrEqual(2);
      expect(report.hashesRewritten).toBeGreaterThan(10);
      // bare-hash.drv cuts the hash out of a path relative to the store dir: rewritten and reported.
      expect(report.bareHashRewrites).toBe(1);
      expect(
        report.warnings.some((w) => w.includes('-bare-hash.drv') && w.includes('without a store dir')),
      ).toBe(true);
      expect(report.bareStoreDirMentions).toEqual([]);
    },
  );

  test('A → B → C → A gives back the original closure exactly', async () => {
    const dirs = [join(root, 'b', 's'), join(root, 'a', 'much', 'longer', 'realm', 'store'), a.storeDir];
    let objects = closureA.objects;
    let from = a.storeDir;
    let pathMap = new Map(rootsA.map((p) => [p, p]));
    for (const to of dirs) {
      const r = relocateClosure(objects, from, to);
      pathMap = new Map([...pathMap].map(([orig, cur]) => [orig, r.pathMap.get(cur)!]));
      objects = await asInput(r.objects, new Map(objects.map((o) => [o.path, o])));
      from = to;
    }
    expect([...pathMap].every(([orig, now]) => orig === now)).toBe(true);
    const back = new Map(objects.map((o) => [o.path, o]));
    expect([...back.keys()].sort()).toEqual([...closureA.byPath.keys()].sort());
    for (const o of closureA.objects) {
      const r = back.get(o.path)!;
      expect({ path: o.path, text: text(r.contents), refs: r.references }).toEqual({
        path: o.path,
        text: text(o.contents),
        refs: o.references,
      });
      expect(Buffer.from(r.narHash!).equals(Buffer.from(o.narHash!))).toBe(true);
    }
  });

  test('nix-store --import accepts the relocated closure and --realise builds it with relocated paths', async () => {
    const dir = join(root, 'beta', 'store');
    const target = store('import-target', dir);
    // Only what can really be built: the other fixed outputs have made-up hashes, and the
    // structured-attrs builder writes to $out, which structured attrs do not set.
    const buildable = [
      ...(await a.instantiate(PLAN_FIXTURE, ['plain', 'multiFull', 'multiPartial', 'fixedFlat', 'toFile'])),
      ...(await a.instantiate(PLAN_FIXTURE, ['pathDir', 'escapes', 'latin1', 'floatingUser'])),
      ...(await a.instantiate(RELOCATE_FIXTURE, ['cases'])),
    ];
    const closure = await readClosure(a, buildable);
    const relocated = relocateClosure(closure.objects, a.storeDir, dir);
    await importRelocated(relocated.objects, a, target);
    const valid = await target.validPaths();
    expect(valid).toEqual(relocated.objects.map((o) => o.path).sort());

    const drvs = buildable.map((p) => relocated.pathMap.get(p)!);
    const { stdout } = await target.run('nix-store', ['--realise', ...drvs]);
    const outs = stdout.toString('utf8').trim().split('\n');
    // Outputs are built where the relocated drvs say (deferred ones have no path before the build).
    const newDrvs = new Map(relocated.objects.map((o) => [o.path, o]));
    for (const d of drvs)
      for (const o of parseDerivation(newDrvs.get(d)!.contents!).outputs)
        if (o.path !== '') expect(outs).toContain(o.path);

    // `plain` wrote the paths of mid and leaf: they must be the relocated ones.
    const plainOut = outs.find(nameIs('-plain'))!;
    const leafDrvA = closure.objects.find((o) => o.path.endsWith('-leaf.drv'))!;
    const midDrvA = closure.objects.find((o) => o.path.endsWith('-mid.drv'))!;
    const outOf = (drv: { contents?: Uint8Array }): string => parseDerivation(drv.contents!).outputs[0]!.path;
    const leafB = relocated.pathMap.get(outOf(leafDrvA))!;
    const midB = relocated.pathMap.get(outOf(midDrvA))!;
    expect(readFileSync(plainOut, 'latin1')).toBe(`${midB} ${leafB}\n`);
    expect(readFileSync(midB, 'latin1')).toBe(`${leafB}\n`);
    // The text file with discarded mentions was relocated too, and `discarded` copied it.
    const discardedOut = outs.find(nameIs('-discarded'))!;
    const mentions = readFileSync(discardedOut, 'latin1');
    expect(mentions).toContain(`output ${leafB}\n`);
    expect(mentions).toContain(`drv ${relocated.pathMap.get(leafDrvA.path)}\n`);
    // builtin:fetchurl ran in B and its dependent read the result.
    const hello = readFileSync(join(dirname(PLAN_FIXTURE), 'src', 'hello.txt'), 'latin1');
    expect(readFileSync(outs.find(nameIs('-fetch-user'))!, 'latin1')).toBe(hello);
    for (const out of outs) expect(readFileSync(out).includes(a.storeDir)).toBe(false);
  });

  test('computations on path strings are reported, not passed off as native', async () => {
    const dir = join(root, 'a', 'much', 'longer', 'realm', 'store');
    const b = store('limits', dir);
    const limitsA = await instantiateAll(a, true);
    const limitsB = await instantiateAll(b, true);
    const relocated = relocateClosure((await readClosure(a, limitsA)).objects, a.storeDir, dir);
    const byName = (paths: readonly string[], name: string): string => paths.find(nameIs(`-${name}.drv`))!;
    const reported = new Set(relocated.report.bareStoreDirMentions.map((m) => m.path));
    for (const name of ['store-dir-value', 'fixed-offset', 'hash-of-path', 'length-of-path']) {
      const mine = relocated.pathMap.get(byName(limitsA, name))!;
      // A limit: relocation cannot know the value native evaluation computes in B.
      expect(mine).not.toBe(byName(limitsB, name));
      // Where the store dir survives in the value, the report names the derivation.
      if (name === 'store-dir-value' || name === 'fixed-offset') {
        expect(reported.has(mine)).toBe(true);
        expect(relocated.report.warnings.some((w) => w.startsWith(mine) && w.includes(a.storeDir))).toBe(
          true,
        );
      } else {
        // A hash or length of a path keeps no trace of it: the documented blind spot.
        expect(reported.has(mine)).toBe(false);
      }
    }
    // Everything that does not compute on paths still matches native evaluation.
    const nativeB = await readClosure(b, limitsB);
    const leafA = relocated.objects.find((o) => o.oldPath.endsWith('-leaf.drv'))!;
    expect(nativeB.byPath.has(leafA.path)).toBe(true);
  });

  test('refuses a closure that mentions a path outside itself, naming both', async () => {
    const [outside] = await a.instantiate(RELOCATE_FIXTURE, ['outside']);
    const closure = await readClosure(a, [outside!]);
    expect(() => relocateClosure(closure.objects, a.storeDir, join(root, 'b', 's'))).toThrow(
      new RegExp(
        `cannot relocate ${outside!}: it mentions ${a.storeDir}/\\w{32}, which is outside the closure`,
      ),
    );
  });

  test('refuses impure derivations, build outputs, and an invalid target store dir', async () => {
    const { stdout } = await a.run('nix-instantiate', [
      '--extra-experimental-features',
      'impure-derivations',
      RELOCATE_FIXTURE,
      '-A',
      'impure',
    ]);
    const impure = stdout.toString('utf8').trim();
    const c1 = await readClosure(a, [impure]);
    expect(() => relocateClosure(c1.objects, a.storeDir, join(root, 'b', 's'))).toThrow(
      new RegExp(`cannot relocate ${impure}: it is an impure derivation`),
    );

    // A build output brought in by builtins.storePath is not content-addressed.
    const [leaf] = await a.instantiate(PLAN_FIXTURE, ['leaf']);
    const built = (await a.run('nix-store', ['--realise', leaf!])).stdout.toString('utf8').trim();
    const [user] = await a.instantiateExpr(
      `derivation { name = "uses-output"; system = builtins.currentSystem; builder = "/bin/sh"; ` +
        `args = [ "-c" "echo > $out" ]; dep = builtins.storePath ${built}; }`,
    );
    const c2 = await readClosure(a, [user!]);
    expect(() => relocateClosure(c2.objects, a.storeDir, join(root, 'b', 's'))).toThrow(
      new RegExp(`cannot relocate ${built}: it is not content-addressed`),
    );

    for (const bad of ['relative/store', '/trailing/', '/with space/store', '/a/../b']) {
      let error: unknown;
      try {
        relocateClosure(closureA.objects, a.storeDir, bad);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(NixPlanError);
      expect((error as NixPlanError).code).toBe('realm');
      expect((error as NixPlanError).message).toContain(bad);
    }
  });

  if (version.label !== '2.8')
    test('relocates DrvWithVersion (dynamic derivations) as native evaluation writes it', async () => {
      // More shapes, and building them, in core/relocate.dynamic.nix.test.ts.
      const instantiate = async (s: ScratchStore): Promise<string> =>
        (await s.run('nix-instantiate', [...DYNAMIC_FLAGS, PLAN_FIXTURE, '-A', 'dynamic'])).stdout
          .toString('utf8')
          .trim();
      const dir = join(root, 'b', 's');
      const b = store('dynamic-b', dir);
      const [dynamic, native] = [await instantiate(a), await instantiate(b)];
      const closure = await readClosure(a, [dynamic]);
      const relocated = relocateClosure(closure.objects, a.storeDir, dir);
      expect(relocated.pathMap.get(dynamic)).toBe(native);
      expectNativeClosure(relocated, closure, await readClosure(b, [native]));
    });
});
