// Running a built dist/ entrypoint as the runner runs an action step: INPUT_* variables (with the
// defaults action.yml declares), GITHUB_OUTPUT, the step summary, a runtime token for the local
// artifact service, and the scratch store's Nix.
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FakeArtifactServer, FakeRun } from './artifact-server.js';
import type { ScratchStore } from './nix.js';

/** The repository's root. */
export const REPO = fileURLToPath(new URL('../..', import.meta.url));

/** What one action step left behind. */
export interface StepResult {
  readonly code: number;
  readonly stdout: string;
  readonly outputs: Record<string, string>;
  readonly summary: string;
  /** `::error::` annotations, unescaped. */
  readonly errors: string[];
}

/** The action entrypoints and their action.yml. */
export const ACTION_YML = {
  plan: 'action.yml',
  realise: 'realise/action.yml',
  promote: 'promote/action.yml',
  deploy: 'deploy/action.yml',
};
export type ActionEntry = keyof typeof ACTION_YML;

/** Parses GITHUB_OUTPUT as @actions/core writes it: `name<<DELIM\nvalue\nDELIM\n`. */
export function parseOutputs(text: string): Record<string, string> {
  const outputs: Record<string, string> = {};
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const m = /^([^<]+)<<(.+)$/.exec(lines[i] ?? '');
    if (m?.[1] === undefined || m[2] === undefined) continue;
    const value: string[] = [];
    for (i++; i < lines.length && lines[i] !== m[2]; i++) value.push(lines[i] ?? '');
    outputs[m[1]] = value.join('\n');
  }
  return outputs;
}

/** A workflow command's data, unescaped. */
export const unescapeCommand = (s: string): string =>
  s.replace(/%0A/g, '\n').replace(/%0D/g, '\r').replace(/%25/g, '%');

/**
 * The defaults an action.yml declares: the runner passes them as INPUT_* variables too, so a
 * step sees them exactly as on GitHub. (A reader for the flat `inputs:` map these files use.)
 */
export function actionDefaults(actionYml: string): Record<string, string> {
  const defaults: Record<string, string> = {};
  const block =
    readFileSync(actionYml, 'utf8')
      .split(/^inputs:\n/m)[1]
      ?.split(/^\S/m)[0] ?? '';
  let input: string | undefined;
  for (const line of block.split('\n')) {
    const name = /^ {2}([a-z-]+):\s*$/.exec(line)?.[1];
    if (name !== undefined) input = name;
    const value = /^ {4}default:\s*(.*)$/.exec(line)?.[1];
    if (input !== undefined && value !== undefined) defaults[input] = value.replace(/^'(.*)'$/, '$1');
  }
  return defaults;
}

/**
 * A git checkout of `repository` (as actions/checkout leaves it) holding `files`, in a new
 * directory under `parent`: a plan records the remote and commit of the worktree it evaluated,
 * so a test evaluates this, never the clone the tests run from. Returns its path and commit.
 */
export function checkout(
  parent: string,
  repository: string,
  files: Readonly<Record<string, string | Buffer>>,
): { readonly dir: string; readonly commit: string } {
  const dir = mkdtempSync(join(parent, 'checkout-'));
  const git = (...args: string[]): string =>
    execFileSync('git', ['-c', 'user.name=e2e', '-c', 'user.email=e2e@example.invalid', ...args], {
      cwd: dir,
      encoding: 'utf8',
      env: { ...process.env, GIT_CONFIG_NOSYSTEM: '1', GIT_CONFIG_GLOBAL: '/dev/null' },
    }).trim();
  git('init', '-q', '-b', 'main');
  git('remote', 'add', 'origin', `https://github.com/${repository}.git`);
  for (const [name, content] of Object.entries(files)) writeFileSync(join(dir, name), content);
  git('add', '.');
  git('commit', '-q', '-m', 'the e2e closure');
  return { dir, commit: git('rev-parse', 'HEAD') };
}

/** Builds the entrypoints into `dist` (as `npm run build` does), with a readable error. */
export function buildDist(dist: string): void {
  try {
    execFileSync(process.execPath, ['scripts/build.mjs', dist], { cwd: REPO, stdio: 'pipe' });
  } catch (e) {
    const { stdout, stderr } = e as { stdout?: Buffer; stderr?: Buffer };
    throw new Error(
      `building the entrypoints failed:\n${String(stderr ?? '')}${String(stdout ?? '')}`.slice(0, 4000),
    );
  }
}

/** Runs one entrypoint of `dist` as a step of a job of `run`, against `store`'s Nix and state. */
export async function runStep(
  context: {
    readonly dist: string;
    readonly work: string;
    readonly server: FakeArtifactServer;
    /** Variables to set over the runner's (e.g. `GITHUB_SHA` of a checkout the step evaluates). */
    readonly env?: Readonly<Record<string, string>>;
  },
  entry: ActionEntry,
  inputs: Record<string, string>,
  run: FakeRun,
  store: ScratchStore,
): Promise<StepResult> {
  const { dist, work, server } = context;
  const job = mkdtempSync(join(work, `${entry}-`));
  const files = { GITHUB_OUTPUT: 'output', GITHUB_STEP_SUMMARY: 'summary', GITHUB_STATE: 'state' };
  const env: Record<string, string> = {
    PATH: `${store.version.binDir === undefined ? '' : `${store.version.binDir}:`}${process.env['PATH'] ?? ''}`,
    ...(process.env['USER'] === undefined ? {} : { USER: process.env['USER'] }),
    TMPDIR: job,
    ...store.env,
    // What the runner says about the run (ref, commit, workflow from the run; the plan records them).
    ...server.jobEnv(run),
    GITHUB_ACTIONS: 'true',
    GITHUB_RUN_ATTEMPT: '1',
    GITHUB_WORKSPACE: join(job, 'workspace'),
    RUNNER_TEMP: join(job, 'temp'),
    ...context.env,
  };
  for (const [name, file] of Object.entries(files)) {
    env[name] = join(job, file);
    writeFileSync(env[name], '');
  }
  mkdirSync(env['GITHUB_WORKSPACE'] ?? '', { recursive: true });
  // The runner's naming: INPUT_ + the name upper-cased, spaces as underscores, dashes kept.
  const given = { ...actionDefaults(join(REPO, ACTION_YML[entry])), ...inputs };
  for (const [name, value] of Object.entries(given))
    env[`INPUT_${name.replace(/ /g, '_').toUpperCase()}`] = value;
  const child = spawn(process.execPath, [join(dist, entry, 'index.js')], {
    env,
    cwd: env['GITHUB_WORKSPACE'],
  });
  let stdout = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
  child.stderr.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
  const code = await new Promise<number>((resolve) => child.on('close', (c) => resolve(c ?? 1)));
  return {
    code,
    stdout,
    outputs: parseOutputs(readFileSync(join(job, 'output'), 'utf8')),
    summary: readFileSync(join(job, 'summary'), 'utf8'),
    errors: [...stdout.matchAll(/^::error::(.*)$/gm)].map((m) => unescapeCommand(m[1] ?? '')),
  };
}

/** Throws with the step's log when it did not succeed. */
export function succeeded(result: StepResult): void {
  if (result.code !== 0) throw new Error(`step failed (${result.code}):\n${result.stdout.slice(-6000)}`);
}
