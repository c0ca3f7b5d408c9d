// A local stand-in for GitHub's artifact service (Twirp API, signed blob URLs, REST API) that the
// real @actions/artifact client talks to, and that fails on demand.
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { GitHubArtifactTransport } from '../../src/transport/github.js';

/** A failure the server injects until cleared (or `times` requests have failed). */
export type Fault =
  /** Twirp calls (optionally one method) answer 500, `times` times, then succeed. */
  | { kind: 'twirp-5xx'; times: number; method?: string }
  /** Blob uploads (Put Block) answer 500, `times` times, then succeed. */
  | { kind: 'blob-5xx'; times: number }
  /** Signed URLs are rejected as Azure does when a SAS is expired or forged (403). */
  | { kind: 'dead-signed-url' }
  /** Every authenticated call answers 401, as for an expired runtime token or revoked PAT. */
  | { kind: 'expired-token' }
  /** Downloads serve the blob with one byte flipped (same length). */
  | { kind: 'alter-download' }
  /** Downloads serve only the first half of the blob (with a matching Content-Length). */
  | { kind: 'truncate-download' };

/** One run of the fake repository: GitHub's numeric run id and the service's backend id. */
export interface FakeRun {
  readonly runId: number;
  readonly backendId: string;
  /** The workflow file it runs (`.github/workflows/ci.yml`). */
  readonly workflow: string;
  /** The branch it ran on (`head_branch`). */
  readonly branch: string;
  readonly headSha: string;
  readonly event: string;
  /** The repository its commit came from (`head_repository`): a fork's for a fork's pull request. */
  readonly headRepository: string;
  readonly createdAt: Date;
  /** `in_progress` until `finishRun`, then `completed`. */
  status: 'in_progress' | 'completed';
  /** null while in progress; `success`, `failure`, `cancelled`, … once completed. */
  conclusion: string | null;
}

/** What a new run is (defaults: the `ci.yml` workflow, on `main`, pushed, in progress). */
export interface RunOptions {
  readonly workflow?: string;
  readonly branch?: string;
  readonly event?: string;
  /** `owner/name` of a fork the run's commit came from (default: this repository). */
  readonly headRepository?: string;
}

/** An artifact as the service stores it. */
export interface StoredArtifact {
  readonly id: number;
  readonly name: string;
  readonly runBackendId: string;
  readonly jobBackendId: string;
  readonly signature: string;
  blocks: Map<string, Buffer>;
  blob: Buffer | undefined;
  contentType: string;
  size: number;
  digest: string | undefined;
  finalized: boolean;
  createdAt: Date;
  /** Past its retention: still listed (`expired: true`), no longer downloadable (410). */
  expired: boolean;
}

/** A request the server saw (for assertions on retries). */
export interface SeenRequest {
  readonly method: string;
  readonly path: string;
  readonly status: number;
}

const TWIRP = '/twirp/github.actions.results.api.v1.ArtifactService/';

