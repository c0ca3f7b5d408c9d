// Checks on the files a use case will write, made before the long work so a typo fails fast, and
// the digest of a file read.
import { createHash } from 'node:crypto';
import { constants, createReadStream } from 'node:fs';
import { access } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { NixPlanError } from '../core/errors.js';

/** Fails early, with a usage error, when a file cannot be created at `path` (before long work). */
export async function assertWritable(path: string): Promise<void> {
  const dir = dirname(resolve(path));
  try {
    await access(dir, constants.W_OK);
  } catch (e) {
    throw new NixPlanError(
      'usage',
      `cannot write '${path}': ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? `the directory '${dir}' does not exist` : `the directory '${dir}' is not writable`}`,
    );
  }
}

/** `sha256:<hex>` of a file's bytes, streamed. */
export async function fileDigest(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return `sha256:${hash.digest('hex')}`;
}
