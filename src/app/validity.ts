// Which paths a store already holds, asked while the bundle is still being verified: Nix's answer
// does not depend on the bundle, and each query is mostly a process start and a database open.
import { ARGV_BUDGET, type NixStore } from '../nix/store.js';

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
  /** The batch's size on a command line. */
  private bytes = 0;
  /** Each query's answer: the invalid paths among those the caller added. */
  private readonly answers: Promise<() => Set<string>>[] = [];
  /** Set by `close`: a query whose turn comes after it is not started. */
  private closed = false;

  /**
   * @param ready no query starts before it settles (the store's first Nix process runs alone);
   *   if it rejects, so does every answer
   */
  constructor(
    private readonly store: NixStore,
    private readonly batchSize = 4 * PATHS_PER_QUERY,
    private readonly ready: Promise<unknown> = Promise.resolve(),
  ) {}

  /**
   * Adds a path to ask about; a full batch is sent at once, and so is one that would not fit on
   * one command line with it (a batch is one Nix process, started as soon as it is full).
   */
  add(path: string): void {
    if (this.batch.length > 0 && this.bytes + path.length + 1 > ARGV_BUDGET) this.send();
    this.batch.push(path);
    this.bytes += path.length + 1;
    if (this.batch.length >= this.batchSize) this.send();
  }

  private send(): void {
    if (this.batch.length === 0) return;
    const batch = this.batch;
    this.answers.push(settle(this.ready.then(() => this.ask(batch))));
    this.batch = [];
    this.bytes = 0;
  }

  /**
   * Sends the paths added so far together with `extra` (paths that are not the caller's) in one
   * query, and returns the invalid ones among `extra`: for the question asked once every path is
   * added, so the end of it waits for one Nix process, not two. Add no path after it.
   */
  async sendWith(extra: readonly string[]): Promise<Set<string>> {
    const own = this.batch;
    this.batch = [];
    this.bytes = 0;
    const asked = [...own, ...extra];
    const answer = settle(this.ready.then(() => this.ask(asked)));
    this.answers.push(
      settle(
        answer.then((r) => {
          const invalid = r();
          return new Set(own.filter((p) => invalid.has(p)));
        }),
      ),
    );
    const invalid = (await answer)();
    return new Set(extra.filter((p) => invalid.has(p)));
  }

  private ask(paths: readonly string[]): Promise<Set<string>> {
    if (this.closed) return Promise.reject(new Error('validity queries closed before this one started'));
    return this.store.invalidPaths(paths);
  }

  /**
   * Ends the queries: those not started yet (waiting for `ready`) are not started, and those
   * running are waited for, so that no Nix process outlives the caller's use of the store (a
   * failed import's scratch store is then removed with nothing still writing to it).
   */
  async close(): Promise<void> {
    this.closed = true;
    this.batch = [];
    await Promise.all(this.answers);
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
