// Where a plan came from, made from facts the adapters read: the GitHub Actions run, the git
// worktree, the evaluated flake's lock. Pure: values in, a `Provenance` (manifest v2) out.
//
// Every value is checked against the manifest's own rules as it is taken, so a writer never emits
// a field its reader would refuse; a value that does not fit is left out and named in `dropped`
// (the caller warns), rather than failing an evaluation over, say, an odd branch name.
import { NixPlanError } from './errors.js';
import { validateProvenance } from './bundle/manifest-schema.js';
import type { FlakeInputProvenance, FlakeProvenance, Provenance } from './bundle/manifest-types.js';

/** `date` as nix-plan writes times: RFC 3339, UTC, whole seconds (`2026-12-06T10:17:30Z`). */
export function rfc3339(date: Date): string {
  if (Number.isNaN(date.getTime())) throw new NixPlanError('internal', 'cannot write an invalid date');
  return `${date.toISOString().slice(0, 19)}Z`;
}

/** Reads one environment variable (the Action's `io.env`, or `process.env` from the CLI). */
export type EnvLookup = (name: string) => string | undefined;

/** The GitHub Actions variables provenance is made from. */
export const GITHUB_ENV = {
  Actions: 'GITHUB_ACTIONS',
  Repository: 'GITHUB_REPOSITORY',
  Sha: 'GITHUB_SHA',
  Ref: 'GITHUB_REF',
  WorkflowRef: 'GITHUB_WORKFLOW_REF',
  ServerUrl: 'GITHUB_SERVER_URL',
  RunId: 'GITHUB_RUN_ID',
  RunAttempt: 'GITHUB_RUN_ATTEMPT',
} as const;

/**
 * What a GitHub Actions run says about itself: repository, commit, ref, workflow, and the run's
 * URL with its attempt. Empty outside Actions (`GITHUB_ACTIONS` is not `true`).
 */
export function githubProvenance(env: EnvLookup): Partial<Record<keyof Provenance, unknown>> {
  if (env(GITHUB_ENV.Actions) !== 'true') return {};
  const repository = env(GITHUB_ENV.Repository);
  const server = (env(GITHUB_ENV.ServerUrl) ?? 'https://github.com').replace(/\/+$/, '');
  const runId = env(GITHUB_ENV.RunId);
  const attempt = env(GITHUB_ENV.RunAttempt);
  const attemptNumber = attempt !== undefined && /^[1-9]\d{0,8}$/.test(attempt) ? Number(attempt) : undefined;
  return {
    repository,
    commit: env(GITHUB_ENV.Sha),
    ref: env(GITHUB_ENV.Ref),
    workflow: env(GITHUB_ENV.WorkflowRef),
    ...(repository !== undefined &&
      runId !== undefined &&
      /^\d+$/.test(runId) && {
        runUrl: `${server}/${repository}/actions/runs/${runId}${attemptNumber === undefined ? '' : `/attempts/${attemptNumber}`}`,
      }),
    runAttempt: attemptNumber,
  };
}

/** What git says about the worktree that was evaluated (see src/nix/git.ts). */
export interface GitFacts {
  /** `git rev-parse HEAD`. */
  readonly commit?: string | undefined;
  /** `git symbolic-ref HEAD` (undefined on a detached HEAD). */
  readonly ref?: string | undefined;
  /** `git status --porcelain` printed anything. */
  readonly dirty?: boolean | undefined;
  /** `git remote get-url origin`. */
  readonly remoteUrl?: string | undefined;
}

/**
 * A URL without credentials: `https://user:token@host/x` → `https://host/x`. An scp-like git
 * address (`git@host:owner/name`) has a user name but no secret, and is kept.
 */
export function withoutCredentials(url: string): string {
  return url.replace(/^([A-Za-z][A-Za-z0-9+.-]*:\/\/)[^/@]*@/, '$1');
}

