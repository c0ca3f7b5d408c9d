// ed25519 keys and signatures in Nix's formats: `NAME:base64` keys and detached signatures (a
// narinfo's fingerprint and `Sig:` are in narinfo.ts).
//
// The key files are exactly those of `nix-store --generate-binary-cache-key NAME secret public`:
// the secret is `NAME:base64(seed ‖ public key)` (64 bytes, libsodium's layout), the public key
// `NAME:base64(32 bytes)`, a signature `NAME:base64(64 bytes)`. node:crypto does ed25519 natively;
// raw keys go in and out wrapped in their fixed DER prefixes (RFC 8410).
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  sign,
  verify,
  type KeyObject,
} from 'node:crypto';
import { NixPlanError } from './errors.js';

/** A secret signing key, as read from a Nix secret key file. */
export interface SecretKey {
  readonly name: string;
  /** The 32-byte ed25519 seed. */
  readonly seed: Uint8Array;
  /** The 32-byte public key stored in the second half of Nix's 64-byte secret. */
  readonly publicKey: Uint8Array;
}

/** A public key, as read from a Nix public key file or `trusted-public-keys`. */
export interface PublicKey {
  readonly name: string;
  /** The 32-byte ed25519 public key. */
  readonly key: Uint8Array;
}

/** A key pair in the text formats Nix writes to its key files. */
export interface KeyPairText {
  readonly secretKey: string;
  readonly publicKey: string;
}

const B64 = /^[A-Za-z0-9+/]+={0,2}$/;
const KEY_NAME = /^[\x21-\x39\x3b-\x7e]+$/; // printable ASCII without space and ':'

function b64(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('base64');
}

/** Why `name` cannot name a key (Nix splits key strings at the first ':'), or undefined. */
export function keyNameProblem(name: string): string | undefined {
  if (name.length === 0) return 'the key name is empty';
  if (name.length > 256) return 'the key name is longer than 256 characters';
  if (!KEY_NAME.test(name)) return "the key name may only hold printable ASCII without spaces or ':'";
  return undefined;
}

/** Splits `NAME:base64` and decodes it, requiring exactly `size` bytes. */
function parseNamed(text: string, size: number, what: string): { name: string; bytes: Uint8Array } {
  const trimmed = text.trim();
  const colon = trimmed.indexOf(':');
  if (colon <= 0)
    throw new NixPlanError(
      'signature',
      `${what} is not in Nix's NAME:base64 format (no key name before ':')`,
    );
  const name = trimmed.slice(0, colon);
  const data = trimmed.slice(colon + 1);
  const problem = keyNameProblem(name);
  if (problem !== undefined) throw new NixPlanError('signature', `${what}: ${problem}`);
  const bytes = B64.test(data) ? new Uint8Array(Buffer.from(data, 'base64')) : undefined;
  if (bytes?.length !== size || b64(bytes) !== data)
    throw new NixPlanError(
      'signature',
      `${what} '${name}' is corrupt: expected base64 of ${size} bytes after '${name}:'`,
    );
  return { name, bytes };
}

// ASN.1 prefixes wrapping a raw ed25519 seed (PKCS#8) and public key (SPKI), RFC 8410.
const PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

function privateKeyObject(seed: Uint8Array): KeyObject {
  return createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, seed]), format: 'der', type: 'pkcs8' });
}

function publicKeyObject(key: Uint8Array): KeyObject {
  return createPublicKey({ key: Buffer.concat([SPKI_PREFIX, key]), format: 'der', type: 'spki' });
}

/** The public key belonging to a seed (not trusting the copy stored in the secret key file). */
function derivePublic(seed: Uint8Array): Uint8Array {
  const spki = createPublicKey(privateKeyObject(seed)).export({ format: 'der', type: 'spki' });
  return new Uint8Array(spki.subarray(SPKI_PREFIX.length));
}

/**
 * The secret keys (Nix's `NAME:base64` text) of options that take a list and a single key (the
 * Action's one input), the single one last.
 */
export function secretKeyTexts(options: {
  readonly signingKeys?: readonly string[] | undefined;
  readonly signingKey?: string | undefined;
}): string[] {
  return [...(options.signingKeys ?? []), ...(options.signingKey === undefined ? [] : [options.signingKey])];
}

/** Parses a secret key (`NAME:base64(64 bytes)`); refuses one whose halves do not belong together. */
export function parseSecretKey(text: string): SecretKey {
  const { name, bytes } = parseNamed(text, 64, 'secret key');
  const seed = bytes.slice(0, 32);
  const publicKey = bytes.slice(32);
  if (Buffer.compare(derivePublic(seed), publicKey) !== 0)
    throw new NixPlanError(
      'signature',
      `secret key '${name}' is corrupt: its public half does not match its seed`,
    );
  return { name, seed, publicKey };
}

