// `node scripts/approvals-example.mjs`: renders docs/approvals-example.md, what a reviewer sees
// before approving a promotion, from a real run: the built actions (dist/) run as workflow steps,
// with the installed Nix, on docs/examples/approvals/plan.nix before and after a change.
//
//   1. plan the `before` commit, promote it into the beta realm, realise it and fill a binary cache
//   2. plan the `after` commit with compare-to: the plan before     → the plan job's summary
//   3. promote it into beta with compare-to: the previous promotion → the promote job's summary
//   4. realise it on a host whose cache holds the `before` outputs  → the realise job's summary
//
// Options: --out FILE (default docs/approvals-example.md), --dist DIR (default dist/), --keep,
// --root DIR: where the realms and stores live (created, must not exist; default a new directory
// under the OS temp dir). It is removed at the end; nothing touches /nix. The store dirs show in
// the summaries, so docs/approvals-example.md is rendered with `--root /tmp/example`. The GitHub
// context (repository, run, commit) is what a run of `example/infra` would have.
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { checkout, runStep } from '../__tests__/support/action-step.ts';

const repo = resolve(import.meta.dirname, '..');
const { values: opts } = parseArgs({
  options: {
    out: { type: 'string', default: join(repo, 'docs', 'approvals-example.md') },
    dist: { type: 'string', default: join(repo, 'dist') },
    keep: { type: 'boolean', default: false },
    root: { type: 'string' },
  },
});
const log = (msg) => console.error(`[example] ${msg}`);
const REPOSITORY = 'example/infra';
const NIX_CONF = [
  'build-users-group =',
  'sandbox = false',
  'experimental-features = nix-command ca-derivations',
  'warn-dirty = false',
  '',
].join('\n');

let work;
if (opts.root === undefined) work = mkdtempSync(join(tmpdir(), 'nix-plan-example-'));
else {
  work = resolve(opts.root);
  mkdirSync(work); // refuses an existing directory: the run removes it at the end
}
try {
  writeFileSync(opts.out, await render());
  log(`wrote ${opts.out}`);
} finally {
  if (opts.keep) log(`kept ${work}`);
  else rmSync(work, { recursive: true, force: true });
}

/** A scratch store for the realm `storeDir`, its state under `root`; `conf` is added to nix.conf. */
function store(root, storeDir, conf = 'substituters =\n') {
  mkdirSync(join(root, 'conf'), { recursive: true });
  mkdirSync(join(root, 'home'), { recursive: true });
  writeFileSync(join(root, 'conf', 'nix.conf'), NIX_CONF + conf);
  return {
    storeDir,
    version: { binDir: undefined },
    env: {
      NIX_STORE_DIR: storeDir,
      NIX_STATE_DIR: join(root, 'var'),
      NIX_LOG_DIR: join(root, 'log'),
      NIX_CONF_DIR: join(root, 'conf'),
      NIX_REMOTE: '',
      HOME: join(root, 'home'),
      XDG_CACHE_HOME: join(root, 'cache'),
    },
  };
}

/** Empties a realm (store files are read-only) and its state, as a new host has it. */
function wipe(root, storeDir) {
  spawnSync('chmod', ['-R', 'u+w', storeDir]);
  rmSync(storeDir, { recursive: true, force: true });
  rmSync(root, { recursive: true, force: true });
}

/** The variables the runner sets for a job of run `runId` at `commit`. */
function runEnv(runId, commit) {
  return {
    GITHUB_SERVER_URL: 'https://github.com',
    GITHUB_API_URL: 'https://api.github.com',
    GITHUB_REPOSITORY: REPOSITORY,
    GITHUB_RUN_ID: String(runId),
    GITHUB_SHA: commit,
    GITHUB_REF: 'refs/heads/main',
    GITHUB_WORKFLOW_REF: `${REPOSITORY}/.github/workflows/deploy.yml@refs/heads/main`,
    GITHUB_ACTION_REPOSITORY: 'OWNER/nix-plan',
    GITHUB_ACTION_REF: 'v1',
  };
}

/** Runs one action step; fails with its log when the step fails. */
async function step(entry, inputs, env, on) {
  const result = await runStep(
    // GITHUB_ACTION: the step's id (a summary names it in what a later step of the job uses).
    { dist: opts.dist, work, server: { jobEnv: () => ({}) }, env: { ...env, GITHUB_ACTION: entry } },
    entry,
    inputs,
    {},
    on,
  );
  if (result.code !== 0) throw new Error(`${entry} failed (${result.code}):\n${result.stdout.slice(-6000)}`);
  log(`${entry}: ok`);
  return result;
}

