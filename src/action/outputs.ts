// What the actions that publish a plan share when they describe it: list outputs kept within
// GitHub's job output limit, and the name of a sibling action to use next.
import { join } from 'node:path';
import { RunnerEnv } from './constants.js';
import type { Published } from './summary.js';
import type { ActionIO } from './run.js';

/** Job outputs are limited to 1 MB in total; a list output bigger than this is left out with a warning. */
export const LIST_OUTPUT_BUDGET = 256 * 1024;

/** `owner/nix-plan/<sub>@ref` as this action was referenced, or `./<sub>` when run from a checkout. */
export function siblingAction(io: ActionIO, sub: string): string {
  const repo = io.env(RunnerEnv.ActionRepository) ?? '';
  const ref = io.env(RunnerEnv.ActionRef) ?? '';
  return repo === '' ? `./${sub}` : `${repo}/${sub}@${ref === '' ? 'v1' : ref}`;
}

/** Sets a JSON output unless it would crowd out the job's other outputs (then warns). */
export function setListOutput(io: ActionIO, name: string, value: unknown, hint: string): void {
  const json = JSON.stringify(value);
  if (Buffer.byteLength(json) <= LIST_OUTPUT_BUDGET) io.setOutput(name, json);
  else
    io.log.warn(
      `output ${name} left empty: ${Buffer.byteLength(json)} bytes would crowd GitHub's 1 MB job outputs; ${hint}`,
    );
}

/**
 * Where an uploaded plan went: GitHub's artifact service, or a shared directory (`artifact-dir`),
 * where it is `<dir>/<run id>/<name>` (transport/local.ts).
 */
export function publishedAt(io: ActionIO, artifactDir: string | undefined, name: string): Published {
  if (artifactDir === undefined) return { kind: 'artifact' };
  return {
    kind: 'directory',
    dir: artifactDir,
    path: join(artifactDir, io.env(RunnerEnv.RunId) ?? 'local', name),
  };
}