/** Parses a public key (`NAME:base64(32 bytes)`), as in `trusted-public-keys`. */
export function parsePublicKey(text: string): PublicKey {
  const { name, bytes } = parseNamed(text, 32, 'public key');
  return { name, key: bytes };
}

/** The secret key in Nix's file format. */
export function formatSecretKey(key: SecretKey): string {
  const both = new Uint8Array(64);
  both.set(key.seed, 0);
  both.set(key.publicKey, 32);
  return `${key.name}:${b64(both)}`;
}

/** The public key in Nix's file format. */
export function formatPublicKey(key: PublicKey): string {
  return `${key.name}:${b64(key.key)}`;
}

/** The public key of a secret key. */
export function publicKeyOf(key: SecretKey): PublicKey {
  return { name: key.name, key: key.publicKey };
}

/** The key with a given 32-byte seed (ed25519 keys are a function of their seed): for reproducible keys. */
export function secretKeyFromSeed(name: string, seed: Uint8Array): SecretKey {
  const problem = keyNameProblem(name);
  if (problem !== undefined) throw new NixPlanError('usage', `cannot make a key named '${name}': ${problem}`);
  if (seed.length !== 32) throw new NixPlanError('usage', `an ed25519 seed is 32 bytes, not ${seed.length}`);
  return { name, seed: Uint8Array.from(seed), publicKey: derivePublic(seed) };
}

/** A fresh key pair, like `nix-store --generate-binary-cache-key NAME …`. */
export function generateKeyPair(name: string): KeyPairText {
  const problem = keyNameProblem(name);
  if (problem !== undefined) throw new NixPlanError('usage', `cannot make a key named '${name}': ${problem}`);
  const pkcs8 = generateKeyPairSync('ed25519').privateKey.export({ format: 'der', type: 'pkcs8' });
  const seed = new Uint8Array(pkcs8.subarray(PKCS8_PREFIX.length));
  const publicKey = derivePublic(seed);
  const secret: SecretKey = { name, seed, publicKey };
  return { secretKey: formatSecretKey(secret), publicKey: formatPublicKey(publicKeyOf(secret)) };
}

/** The raw 64-byte ed25519 signature of `message`. */
export function signRaw(key: SecretKey, message: Uint8Array | string): Uint8Array {
  const data = typeof message === 'string' ? Buffer.from(message, 'utf8') : message;
  return new Uint8Array(sign(null, data, privateKeyObject(key.seed)));
}

/** True when `signature` (raw 64 bytes) is `key`'s signature of `message`. */
export function verifyRaw(key: PublicKey, message: Uint8Array | string, signature: Uint8Array): boolean {
  if (signature.length !== 64 || key.key.length !== 32) return false;
  const data = typeof message === 'string' ? Buffer.from(message, 'utf8') : message;
  try {
    return verify(null, data, publicKeyObject(key.key), signature);
  } catch {
    return false; // a public key that is not a curve point
  }
}

/** A detached signature in Nix's format, `NAME:base64(sig)` (as in a narinfo's `Sig:` line). */
export function signDetached(key: SecretKey, message: Uint8Array | string): string {
  return `${key.name}:${b64(signRaw(key, message))}`;
}

/** `NAME:base64(64 bytes)` split and decoded, or undefined when it is not a signature in that form. */
export function parseNamedSignature(signature: string): { name: string; bytes: Uint8Array } | undefined {
  try {
    return parseNamed(signature, 64, 'signature');
  } catch {
    return undefined;
  }
}

/** A public key's fingerprint: `sha256:` and the hex sha256 of its 32 raw bytes (not of its name). */
export function keyFingerprint(key: PublicKey): string {
  return `sha256:${createHash('sha256').update(key.key).digest('hex')}`;
}

/** Outcome of checking one detached signature against a set of trusted keys. */
export type SignatureCheck = 'valid' | 'invalid' | 'untrusted' | 'malformed';

/**
 * Checks `NAME:base64(sig)` against the trusted keys of that name: `untrusted` when no trusted key
 * has the name (Nix ignores such signatures), `invalid` when none of them verifies it.
 */
export function checkDetached(
  message: Uint8Array | string,
  signature: string,
  trusted: readonly PublicKey[],
): SignatureCheck {
  const parsed = parseNamedSignature(signature);
  if (parsed === undefined) return 'malformed';
  const keys = trusted.filter((k) => k.name === parsed.name);
  if (keys.length === 0) return 'untrusted';
  return keys.some((k) => verifyRaw(k, message, parsed.bytes)) ? 'valid' : 'invalid';
}
