// `-` for a bundle: standard input copied into a private temp file (0600 in a 0700 directory)
// first, so the use case reads a file nobody else can change, and removed afterwards.
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { NixPlanError } from '../core/errors.js';

/** Runs `use` with `bundle`, or with a private copy of standard input when `bundle` is `-`. */
export async function withBundleFile<T>(
  bundle: string | undefined,
  stdin: NodeJS.ReadableStream | undefined,
  use: (file: string | undefined) => Promise<T>,
): Promise<T> {
  if (bundle !== '-') return use(bundle);
  if (stdin === undefined)
    throw new NixPlanError('usage', 'no standard input to read the plan from (BUNDLE -)');
  const dir = await mkdtemp(join(tmpdir(), 'nix-plan-stdin-'));
  try {
    const file = join(dir, 'plan.nixplan');
    await pipeline(stdin, createWriteStream(file, { mode: 0o600, flags: 'wx' })).catch((e: unknown) => {
      throw new NixPlanError('usage', `cannot read the plan from standard input: ${(e as Error).message}`);
    });
    return await use(file);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
