// Which paths a store already holds, asked while the bundle is still being verified: Nix's answer
// does not depend on the bundle, and each query is mostly a process start and a database open.
import type { NixStore } from '../nix/store.js';

/**
 * A promise that never rejects, for work started ahead of need: its outcome, replayed (value or
 * error) when it is finally needed, and no unhandled rejection if it never is.
 */
export function settle<T>(p: Promise<T>): Promise<() => T> {
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
export class ValidityQueries {
  private batch: string[] = [];
  private readonly answers: Promise<() => Set<string>>[] = [];

  constructor(
    private readonly store: NixStore,
    private readonly batchSize = 4 * PATHS_PER_QUERY,
  ) {}

  /** Adds a path to ask about; a full batch is sent at once. */
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
export async function invalidAmong(store: NixStore, paths: readonly string[]): Promise<Set<string>> {
  const parts = Math.max(1, Math.min(4, Math.floor(paths.length / PATHS_PER_QUERY)));
  const queries = new ValidityQueries(store, Math.ceil(paths.length / parts));
  for (const p of paths) queries.add(p);
  return queries.invalid();
}
