// The last-applied record a host keeps beside its profile (`<profile>.nix-plan.json`): what plan
// made the current generation, so the next deploy, from any runner, can refuse an older one.
import type { BundleManifest } from '../../core/bundle/manifest.js';
import { sha256, toHex } from '../../core/hash.js';

/** The record's suffix beside the profile. */
export const RECORD_SUFFIX = '.nix-plan.json';

/** The record (version 1), as the shared contract lays it out. */
export interface LastAppliedRecord {
  readonly version: 1;
  /** When the plan was evaluated (manifest v2's createdAt), when known. */
  readonly createdAt?: string | undefined;
  /** `sha256:<hex>` of the bundle file. */
  readonly digest: string;
  /** The manifest's checksum. */
  readonly checksum: string;
  readonly storeDir: string;
  readonly roots: readonly string[];
  /** When the plan was applied (RFC 3339 UTC, seconds). */
  readonly appliedAt: string;
}

/** RFC 3339 UTC to the second: 2026-12-06T10:17:30Z. */
export function rfc3339(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** The record of applying `manifest` (a bundle file with `digest`) at `at`, as one JSON line. */
export function recordFor(
  manifest: BundleManifest,
  digest: string,
  roots: readonly string[],
  at: Date,
): LastAppliedRecord {
  const createdAt = (manifest as { createdAt?: unknown }).createdAt;
  return {
    version: 1,
    ...(typeof createdAt === 'string' && { createdAt }),
    digest,
    checksum: manifest.checksum,
    storeDir: manifest.storeDir,
    roots: [...roots],
    appliedAt: rfc3339(at),
  };
}

/** How the host program names the record it saw: sha256 hex of its bytes, or `none`. */
export function recordSeen(bytes: Uint8Array | undefined): string {
  return bytes === undefined ? 'none' : toHex(sha256(bytes));
}