/** Provenance from git facts (the CLI's). */
export function gitProvenance(git: GitFacts): Partial<Record<keyof Provenance, unknown>> {
  return {
    repository: git.remoteUrl === undefined ? undefined : withoutCredentials(git.remoteUrl),
    commit: git.commit,
    ref: git.ref,
    dirty: git.dirty,
  };
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function query(attrs: Record<string, unknown>, skip: readonly string[]): string {
  const params = Object.keys(attrs)
    .filter((k) => !skip.includes(k) && ['string', 'number', 'boolean'].includes(typeof attrs[k]))
    .sort()
    .map((k) => `${encodeURIComponent(k)}=${encodeURIComponent(String(attrs[k]))}`);
  return params.length === 0 ? '' : `?${params.join('&')}`;
}

/**
 * A lock file's `locked` attributes as a flake reference URL, in Nix's syntax for the common
 * types (`github:owner/repo/rev`, `git+https://…?rev=…`, `path:…`, `tarball+https://…`); other
 * types as `TYPE:?attrs`. `narHash` and `lastModified` are left out (recorded beside it), and
 * credentials are removed.
 */
export function lockedUrl(locked: Record<string, unknown>): string | undefined {
  const type = locked['type'];
  if (typeof type !== 'string') return undefined;
  const s = (k: string): string | undefined => (typeof locked[k] === 'string' ? locked[k] : undefined);
  const dropped = ['type', 'narHash', 'lastModified', '__final'];
  let url: string | undefined;
  switch (type) {
    case 'github':
    case 'gitlab':
    case 'sourcehut': {
      const owner = s('owner');
      const repo = s('repo');
      if (owner === undefined || repo === undefined) return undefined;
      const rev = s('rev') ?? s('ref');
      url = `${type}:${owner}/${repo}${rev === undefined ? '' : `/${rev}`}${query(locked, [...dropped, 'owner', 'repo', 'rev', 'ref'])}`;
      break;
    }
    case 'git':
    case 'mercurial':
    case 'tarball':
    case 'file': {
      const u = s('url');
      if (u === undefined) return undefined;
      const prefix = { git: 'git+', mercurial: 'hg+', tarball: 'tarball+', file: 'file+' }[type];
      url = `${prefix}${u}${query(locked, [...dropped, 'url'])}`;
      break;
    }
    case 'path': {
      const p = s('path');
      if (p === undefined) return undefined;
      url = `path:${p}${query(locked, [...dropped, 'path'])}`;
      break;
    }
    case 'indirect': {
      const id = s('id');
      if (id === undefined) return undefined;
      url = `flake:${id}${[s('ref'), s('rev')]
        .filter((x) => x !== undefined)
        .map((x) => `/${x}`)
        .join('')}`;
      break;
    }
    default:
      url = `${type}:${query(locked, dropped)}`;
  }
  return withoutCredentials(url);
}

/**
 * The evaluated flake and every locked node of its lock file, from `nix flake metadata --json`
 * (the same shape from Nix 2.8 to 2.34): `url` is the locked URL Nix prints; each input is a lock
 * node other than the root, by its node name, sorted. Undefined when the JSON is not metadata.
 */
export function flakeProvenance(metadata: unknown): FlakeProvenance | undefined {
  if (!isRecord(metadata) || typeof metadata['url'] !== 'string') return undefined;
  const inputs: FlakeInputProvenance[] = [];
  const locks = metadata['locks'];
  const nodes = isRecord(locks) && isRecord(locks['nodes']) ? locks['nodes'] : {};
  const rootName = isRecord(locks) && typeof locks['root'] === 'string' ? locks['root'] : 'root';
  for (const [name, node] of Object.entries(nodes)) {
    if (name === rootName || !isRecord(node) || !isRecord(node['locked'])) continue;
    const locked = node['locked'];
    const url = lockedUrl(locked);
    if (url === undefined) continue;
    inputs.push({
      name,
      url,
      ...(typeof locked['narHash'] === 'string' && { narHash: locked['narHash'] }),
      ...(typeof locked['lastModified'] === 'number' && { lastModified: locked['lastModified'] }),
    });
  }
  inputs.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return { url: withoutCredentials(metadata['url']), inputs };
}

/**
 * Combines candidate values, first source first (a later source fills only what earlier ones
 * left out), keeping each value that passes the manifest's rules and naming the others.
 */
export function combineProvenance(...sources: Partial<Record<keyof Provenance, unknown>>[]): {
  provenance: Provenance;
  dropped: string[];
} {
  const candidate: Record<string, unknown> = {};
  for (const source of sources)
    for (const [k, v] of Object.entries(source)) if (v !== undefined && !(k in candidate)) candidate[k] = v;
  const provenance: Provenance = {};
  const dropped: string[] = [];
  for (const [k, v] of Object.entries(candidate)) {
    try {
      Object.assign(provenance, validateProvenance({ [k]: v }));
    } catch (e) {
      dropped.push(`${k} (${(e as Error).message.replace(/^bundle manifest: /, '')})`);
    }
  }
  return { provenance, dropped };
}
