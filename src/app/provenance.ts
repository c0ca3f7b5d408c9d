// Collecting a plan's provenance while it is exported: the GitHub Actions run (from the
// environment), the git worktree, and the evaluated flake's lock (see docs/security.md).
import { dirname, resolve } from 'node:path';
import type { Provenance } from '../core/bundle/index.js';
import {
  combineProvenance,
  gitProvenance,
  githubProvenance,
  type EnvLookup,
  type GitFacts,
} from '../core/provenance.js';
import { flakeRefOf, readFlakeMetadata } from '../nix/flake-metadata.js';
import { readGitFacts } from '../nix/git.js';
import type { EvaluateRequest } from '../nix/evaluate.js';
import type { NixStore } from '../nix/store.js';
import type { Logger } from './deps.js';

/** What an export evaluated, as far as provenance goes. */
export type ProvenanceRequest = Pick<EvaluateRequest, 'installables' | 'file' | 'evalArgs'>;

/** Where provenance facts are read from. */
export interface ProvenanceSources {
  /** The environment (GitHub Actions variables); none by default. */
  readonly env?: EnvLookup | undefined;
  /**
   * The worktree evaluated (default: the file's directory; a local flake's directory; none for a
   * remote flake, whose locked URL says what was evaluated; the working directory for .drv paths).
   */
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
  const dir = sources.dir ?? worktreeOf(request);
  const installables = request.installables ?? [];
  const [git, flake] = await Promise.all([
    dir === undefined ? Promise.resolve<GitFacts>({}) : readGitFacts(store.runner, dir),
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

/**
 * The directory whose git worktree was evaluated: the file's, a local flake's (`.`, `./x`,
 * `/abs`, `path:…`, `git+file://…`), the working directory when only .drv paths were given, or
 * none when a flake elsewhere was evaluated (the working directory's commit would be wrong).
 */
export function worktreeOf(request: ProvenanceRequest, cwd = resolve()): string | undefined {
  if (request.file !== undefined) return dirname(resolve(cwd, request.file));
  const refs = (request.installables ?? []).map(flakeRefOf).filter((r): r is string => r !== undefined);
  if (refs.length === 0) return cwd;
  const dirs = refs.map((r) => localFlakeDir(r, cwd));
  return dirs.every((d) => d !== undefined) ? dirs[0] : undefined;
}

/** The directory of a local flake reference, or undefined for a flake elsewhere. */
export function localFlakeDir(ref: string, cwd: string): string | undefined {
  const path = ref.replace(/\?.*$/, '');
  for (const prefix of ['path:', 'git+file://'])
    if (path.startsWith(prefix)) return resolve(cwd, path.slice(prefix.length));
  return path.startsWith('.') || path.startsWith('/') ? resolve(cwd, path) : undefined;
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
