// The plan bundle's manifest: canonical form, checksum, signatures, and parsing of untrusted bytes.
// (Its schema, versions 1 and 2, is in manifest-types.ts; strict validation in manifest-schema.ts.)
//
// The manifest is stored as its canonical JSON (keys sorted, no whitespace) and carries a sha256 of
// itself (`checksum`, over the canonical JSON without that field). A reader requires the stored
// bytes to be exactly the canonical form of what they parse to and the checksum to match, so any
// change to the frame's bytes is refused, not just those that break the JSON. Signatures cover the
// canonical JSON without `checksum` and `signatures`, behind a domain-separation prefix; since the
// manifest records the sha256 of both the compressed and the uncompressed stream, a signature covers
// every byte of the bundle except the signature list itself: anyone can strip a signature or add
// one by another key, which is why a reader decides by the keys it trusts, never by the list.
import { MalformedError, NixPlanError } from '../errors.js';
import { sha256, toHex } from '../hash.js';
import {
  checkDetached,
  keyFingerprint,
  parseNamedSignature,
  signRaw,
  verifyRaw,
  type PublicKey,
  type SecretKey,
} from '../signing.js';
import { MAX_MANIFEST_DEPTH, assertJsonDepth } from './json-limits.js';
import { validateManifest } from './manifest-schema.js';
import {
  DEFAULT_MAX_MANIFEST_SIZE,
  SIGNATURE_DOMAIN,
  type BundleManifest,
  type ManifestSignature,
  type PromotionSigner,
} from './manifest-types.js';

export * from './manifest-types.js';
export { validateManifest } from './manifest-schema.js';

/**
 * Canonical JSON: object keys sorted by UTF-16 code units, no whitespace, `undefined` members
 * dropped. Only JSON's own value types; numbers as JavaScript prints them (a manifest holds integers).
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value === 'boolean' || typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new NixPlanError('internal', `canonical JSON cannot hold ${value}`);
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  throw new NixPlanError('internal', `canonical JSON cannot hold a ${typeof value}`);
}

/** sha256 hex of the canonical manifest without `checksum`. */
export function manifestChecksum(manifest: Omit<BundleManifest, 'checksum'> | BundleManifest): string {
  const { checksum: _checksum, ...rest } = manifest as BundleManifest;
  return toHex(sha256(canonicalJson(rest)));
}

/** The bytes manifest signatures cover: the domain prefix and the canonical manifest without signatures. */
export function signedBytes(manifest: Omit<BundleManifest, 'checksum' | 'signatures'>): Uint8Array {
  const { checksum: _c, signatures: _s, ...rest } = manifest as BundleManifest;
  return new Uint8Array(Buffer.from(SIGNATURE_DOMAIN + canonicalJson(rest), 'utf8'));
}

/**
 * Completes a manifest: adds a signature by each key (replacing earlier ones by the same key
 * name) and recomputes the checksum. Validates the result, so a writer cannot emit a manifest
 * its own reader would refuse.
 */
export function finaliseManifest(
  manifest: Omit<BundleManifest, 'checksum' | 'signatures'> & { signatures?: ManifestSignature[] },
  keys: readonly SecretKey[] = [],
): BundleManifest {
  const message = signedBytes(manifest);
  const names = new Set(keys.map((k) => k.name));
  const signatures = [
    ...(manifest.signatures ?? []).filter((s) => !names.has(s.key)),
    ...keys.map((k) => ({ key: k.name, sig: Buffer.from(signRaw(k, message)).toString('base64') })),
  ];
  const { checksum: _c, ...rest } = manifest as BundleManifest;
  const unsigned = { ...rest, signatures };
  const full: BundleManifest = { ...unsigned, checksum: manifestChecksum(unsigned) };
  validateManifest(JSON.parse(canonicalJson(full)) as unknown);
  return full;
}

