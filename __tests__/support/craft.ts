// Crafting hostile bundles the way a forger would: rewrite a real bundle's manifest (any value,
// valid or not), recompute its checksum, and sign it with whatever keys the forger holds.
import { readFileSync, writeFileSync } from 'node:fs';
import { encodeSkippableFrame, SKIPPABLE_HEADER_SIZE } from '../../src/core/bundle/frame.js';
import {
  canonicalJson,
  manifestChecksum,
  signedBytes,
  type BundleManifest,
} from '../../src/core/bundle/index.js';
import { signRaw, type SecretKey } from '../../src/core/signing.js';
import { concatBytes } from '../../src/core/wire.js';

/** A bundle file's manifest (as parsed JSON) and its data frame. */
export function splitBundle(bytes: Uint8Array): { manifest: Record<string, unknown>; data: Uint8Array } {
  const size = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(4, true);
  const text = Buffer.from(bytes.subarray(SKIPPABLE_HEADER_SIZE, SKIPPABLE_HEADER_SIZE + size)).toString(
    'utf8',
  );
  return {
    manifest: JSON.parse(text) as Record<string, unknown>,
    data: bytes.subarray(SKIPPABLE_HEADER_SIZE + size),
  };
}

/**
 * The bundle with its manifest changed by `change`, self-consistent: canonical JSON, checksum
 * recomputed, and signed by `keys` (the forger's) unless `keepSignatures` keeps the old list.
 * Nothing is validated: the result may hold what no writer of ours would write.
 */
export function forgeManifest(
  bytes: Uint8Array,
  change: (m: Record<string, unknown>) => Record<string, unknown>,
  options: { keys?: readonly SecretKey[]; keepSignatures?: boolean } = {},
): Uint8Array {
  const { manifest, data } = splitBundle(bytes);
  const { checksum: _c, signatures, ...rest } = change(structuredClone(manifest));
  const message = signedBytes(rest as unknown as BundleManifest);
  const sigs =
    options.keepSignatures === true
      ? signatures
      : (options.keys ?? []).map((k) => ({
          key: k.name,
          sig: Buffer.from(signRaw(k, message)).toString('base64'),
        }));
  const unsigned = { ...rest, signatures: sigs };
  const full = { ...unsigned, checksum: manifestChecksum(unsigned as unknown as BundleManifest) };
  return concatBytes([encodeSkippableFrame(Buffer.from(canonicalJson(full), 'utf8')), data]);
}

/** `forgeManifest` from one file to another. */
export function forgeFile(
  from: string,
  to: string,
  change: (m: Record<string, unknown>) => Record<string, unknown>,
  options: { keys?: readonly SecretKey[]; keepSignatures?: boolean } = {},
): string {
  writeFileSync(to, forgeManifest(readFileSync(from), change, options));
  return to;
}
