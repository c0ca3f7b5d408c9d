// The last-applied record a host keeps beside its profile (`<profile>.nix-plan.json`, the shared
// contract; its schema and the freshness rules are core/freshness.ts): read where the plan is
// activated (over SSH for a deploy), checked before anything is sent, and written by the
// activation itself once a switch is confirmed (or a boot is set).
import type { BundleManifest } from '../../core/bundle/index.js';
import { lastAppliedOf, parseLastApplied, type LastApplied } from '../../core/freshness.js';
import { sha256, toHex } from '../../core/hash.js';
import { rfc3339 } from '../../core/provenance.js';
import type { Logger } from '../deps.js';
import { checkPlanAge, waiveUnreadable, type FreshnessChecks } from '../freshness.js';

/** The record's suffix beside the profile. */
export const RECORD_SUFFIX = '.nix-plan.json';

/** The record of applying `manifest` (from a bundle file with `digest`) to one host: its root(s). */
export function recordFor(
  manifest: BundleManifest,
  digest: string,
  roots: readonly string[],
  at: Date,
): LastApplied {
  return { ...lastAppliedOf(manifest, digest, rfc3339(at)), roots: [...roots] };
}

/** How the host program names the record it saw: sha256 hex of its bytes, or `none`. */
export function recordSeen(bytes: Uint8Array | undefined): string {
  return bytes === undefined ? 'none' : toHex(sha256(bytes));
}

/**
 * Refuses (exit 11) a plan older than `--max-age`, or older than the one the record `bytes` (read
 * from `target`, e.g. `web:/nix/var/nix/profiles/system.nix-plan.json`) says was applied there.
 */
export function checkFreshness(
  manifest: BundleManifest,
  bytes: Uint8Array | undefined,
  checks: FreshnessChecks,
  target: string,
  now: Date,
  log: Logger,
): void {
  let record: LastApplied | undefined;
  try {
    record =
      bytes === undefined
        ? undefined
        : parseLastApplied(
            Buffer.from(bytes).toString('utf8'),
            `${target}${RECORD_SUFFIX}`,
            checks.optionNames,
          );
  } catch (e) {
    record = waiveUnreadable(e, checks, log);
  }
  checkPlanAge(manifest, checks, record === undefined ? undefined : { record, target }, now, log);
}