function base64url(value: string): string {
  return Buffer.from(value).toString('base64url');
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

function sendJson(res: ServerResponse, status: number, body: unknown): number {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
  return status;
}

function twirpError(res: ServerResponse, status: number, code: string, msg: string): number {
  return sendJson(res, status, { code, msg });
}

function azureError(res: ServerResponse, status: number, code: string, message: string): number {
  const xml = `<?xml version="1.0" encoding="utf-8"?><Error><Code>${code}</Code><Message>${message}</Message></Error>`;
  res.writeHead(status, {
    'content-type': 'application/xml',
    'x-ms-error-code': code,
    'x-ms-request-id': randomUUID(),
    'content-length': Buffer.byteLength(xml),
  });
  res.end(xml);
  return status;
}

/** A fake artifact service over node:http on 127.0.0.1 (random port), for one repository. */
export class FakeArtifactServer {
  /** `owner/name` of the only repository the REST API knows. */
  readonly repository = 'nix-plan-tests/demo';
  /** Its default branch (`GET /repos/{owner}/{repo}`). */
  readonly defaultBranch = 'main';
  readonly requests: SeenRequest[] = [];
  private readonly faults: Fault[] = [];
  private readonly runs = new Map<number, FakeRun>();
  private readonly runtimeTokens = new Map<string, { run: FakeRun; jobBackendId: string }>();
  private readonly apiTokens = new Set<string>();
  private readonly stored: StoredArtifact[] = [];
  private nextRunId = 7000;
  private nextArtifactId = 100;

  private constructor(
    private readonly server: Server,
    /** Base URL, e.g. `http://127.0.0.1:41234`. */
    readonly url: string,
  ) {}

  /**
   * Points the real `@actions/artifact` client at this server and gives the transport over it for
   * a job of any run (its temp dir from `tempDir`). @actions/github reads GITHUB_API_URL when it is
   * first imported, so the variables are set before the client is imported, here.
   */
  async githubTransports(tempDir: () => string): Promise<(run: FakeRun) => GitHubArtifactTransport> {
    process.env['GITHUB_API_URL'] = this.url;
    process.env['GITHUB_SERVER_URL'] = 'https://github.com';
    const { DefaultArtifactClient } = await import('@actions/artifact');
    const { GitHubArtifactTransport } = await import('../../src/transport/github.js');
    return (run) =>
      new GitHubArtifactTransport(new DefaultArtifactClient(), {
        serverUrl: 'https://github.com',
        repository: this.repository,
        runId: String(run.runId),
        tempDir: tempDir(),
      });
  }

  /** Starts a server on a random local port. */
  static async start(): Promise<FakeArtifactServer> {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    const self = new FakeArtifactServer(server, `http://127.0.0.1:${port}`);
    server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      self.handle(req, res).then(
        (status) => self.requests.push({ method: req.method ?? '', path: req.url ?? '', status }),
        (e: unknown) => {
          if (!res.headersSent) twirpError(res, 500, 'internal', String(e));
          else res.destroy();
        },
      );
    });
    return self;
  }

  /** Stops the server. */
  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** A new workflow run of the repository, in progress (runs made later are newer). */
  newRun(options: RunOptions = {}): FakeRun {
    const runId = this.nextRunId++;
    const run: FakeRun = {
      runId,
      backendId: randomUUID(),
      workflow: options.workflow ?? '.github/workflows/ci.yml',
      branch: options.branch ?? this.defaultBranch,
      headSha: createHash('sha1').update(String(runId)).digest('hex'),
      event: options.event ?? 'push',
      headRepository: options.headRepository ?? this.repository,
      // Strictly increasing, as GitHub's creation times of successive runs are.
      createdAt: new Date(Date.UTC(2026, 0, 1) + runId * 60_000),
      status: 'in_progress',
      conclusion: null,
    };
    this.runs.set(run.runId, run);
    return run;
  }

  /** Completes a run with a conclusion (`success`, `failure`, …). */
  finishRun(run: FakeRun, conclusion: string): void {
    run.status = 'completed';
    run.conclusion = conclusion;
  }

  /** Marks an artifact expired, as when its retention period ends. */
  expire(artifact: StoredArtifact): void {
    artifact.expired = true;
  }

  /**
   * The ACTIONS_RUNTIME_TOKEN a job of `run` gets: a JWT whose `scp` claim carries
   * `Actions.Results:<runBackendId>:<jobBackendId>` (the client reads its ids from there).
   */
  runtimeToken(run: FakeRun): string {
    const jobBackendId = randomUUID();
    const header = base64url(JSON.stringify({ alg: 'none', typ: 'JWT' }));
    const payload = base64url(
      JSON.stringify({
        scp: `Actions.GenericRead:${run.backendId} Actions.Results:${run.backendId}:${jobBackendId}`,
        exp: Math.floor(Date.now() / 1000) + 3600,
        jti: randomUUID(),
      }),
    );
    const token = `${header}.${payload}.${randomBytes(16).toString('base64url')}`;
    this.runtimeTokens.set(token, { run, jobBackendId });
    return token;
  }

  /** A token for the REST API with `actions: read` on the repository (like GITHUB_TOKEN). */
  apiToken(): string {
    const token = `ghs_${randomBytes(18).toString('hex')}`;
    this.apiTokens.add(token);
    return token;
  }

  /** The environment a JavaScript action step of `run` sees, pointing every client at this server. */
  jobEnv(run: FakeRun): Record<string, string> {
    return {
      ACTIONS_RUNTIME_TOKEN: this.runtimeToken(run),
      ACTIONS_RESULTS_URL: `${this.url}/`,
      GITHUB_API_URL: this.url,
      GITHUB_SERVER_URL: 'https://github.com',
      GITHUB_REPOSITORY: this.repository,
      GITHUB_RUN_ID: String(run.runId),
      GITHUB_WORKFLOW_REF: `${this.repository}/${run.workflow}@refs/heads/${run.branch}`,
      GITHUB_REF: `refs/heads/${run.branch}`,
      GITHUB_SHA: run.headSha,
    };
  }

  /** Injects a fault (several may be active). */
  inject(fault: Fault): void {
    this.faults.push({ ...fault });
  }

  /** Removes every fault. */
  clearFaults(): void {
    this.faults.length = 0;
  }

  /** Finalized artifacts of a run. */
  artifacts(run: FakeRun): StoredArtifact[] {
    return this.stored.filter((a) => a.runBackendId === run.backendId && a.finalized);
  }

  private active(kind: Fault['kind'], method?: string): Fault | undefined {
    const i = this.faults.findIndex(
      (f) => f.kind === kind && (f.kind !== 'twirp-5xx' || f.method === undefined || f.method === method),
    );
    const fault = this.faults[i];
    if (fault === undefined) return undefined;
    if ('times' in fault) {
      fault.times -= 1;
      if (fault.times <= 0) this.faults.splice(i, 1);
    }
    return fault;
  }

  private signedUrl(artifact: StoredArtifact): string {
    const expiry = new Date(Date.now() + 3600_000).toISOString();
    return `${this.url}/blob/${artifact.id}/${encodeURIComponent(artifact.name)}?sv=2024-08-04&se=${encodeURIComponent(expiry)}&sp=rcw&sig=${artifact.signature}`;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<number> {
    const url = new URL(req.url ?? '/', this.url);
    if (url.pathname.startsWith(TWIRP) && req.method === 'POST') {
      return this.twirp(url.pathname.slice(TWIRP.length), req, res);
    }
    if (url.pathname.startsWith('/blob/')) return this.blob(url, req, res);
    if (url.pathname.startsWith('/repos/') && req.method === 'GET') return this.rest(url, req, res);
    return sendJson(res, 404, { message: 'Not Found' });
  }

  private async twirp(method: string, req: IncomingMessage, res: ServerResponse): Promise<number> {
    const body = JSON.parse((await readBody(req)).toString('utf8')) as Record<string, unknown>;
    if (this.active('twirp-5xx', method)) return twirpError(res, 500, 'internal', 'injected server error');
    const auth = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    const caller = auth === undefined ? undefined : this.runtimeTokens.get(auth);
    if (caller === undefined || this.active('expired-token')) {
      return twirpError(res, 401, 'unauthenticated', 'token expired or invalid');
    }
    if (body['workflow_run_backend_id'] !== caller.run.backendId) {
      return twirpError(res, 403, 'permission_denied', 'workflow run does not match the token');
    }
    const inRun = this.stored.filter((a) => a.runBackendId === caller.run.backendId);
    const name = typeof body['name'] === 'string' ? body['name'] : undefined;
    switch (method) {
      case 'CreateArtifact': {
        if (name === undefined || name === '')
          return twirpError(res, 400, 'invalid_argument', 'name is required');
        if (inRun.some((a) => a.name === name)) {
          return twirpError(
            res,
            409,
            'already_exists',
            'an artifact with this name already exists on the workflow run',
          );
        }
        const mime = body['mime_type'];
        const artifact: StoredArtifact = {
          id: this.nextArtifactId++,
          name,
          runBackendId: caller.run.backendId,
          jobBackendId: caller.jobBackendId,
          signature: randomBytes(12).toString('base64url'),
          blocks: new Map(),
          blob: undefined,
          contentType: typeof mime === 'string' ? mime : 'application/octet-stream',
          size: 0,
          digest: undefined,
          finalized: false,
          createdAt: new Date(),
          expired: false,
        };
        this.stored.push(artifact);
        return sendJson(res, 200, { ok: true, signed_upload_url: this.signedUrl(artifact) });
      }
      case 'FinalizeArtifact': {
        const artifact = inRun.find((a) => a.name === name && !a.finalized);
        if (artifact?.blob === undefined)
          return twirpError(res, 404, 'not_found', 'no uploaded artifact to finalize');
        if (String(body['size']) !== String(artifact.blob.length)) {
          return twirpError(
            res,
            400,
            'invalid_argument',
            `size ${String(body['size'])} != ${artifact.blob.length}`,
          );
        }
        artifact.size = artifact.blob.length;
        artifact.digest = typeof body['hash'] === 'string' ? body['hash'] : undefined;
        artifact.finalized = true;
        return sendJson(res, 200, { ok: true, artifact_id: String(artifact.id) });
      }
      case 'ListArtifacts': {
        const nameFilter = body['name_filter'];
        const idFilter = body['id_filter'];
        const found = inRun.filter(
          (a) =>
            a.finalized &&
            !a.expired &&
            (nameFilter === undefined || a.name === nameFilter) &&
            (typeof idFilter !== 'string' || String(a.id) === idFilter),
        );
        return sendJson(res, 200, {
          artifacts: found.map((a) => ({
            workflow_run_backend_id: a.runBackendId,
            workflow_job_run_backend_id: a.jobBackendId,
            database_id: String(a.id),
            name: a.name,
            size: String(a.size),
            created_at: a.createdAt.toISOString(),
            ...(a.digest === undefined ? {} : { digest: a.digest }),
          })),
        });
      }
      case 'GetSignedArtifactURL': {
        const artifact = inRun.find((a) => a.name === name && a.finalized && !a.expired);
        if (artifact === undefined) return twirpError(res, 404, 'not_found', 'artifact not found');
        return sendJson(res, 200, { signed_url: this.signedUrl(artifact) });
      }
      default:
        return twirpError(res, 404, 'bad_route', `no such method ${method}`);
    }
  }

  private async blob(url: URL, req: IncomingMessage, res: ServerResponse): Promise<number> {
    const id = Number(url.pathname.split('/')[2]);
    const artifact = this.stored.find((a) => a.id === id);
    const body = await readBody(req);
    if (artifact === undefined)
      return azureError(res, 404, 'BlobNotFound', 'The specified blob does not exist.');
    if (url.searchParams.get('sig') !== artifact.signature || this.active('dead-signed-url')) {
      return azureError(res, 403, 'AuthenticationFailed', 'Signature not valid in the specified time frame');
    }
    const headers = { 'x-ms-request-id': randomUUID(), 'x-ms-version': '2024-08-04', 'content-length': '0' };
    const comp = url.searchParams.get('comp');
    if (req.method === 'PUT' && comp === 'block') {
      if (this.active('blob-5xx')) return azureError(res, 500, 'InternalError', 'injected server error');
      const blockId = url.searchParams.get('blockid');
      if (blockId === null) return azureError(res, 400, 'InvalidQueryParameterValue', 'blockid missing');
      artifact.blocks.set(blockId, body);
      res.writeHead(201, { ...headers, 'content-md5': createHash('md5').update(body).digest('base64') });
      res.end();
      return 201;
    }
    if (req.method === 'PUT' && comp === 'blocklist') {
      const ids = [...body.toString('utf8').matchAll(/<(Latest|Committed|Uncommitted)>([^<]*)<\/\1>/g)].map(
        (m) => m[2] ?? '',
      );
      const parts: Buffer[] = [];
      for (const blockId of ids) {
        const part = artifact.blocks.get(blockId);
        if (part === undefined) return azureError(res, 400, 'InvalidBlockList', `unknown block ${blockId}`);
        parts.push(part);
      }
      artifact.blob = Buffer.concat(parts);
      artifact.blocks.clear();
      const type = req.headers['x-ms-blob-content-type'];
      if (typeof type === 'string') artifact.contentType = type;
      res.writeHead(201, {
        ...headers,
        etag: `"0x${randomBytes(8).toString('hex')}"`,
        'last-modified': new Date().toUTCString(),
      });
      res.end();
      return 201;
    }
    if (req.method === 'PUT' && comp === null) {
      // Put Blob: a single-shot upload (the client uses blocks today; accept both).
      artifact.blob = body;
      res.writeHead(201, headers);
      res.end();
      return 201;
    }
    if (req.method === 'GET' && artifact.blob !== undefined) {
      let bytes = artifact.blob;
      if (this.active('alter-download')) {
        bytes = Buffer.from(bytes);
        const i = Math.floor(bytes.length / 2);
        bytes[i] = (bytes[i] ?? 0) ^ 0xff;
      }
      if (this.active('truncate-download')) bytes = bytes.subarray(0, Math.floor(bytes.length / 2));
      res.writeHead(200, {
        'content-type': artifact.contentType,
        'content-length': bytes.length,
        'content-disposition': `attachment; filename="${artifact.name}"`,
        'x-ms-request-id': randomUUID(),
      });
      res.end(bytes);
      return 200;
    }
    return azureError(res, 404, 'BlobNotFound', 'The specified blob does not exist.');
  }

  private rest(url: URL, req: IncomingMessage, res: ServerResponse): number {
    const token = /^(?:token|bearer) (.+)$/i.exec(req.headers.authorization ?? '')?.[1];
    if (token === undefined || !this.apiTokens.has(token) || this.active('expired-token')) {
      return sendJson(res, 401, { message: 'Bad credentials', status: '401' });
    }
    const notFound = (): number => sendJson(res, 404, { message: 'Not Found', status: '404' });
    if (url.pathname === `/repos/${this.repository}`) {
      return sendJson(res, 200, {
        full_name: this.repository,
        name: this.repository.split('/')[1],
        default_branch: this.defaultBranch,
        private: true,
      });
    }
    const prefix = `/repos/${this.repository}/actions/`;
    if (!url.pathname.startsWith(prefix)) return notFound();
    const rest = url.pathname.slice(prefix.length).split('/');
    // As GitHub pages its lists: per_page (default 30, at most 100) and page (from 1).
    const perPage = Math.min(100, Number(url.searchParams.get('per_page') ?? '30') || 30);
    const page = Math.max(1, Number(url.searchParams.get('page') ?? '1') || 1);
    const paged = <T>(items: T[]): T[] => items.slice((page - 1) * perPage, page * perPage);
    if (rest[0] === 'workflows' && rest[2] === 'runs' && rest.length === 3) {
      // The workflow by file name (`ci.yml`) or by its id; unknown: 404, as GitHub answers.
      const id = decodeURIComponent(rest[1] ?? '');
      const all = [...this.runs.values()];
      const workflows = new Set(all.map((r) => r.workflow));
      const workflow = [...workflows].find(
        (w) => w.split('/').pop() === id || String(this.workflowId(w)) === id,
      );
      if (workflow === undefined) return notFound();
      const branch = url.searchParams.get('branch');
      const status = url.searchParams.get('status');
      const event = url.searchParams.get('event');
      const runs = all
        .filter(
          (r) =>
            r.workflow === workflow &&
            (branch === null || r.branch === branch) &&
            (event === null || r.event === event) &&
            (status === null || r.status === status || r.conclusion === status),
        )
        .sort((a, b) => b.createdAt.getTime() - a.createdAt.getTime());
      return sendJson(res, 200, {
        total_count: runs.length,
        workflow_runs: paged(runs).map((r) => ({
          id: r.runId,
          name: workflow.split('/').pop(),
          head_branch: r.branch,
          head_sha: r.headSha,
          path: r.workflow,
          run_number: r.runId - 6999,
          run_attempt: 1,
          event: r.event,
          status: r.status,
          repository: { full_name: this.repository },
          head_repository: { full_name: r.headRepository },
          conclusion: r.conclusion,
          workflow_id: this.workflowId(r.workflow),
          created_at: r.createdAt.toISOString(),
          updated_at: r.createdAt.toISOString(),
          html_url: `https://github.com/${this.repository}/actions/runs/${r.runId}`,
        })),
      });
    }
    if (rest[0] === 'runs' && rest[2] === 'artifacts' && rest.length === 3) {
      const run = this.runs.get(Number(rest[1]));
      if (run === undefined) return notFound();
      const name = url.searchParams.get('name');
      const found = this.artifacts(run).filter((a) => name === null || a.name === name);
      return sendJson(res, 200, {
        total_count: found.length,
        artifacts: paged(found).map((a) => ({
          id: a.id,
          name: a.name,
          size_in_bytes: a.size,
          expired: a.expired,
          created_at: a.createdAt.toISOString(),
          digest: a.digest ?? null,
          archive_download_url: `${this.url}${prefix}artifacts/${a.id}/zip`,
          workflow_run: { id: run.runId, head_branch: run.branch, head_sha: run.headSha },
        })),
      });
    }
    if (rest[0] === 'artifacts' && rest.length === 3 && rest[2] === 'zip') {
      const artifact = this.stored.find((a) => a.id === Number(rest[1]) && a.finalized);
      if (artifact === undefined) return notFound();
      if (artifact.expired) return sendJson(res, 410, { message: 'Artifact has expired', status: '410' });
      res.writeHead(302, { location: this.signedUrl(artifact), 'content-length': '0' });
      res.end();
      return 302;
    }
    return notFound();
  }

  /** A stable numeric id per workflow file, as GitHub gives each workflow one. */
  private workflowId(workflow: string): number {
    return 100_000 + (createHash('sha1').update(workflow).digest().readUInt32BE(0) % 100_000);
  }
}
