// A directory at a short, predictable path in the temp dir that one test run holds alone.
//
// Some suites want a path that is the same from run to run (a store dir: every store path, and so
// every byte of a plan made in it, depends on it) yet must not be shared by two runs at once (one
// would delete the other's store). Slots do both: a run takes the first free `<prefix>-<n>`, n from
// 0, by creating it (mkdir is atomic: of two runs, one gets EEXIST and tries the next slot). Alone,
// a run always gets slot 0; the slot it got is printed, and setting `envName` to it makes another
// run use the same one, so what it made can be made again.
import { mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A slot held by this run, until `release`. */
export interface SlotDir {
  /** The slot's directory (exists, empty, owned by this run). */
  readonly path: string;
  /** Its number (the value of `envName` that reproduces it). */
  readonly slot: number;
  /** Removes the directory and everything in it. */
  release(): void;
}

/** How many slots are tried before giving up (that many runs at once, or left by killed runs). */
export const MAX_SLOTS = 100;

/**
 * Takes the first free slot `<tmpdir>/<prefix>-<n>`, or the one `process.env[envName]` names (then
 * a leftover of it from a killed run is removed first).
 */
export function takeSlotDir(prefix: string, envName: string): SlotDir {
  const forced = process.env[envName];
  const slots =
    forced === undefined || forced === ''
      ? Array.from({ length: MAX_SLOTS }, (_, n) => n)
      : [Number.parseInt(forced, 10)];
  if (slots.some((n) => !Number.isSafeInteger(n) || n < 0))
    throw new Error(`${envName}='${forced ?? ''}' is not a slot number`);
  for (const slot of slots) {
    const path = join(tmpdir(), `${prefix}-${slot}`);
    if (forced !== undefined && forced !== '') rmSync(path, { recursive: true, force: true });
    try {
      mkdirSync(path, { mode: 0o700 });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') continue;
      throw e;
    }
    return {
      path,
      slot,
      release: () => rmSync(path, { recursive: true, force: true, maxRetries: 2 }),
    };
  }
  throw new Error(
    `all ${MAX_SLOTS} slots ${join(tmpdir(), `${prefix}-N`)} are taken: remove those no run holds`,
  );
}
