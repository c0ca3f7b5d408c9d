// Checks on the files a use case will write, made before the long work so a typo fails fast.
import { constants } from 'node:fs';
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
