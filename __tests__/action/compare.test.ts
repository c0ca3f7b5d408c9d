// `compare-to`: its inputs, and finding and fetching the plan to compare with through the real
// @actions/artifact client and GitHub's REST API, both served by the local fake of the service
// (runs of several workflows, branches and conclusions; expired artifacts).
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FakeArtifactServer, type FakeRun } from '../support/artifact-server.js';
import { fetchBaseline, parseCompareSettings, type CompareSettings } from '../../src/action/compare.js';
import { PlanInput } from '../../src/action/constants.js';
import { findLatestArtifact, workflowFile } from '../../src/transport/github-runs.js';
import type { GitHubArtifactTransport as GitHubTransportClass } from '../../src/transport/github.js';
import { LocalDirectoryTransport } from '../../src/transport/local.js';
import { systemBundle } from '../support/bundle-fixtures.js';

const NAMES = {
  compareTo: PlanInput.CompareTo,
  compareRunId: PlanInput.CompareRunId,
  githubToken: PlanInput.GithubToken,
  trustedKeys: PlanInput.TrustedKeys,
};
const reader =
  (inputs: Record<string, string>) =>
  (name: string): string =>
    inputs[name] ?? '';
const parse = (inputs: Record<string, string>, artifactDir?: string): CompareSettings | undefined =>
  parseCompareSettings(reader(inputs), NAMES, { sameName: 'plan.nixplan', artifactDir });

