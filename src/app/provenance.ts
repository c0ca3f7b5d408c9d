// Collecting a plan's provenance while it is exported: the GitHub Actions run (from the
// environment), the git worktree, and the evaluated flake's lock (see docs/security.md).
import { dirname, resolve } from 'node:path';
import type { Provenance } from '../core/bundle/index.js';
import { combineProvenance, gitProvenance, githubProvenance, type EnvLookup } from '../core/provenance.js';
import { readFlakeMetadata } from '../nix/flake-metadata.js';
import { readGitFacts } from '../nix/git.js';
import type { NixStore } from '../nix/store.js';
import type { Logger } from './deps.js';

/** What an export evaluated, as far as provenance goes. */
export interface ProvenanceRequest {
  readonly installables?: readonly string[] | undefined;
  readonly file?: string | undefined;
  readonly evalArgs?: readonly string[] | undefined;
}

/** Where provenance facts are read from. */
export interface ProvenanceSources {
  /** The environment (GitHub Actions variables); none by default. */
  readonly env?: EnvLookup | undefined;
  /** The worktree evaluated (default: the file's directory, else the working directory). */
  readonly dir?: string | undefined;
}

/**
 * The provenance of an evaluation: the run's repository, ref, workflow and run URL when in GitHub
 * Actions; the commit of the worktree evaluated (the run's `GITHUB_SHA` when there is no
 * worktree), its branch and whether it had uncommitted changes; the locked flake when flake
 * installables were evaluated. Facts that cannot be had are left out; values that do not fit the
 * manifest are left out with a warning.
 */
export async function collectProvenance(
  request: ProvenanceRequest,
  store: NixStore,
  sources: ProvenanceSources,
  log: Logger,
): Promise<Provenance> {
  const dir = sources.dir ?? (request.file === undefined ? process.cwd() : dirname(resolve(request.file)));
  const installables = request.installables ?? [];
  const [git, flake] = await Promise.all([
    readGitFacts(store.runner, dir),
    installables.length === 0 ? undefined : readFlakeMetadata(store, installables, request.evalArgs ?? []),
  ]);
  if (flake !== undefined && 'reason' in flake) log.warn(`the plan records no flake inputs: ${flake.reason}`);
  const github = sources.env === undefined ? {} : githubProvenance(sources.env);
  // A worktree of another repository than the run's: its own remote, commit and branch apply.
  if (!sameRepository(git.remoteUrl, github.repository)) {
    delete github.repository;
    delete github.commit;
    delete github.ref;
  }
  const { provenance, dropped } = combineProvenance(
    // The worktree's own commit first: it is what was evaluated, even when it is not GITHUB_SHA.
    { commit: git.commit },
    github,
    gitProvenance(git),
    flake !== undefined && 'flake' in flake ? { flake: flake.flake } : {},
  );
  for (const d of dropped) log.warn(`provenance: left out ${d}`);
  return provenance;
}

/** Whether a git remote URL is the GitHub repository `owner/name` (either unknown counts as yes). */
export function sameRepository(remoteUrl: string | undefined, repository: unknown): boolean {
  if (remoteUrl === undefined || typeof repository !== 'string') return true;
  const tail = remoteUrl
    .replace(/\/+$/, '')
    .replace(/\.git$/, '')
    .toLowerCase();
  const want = repository.toLowerCase();
  return tail.endsWith(`/${want}`) || tail.endsWith(`:${want}`);
}
