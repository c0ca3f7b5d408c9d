// ValidityQueries: which of an import's paths a store holds, asked a command line at a time while
// the bundle is verified, and the last batch asked together with the bundle's outside references.
import { describe, expect, test } from '@jest/globals';
import { ValidityQueries } from '../../src/app/validity.js';
import { ARGV_BUDGET, type NixStore } from '../../src/nix/store.js';

/** A store (our own interface) whose invalid paths are `invalid`; records each query's paths. */
function store(invalid: ReadonlySet<string>): { store: NixStore; queries: string[][] } {
  const queries: string[][] = [];
  const fake = {
    invalidPaths: (paths: readonly string[]): Promise<Set<string>> => {
      queries.push([...paths]);
      return Promise.resolve(new Set(paths.filter((p) => invalid.has(p))));
    },
  };
  return { store: fake as unknown as NixStore, queries };
}

const path = (i: number): string => `/nix/store/${String(i).padStart(32, '0')}-p${i}`;

describe('ValidityQueries', () => {
  test('a batch never exceeds one command line, and each is one query', async () => {
    const paths = Array.from({ length: 10_000 }, (_, i) => path(i));
    const invalid = new Set(paths.filter((_, i) => i % 3 === 0));
    const s = store(invalid);
    const q = new ValidityQueries(s.store, 1_000_000);
    for (const p of paths) q.add(p);
    expect(await q.invalid()).toEqual(invalid);
    expect(s.queries.flat()).toEqual(paths);
    expect(s.queries.length).toBeGreaterThan(1);
    for (const batch of s.queries)
      expect(batch.reduce((n, p) => n + p.length + 1, 0)).toBeLessThanOrEqual(ARGV_BUDGET);
  });

  test('no query starts before `ready` settles; a failed `ready` fails the answer', async () => {
    const s = store(new Set());
    let go: () => void = () => undefined;
    const q = new ValidityQueries(s.store, 2, new Promise<void>((r) => (go = r)));
    for (let i = 0; i < 5; i++) q.add(path(i));
    await new Promise((r) => setTimeout(r, 10));
    expect(s.queries).toEqual([]);
    go();
    expect(await q.invalid()).toEqual(new Set());
    expect(s.queries).toHaveLength(3);
    const failed = new ValidityQueries(s.store, 2, Promise.reject(new Error('no store dir')));
    failed.add(path(1));
    await expect(failed.invalid()).rejects.toThrow('no store dir');
  });

  test('sendWith asks the last batch and the outside paths in one query, each answer only its own', async () => {
    const own = [path(1), path(2), path(3)];
    const outside = [path(10), path(11)];
    const s = store(new Set([path(2), path(11)]));
    const q = new ValidityQueries(s.store);
    for (const p of own) q.add(p);
    expect(await q.sendWith(outside)).toEqual(new Set([path(11)]));
    expect(await q.invalid()).toEqual(new Set([path(2)]));
    expect(s.queries).toEqual([[...own, ...outside]]);
  });
  test('close starts no query still waiting for `ready` and waits for those running', async () => {
    const queries: string[][] = [];
    let finishRunning: () => void = () => undefined;
    let runningDone = false;
    const fake = {
      invalidPaths: (paths: readonly string[]): Promise<Set<string>> => {
        queries.push([...paths]);
        return new Promise((resolve) => {
          finishRunning = () => {
            runningDone = true;
            resolve(new Set());
          };
        });
      },
    };
    // One query running (its `ready` settled), then a second batch waiting for another `ready`.
    const running = new ValidityQueries(fake as unknown as NixStore, 1);
    running.add(path(1));
    await new Promise((r) => setTimeout(r, 0));
    expect(queries).toHaveLength(1);
    let go: () => void = () => undefined;
    const waiting = new ValidityQueries(fake as unknown as NixStore, 1, new Promise<void>((r) => (go = r)));
    waiting.add(path(2));
    const closing = waiting.close();
    go();
    await closing;
    expect(queries).toHaveLength(1);
    const closed = running.close();
    await new Promise((r) => setTimeout(r, 10));
    expect(runningDone).toBe(false);
    finishRunning();
    await closed;
    expect(runningDone).toBe(true);
  });
});
