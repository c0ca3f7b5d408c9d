// What was proven about who made a plan: the trust report every verify, import, realise and
// relocate result carries (CONTRACTS.md), and the one line that says it to a person.
import type { PublicKey } from '../signing.js';
import { manifestSigners, type BundleManifest } from './manifest.js';

/** Whether a signature of the manifest was checked, and how it fared. */
export type SignatureStatus = 'verified' | 'not-checked' | 'untrusted-key';

/** What was proven about a plan's signatures (computed where it is verified). */
export interface TrustReport {
  /** Trusted keys were supplied. */
  readonly keysGiven: boolean;
  /** Names of the trusted keys whose signature verified. */
  readonly verifiedBy: readonly string[];
  /** Every signature the manifest carries, by key name. */
  readonly signatures: readonly { readonly key: string; readonly status: SignatureStatus }[];
  /** The user opted out of proof (`--no-check-sigs`); warned. */
  readonly noCheckSigs: boolean;
  /** Paths neither self-proving nor covered by a verified signature. */
  readonly unproven: number;
}

/**
 * The trust report of a manifest whose signatures were checked against `trusted` (none: not
 * checked). The verifier refuses a manifest whose signature by a trusted key name does not
 * verify before this is asked, so a signature here is verified, by a key not trusted, or not
 * checked.
 */
export function trustReportOf(
  manifest: BundleManifest,
  trusted: readonly PublicKey[],
  options: { noCheckSigs?: boolean | undefined; unproven?: number | undefined } = {},
): TrustReport {
  const keysGiven = trusted.length > 0;
  const verified = new Set(manifestSigners(manifest, trusted).map((s) => s.key));
  return {
    keysGiven,
    verifiedBy: [...verified],
    signatures: manifest.signatures.map((s) => ({
      key: s.key,
      status: !keysGiven ? 'not-checked' : verified.has(s.key) ? 'verified' : 'untrusted-key',
    })),
    noCheckSigs: options.noCheckSigs === true,
    unproven: options.unproven ?? 0,
  };
}

/**
 * The trust status in the words every front end uses (unescaped: the key names come from the
 * bundle): "verified: signed by trusted key ci", "signatures: 2 (not verified)", "unsigned", or
 * "NOT CHECKED (--no-check-sigs)". Without a report (nothing was verified, as in `inspect`),
 * signatures are "not verified". With one, its signatures are counted (a relocation's report is
 * about its input, whose signatures are not the output manifest's).
 */
export function trustStatus(manifest: Pick<BundleManifest, 'signatures'>, trust?: TrustReport): string {
  if (trust?.noCheckSigs === true && trust.verifiedBy.length === 0)
    return `NOT CHECKED (--no-check-sigs)${trust.unproven > 0 ? `: ${trust.unproven} unproven path${trust.unproven === 1 ? '' : 's'}` : ''}`;
  if (trust !== undefined && trust.verifiedBy.length > 0)
    return `verified: signed by trusted key ${trust.verifiedBy.join(', ')}`;
  const n = trust?.signatures.length ?? manifest.signatures.length;
  if (n === 0) return 'unsigned';
  return `signatures: ${n} (not verified)`;
}
