// Provenance read for real on Nix 2.8 and 2.34: the git worktree of `-f FILE`, and a flake's locked inputs from `nix flake metadata`.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger, type Logger } from '../../src/app/deps.js';
import { exportPlan } from '../../src/app/export.js';
import { ProcessRunner } from '../../src/nix/runner.js';
import { nixVersions, ScratchStore, SYSTEM } from '../support/nix.js';

const DRV = (name: string): string =>
  `builtins.derivation { name = "${name}"; system = "${SYSTEM}"; builder = "/bin/sh"; args = [ "-c" "echo ${name} > $out" ]; }`;

describe.each(nixVersions().map((v) => [v.label, v] as const))('provenance, Nix %s', (_label, version) => {
  const tmp = mkdtempSync(join(tmpdir(), 'nix-plan-provenance-'));
  let store: ScratchStore;
  const git = new ProcessRunner({
    env: { GIT_CONFIG_GLOBAL: '/dev/null', GIT_CONFIG_NOSYSTEM: '1', HOME: tmp },
  });
  const run = (dir: string, ...args: string[]): Promise<unknown> =>
    git.run('git', ['-C', dir, '-c', 'user.name=t', '-c', 'user.email=t@example.org', ...args]);

  beforeAll(() => {
    store = new ScratchStore(version);
  });
  afterAll(() => {
    store.dispose();
    rmSync(tmp, { recursive: true, force: true });
  });

  test('a file in a git worktree: commit, branch, uncommitted changes, the remote without its token', async () => {
    const repo = join(tmp, 'repo');
    mkdirSync(repo);
    writeFileSync(join(repo, 'default.nix'), DRV('from-git'));
    await run(repo, 'init', '-q', '-b', 'release');
    await run(repo, 'add', '.');
    await run(repo, 'commit', '-qm', 'init');
    await run(repo, 'remote', 'add', 'origin', 'https://x-access-token:ghs_secret@github.com/owner/name.git');
    const head = (await git.run('git', ['-C', repo, 'rev-parse', 'HEAD'])).stdout.toString().trim();
    const clean = await exportPlan(
      { file: join(repo, 'default.nix'), output: join(tmp, 'clean.nixplan') },
      {
        runner: store.runner,
        log: silentLogger,
      },
    );
    expect(clean.manifest.provenance).toEqual({
      repository: 'https://github.com/owner/name.git',
      commit: head,
      ref: 'refs/heads/release',
      dirty: false,
    });
    expect(clean.manifest.createdAt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    writeFileSync(join(repo, 'notes.txt'), 'not committed');
    const dirty = await exportPlan(
      { file: join(repo, 'default.nix'), output: join(tmp, 'dirty.nixplan') },
      {
        runner: store.runner,
        log: silentLogger,
      },
    );
    expect(dirty.manifest.provenance?.dirty).toBe(true);
  });

  test('outside a repository, and in GitHub Actions: the run, with its attempt', async () => {
    const plain = join(tmp, 'plain');
    mkdirSync(plain);
    writeFileSync(join(plain, 'default.nix'), DRV('plain'));
    const env: Record<string, string> = {
      GITHUB_ACTIONS: 'true',
      GITHUB_REPOSITORY: 'owner/name',
      GITHUB_SHA: 'c'.repeat(40),
      GITHUB_REF: 'refs/pull/7/merge',
      GITHUB_WORKFLOW_REF: 'owner/name/.github/workflows/plan.yml@refs/pull/7/merge',
      GITHUB_SERVER_URL: 'https://github.com',
      GITHUB_RUN_ID: '99',
      GITHUB_RUN_ATTEMPT: '3',
    };
    const r = await exportPlan(
      {
        file: join(plain, 'default.nix'),
        output: join(tmp, 'gh.nixplan'),
        provenance: { env: (n) => env[n] },
      },
      { runner: store.runner, log: silentLogger },
    );
    expect(r.manifest.provenance).toEqual({
      repository: 'owner/name',
      commit: 'c'.repeat(40),
      ref: 'refs/pull/7/merge',
      workflow: 'owner/name/.github/workflows/plan.yml@refs/pull/7/merge',
      runUrl: 'https://github.com/owner/name/actions/runs/99/attempts/3',
      runAttempt: 3,
    });
  });

  test('a flake: its locked URL and every node of its lock file, by name', async () => {
    const flake = join(tmp, 'flake');
    mkdirSync(join(flake, 'dep'), { recursive: true });
    writeFileSync(join(flake, 'dep', 'flake.nix'), '{ outputs = { self }: { value = 1; }; }');
    writeFileSync(
      join(flake, 'flake.nix'),
      `{
        inputs.dep.url = "path:./dep";
        inputs.data = { url = "path:./dep"; flake = false; };
        outputs = { self, dep, data }: { packages.${SYSTEM}.default = ${DRV('from-flake')}; };
      }`,
    );
    const warnings: string[] = [];
    const log: Logger = { ...silentLogger, warn: (m) => warnings.push(m) };
    const r = await exportPlan(
      { installables: [`path:${flake}`], output: join(tmp, 'flake.nixplan') },
      {
        runner: store.runner,
        log,
      },
    );
    expect(warnings).toEqual([]);
    const f = r.manifest.provenance?.flake;
    expect(f?.url).toMatch(new RegExp(`^path:${flake}\\?`));
    expect(f?.url).toContain('narHash=sha256-');
    expect(f?.inputs.map((i) => [i.name, i.url])).toEqual([
      ['data', 'path:./dep'],
      ['dep', 'path:./dep'],
    ]);
  });

  test('installables from two flakes: no flake recorded, and a warning says why', async () => {
    const warnings: string[] = [];
    const log: Logger = { ...silentLogger, warn: (m) => warnings.push(m) };
    const a = join(tmp, 'fa');
    const b = join(tmp, 'fb');
    for (const [dir, name] of [
      [a, 'fa'],
      [b, 'fb'],
    ] as const) {
      mkdirSync(dir);
      writeFileSync(
        join(dir, 'flake.nix'),
        `{ outputs = { self }: { packages.${SYSTEM}.default = ${DRV(name)}; }; }`,
      );
    }
    const r = await exportPlan(
      { installables: [`path:${a}`, `path:${b}`], output: join(tmp, 'two.nixplan') },
      {
        runner: store.runner,
        log,
      },
    );
    expect(r.manifest.provenance?.flake).toBeUndefined();
    expect(warnings).toEqual([
      'the plan records no flake inputs: the installables come from 2 flakes; a plan records one',
    ]);
  });
});
