// The narinfo: what a binary cache says of a store path (the text Nix's binary-cache store reads),
// the fingerprint its signatures cover, and signing and checking them.
import { NixPlanError } from './errors.js';
import { formatHash } from './hash.js';
import { checkDetached, signDetached, type PublicKey, type SecretKey } from './signing.js';
import { baseName, compareStrings } from './store-path.js';

/** The narinfo text Nix's binary-cache store reads (`Compression: none`, references as base names). */
export function narinfoText(info: {
  path: string;
  url: string;
  narHash: Uint8Array;
  narSize: number;
  references: readonly string[];
  deriver: string;
  ca?: string | undefined;
  sig?: string | undefined;
}): string {
  const lines = [
    `StorePath: ${info.path}`,
    `URL: ${info.url}`,
    'Compression: none',
    `NarHash: ${formatHash({ algo: 'sha256', bytes: info.narHash }, 'nix32', true)}`,
    `NarSize: ${info.narSize}`,
    `References: ${info.references.map(baseName).join(' ')}`,
  ];
  if (info.deriver !== '') lines.push(`Deriver: ${baseName(info.deriver)}`);
  if (info.ca !== undefined) lines.push(`CA: ${info.ca}`);
  if (info.sig !== undefined) lines.push(`Sig: ${info.sig}`);
  return lines.join('\n') + '\n';
}

/** What a narinfo signature covers. */
export interface NarInfoFacts {
  /** Full store path. */
  readonly path: string;
  /** sha256 of the NAR. */
  readonly narHash: Uint8Array;
  readonly narSize: number;
  /** Full store paths of the references (any order). */
  readonly references: readonly string[];
}

/**
 * Nix's narinfo fingerprint, `1;<path>;sha256:<nix32>;<narSize>;<refs,…>` (references sorted, as
 * Nix's StorePathSet iterates them). Nix refuses to fingerprint a zero NAR size or non-sha256 hash.
 */
export function narinfoFingerprint(info: NarInfoFacts): string {
  if (info.narHash.length !== 32)
    throw new NixPlanError('internal', 'a narinfo fingerprint needs a sha256 NAR hash');
  if (!(info.narSize > 0))
    throw new NixPlanError('internal', `cannot fingerprint '${info.path}' with NAR size 0`);
  const refs = [...info.references].sort(compareStrings).join(',');
  return `1;${info.path};${formatHash({ algo: 'sha256', bytes: info.narHash }, 'nix32', true)};${info.narSize};${refs}`;
}

/** A narinfo `Sig:` value for the object. */
export function signNarinfo(key: SecretKey, info: NarInfoFacts): string {
  return signDetached(key, narinfoFingerprint(info));
}

/** True when at least one of `signatures` is a valid narinfo signature by a trusted key. */
export function verifyNarinfo(
  info: NarInfoFacts,
  signatures: readonly string[],
  trusted: readonly PublicKey[],
): boolean {
  const fingerprint = narinfoFingerprint(info);
  return signatures.some((s) => checkDetached(fingerprint, s, trusted) === 'valid');
}
