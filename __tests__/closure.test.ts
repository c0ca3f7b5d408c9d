// closureOrder: dependencies first, deterministic, typed errors; checked against Nix's own import order.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import fc from 'fast-check';
import { closureOrder, ClosureError } from '../src/core/closure.js';
import { nixVersions, ScratchStore } from './support/nix.js';
import { instantiatePlan, planStoreConf, type InstantiatedPlan } from './fixtures/plan/fixture.js';

function errorOf(f: () => unknown): ClosureError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(ClosureError);
    expect((e as ClosureError).code).toBe('closure');
    return e as ClosureError;
  }
  throw new Error('no error thrown');
}

function expectDependenciesFirst(
  order: readonly string[],
  refs: (p: string) => readonly string[] | undefined,
): void {
  const at = new Map(order.map((p, i) => [p, i]));
  expect(at.size).toBe(order.length);
  for (const p of order)
    for (const r of refs(p) ?? []) {
      if (r === p) continue;
      expect(at.get(r)).toBeDefined();
      expect(at.get(r) as number).toBeLessThan(at.get(p) as number);
    }
}

/** A random DAG: node i refers only to nodes with a smaller index, named in a shuffled order. */
const dagArb = fc.integer({ min: 1, max: 40 }).chain((n) =>
  fc.record({
    edges: fc.array(fc.array(fc.nat(n - 1), { maxLength: 5 }), { minLength: n, maxLength: n }),
    names: fc.shuffledSubarray(
      Array.from({ length: n }, (_, i) => `p${i}`),
      { minLength: n, maxLength: n },
    ),
    roots: fc.array(fc.nat(n - 1), { minLength: 1, maxLength: 4 }),
  }),
);

describe('closureOrder (unit)', () => {
  test('random DAGs: exactly the reachable paths, each after its references, independent of lookup order', () => {
    fc.assert(
      fc.property(dagArb, fc.boolean(), ({ edges, names, roots }, reverse) => {
        const name = (i: number): string => names[i] as string;
        const graph = new Map<string, string[]>();
        edges.forEach((es, i) =>
          graph.set(
            name(i),
            es.filter((j) => j <= i).map(name), // j === i: a self-reference
          ),
        );
        const lookup = (p: string): string[] | undefined => graph.get(p);
        const rootNames = roots.map(name);
        const order = closureOrder(rootNames, lookup);
        expectDependenciesFirst(order, lookup);
        // Reachable set by a plain search.
        const seen = new Set<string>();
        const todo = [...rootNames];
        while (todo.length > 0) {
          const p = todo.pop() as string;
          if (seen.has(p)) continue;
          seen.add(p);
          todo.push(...(graph.get(p) ?? []));
        }
        expect(new Set(order)).toEqual(seen);
        const flipped = closureOrder(rootNames, (p) => (reverse ? lookup(p)?.slice().reverse() : lookup(p)));
        expect(flipped).toEqual(order);
      }),
      { numRuns: 300 },
    );
  });

  test('self-references are not cycles', () => {
    expect(closureOrder(['a'], (p) => ({ a: ['a', 'b'], b: ['b'] })[p])).toEqual(['b', 'a']);
  });

  test('a cycle is a ClosureError naming the paths around it', () => {
    const g: Record<string, string[]> = { a: ['b'], b: ['c'], c: ['d', 'b'], d: [] };
    const e = errorOf(() => closureOrder(['a'], (p) => g[p]));
    expect(e.problem).toBe('cycle');
    expect(e.paths).toEqual(['b', 'c', 'b']);
    expect(e.message).toContain('b -> c -> b');
  });

  test('a missing reference is a ClosureError naming who refers to it', () => {
    const g: Record<string, string[]> = { a: ['b'], b: ['gone'] };
    const e = errorOf(() => closureOrder(['a'], (p) => g[p]));
    expect(e.problem).toBe('missing');
    expect(e.paths).toEqual(['a', 'b', 'gone']);
    expect(e.message).toMatch(/gone, referenced by b/);
    expect(errorOf(() => closureOrder(['nope'], (p) => g[p])).problem).toBe('missing');
  });

  test('a 200,000-long chain is walked without recursion, each path looked up once', () => {
    const n = 200_000;
    const calls = new Map<string, number>();
    const order = closureOrder([`n${n - 1}`, 'n0'], (p) => {
      calls.set(p, (calls.get(p) ?? 0) + 1);
      const i = Number(p.slice(1));
      return i === 0 ? [] : [`n${i - 1}`];
    });
    expect(order.length).toBe(n);
    expect(order[0]).toBe('n0');
    expect(order[n - 1]).toBe(`n${n - 1}`);
    expect(calls.size).toBe(n);
    expect([...calls.values()].every((c) => c === 1)).toBe(true);
  });
});

describe.each(nixVersions())('closureOrder against Nix $label', (version) => {
  let store: ScratchStore;
  let plan: InstantiatedPlan;
  beforeAll(async () => {
    store = new ScratchStore(version, { extraConf: planStoreConf(version) });
    plan = await instantiatePlan(store);
  });
  afterAll(() => store.dispose());

  test('gives the same set as nix-store -qR, dependencies first', () => {
    const order = closureOrder(plan.roots, (p) => plan.references.get(p));
    expect([...order].sort()).toEqual([...plan.closure].sort());
    expectDependenciesFirst(order, (p) => plan.references.get(p));
  });

  test('nix-store --import into an empty store accepts an export in our order, and refuses the reverse', async () => {
    const order = closureOrder(plan.roots, (p) => plan.references.get(p));
    // Export one path at a time so the stream follows our order, not Nix's own sort.
    const chunks: Buffer[] = [];
    for (const p of order) {
      const { stdout } = await store.run('nix-store', ['--export', p]);
      chunks.push(stdout.subarray(0, stdout.length - 8)); // drop the end-of-stream marker (u64 0)
    }
    const stream = (parts: Buffer[]): Buffer => Buffer.concat([...parts, Buffer.alloc(8)]);
    // A second database over the same store dir: it knows no path yet (and GC is too slow here).
    const empty = new ScratchStore(version, { storeDir: store.storeDir, extraConf: planStoreConf(version) });
    try {
      const valid = async (): Promise<number> =>
        (await empty.validPaths()).filter((p) => plan.closure.includes(p)).length;
      const reversed = await empty.run('nix-store', ['--import'], {
        input: stream([...chunks].reverse()),
        allowFailure: true,
      });
      expect(reversed.code).not.toBe(0);
      expect(reversed.stderr).toMatch(/is not valid/);
      expect(await valid()).toBe(0);
      await empty.run('nix-store', ['--import'], { input: stream(chunks) });
      expect(await valid()).toBe(plan.closure.length);
    } finally {
      empty.dispose();
    }
  });
});
