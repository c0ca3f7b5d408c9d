// dependenciesFirst, the order export writes a closure in: each path after its dependencies,
// iterative, keeping the given order where it is one; checked against Nix's own import.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import fc from 'fast-check';
import { dependenciesFirst } from '../../src/core/closure.js';
import { nixVersions, ScratchStore } from '../support/nix.js';
import { instantiatePlan, planStoreConf, type InstantiatedPlan } from '../fixtures/plan/fixture.js';

class Cycle extends Error {
  constructor(
    readonly path: string,
    readonly dependency: string,
  ) {
    super(`${path} <-> ${dependency}`);
  }
}

/** dependenciesFirst, throwing a Cycle that names the pair. */
const order = (paths: readonly string[], deps: (p: string) => readonly string[]): string[] =>
  dependenciesFirst(paths, deps, (path, dependency) => {
    throw new Cycle(path, dependency);
  });

function expectDependenciesFirst(result: readonly string[], deps: (p: string) => readonly string[]): void {
  const at = new Map(result.map((p, i) => [p, i]));
  expect(at.size).toBe(result.length);
  for (const p of result)
    for (const r of deps(p)) {
      if (r === p || !at.has(r)) continue;
      expect(at.get(r) as number).toBeLessThan(at.get(p) as number);
    }
}

/**
 * A random DAG: node i depends only on nodes with a smaller index (j === i: on itself), and on
 * paths outside the set; the set is given in a shuffled order, and maybe only a part of it.
 */
const dagArb = fc.integer({ min: 1, max: 40 }).chain((n) =>
  fc.record({
    edges: fc.array(fc.array(fc.nat(n - 1), { maxLength: 5 }), { minLength: n, maxLength: n }),
    given: fc.shuffledSubarray(
      Array.from({ length: n }, (_, i) => i),
      { minLength: 1, maxLength: n },
    ),
  }),
);

describe('dependenciesFirst (unit)', () => {
  test('random DAGs: each given path once, after the given paths it depends on', () => {
    fc.assert(
      fc.property(dagArb, ({ edges, given }) => {
        const deps = (p: string): string[] => {
          const i = Number(p.slice(1));
          return [...(edges[i] ?? []).filter((j) => j <= i).map((j) => `p${j}`), `outside${i}`];
        };
        const paths = given.map((i) => `p${i}`);
        const result = order(paths, deps);
        expect([...result].sort()).toEqual([...paths].sort());
        expectDependenciesFirst(result, deps);
      }),
      { numRuns: 300 },
    );
  });

  test('an order that already puts dependencies first is kept as it is', () => {
    fc.assert(
      fc.property(dagArb, ({ edges }) => {
        const deps = (p: string): string[] => {
          const i = Number(p.slice(1));
          return (edges[i] ?? []).filter((j) => j <= i).map((j) => `p${j}`);
        };
        const ascending = edges.map((_, i) => `p${i}`);
        expect(order(ascending, deps)).toEqual(ascending);
      }),
    );
  });

  test('self-dependencies are not cycles; two paths that depend on each other are', () => {
    expect(order(['a', 'b'], (p) => ({ a: ['a', 'b'], b: ['b'] })[p] ?? [])).toEqual(['b', 'a']);
    const g: Record<string, string[]> = { a: ['b'], b: ['c'], c: ['d', 'b'], d: [] };
    let cycle: unknown;
    try {
      order(['a', 'b', 'c', 'd'], (p) => g[p] ?? []);
    } catch (e) {
      cycle = e;
    }
    expect(cycle).toBeInstanceOf(Cycle);
    expect(cycle).toMatchObject({ path: 'c', dependency: 'b' });
  });

  test('a 200,000-long chain is walked without recursion, each path looked up once', () => {
    const n = 200_000;
    const calls = new Map<string, number>();
    const paths = Array.from({ length: n }, (_, i) => `n${n - 1 - i}`); // the last first
    const result = order(paths, (p) => {
      calls.set(p, (calls.get(p) ?? 0) + 1);
      const i = Number(p.slice(1));
      return i === 0 ? [] : [`n${i - 1}`];
    });
    expect(result.length).toBe(n);
    expect(result[0]).toBe('n0');
    expect(result[n - 1]).toBe(`n${n - 1}`);
    expect(calls.size).toBe(n);
    expect([...calls.values()].every((c) => c === 1)).toBe(true);
  });
});

describe.each(nixVersions())('dependenciesFirst against Nix $label', (version) => {
  let store: ScratchStore;
  let plan: InstantiatedPlan;
  beforeAll(async () => {
    store = new ScratchStore(version, { extraConf: planStoreConf(version) });
    plan = await instantiatePlan(store);
  });
  afterAll(() => store.dispose());

  // The closure as nix-store -qR lists it, reversed: dependents before their dependencies.
  const reversedClosure = (): string[] => [...plan.closure].reverse();
  const references = (p: string): string[] => plan.references.get(p) ?? [];

  test('orders the whole closure of nix-store -qR, dependencies first', () => {
    const result = order(reversedClosure(), references);
    expect([...result].sort()).toEqual([...plan.closure].sort());
    expectDependenciesFirst(result, references);
  });

  test('nix-store --import into an empty store accepts an export in our order, and refuses the reverse', async () => {
    const ordered = order(reversedClosure(), references);
    // Export one path at a time so the stream follows our order, not Nix's own sort.
    const chunks: Buffer[] = [];
    for (const p of ordered) {
      const { stdout } = await store.run('nix-store', ['--export', p]);
      chunks.push(stdout.subarray(0, stdout.length - 8)); // drop the end-of-stream marker (u64 0)
    }
    const stream = (parts: Buffer[]): Buffer => Buffer.concat([...parts, Buffer.alloc(8)]);
    // A second database over the same store dir: it knows no path yet (and GC is too slow here).
    const empty = new ScratchStore(version, { storeDir: store.storeDir, extraConf: planStoreConf(version) });
    try {
      const valid = async (): Promise<number> =>
        (await empty.validPaths()).filter((p) => plan.closure.includes(p)).length;
      // Nix adds each path as it reads it, so the reverse is refused at its first path whose
      // references are not all before it; the paths up to there (some may need nothing) stay.
      const backwards = [...ordered].reverse();
      const have = new Set<string>();
      for (const p of backwards) {
        if (!references(p).every((r) => r === p || have.has(r))) break;
        have.add(p);
      }
      expect(have.size).toBeLessThan(plan.closure.length);
      const reversed = await empty.run('nix-store', ['--import'], {
        input: stream([...chunks].reverse()),
        allowFailure: true,
      });
      expect(reversed.code).not.toBe(0);
      expect(reversed.stderr).toMatch(/is not valid/);
      expect(await valid()).toBe(have.size);
      await empty.run('nix-store', ['--import'], { input: stream(chunks) });
      expect(await valid()).toBe(plan.closure.length);
    } finally {
      empty.dispose();
    }
  });
});
