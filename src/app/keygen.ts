// keygen: a signing key pair in the files `nix-store --generate-binary-cache-key NAME SECRET PUBLIC` writes.
import { lstat, rm, writeFile } from 'node:fs/promises';
import { NixPlanError } from '../core/errors.js';
import { generateKeyPair, type KeyPairText } from '../core/signing.js';

/** Where keygen writes the two halves. */
export interface KeyFiles {
  readonly secretFile: string;
  readonly publicFile: string;
}

/**
 * A fresh ed25519 key pair named `name`, as `NAME:base64` texts Nix reads (in `--key-file`,
 * `secret-key-files`, `trusted-public-keys`). Throws a `usage` error for a name Nix cannot use.
 */
export function keygen(name: string): KeyPairText {
  return generateKeyPair(name);
}

async function writeNew(path: string, text: string, mode: number): Promise<void> {
  try {
    // Created with its final mode (never briefly readable by others) and never over an existing
    // file: overwriting a key would orphan every signature made with it.
    await writeFile(path, text, { mode, flag: 'wx' });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new NixPlanError(
      'usage',
      code === 'EEXIST'
        ? `'${path}' exists; refusing to overwrite a key file`
        : `cannot write '${path}': ${(e as Error).message}`,
    );
  }
}

/** Refuses a key file that exists, before anything is written. */
async function assertAbsent(path: string): Promise<void> {
  try {
    await lstat(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw new NixPlanError('usage', `cannot write '${path}': ${(e as Error).message}`);
  }
  throw new NixPlanError('usage', `'${path}' exists; refusing to overwrite a key file`);
}

/**
 * Writes a key pair as Nix does: the secret with mode 0600, the public key 0644, no trailing
 * newline (older Nix does not trim key files). Refuses to overwrite either file, and checks both
 * before writing either, so a refusal leaves nothing behind; should the public file still fail
 * (created meanwhile, a full disk), the secret this call just wrote is removed again.
 */
export async function writeKeyPair(pair: KeyPairText, files: KeyFiles): Promise<void> {
  await assertAbsent(files.secretFile);
  await assertAbsent(files.publicFile);
  await writeNew(files.secretFile, pair.secretKey, 0o600);
  try {
    await writeNew(files.publicFile, pair.publicKey, 0o644);
  } catch (e) {
    await rm(files.secretFile, { force: true });
    throw e;
  }
}
