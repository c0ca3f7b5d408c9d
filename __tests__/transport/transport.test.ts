// The artifact transports: the real @actions/artifact client against a local fake of GitHub's
// artifact service (with injected faults), and the local-directory transport.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { FakeArtifactServer, type FakeRun } from '../support/artifact-server.js';
import { LimitError } from '../../src/core/errors.js';
import { LocalDirectoryTransport } from '../../src/transport/local.js';
import { TransportError, type ArtifactTransport } from '../../src/transport/transport.js';
import type { GitHubArtifactTransport as GitHubTransportClass } from '../../src/transport/github.js';

const sha = (b: Uint8Array): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** Every scratch dir made, removed when the file's tests are done. */
const scratches: string[] = [];
afterAll(() => {
  for (const d of scratches) rmSync(d, { recursive: true, force: true });
});

function scratch(): string {
  const dir = mkdtempSync(join(tmpdir(), 'nix-plan-transport-'));
  scratches.push(dir);
  return dir;
}

/** A bundle-sized file with a name unlike the artifact's (the transport must stage it). */
function sampleFile(bytes = randomBytes(300_000)): { path: string; bytes: Buffer } {
  const path = join(scratch(), 'out.nixplan');
  writeFileSync(path, bytes);
  return { path, bytes };
}

