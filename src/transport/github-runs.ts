// Finding the plan a new one should be compared with: the most recent artifact of a name from a
// successful run of this workflow on the repository's default branch. @actions/artifact finds an
// artifact only in a run it is given, so the runs are listed here, through GitHub's REST API
// (the same API and token the artifact client's cross-run downloads use).
import { TransportError, splitRepository } from './transport.js';

/** Where to look, and with what. */
export interface LatestQuery {
  /** `https://api.github.com` (GITHUB_API_URL). */
  readonly apiUrl: string;
  /** `owner/name`. */
  readonly repository: string;
  /** A token with `actions: read` (and the repository's metadata, which every token has). */
  readonly token: string;
  /** GITHUB_WORKFLOW_REF: `owner/name/.github/workflows/ci.yml@refs/heads/main`. */
  readonly workflowRef: string;
  /** The artifact name to find. */
  readonly name: string;
  /** The current run, never a candidate. */
  readonly currentRunId?: number | undefined;
  /** Runs looked at, newest first, before giving up (default 20). */
  readonly maxRuns?: number | undefined;
}

/** The artifact found, and the run it came from. */
export interface LatestArtifact {
  readonly runId: number;
  readonly artifactId: number;
  readonly runUrl: string;
  readonly branch: string;
  readonly headSha: string;
  /** When the run was created (RFC 3339). */
  readonly createdAt: string;
}

/** `fetch` as the finder uses it (tests pass their own; the default is Node's). */
export type Fetch = (url: string, init: { headers: Record<string, string> }) => Promise<Response>;

/** The workflow file (`ci.yml`) of a GITHUB_WORKFLOW_REF. */
export function workflowFile(workflowRef: string): string {
  const m = /\/\.github\/workflows\/([^/@]+)@/.exec(workflowRef);
  if (m?.[1] === undefined)
    throw new TransportError(
      `cannot tell this run's workflow from GITHUB_WORKFLOW_REF "${workflowRef}" (expected owner/repo/.github/workflows/FILE@REF)`,
    );
  return m[1];
}

async function getJson(fetcher: Fetch, url: string, token: string, what: string): Promise<unknown> {
  let response: Response;
  try {
    response = await fetcher(url, {
      headers: {
        authorization: `Bearer ${token}`,
        accept: 'application/vnd.github+json',
        'x-github-api-version': '2022-11-28',
        'user-agent': 'nix-plan',
      },
    });
  } catch (e) {
    throw new TransportError(`${what}: cannot reach the GitHub API (${(e as Error).message})`, { cause: e });
  }
  if (response.ok) return response.json();
  const hint =
    response.status === 401 || response.status === 403
      ? 'the token was refused: give the job `permissions: actions: read` and pass github-token'
      : response.status === 404
        ? 'not found (is the token for this repository?)'
        : `HTTP ${response.status}`;
  throw new TransportError(`${what} failed: ${hint}`);
}

interface RunsPage {
  workflow_runs?: {
    id?: unknown;
    event?: unknown;
    head_branch?: unknown;
    head_sha?: unknown;
    html_url?: unknown;
    created_at?: unknown;
    head_repository?: { full_name?: unknown } | null;
  }[];
}

/**
 * The events whose runs run the default branch's own commit: a push to it, a schedule, a manual
 * dispatch. GitHub's `branch` filter matches a run's `head_branch`, which for a pull request is
 * the branch it comes from — a fork's branch named `main` too — so a run of any other event
 * (`pull_request`, `pull_request_target`, `workflow_run` after a fork's run, …) is never taken
 * for the default branch's plan, whatever its branch says.
 */
export const DEFAULT_BRANCH_EVENTS: ReadonlySet<string> = new Set(['push', 'schedule', 'workflow_dispatch']);

/** Whether `run` ran this repository's default branch `branch` itself (see DEFAULT_BRANCH_EVENTS). */
function onDefaultBranch(
  run: NonNullable<RunsPage['workflow_runs']>[number],
  repository: string,
  branch: string,
): boolean {
  const head = run.head_repository?.full_name;
  return (
    typeof run.event === 'string' &&
    DEFAULT_BRANCH_EVENTS.has(run.event) &&
    run.head_branch === branch &&
    typeof head === 'string' &&
    head.toLowerCase() === repository.toLowerCase()
  );
}
interface ArtifactsPage {
  artifacts?: { id?: unknown; name?: unknown; expired?: unknown }[];
}

/**
 * The newest non-expired artifact named `query.name` among the latest successful runs of this
 * workflow on the default branch (pushed to it, scheduled or dispatched there, in this repository:
 * never a pull request's run); undefined when none has one (a first run, or all expired).
 */
export async function findLatestArtifact(
  query: LatestQuery,
  fetcher: Fetch = (url, init) => fetch(url, init),
): Promise<LatestArtifact | undefined> {
  const { owner, repo } = splitRepository(query.repository);
  const base = `${query.apiUrl.replace(/\/+$/, '')}/repos/${owner}/${repo}`;
  const repoInfo = (await getJson(fetcher, base, query.token, 'reading the repository')) as {
    default_branch?: unknown;
  };
  const branch = repoInfo.default_branch;
  if (typeof branch !== 'string' || branch === '')
    throw new TransportError('reading the repository gave no default branch');
  const file = encodeURIComponent(workflowFile(query.workflowRef));
  const max = query.maxRuns ?? 20;
  // A page of 100: pull requests' runs listed under the branch's name are passed over, and should
  // not crowd the default branch's own runs out of the `max` looked at.
  const runs = (await getJson(
    fetcher,
    `${base}/actions/workflows/${file}/runs?branch=${encodeURIComponent(branch)}&status=success&exclude_pull_requests=true&per_page=100`,
    query.token,
    `listing the successful runs of ${decodeURIComponent(file)} on ${branch}`,
  )) as RunsPage;
  const candidates = (runs.workflow_runs ?? [])
    .filter((run) => onDefaultBranch(run, `${owner}/${repo}`, branch))
    .slice(0, max);
  for (const run of candidates) {
    if (typeof run.id !== 'number' || run.id === query.currentRunId) continue;
    const page = (await getJson(
      fetcher,
      `${base}/actions/runs/${run.id}/artifacts?name=${encodeURIComponent(query.name)}&per_page=100`,
      query.token,
      `listing the artifacts of run ${run.id}`,
    )) as ArtifactsPage;
    const usable = (page.artifacts ?? []).filter(
      (a): a is { id: number; name: string; expired: boolean } =>
        typeof a.id === 'number' && a.name === query.name && a.expired !== true,
    );
    const newest = usable.sort((a, b) => b.id - a.id)[0];
    if (newest === undefined) continue;
    return {
      runId: run.id,
      artifactId: newest.id,
      runUrl: typeof run.html_url === 'string' ? run.html_url : '',
      branch,
      headSha: typeof run.head_sha === 'string' ? run.head_sha : '',
      createdAt: typeof run.created_at === 'string' ? run.created_at : '',
    };
  }
  return undefined;
}
