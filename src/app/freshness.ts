// Downgrade protection and --max-age around a use case that applies a plan: the last-applied
// record beside a profile or out-link (`<target>.nix-plan.json`), read before and written after.
//
// The check runs on a private copy of the bundle, made first, and the use case is given that
// copy: the bytes whose age was checked are the bytes imported and applied, even if the file
// named on the command line is replaced meanwhile. The record is written (atomically, 0644)
// only once the use case succeeded, with the manifest it verified.
import { constants } from 'node:fs';
import { open, rename, rm, type FileHandle } from 'node:fs/promises';
import { resolve } from 'node:path';
import { checkRealm, readBundleHead, tempPathNear, type BundleManifest } from '../core/bundle/index.js';
import { NixPlanError } from '../core/errors.js';
import {
  freshnessProblem,
  lastAppliedOf,
  parseLastApplied,
  unreadableRecord,
  type FreshnessPolicy,
  type LastApplied,
} from '../core/freshness.js';
import { rfc3339 } from '../core/provenance.js';
import { optionSet, type OptionNames } from '../core/option-names.js';
import type { Logger } from './deps.js';
import { privateBundle } from './private-copy.js';

/** The record beside a profile or out-link: `/nix/var/nix/profiles/system.nix-plan.json`. */
export function recordPathFor(target: string): string {
  return `${resolve(target)}.nix-plan.json`;
}

/**
 * Most bytes a last-applied record may have: it names a plan's roots, which fit in a manifest
 * (16 MiB); anything larger is not a record nix-plan wrote.
 */
export const MAX_RECORD_BYTES = 32 * 1024 * 1024;

/**
 * The last-applied record at `path`, or undefined when there is none. Whoever can write the
 * directory beside an out-link or profile can plant something else there: it is opened without
 * following a link (O_NOFOLLOW) or waiting on a FIFO (O_NONBLOCK), must be a regular file of at
 * most MAX_RECORD_BYTES, and no more than that is read; anything else is an unreadable record.
 */