async function render() {
  const cli = (...args) =>
    execFileSync(process.execPath, [join(opts.dist, 'cli', 'index.js'), ...args], { stdio: 'pipe' });
  const key = (name) => {
    const secret = join(work, `${name}.sec`);
    const pub = join(work, `${name}.pub`);
    cli('keygen', name, '--secret', secret, '--public', pub, '--quiet');
    return { secret: readFileSync(secret, 'utf8').trim(), public: readFileSync(pub, 'utf8').trim() };
  };
  const ci = key('ci-1');
  const beta = key('beta-1');
  const alpha = join(work, 'alpha', 'store');
  const betaRealm = join(work, 'beta', 'store');
  const builder = join(work, 'builder');
  const cache = join(work, 'cache');

  // The repository, as actions/checkout leaves it: the plan records its remote and commit.
  const source = join(repo, 'docs', 'examples', 'approvals', 'plan.nix');
  const before = checkout(work, REPOSITORY, {
    'default.nix': 'import ./plan.nix { change = "before"; }\n',
    'plan.nix': readFileSync(source),
  });
  const after = checkout(work, REPOSITORY, {
    'default.nix': 'import ./plan.nix { change = "after"; }\n',
    'plan.nix': readFileSync(source),
  });
  const plan = (dir, extra) => ({
    file: join(dir, 'default.nix'),
    attributes: 'web\nworker',
    'signing-key': ci.secret,
    upload: 'false',
    ...extra,
  });

  // The run before: planned, promoted to beta, realised on a builder that fills the binary cache.
  let s = store(builder, alpha);
  const old = await step('plan', plan(before.dir, {}), runEnv(1041, before.commit), s);
  const oldBundle = copy(old.outputs['bundle-path'], 'before.nixplan');
  const oldPromoted = await step(
    'promote',
    {
      bundle: oldBundle,
      to: betaRealm,
      'trusted-keys': ci.public,
      'signing-key': beta.secret,
      'promoted-artifact-name': 'plan-beta.nixplan',
      upload: 'false',
    },
    runEnv(1041, before.commit),
    s,
  );
  const oldBeta = copy(oldPromoted.outputs['bundle-path'], 'before-beta.nixplan');
  await step('realise', { bundle: oldBundle, 'trusted-keys': ci.public }, runEnv(1041, before.commit), s);
  // Every output the builder made (the roots' and their inputs'), into the cache.
  const nix = (cmd, ...args) =>
    execFileSync(cmd, args, { env: { ...process.env, ...s.env }, stdio: ['ignore', 'pipe', 'pipe'] })
      .toString()
      .trim()
      .split('\n')
      .filter((l) => l !== '');
  const drvs = JSON.parse(old.outputs['drv-paths']);
  const made = nix('nix-store', '--query', '--requisites', '--include-outputs', ...drvs).filter(
    (p) =>
      !p.endsWith('.drv') &&
      spawnSync('nix-store', ['--check-validity', p], { env: { ...process.env, ...s.env } }).status === 0,
  );
  nix('nix', 'copy', '--to', `file://${cache}`, ...made);
  log(`cache: ${made.length} paths`);

  wipe(builder, alpha);

  // This run: the change, planned and compared with the plan before.
  s = store(builder, alpha);
  const planned = await step(
    'plan',
    plan(after.dir, { 'compare-to': oldBundle, 'trusted-keys': ci.public }),
    runEnv(1042, after.commit),
    s,
  );
  const newBundle = copy(planned.outputs['bundle-path'], 'after.nixplan');
  const promoted = await step(
    'promote',
    {
      bundle: newBundle,
      to: betaRealm,
      'trusted-keys': ci.public,
      'signing-key': beta.secret,
      'promoted-artifact-name': 'plan-beta.nixplan',
      upload: 'false',
      'compare-to': oldBeta,
    },
    runEnv(1042, after.commit),
    s,
  );
  // A host whose binary cache holds what the run before built.
  wipe(builder, alpha);
  s = store(builder, alpha, `substituters = file://${cache}\nrequire-sigs = false\n`);
  const realised = await step(
    'realise',
    { bundle: newBundle, 'trusted-keys': ci.public },
    runEnv(1042, after.commit),
    s,
  );

  return [
    '<!-- Generated by scripts/approvals-example.mjs from a run of the built actions; do not edit. -->\n',
    '# What a reviewer sees: example summaries\n',
    'The job summaries of one run of `example/infra`, rendered by `node scripts/approvals-example.mjs`:',
    'the built actions ran as workflow steps with Nix on',
    '[`docs/examples/approvals/plan.nix`](examples/approvals/plan.nix), after an earlier run had planned,',
    'promoted and built its `before` variant. The store dirs are the scratch realms of that run.',
    'See [approvals.md](approvals.md) for the workflow around them.\n',
    section('The plan job (`compare-to`: the plan of the run before)', planned.summary),
    section('The promote job (`compare-to`: the previous promotion into beta)', promoted.summary),
    section('The realise job (a host whose binary cache holds the earlier build)', realised.summary),
  ].join('\n');

  /** Copies a bundle out of its step's temp dir (kept until the end of the run). */
  function copy(from, name) {
    const to = join(work, name);
    copyFileSync(from, to);
    return to;
  }
}

/** One job's summary, as GitHub shows it under the job. */
function section(title, summary) {
  return `---\n\n_${title}:_\n\n${summary.trim()}\n`;
}
