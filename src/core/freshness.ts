// Freshness: refusing a plan older than a given age, or older than the plan last applied to the
// same profile or out-link (a rollback by whoever can hand a host an old, validly signed file).
// Pure: the record's schema and the decision; reading and writing the record is app/freshness.ts.
import { NixPlanError } from './errors.js';
import type { BundleManifest } from './bundle/manifest-types.js';
import { timestamp } from './bundle/manifest-schema.js';
import { formatAge } from './provenance-view.js';
import { optionSet, type OptionNames } from './option-names.js';

/**
 * What is remembered of the last plan applied to a profile or out-link, in
 * `<profile>.nix-plan.json` (CONTRACTS.md, "Last-applied record").
 */
export interface LastApplied {
  readonly version: 1;
  /** The plan's createdAt; absent when a plan without one was applied with --allow-downgrade. */
  readonly createdAt?: string;
  /** `sha256:<hex>` of the bundle file applied. */
  readonly digest: string;
  /** Its manifest's checksum. */
  readonly checksum: string;
  readonly storeDir: string;
  /** The .drv paths of its roots. */
  readonly roots: readonly string[];
  /** When it was applied (RFC 3339 UTC). */
  readonly appliedAt: string;
}

/** A stale-plan refusal (exit code 11). */
export function staleError(message: string): NixPlanError {
  return new NixPlanError('stale', message);
}

const DIGEST = /^sha256:[0-9a-f]{64}$/;
const HEX64 = /^[0-9a-f]{64}$/;

/** The refusal of a last-applied record at `where` that is not one (`why`). */
export function unreadableRecord(where: string, why: string, names?: OptionNames): NixPlanError {
  return staleError(
    `the last-applied record '${where}' is unreadable (${why}): nix-plan cannot tell whether this plan is older ` +
      `than the one applied before; repair or remove the record, or pass ${optionSet(names, 'allowDowngrade')}`,
  );
}

/**
 * Parses a last-applied record; throws a 'stale' error naming `where` when it is not one (and the
 * option that waives it as `names` spells it: the command line's by default).
 */
export function parseLastApplied(text: string, where: string, names?: OptionNames): LastApplied {
  const fail = (why: string): NixPlanError => unreadableRecord(where, why, names);
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw fail('not JSON');
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw fail('not a JSON object');
  const r = v as Record<string, unknown>;
  if (r['version'] !== 1) throw fail(`version ${JSON.stringify(r['version'])?.slice(0, 16)} is not 1`);
  const str = (k: string, pattern: RegExp): string => {
    const x = r[k];
    if (typeof x !== 'string' || !pattern.test(x)) throw fail(`'${k}' is missing or malformed`);
    return x;
  };
  const time = (k: string): string => {
    try {
      return timestamp(r[k], k);
    } catch {
      throw fail(`'${k}' is not an RFC 3339 UTC time`);
    }
  };
  const roots = r['roots'];
  if (!Array.isArray(roots) || !roots.every((x) => typeof x === 'string'))
    throw fail("'roots' is not a list of paths");
  return {
    version: 1,
    ...(r['createdAt'] !== undefined && { createdAt: time('createdAt') }),
    digest: str('digest', DIGEST),
    checksum: str('checksum', HEX64),
    storeDir: str('storeDir', /^\/\S*$/),
    roots: roots,
    appliedAt: time('appliedAt'),
  };
}

/** The record for `manifest`, applied now from a bundle file with `digest`. */
export function lastAppliedOf(manifest: BundleManifest, digest: string, appliedAt: string): LastApplied {
  return {
    version: 1,
    ...(manifest.createdAt !== undefined && { createdAt: manifest.createdAt }),
    digest,
    checksum: manifest.checksum,
    storeDir: manifest.storeDir,
    roots: manifest.roots.map((r) => r.drvPath),
    appliedAt,
  };
}

const UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/**
 * A duration like `90m`, `12h`, `7d`, `2w` or `1d12h` in milliseconds; a usage error naming
 * `option` otherwise.
 */
export function parseDuration(text: string, option = '--max-age'): number {
  const parts = /^(?:\d+[smhdw])+$/.test(text) ? [...text.matchAll(/(\d+)([smhdw])/g)] : [];
  const ms = parts.reduce((n, [, count, unit]) => n + Number(count) * (UNITS[unit ?? ''] ?? NaN), 0);
  if (parts.length === 0 || !Number.isSafeInteger(ms) || ms <= 0)
    throw new NixPlanError(
      'usage',
      `${option} '${text}' is not a duration; accepted: a number and a unit (s, m, h, d, w), e.g. 12h, 7d or 1d12h`,
    );
  return ms;
}

/** What a plan must satisfy to be accepted. */
export interface FreshnessPolicy {
  /** The oldest a plan may be, in milliseconds (`--max-age`). */
  readonly maxAgeMs?: number | undefined;
  /** How the age limit was written, for messages (`7d`). */
  readonly maxAgeText?: string | undefined;
  /** The plan last applied to the same target, and what the target is (for messages). */
  readonly last?: { readonly record: LastApplied; readonly target: string } | undefined;
  /** Accept a plan older than the last one applied (or of unknown age). */
  readonly allowDowngrade?: boolean | undefined;
  /** How messages name the options (default: the command line's flags). */
  readonly optionNames?: OptionNames | undefined;
}

/**
 * Why `manifest` may not be applied under `policy` at `now` (a 'stale' error), or undefined when
 * it may. A plan of the same age as the last one passes (the same plan again, or a relocation of
 * it); a plan without createdAt (format 1) passes neither an age limit nor an existing record.
 * `--allow-downgrade` waives the record, never --max-age (drop the option instead).
 */
export function freshnessProblem(
  manifest: Pick<BundleManifest, 'createdAt' | 'formatVersion' | 'checksum'>,
  policy: FreshnessPolicy,
  now: Date,
): NixPlanError | undefined {
  const created = manifest.createdAt;
  const unknown =
    manifest.formatVersion === 1
      ? 'the plan records no creation time (a format 1 bundle)'
      : 'the plan records no creation time (it was promoted from a format 1 bundle)';
  const names = policy.optionNames;
  const force = `${optionSet(names, 'allowDowngrade')} to force`;
  if (policy.maxAgeMs !== undefined) {
    const limit = optionSet(names, 'maxAge', policy.maxAgeText ?? `${policy.maxAgeMs / 1000}s`);
    if (created === undefined)
      return staleError(`${unknown}, so it cannot be shown to be younger than ${limit}; re-export it`);
    const age = now.getTime() - Date.parse(created);
    if (age > policy.maxAgeMs)
      return staleError(
        `the plan was created at ${created}, ${formatAge(age)} ago: older than ${limit} allows`,
      );
  }
  const last = policy.last;
  if (last === undefined || policy.allowDowngrade === true || last.record.checksum === manifest.checksum)
    return undefined;
  const before = `${last.target} was last given a plan created at ${last.record.createdAt ?? '(unknown)'} (applied ${last.record.appliedAt}, ${last.record.digest})`;
  if (created === undefined)
    return staleError(`${unknown}, and ${before}: it may be older; refusing it (${force})`);
  if (last.record.createdAt !== undefined && Date.parse(created) < Date.parse(last.record.createdAt))
    return staleError(
      `the plan was created at ${created}, before the one ${before}: refusing a downgrade (${force})`,
    );
  return undefined;
}