export async function readLastApplied(path: string, names?: OptionNames): Promise<LastApplied | undefined> {
  const unreadable = (why: string): NixPlanError => unreadableRecord(path, why, names);
  let fh: FileHandle;
  try {
    fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    if (code === 'ELOOP') throw unreadable('a symbolic link, which nix-plan never writes there');
    throw new NixPlanError('stale', `cannot read the last-applied record '${path}': ${(e as Error).message}`);
  }
  let bytes: Buffer;
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw unreadable('not a regular file');
    if (st.size > MAX_RECORD_BYTES)
      throw unreadable(`${st.size} bytes, more than a record holds (${MAX_RECORD_BYTES})`);
    // What it held when it was opened, however it grows meanwhile.
    const buffer = Buffer.alloc(st.size);
    let got = 0;
    while (got < buffer.length) {
      const { bytesRead } = await fh.read(buffer, got, buffer.length - got, got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    bytes = buffer.subarray(0, got);
  } finally {
    await fh.close();
  }
  return parseLastApplied(bytes.toString('utf8'), path, names);
}

/**
 * Writes the record atomically: a new file beside it (never following a link planted there),
 * synced, then renamed over the old one. Mode 0644: anyone may read what a host runs.
 */
export async function writeLastApplied(path: string, record: LastApplied): Promise<void> {
  const temp = tempPathNear(path);
  try {
    const fh = await open(temp, 'wx', 0o644);
    try {
      await fh.writeFile(`${JSON.stringify(record)}\n`);
      await fh.chmod(0o644); // the umask may have narrowed it
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(temp, path);
  } catch (e) {
    await rm(temp, { force: true });
    throw new NixPlanError(
      'internal',
      `cannot write the last-applied record '${path}': ${(e as Error).message}`,
    );
  }
}

/** What a plan's age must satisfy where it is applied. */
export interface FreshnessChecks {
  /** `--max-age` in milliseconds, and as written. */
  readonly maxAgeMs?: number | undefined;
  readonly maxAgeText?: string | undefined;
  /** Accept a plan older than the last one applied there (`--allow-downgrade`). */
  readonly allowDowngrade?: boolean | undefined;
  /** How messages name these options (default: the command line's flags; an action: its inputs). */
  readonly optionNames?: OptionNames | undefined;
}

/** How a plan's age is checked where it is applied. */
export interface FreshnessOptions extends FreshnessChecks {
  /** The profile or out-link whose last-applied record is checked (and written on success). */
  readonly target?: string | undefined;
  /** The clock. */
  readonly now?: (() => Date) | undefined;
  /**
   * The store dir the plan must be for (import, realise), asked only when the plan is refused as
   * stale: a plan for another realm is refused as that instead, as no choice of `--max-age` or
   * `--allow-downgrade` could make it importable, and the realm's message says what would.
   */
  readonly storeDir?: (() => Promise<string>) | undefined;
}

/**
 * Refuses (exit 11) a plan older than `--max-age`, or older than the one `last` says was applied
 * at its target; with `--allow-downgrade` an older plan is let through with a warning. A plan
 * from the future (beyond ordinary clock skew) is let through with a warning too: `realise`,
 * `apply` and `deploy` all come here before they record it.
 */
export function checkPlanAge(
  manifest: BundleManifest,
  checks: FreshnessChecks,
  last: { readonly record: LastApplied; readonly target: string } | undefined,
  now: Date,
  log: Logger,
): void {
  const policy: FreshnessPolicy = {
    maxAgeMs: checks.maxAgeMs,
    maxAgeText: checks.maxAgeText,
    ...(last !== undefined && { last }),
    allowDowngrade: checks.allowDowngrade,
    optionNames: checks.optionNames,
  };
  const problem = freshnessProblem(manifest, policy, now);
  if (problem !== undefined) throw problem;
  warnIfFromTheFuture(manifest, now, log);
  if (checks.allowDowngrade === true && last !== undefined) {
    const strict = freshnessProblem(manifest, { ...policy, allowDowngrade: false }, now);
    if (strict !== undefined)
      log.warn(`${optionSet(checks.optionNames, 'allowDowngrade')}: applying anyway: ${strict.message}`);
  }
}

/**
 * Checks the plan's age against `options` before `run` touches anything, runs `run` on a private
 * copy (the bytes checked are the bytes used; `run` is given the copy's path, and the user's name
 * for the bundle to use in messages), and records the plan as applied to `options.target` once
 * `run` succeeded (unless `record` is false, as for `dry-activate`). `run` returns the manifest it
 * verified, which must be the one checked. Without a limit or a target it just runs `run` on the
 * bundle itself.
 */
export async function withFreshness<R extends { manifest: BundleManifest }>(
  bundlePath: string,
  options: FreshnessOptions,
  log: Logger,
  run: (bundlePath: string, name: string) => Promise<R>,
  record = true,
): Promise<R> {
  const now = options.now ?? ((): Date => new Date());
  if (options.maxAgeMs === undefined && options.target === undefined) return run(bundlePath, bundlePath);
  const copy = await privateBundle(bundlePath, {
    prefix: 'nix-plan-fresh-',
    optionNames: options.optionNames,
  });
  try {
    const { manifest } = await readBundleHead(copy.source);
    const recordPath = options.target === undefined ? undefined : recordPathFor(options.target);
    const last =
      recordPath === undefined
        ? undefined
        : await readLastApplied(recordPath, options.optionNames).catch((e: unknown) =>
            waiveUnreadable(e, options, log),
          );
    const target = options.target;
    try {
      checkPlanAge(
        manifest,
        options,
        last !== undefined && target !== undefined ? { record: last, target } : undefined,
        now(),
        log,
      );
    } catch (e) {
      // A store that cannot say its dir leaves the stale refusal standing (the use case, not run,
      // would have met that failure itself).
      const storeDir =
        e instanceof NixPlanError && e.code === 'stale'
          ? await options.storeDir?.().catch(() => undefined)
          : undefined;
      if (storeDir !== undefined) checkRealm(manifest, storeDir, bundlePath, options.optionNames);
      throw e;
    }
    const result = await run(copy.path, bundlePath);
    if (result.manifest.checksum !== manifest.checksum)
      throw new NixPlanError('internal', 'the plan verified is not the plan whose age was checked');
    if (recordPath !== undefined && record)
      await writeLastApplied(recordPath, lastAppliedOf(result.manifest, copy.digest, rfc3339(now())));
    return result;
  } finally {
    await copy.dispose();
  }
}

/**
 * An unreadable record's refusal `e` rethrown, or with `--allow-downgrade` said as a warning: the
 * plan is applied as if there were no record, and the record written afterwards replaces it.
 */
export function waiveUnreadable(
  e: unknown,
  checks: Pick<FreshnessChecks, 'allowDowngrade' | 'optionNames'>,
  log: Logger,
): undefined {
  if (checks.allowDowngrade !== true || !(e instanceof NixPlanError) || e.code !== 'stale') throw e;
  log.warn(`${optionSet(checks.optionNames, 'allowDowngrade')}: applying anyway: ${e.message}`);
  return undefined;
}

/** Five minutes of clock skew between the machine that evaluated and this one is ordinary. */
const SKEW_MS = 5 * 60 * 1000;

/**
 * A plan created in the future (a runner's clock ahead) would, once recorded, make every later
 * plan look older: say so while it is still one plan.
 */
function warnIfFromTheFuture(manifest: BundleManifest, now: Date, log: Logger): void {
  if (manifest.createdAt !== undefined && Date.parse(manifest.createdAt) - now.getTime() > SKEW_MS)
    log.warn(
      `the plan says it was created at ${manifest.createdAt}, in the future by this machine's clock: ` +
        'check the clocks of this machine and of the one that evaluated it',
    );
}