describe('compare-to inputs', () => {
  test.each([
    [{}, undefined],
    [{ 'compare-to': './old.nixplan' }, { kind: 'file', path: './old.nixplan' }],
    [{ 'compare-to': 'base.nixplan' }, { kind: 'artifact', name: 'base.nixplan', runId: undefined }],
    [
      { 'compare-to': 'base.nixplan', 'compare-run-id': '42', 'github-token': 't' },
      { kind: 'artifact', name: 'base.nixplan', runId: 42 },
    ],
    [
      { 'compare-to': 'latest', 'github-token': 't' },
      { kind: 'latest', name: 'plan.nixplan' },
    ],
  ])('%j', (inputs, source) => {
    expect(parse(inputs)?.source).toEqual(source);
  });

  test.each([
    [{ 'compare-run-id': '42' }, /^input "compare-run-id": needs "compare-to"/],
    [{ 'compare-to': 'latest' }, /^input "github-token": needed with "compare-to: latest"/],
    [{ 'compare-to': 'x', 'compare-run-id': '42' }, /^input "github-token": needed/],
    [
      { 'compare-to': './x', 'compare-run-id': '42', 'github-token': 't' },
      /^input "compare-run-id": goes with/,
    ],
    [{ 'compare-to': 'a:b' }, /^input "compare-to": "a:b" is not a valid artifact name/],
    [{ 'compare-to': 'x', 'compare-run-id': 'one' }, /^input "compare-run-id": "one" is not accepted/],
    [{ 'compare-to': 'x', 'trusted-keys': 'nope' }, /^input "trusted-keys": "nope" is not a public key/],
  ])('%j is refused naming the input', (inputs, message) => {
    expect(() => parse(inputs)).toThrow(message);
  });

  test('latest needs the artifact service; an artifact-dir compares by name without a token', () => {
    expect(() => parse({ 'compare-to': 'latest' }, '/shared')).toThrow(/"latest" searches the runs/);
    expect(parse({ 'compare-to': 'base.nixplan', 'compare-run-id': '3' }, '/shared')?.source).toEqual({
      kind: 'artifact',
      name: 'base.nixplan',
      runId: 3,
    });
  });

  test('the workflow file of GITHUB_WORKFLOW_REF', () => {
    expect(workflowFile('o/r/.github/workflows/ci.yml@refs/heads/main')).toBe('ci.yml');
    expect(() => workflowFile('nonsense')).toThrow(/cannot tell this run's workflow/);
  });
});

describe('finding and fetching the plan to compare with', () => {
  let server: FakeArtifactServer;
  let work: string;
  let makeTransport: (run: FakeRun) => GitHubTransportClass;
  const saved = { ...process.env };
  const write = process.stdout.write.bind(process.stdout);
  const contents = new Map<number, Buffer>(); // run id → the bytes it uploaded

  /** Uploads a plan-sized file as `name` in a job of `run` (through the real client). */
  async function upload(run: FakeRun, name = 'plan.nixplan'): Promise<void> {
    Object.assign(process.env, server.jobEnv(run));
    const bytes = randomBytes(1000);
    const file = join(work, `${run.runId}-${name}`);
    writeFileSync(file, bytes);
    await makeTransport(run).upload(file, name);
    contents.set(run.runId, bytes);
  }

  let wanted: FakeRun;
  let current: FakeRun;

  beforeAll(async () => {
    process.stdout.write = () => true;
    work = mkdtempSync(join(tmpdir(), 'nix-plan-compare-'));
    server = await FakeArtifactServer.start();
    makeTransport = await server.githubTransports(() => work);
    // Oldest first. Only `wanted` qualifies: successful, this workflow, the default branch of this
    // repository (pushed, not a pull request's), not expired; every newer run fails one of those.
    const older = server.newRun();
    await upload(older);
    server.finishRun(older, 'success');
    wanted = server.newRun();
    await upload(wanted);
    server.finishRun(wanted, 'success');
    const otherWorkflow = server.newRun({ workflow: '.github/workflows/nightly.yml' });
    await upload(otherWorkflow);
    server.finishRun(otherWorkflow, 'success');
    const failed = server.newRun();
    await upload(failed);
    server.finishRun(failed, 'failure');
    const branch = server.newRun({ branch: 'feature' });
    await upload(branch);
    server.finishRun(branch, 'success');
    const expired = server.newRun();
    await upload(expired);
    server.finishRun(expired, 'success');
    for (const a of server.artifacts(expired)) server.expire(a);
    const withoutPlan = server.newRun();
    await upload(withoutPlan, 'other.nixplan');
    server.finishRun(withoutPlan, 'success');
    // A fork's pull request from its branch named `main`: GitHub lists it under branch=main (its
    // head_branch), and it uploads an artifact of the same name from the fork's code.
    const forkMain = server.newRun({ event: 'pull_request', headRepository: 'mallory/fork' });
    await upload(forkMain);
    server.finishRun(forkMain, 'success');
    // Runs a pull request started (workflow_run after a fork's run; pull_request_target) are not
    // the default branch's plans either, whatever their head_branch says.
    const afterFork = server.newRun({ event: 'workflow_run', headRepository: 'mallory/fork' });
    await upload(afterFork);
    server.finishRun(afterFork, 'success');
    const prTarget = server.newRun({ event: 'pull_request_target' });
    await upload(prTarget);
    server.finishRun(prTarget, 'success');
    current = server.newRun();
  }, 60_000);

  afterAll(async () => {
    process.stdout.write = write;
    process.env = saved;
    await server.close();
    rmSync(work, { recursive: true, force: true });
  });

  const query = (token: string, name = 'plan.nixplan') => ({
    apiUrl: server.url,
    repository: server.repository,
    token,
    workflowRef: server.jobEnv(current)['GITHUB_WORKFLOW_REF'] ?? '',
    name,
    currentRunId: current.runId,
  });

  test('latest: the newest artifact of a successful run of this workflow on the default branch', async () => {
    const found = await findLatestArtifact(query(server.apiToken()));
    expect(found).toMatchObject({
      runId: wanted.runId,
      branch: 'main',
      headSha: wanted.headSha,
      runUrl: `https://github.com/${server.repository}/actions/runs/${wanted.runId}`,
    });
    expect(await findLatestArtifact(query(server.apiToken(), 'never.nixplan'))).toBeUndefined();
  });

  test('latest fetched through the artifact client, described with its run', async () => {
    Object.assign(process.env, server.jobEnv(current));
    const env = (name: string): string | undefined => process.env[name];
    const settings = parse({ 'compare-to': 'latest', 'github-token': server.apiToken() });
    const got = await fetchBaseline(
      settings!,
      { env, transport: () => makeTransport(current) },
      join(work, 'latest'),
    );
    if (!('path' in got)) throw new Error(`nothing found: ${got.missing}`);
    expect(readFileSync(got.path).equals(contents.get(wanted.runId)!)).toBe(true);
    expect(got.description).toBe(
      `\`plan.nixplan\` from the latest successful run on \`main\`: [run ${wanted.runId}](https://github.com/${server.repository}/actions/runs/${wanted.runId}) at \`${wanted.headSha.slice(0, 12)}\``,
    );
    // A first run has nothing to compare with: said, not failed.
    const none = await fetchBaseline(
      { ...settings!, source: { kind: 'latest', name: 'never.nixplan' } },
      { env, transport: () => makeTransport(current) },
      join(work, 'none'),
    );
    expect(none).toEqual({
      missing:
        'no earlier plan to compare with: no successful run of `ci.yml` on the default branch has an artifact `never.nixplan` (a first run, or they expired)',
    });
  });

  test('an artifact of another run, and of this run', async () => {
    Object.assign(process.env, server.jobEnv(current));
    const env = (name: string): string | undefined => process.env[name];
    const other = parse({
      'compare-to': 'plan.nixplan',
      'compare-run-id': String(wanted.runId),
      'github-token': server.apiToken(),
    });
    const got = await fetchBaseline(
      other!,
      { env, transport: () => makeTransport(current) },
      join(work, 'other'),
    );
    expect('path' in got && readFileSync(got.path).equals(contents.get(wanted.runId)!)).toBe(true);
    await upload(current, 'base.nixplan');
    const mine = parse({ 'compare-to': 'base.nixplan' });
    const here = await fetchBaseline(
      mine!,
      { env, transport: () => makeTransport(current) },
      join(work, 'here'),
    );
    expect(here).toMatchObject({ description: 'the artifact `base.nixplan` of this run' });
  });

  test('a refused token says what permission is missing', async () => {
    await expect(findLatestArtifact(query('ghs_not-a-token'))).rejects.toThrow(
      /the token was refused: give the job `permissions: actions: read`/,
    );
  });

  test('an artifact-dir: by name from another run, through the shared directory', async () => {
    const shared = join(work, 'shared');
    const file = join(work, 'shared-plan');
    const bytes = await systemBundle();
    writeFileSync(file, bytes);
    await new LocalDirectoryTransport(shared, 11).upload(file, 'plan.nixplan');
    const settings = parse({ 'compare-to': 'plan.nixplan', 'compare-run-id': '11' }, shared);
    const got = await fetchBaseline(
      settings!,
      { env: () => undefined, transport: (dir) => new LocalDirectoryTransport(dir ?? '', 12) },
      join(work, 'from-shared'),
    );
    expect('path' in got && readFileSync(got.path)).toEqual(Buffer.from(bytes));
  });
});