/** The manifest's bytes as stored in the bundle (canonical JSON, UTF-8). */
export function encodeManifest(manifest: BundleManifest, maxSize = DEFAULT_MAX_MANIFEST_SIZE): Uint8Array {
  const text = canonicalJson(manifest);
  // What its own reader would refuse is not written (exit 3, as on read).
  assertJsonDepth(text, MAX_MANIFEST_DEPTH, 'the manifest to write');
  const bytes = new Uint8Array(Buffer.from(text, 'utf8'));
  if (bytes.length > maxSize)
    throw new NixPlanError(
      'bundle',
      `the manifest to write is ${bytes.length} bytes, more than the ${maxSize} bytes a reader accepts`,
    );
  return bytes;
}

/**
 * Parses and validates untrusted manifest bytes: JSON, format and version (a newer version asks
 * the user to upgrade), every field's type and range, store paths inside `storeDir`, canonical
 * form, then the checksum. Throws 'bundle' errors naming the field (also for oversize or too deeply
nested input).
 */
export function parseManifest(bytes: Uint8Array, maxSize = DEFAULT_MAX_MANIFEST_SIZE): BundleManifest {
  if (bytes.length > maxSize)
    throw new NixPlanError(
      'bundle',
      `bundle manifest of ${bytes.length} bytes exceeds the limit of ${maxSize} bytes`,
    );
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new MalformedError('bundle manifest', undefined, 'not valid UTF-8');
  }
  assertJsonDepth(text, MAX_MANIFEST_DEPTH, 'bundle manifest');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new MalformedError('bundle manifest', undefined, `not valid JSON (${(e as Error).message})`);
  }
  const manifest = validateManifest(value);
  if (canonicalJson(manifest) !== text)
    throw new NixPlanError(
      'bundle',
      'bundle manifest is not in canonical form (sorted keys, no whitespace, no duplicate keys): it was altered after it was written',
    );
  const expected = manifestChecksum(manifest);
  if (manifest.checksum !== expected)
    throw new NixPlanError(
      'bundle',
      `bundle manifest checksum mismatch (recorded ${manifest.checksum}, computed ${expected}): the manifest is corrupt or was altered`,
    );
  return manifest;
}

/**
 * Checks the manifest's signatures against trusted keys. Returns the names of the trusted keys
 * with a valid signature; throws a 'signature' error when a trusted key's signature is wrong or
 * when no trusted key signed. Signatures by keys not in `trusted` are ignored, as Nix does.
 */
export function verifyManifestSignatures(manifest: BundleManifest, trusted: readonly PublicKey[]): string[] {
  const message = signedBytes(manifest);
  const valid: string[] = [];
  for (const s of manifest.signatures) {
    const check = checkDetached(message, `${s.key}:${s.sig}`, trusted);
    if (check === 'invalid' || check === 'malformed')
      throw new NixPlanError(
        'signature',
        `the bundle's signature by key '${s.key}' does not verify: the manifest was altered or signed with another key`,
      );
    if (check === 'valid') valid.push(s.key);
  }
  if (valid.length === 0) {
    const by = manifest.signatures.map((s) => `'${s.key}'`).join(', ');
    throw new NixPlanError(
      'signature',
      `the bundle is not signed by a trusted key (trusted: ${trusted.map((k) => `'${k.name}'`).join(', ') || 'none'}; signed by: ${by || 'nobody'})`,
    );
  }
  return valid;
}

/**
 * The trusted keys whose signature on the manifest verifies, with their fingerprints (what a
 * promotion records of its input). Signatures by other names, and ones that do not verify, are
 * left out: call `verifyManifestSignatures` first to refuse those.
 */
export function manifestSigners(manifest: BundleManifest, trusted: readonly PublicKey[]): PromotionSigner[] {
  const message = signedBytes(manifest);
  const signers: PromotionSigner[] = [];
  // The signature list is not signed: anyone may repeat a valid signature in it. Each key counts once.
  const seen = new Set<string>();
  for (const s of manifest.signatures) {
    const sig = parseNamedSignature(`${s.key}:${s.sig}`);
    if (sig === undefined) continue;
    for (const k of trusted) {
      if (k.name !== sig.name) continue;
      const signer = { key: k.name, fingerprint: keyFingerprint(k) };
      const id = `${signer.key} ${signer.fingerprint}`;
      if (!seen.has(id) && verifyRaw(k, message, sig.bytes)) {
        seen.add(id);
        signers.push(signer);
      }
    }
  }
  return signers;
}