describe('GitHubArtifactTransport over the real client and a fake artifact service', () => {
  let server: FakeArtifactServer;
  let makeTransport: (run: FakeRun) => GitHubTransportClass;
  const saved = { ...process.env };

  /** Points the client at the server as the runner would for a job of `run`. */
  function asJobOf(run: FakeRun): void {
    Object.assign(process.env, server.jobEnv(run));
  }

  const write = process.stdout.write.bind(process.stdout);

  beforeAll(async () => {
    // The client logs every request as workflow commands on stdout; keep the test output readable.
    process.stdout.write = () => true;
    server = await FakeArtifactServer.start();
    makeTransport = await server.githubTransports(scratch);
  });

  afterAll(async () => {
    process.stdout.write = write;
    process.env = saved;
    await server.close();
  });

  test('uploads one file unzipped and downloads it in a later job of the same run', async () => {
    const run = server.newRun();
    const { path, bytes } = sampleFile();
    asJobOf(run);
    const up = await makeTransport(run).upload(path, 'plan.nixplan', { retentionDays: 3 });
    expect(up.digest).toBe(sha(bytes));
    expect(up.size).toBe(bytes.length);
    expect(up.url).toBe(
      `https://github.com/${server.repository}/actions/runs/${run.runId}/artifacts/${up.id}`,
    );
    const [stored] = server.artifacts(run);
    expect(stored?.name).toBe('plan.nixplan');
    expect(stored?.blob?.equals(bytes)).toBe(true); // not zipped, not recompressed
    expect(stored?.digest).toBe(sha(bytes));

    asJobOf(run); // a new job: a new runtime token for the same run
    const dest = scratch();
    const down = await makeTransport(run).download({ name: 'plan.nixplan', expectedDigest: up.digest }, dest);
    expect(down.path).toBe(join(dest, 'plan.nixplan'));
    expect(readFileSync(down.path).equals(bytes)).toBe(true);
    expect(readdirSync(dest)).toEqual(['plan.nixplan']);
  });

  test('downloads from another run through the REST API with a token (findBy)', async () => {
    const first = server.newRun();
    const { path, bytes } = sampleFile();
    asJobOf(first);
    const up = await makeTransport(first).upload(path, 'release.nixplan');
    const second = server.newRun();
    asJobOf(second);
    const dest = scratch();
    const down = await makeTransport(second).download(
      {
        name: 'release.nixplan',
        runId: first.runId,
        repository: server.repository,
        token: server.apiToken(),
      },
      dest,
    );
    expect(down.digest).toBe(up.digest);
    expect(readFileSync(down.path).equals(bytes)).toBe(true);
  });

  test('an artifact larger than the room for it is refused before a byte is downloaded', async () => {
    // Another run's artifact is proven only once it is here (trusted keys): its size is the
    // uploader's choice, and the disk it would fill is this runner's.
    const first = server.newRun();
    asJobOf(first);
    await makeTransport(first).upload(sampleFile().path, 'huge.nixplan');
    const [stored] = server.artifacts(first);
    stored!.size = 2 ** 60; // as the service reports it
    const second = server.newRun();
    asJobOf(second);
    const dest = scratch();
    const down = makeTransport(second).download(
      { name: 'huge.nixplan', runId: first.runId, repository: server.repository, token: server.apiToken() },
      dest,
    );
    await expect(down).rejects.toThrow(
      /artifact "huge.nixplan" is \d+ bytes, but .* has room for \d+: nothing was downloaded/,
    );
    await expect(down).rejects.toBeInstanceOf(LimitError);
    expect(readdirSync(dest)).toEqual([]);
  });

  test('a 5xx from the service, then success: the client retries and the upload succeeds', async () => {
    const run = server.newRun();
    asJobOf(run);
    server.inject({ kind: 'twirp-5xx', times: 1, method: 'CreateArtifact' });
    server.inject({ kind: 'blob-5xx', times: 1 });
    const seen = server.requests.length;
    const { path, bytes } = sampleFile();
    const up = await makeTransport(run).upload(path, 'retried.nixplan');
    expect(up.digest).toBe(sha(bytes));
    const statuses = server.requests.slice(seen).map((r) => r.status);
    expect(statuses.filter((s) => s === 500)).toHaveLength(2);
    expect(server.artifacts(run).map((a) => a.name)).toEqual(['retried.nixplan']);
  });

  test('a name already used in the run fails with advice to pick another artifact-name', async () => {
    const run = server.newRun();
    asJobOf(run);
    await makeTransport(run).upload(sampleFile().path, 'twice.nixplan');
    const again = makeTransport(run).upload(sampleFile().path, 'twice.nixplan');
    await expect(again).rejects.toThrow(TransportError);
    await expect(makeTransport(run).upload(sampleFile().path, 'twice.nixplan')).rejects.toThrow(
      /already uploaded in this run: give each plan job its own artifact-name/,
    );
  });

  test('an expired token fails the upload and the cross-run download with a token hint', async () => {
    const run = server.newRun();
    asJobOf(run);
    const { path } = sampleFile();
    await makeTransport(run).upload(path, 'ok.nixplan');
    server.inject({ kind: 'expired-token' });
    try {
      await expect(makeTransport(run).upload(path, 'late.nixplan')).rejects.toThrow(
        /token was refused.*401/s,
      );
      const other = server.newRun();
      asJobOf(other);
      await expect(
        makeTransport(other).download(
          { name: 'ok.nixplan', runId: run.runId, token: server.apiToken() },
          scratch(),
        ),
      ).rejects.toThrow(/token was refused/);
    } finally {
      server.clearFaults();
    }
    expect(server.artifacts(run).map((a) => a.name)).toEqual(['ok.nixplan']);
  });

  test.each(['alter-download', 'truncate-download'] as const)(
    '%s: the download fails as damaged and leaves no file behind',
    async (kind) => {
      const run = server.newRun();
      asJobOf(run);
      const { path } = sampleFile();
      await makeTransport(run).upload(path, 'fragile.nixplan');
      server.inject({ kind });
      const dest = scratch();
      try {
        await expect(makeTransport(run).download({ name: 'fragile.nixplan' }, dest)).rejects.toThrow(
          /"fragile.nixplan" arrived damaged: its digest is sha256:[0-9a-f]{64} but sha256:[0-9a-f]{64} was expected/,
        );
      } finally {
        server.clearFaults();
      }
      expect(readdirSync(dest)).toEqual([]);
    },
  );

  test('a digest the user pinned that differs from the stored one fails before downloading', async () => {
    const run = server.newRun();
    asJobOf(run);
    await makeTransport(run).upload(sampleFile().path, 'pinned.nixplan');
    const seen = server.requests.length;
    const dest = scratch();
    await expect(
      makeTransport(run).download(
        { name: 'pinned.nixplan', expectedDigest: sha(Buffer.from('other')) },
        dest,
      ),
    ).rejects.toThrow(
      /is not the plan that was pinned: it was uploaded with digest sha256:\w+, but digest sha256:\w+ was asked for/,
    );
    expect(server.requests.slice(seen).some((r) => r.path.startsWith('/blob/'))).toBe(false);
    expect(readdirSync(dest)).toEqual([]);
  });

  test('a dead signed URL fails the download (after the client gives up retrying)', async () => {
    const run = server.newRun();
    asJobOf(run);
    await makeTransport(run).upload(sampleFile().path, 'dead.nixplan');
    server.inject({ kind: 'dead-signed-url' });
    const dest = scratch();
    // The client pauses 5 s between its 5 attempts, which no option changes: the pauses are cut
    // short here (and counted), the attempts and the failure are the client's own.
    const realSetTimeout = globalThis.setTimeout;
    let pauses = 0;
    globalThis.setTimeout = ((fn: (...a: unknown[]) => void, ms?: number, ...rest: unknown[]) => {
      if (ms !== 5000) return realSetTimeout(fn, ms, ...rest);
      pauses++;
      return realSetTimeout(fn, 10, ...rest);
    }) as typeof setTimeout;
    try {
      await expect(makeTransport(run).download({ name: 'dead.nixplan' }, dest)).rejects.toThrow(
        /downloading artifact "dead.nixplan" failed/,
      );
    } finally {
      globalThis.setTimeout = realSetTimeout;
      server.clearFaults();
    }
    expect(pauses).toBe(5);
    expect(readdirSync(dest)).toEqual([]);
  });

  test('without the runner credentials the error says why and what to do instead', async () => {
    const run = server.newRun();
    asJobOf(run);
    delete process.env['ACTIONS_RUNTIME_TOKEN'];
    await expect(makeTransport(run).upload(sampleFile().path, 'x.nixplan')).rejects.toThrow(
      /only to JavaScript actions.*artifact-dir.*upload: false/,
    );
  });

  test('a cross-run download without a token is refused before any request', async () => {
    const run = server.newRun();
    asJobOf(run);
    await expect(makeTransport(run).download({ name: 'x.nixplan', runId: 1 }, scratch())).rejects.toThrow(
      /needs a github-token with `actions: read`/,
    );
  });
});

describe('LocalDirectoryTransport', () => {
  test('round-trips any bytes and names, and a name can be used once per run', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uint8Array({ maxLength: 4096 }),
        fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._-]{0,30}$/),
        async (bytes, name) => {
          const root = scratch();
          const up: ArtifactTransport = new LocalDirectoryTransport(root, 11);
          const { path } = sampleFile(Buffer.from(bytes));
          const stored = await up.upload(path, name);
          expect(stored.digest).toBe(sha(bytes));
          await expect(up.upload(path, name)).rejects.toThrow(/already uploaded in run 11/);
          const down = await new LocalDirectoryTransport(root, 12).download(
            { name, runId: 11, expectedDigest: stored.digest },
            scratch(),
          );
          expect(new Uint8Array(readFileSync(down.path))).toEqual(bytes);
        },
      ),
      { numRuns: 25 },
    );
  });

  test('bytes damaged on the shared disk fail the download and leave nothing behind', async () => {
    const root = scratch();
    const transport = new LocalDirectoryTransport(root, 'r1');
    const { path } = sampleFile(randomBytes(1000));
    await transport.upload(path, 'p.nixplan');
    const stored = join(root, 'r1', 'p.nixplan');
    const damaged = readFileSync(stored);
    damaged[500] = (damaged[500] ?? 0) ^ 1;
    writeFileSync(stored, damaged);
    const dest = scratch();
    await expect(transport.download({ name: 'p.nixplan' }, dest)).rejects.toThrow(/arrived damaged/);
    expect(readdirSync(dest)).toEqual([]);
  });

  test("never writes through a planted link, never replaces a published artifact's files", async () => {
    const root = scratch();
    const victim = join(scratch(), 'victim');
    writeFileSync(victim, 'precious\n');
    const transport = new LocalDirectoryTransport(root, 'r1');
    const { path } = sampleFile(randomBytes(1000));
    // A link planted where the digest goes: refused, the link's target untouched.
    mkdirSync(join(root, 'r1'), { recursive: true });
    symlinkSync(victim, join(root, 'r1', 'a.nixplan.sha256'));
    await expect(transport.upload(path, 'a.nixplan')).rejects.toThrow(/already uploaded/);
    expect(readFileSync(victim, 'utf8')).toBe('precious\n');
    expect(readdirSync(join(root, 'r1')).sort()).toEqual(['a.nixplan.sha256']);
    // A second upload of a name: refused, and the first artifact's files are the same files.
    const first = await transport.upload(path, 'b.nixplan');
    const before = ['b.nixplan', 'b.nixplan.sha256'].map((f) => lstatSync(join(root, 'r1', f)).ino);
    const other = sampleFile(randomBytes(1000));
    await expect(transport.upload(other.path, 'b.nixplan')).rejects.toThrow(/already uploaded/);
    expect(['b.nixplan', 'b.nixplan.sha256'].map((f) => lstatSync(join(root, 'r1', f)).ino)).toEqual(before);
    expect(readFileSync(join(root, 'r1', 'b.nixplan.sha256'), 'utf8')).toBe(`${first.digest}\n`);
    // A bundle planted without its digest: refused, and the digest just published taken back.
    writeFileSync(join(root, 'r1', 'c.nixplan'), 'planted');
    await expect(transport.upload(path, 'c.nixplan')).rejects.toThrow(/already uploaded/);
    expect(readdirSync(join(root, 'r1')).filter((f) => f.startsWith('c.'))).toEqual(['c.nixplan']);
    // A run directory that is a link elsewhere: refused.
    symlinkSync(scratch(), join(root, 'r2'));
    await expect(new LocalDirectoryTransport(root, 'r2').upload(path, 'd.nixplan')).rejects.toThrow(
      /not a directory/,
    );
    // A published bundle replaced by a link: not followed on download.
    rmSync(join(root, 'r1', 'b.nixplan'));
    symlinkSync(victim, join(root, 'r1', 'b.nixplan'));
    await expect(transport.download({ name: 'b.nixplan' }, scratch())).rejects.toThrow(/not a regular file/);
    // FIFOs planted for the digest or the bundle: refused at once (opening one for reading
    // waited for a writer that never came).
    execFileSync('mkfifo', [join(root, 'r1', 'e.nixplan.sha256')]);
    await expect(transport.download({ name: 'e.nixplan' }, scratch())).rejects.toThrow(/not a regular file/);
    rmSync(join(root, 'r1', 'b.nixplan'));
    execFileSync('mkfifo', [join(root, 'r1', 'b.nixplan')]);
    await expect(transport.download({ name: 'b.nixplan' }, scratch())).rejects.toThrow(/not a regular file/);
    // No temporary files are left behind.
    expect(readdirSync(join(root, 'r1')).filter((f) => f.startsWith('.'))).toEqual([]);
  });

  test('a run directory swapped for a link during an upload does not redirect the write', async () => {
    // The upload reads its bundle from a FIFO, so it is held after the run directory was checked
    // and its temporary file made, until the directory has been swapped for a link elsewhere.
    const root = scratch();
    const elsewhere = scratch();
    const fifo = join(scratch(), 'plan.fifo');
    execFileSync('mkfifo', [fifo]);
    const runDir = join(root, 'r1');
    const upload = new LocalDirectoryTransport(root, 'r1').upload(fifo, 'p.nixplan');
    const settled = upload.then(
      () => undefined,
      (e: unknown) => e,
    );
    for (let i = 0; i < 500 && !(existsSync(runDir) && readdirSync(runDir).length > 0); i++)
      await new Promise((r) => setTimeout(r, 10));
    renameSync(runDir, `${runDir}.moved`);
    symlinkSync(elsewhere, runDir);
    writeFileSync(fifo, randomBytes(1000));
    expect(String(await settled)).toMatch(
      /the run directory ".*r1" was moved or replaced while the plan was uploaded/,
    );
    // Nothing went where the link points.
    expect(readdirSync(elsewhere)).toEqual([]);
  });

  test('rejects names that would leave the directory and reports a missing artifact', async () => {
    const transport = new LocalDirectoryTransport(scratch());
    await expect(transport.upload(sampleFile().path, '../x')).rejects.toThrow(/invalid artifact name/);
    await expect(transport.download({ name: 'absent.nixplan' }, scratch())).rejects.toThrow(
      /no artifact named/,
    );
  });
});
