// The deploy action: fetch a published plan and deploy it over SSH to hosts that need only Nix,
// sh and an SSH server, with the SSH key held in a private temp file that is removed afterwards.
import { randomBytes } from 'node:crypto';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  deployPlan,
  type DeployResult,
  type HostOutputs,
  type DeployDeps,
  type HostResult,
  type RollbackOptions,
  type RollbackResult,
  prefixedOutput,
} from '../app/deploy/index.js';
import { deployRollback } from '../app/deploy/rollback-hosts.js';
import { realisePlan } from '../app/realise.js';
import { NixPlanError } from '../core/errors.js';
import type { Logger } from '../app/deps.js';
import type { CommandRunner } from '../nix/runner.js';
import type { ArtifactTransport } from '../transport/transport.js';
import { ACTION_OPTION_NAMES, DeployInput, DeployOutput } from './constants.js';
import { parseDeploySettings } from './deploy-settings.js';
import { unpinnedWarning } from './fetch-settings.js';
import { fetchPlan } from './fetch.js';
import { defaultRunner, defaultTransport, jobTempDir, nixBuildLog, runnerIO, type ActionIO } from './run.js';
import { originMarkdown } from '../core/provenance-view.js';
import { capSummary } from './summary-cap.js';
import { formatMs, table, trustMarkdown, unpinnedMarkdown } from './summary.js';
import { asPackageChange, changesHeadline, type HostChanges } from '../app/deploy/changes.js';
import { codeSpan } from './markdown.js';
import { markdownCode } from '../core/text.js';
import { DIFF_BUDGET, packageDetails, versionChangesTable } from './summary-diff.js';

/** What the deploy action needs; every member has a default that talks to the real runner. */
export interface DeployActionDeps {
  readonly io: ActionIO;
  readonly runner: CommandRunner;
  readonly transport: (artifactDir: string | undefined) => ArtifactTransport;
  readonly deployPlan: typeof deployPlan;
  /** For `rollback: true` (default: the real one). */
  readonly deployRollback?: typeof deployRollback | undefined;
  /** For `build-on: local`: builds the plan on the runner (default: the real one). */
  readonly realisePlan?: typeof realisePlan | undefined;
}

/** The real runner, Nix and artifact service. */
export function defaultDeployDeps(io: ActionIO = runnerIO()): DeployActionDeps {
  return {
    io,
    runner: defaultRunner(),
    transport: (dir) => defaultTransport(io, dir),
    deployPlan,
    deployRollback,
    realisePlan,
  };
}

const OUTCOME_TEXT: Record<HostResult['outcome'], string> = {
  pushed: '✅ plan imported',
  switched: '✅ switched',
  booted: '✅ set for next boot',
  tested: '✅ tested',
  'dry-activated': '✅ dry-activated',
  'rolled-back': '❌ failed, rolled back',
  reverted: '❌ rollback failed, undone',
  failed: '❌ failed',
  'needs-attention': '🚨 failed, needs attention',
  skipped: '⏭️ skipped',
};

const ACTION_WORDS: Record<HostResult['action'], string> = {
  push: 'push',
  switch: 'switch',
  boot: 'boot',
  test: 'test',
  'dry-activate': 'dry-activate: nothing was changed, this is what a switch would change',
};

/**
 * What changes on one host, for the reviewer: the generation replaced, the package counts and
 * closure sizes, the version changes in a table and the rest collapsed, within `budget` bytes.
 * Every path and name came from the host: code spans and escaped text only.
 */
export function changesSection(h: HostResult, c: HostChanges, budget: number): string {
  const from =
    c.previous === undefined
      ? 'no generation yet'
      : `${c.previous.generation === undefined ? 'current generation' : `generation ${c.previous.generation}`} ${codeSpan(c.previous.system)}`;
  const parts = [
    `### Changes on ${codeSpan(h.name)} (${ACTION_WORDS[h.action]})\n\n`,
    `${from} → ${codeSpan(c.system)}\n\n`,
    // Our words and numbers only: no text from the host in the headline.
    c.status === 'changed' ? `**${changesHeadline(c)}**\n\n` : `${changesHeadline(c)}\n\n`,
  ];
  if (c.status === 'changed') {
    const packages = c.packages.map(asPackageChange);
    const head = versionChangesTable(packages, budget / 4);
    if (head !== '') parts.push(head, '\n');
    const used = parts.reduce((sum, p) => sum + Buffer.byteLength(p), 0);
    parts.push(
      packageDetails(
        packages,
        Math.max(0, budget - used),
        'not shown: `nix-plan deploy --json` (or the `result` output) lists every one',
      ),
    );
  }
  return parts.join('');
}

/**
 * A host's result, saying where a failed one was left (as the command line's table does): a
 * deploy rolled back to generation N, or undone with no generation before it; a rollback that
 * failed and was undone, back on the generation it went back from; one that needs attention.
 */
function outcomeText(h: HostResult): string {
  const g = h.generation;
  if (h.outcome === 'rolled-back')
    return g === undefined ? '❌ failed, undone (no generation before it)' : `❌ failed, rolled back to ${g}`;
  if (h.outcome === 'reverted')
    return g === undefined ? OUTCOME_TEXT.reverted : `❌ rollback failed, ${g} re-activated`;
  if (h.outcome === 'needs-attention' && h.rollback !== undefined)
    return '🚨 rollback failed, needs attention';
  return OUTCOME_TEXT[h.outcome];
}

/** Outcomes where the plan's system is what the host got (pushed, built, or activated). */
const GOT_THE_PLAN: ReadonlySet<HostResult['outcome']> = new Set([
  'pushed',
  'dry-activated',
  'switched',
  'booted',
  'tested',
]);

/**
 * The system a host's row shows: what its profile points at when that is known, else the plan's
 * system only for a host that got it. A host refused or failed before activating (or rolled back)
 * is not running the plan's system, and its row must not read as if it were.
 */
function systemCell(h: HostResult): string {
  const system = h.currentSystem ?? (GOT_THE_PLAN.has(h.outcome) ? h.system : undefined);
  return system === undefined ? '' : markdownCode(system);
}

/** The host table, what changes on each host, and each failure's message. */
function hostSections(hosts: readonly HostResult[]): string[] {
  // Host names are plain words (hosts.ts); paths came from the host: code spans (table() escapes
  // its cells for the table itself, so they go in as markdownCode).
  const rows = hosts.map((h) => [
    h.name,
    h.generation === undefined
      ? '–'
      : `${h.generation}${h.previousGeneration !== undefined && h.previousGeneration !== h.generation ? ` (was ${h.previousGeneration})` : ''}`,
    outcomeText(h),
    h.outcome === 'skipped' ? '–' : formatMs(h.seconds * 1000),
    systemCell(h),
  ]);
  const budget = DIFF_BUDGET / Math.max(1, hosts.filter((h) => h.changes !== undefined).length);
  const changes = hosts.flatMap((h) =>
    h.changes === undefined ? [] : [changesSection(h, h.changes, budget)],
  );
  // A message may quote what the host printed (its build log, switch-to-configuration): a code
  // span, where GitHub links no @mention or #reference (a backslash before them does not stop it).
  const failures = hosts
    .filter((h) => h.error !== undefined)
    .map((h) => `- ${codeSpan(h.name)}: ${codeSpan((h.error?.message ?? '').replace(/\r?\n/g, ' '))}`);
  return [
    table(['host', 'generation', 'result', 'time', 'system'], rows),
    ...changes,
    ...(failures.length === 0 ? [] : ['### Failures', '', ...failures, '']),
  ];
}

/**
 * How to undo what a deploy did to the hosts whose profile it moved (switched, or set for the next
 * boot), in our words: '' when it moved none (a dry-activate, a push, a test, a failure). A host
 * that already ran the system got no new generation (nix-env makes none for the system its newest
 * generation holds), and one on its first generation has none to go back to: a rollback would
 * undo an earlier deploy, or be refused, so neither is offered one.
 */
function undoSection(hosts: readonly HostResult[]): string[] {
  const activated = hosts.filter((h) => h.outcome === 'switched' || h.outcome === 'booted');
  const first = activated.filter((h) => h.previousGeneration === undefined);
  const same = activated.filter(
    (h) => h.previousGeneration !== undefined && h.generation === h.previousGeneration,
  );
  const moved = activated.filter((h) => !first.includes(h) && !same.includes(h));
  if (activated.length === 0) return [];
  const names = (list: readonly HostResult[]): string => list.map((h) => codeSpan(h.name)).join(', ');
  const one = (list: readonly HostResult[], singular: string, plural: string): string =>
    list.length === 1 ? singular : plural;
  return [
    '### To undo',
    '',
    ...(moved.length === 0
      ? []
      : [
          `${names(moved)} ${one(moved, 'is', 'are')} on a new generation now. ` +
            'Run this action again with `rollback: true` (the same `hosts` and `profile`, no plan needed) to take ' +
            'each host back one generation with the same safety: to the highest-numbered generation below its current ' +
            'one, as `nix-env --rollback` chooses; `nix-plan deploy --rollback --host …` does the same from a shell.',
          '',
        ]),
    ...(same.length === 0
      ? []
      : [
          `${names(same)}: the profile already held this system, so no generation was made and there is none of ` +
            'this deploy to undo (`rollback: true` would go back past it, to the generation below).',
          '',
        ]),
    ...(first.length === 0
      ? []
      : [
          `${names(first)} ${one(first, 'has', 'have')} the first generation of ${one(first, 'its', 'their')} profile: ` +
            `there is none before it to roll back to.`,
          '',
        ]),
  ];
}

/** The job summary: one row per host, what changes on each, then each failure's message. */
export function deploySummary(
  label: string,
  result: DeployResult,
  now = new Date(),
  unpinned: string | undefined = undefined,
): string {
  return capSummary(
    [
      // The label is an input (a bundle path, an artifact name): a code span like any other value.
      `## nix-plan deploy: ${markdownCode(label)}`,
      '',
      `Plan \`${result.digest}\`: ${trustMarkdown(result.manifest, result.trust)}.`,
      '',
      ...(unpinned === undefined ? [] : [unpinnedMarkdown(unpinned)]),
      originMarkdown(result.manifest, result.trust, { now }),
      ...hostSections(result.hosts),
      ...undoSection(result.hosts),
    ].join('\n'),
  );
}

/** A rollback's job summary: which generation each host went back from and to, then as a deploy's. */
export function rollbackSummary(result: RollbackResult): string {
  const lines = result.hosts.map((h) => {
    const step = h.rollback === undefined ? '' : ` from generation ${h.rollback.from} to ${h.rollback.to}`;
    if (h.outcome === 'skipped') return `- ${codeSpan(h.name)}: skipped`;
    if (h.error === undefined)
      return h.action === 'switch' || h.action === 'boot'
        ? `- ${codeSpan(h.name)}: rolled back${step} (${h.action})`
        : `- ${codeSpan(h.name)}: ${h.action} of generation ${h.rollback?.to ?? '?'} only; the profile was left at ${h.rollback?.from ?? '?'}`;
    return `- ${codeSpan(h.name)}: **not rolled back**${step === '' ? '' : ` (${step.trim()} was tried)`}`;
  });
  return capSummary(
    [
      `## nix-plan deploy: rollback of ${codeSpan(result.profile)}`,
      '',
      ...lines,
      '',
      ...hostSections(result.hosts),
    ].join('\n'),
  );
}

/** Where the SSH identity and host keys live while the action runs (0700, removed afterwards). */
async function sshFiles(
  io: ActionIO,
  key: string | undefined,
  knownHosts: string | undefined,
): Promise<{ dir: string; args: string[] }> {
  const dir = jobTempDir(io, `ssh-${randomBytes(6).toString('hex')}`);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const args: string[] = [];
  if (key !== undefined) {
    const file = join(dir, 'id');
    await writeFile(file, key, { mode: 0o600, flag: 'wx' });
    args.push('-i', file, '-o', 'IdentitiesOnly=yes');
  }
  const hostsFile = join(dir, 'known_hosts');
  await writeFile(hostsFile, knownHosts ?? '', { mode: 0o600, flag: 'wx' });
  args.push(
    '-o',
    `UserKnownHostsFile=${hostsFile}`,
    '-o',
    `StrictHostKeyChecking=${knownHosts === undefined ? 'accept-new' : 'yes'}`,
  );
  return { dir, args };
}

/** Runs the deploy action. */
export async function run(deps: DeployActionDeps = defaultDeployDeps()): Promise<void> {
  const { io } = deps;
  const settings = parseDeploySettings(io.input, io.env);
  // The key never reaches the log: masked line by line before anything else can print it.
  if (settings.sshPrivateKey !== undefined)
    for (const line of settings.sshPrivateKey.split('\n')) if (line.trim() !== '') io.setSecret(line.trim());
  if (settings.source.kind === 'artifact' && settings.source.token !== undefined)
    io.setSecret(settings.source.token);
  if (settings.allowUnknownHosts && settings.knownHosts === undefined)
    io.log.warn(
      `"${DeployInput.AllowUnknownHosts}": host keys are not checked; a machine posing as a host would get the plan and the deploy`,
    );

  if (settings.rollback) return rollBack(deps, settings);
  const unpinned = unpinnedWarning(settings);
  if (unpinned !== undefined) io.log.warn(unpinned);
  const artifactDir = settings.source.kind === 'artifact' ? settings.source.artifactDir : undefined;
  const plan = await fetchPlan(settings, () => deps.transport(artifactDir), jobTempDir(io, 'fetched'));
  io.setOutput(DeployOutput.BundlePath, plan.path);

  const result = await onHosts(deps, settings, (hostOptions, hostDeps) =>
    deps.deployPlan(
      plan.path,
      {
        ...hostOptions,
        action: settings.action,
        buildOn: settings.buildOn,
        trustedKeys: settings.trustedKeys,
        noCheckSigs: settings.noCheckSigs,
        maxAgeMs: settings.maxAgeMs,
        maxAgeText: settings.maxAgeText,
        allowDowngrade: settings.allowDowngrade,
        // Checked again on the private copy that is deployed: the file could change after fetching.
        ...(settings.digest === undefined ? {} : { digest: settings.digest }),
      },
      {
        ...hostDeps,
        // build-on: local builds the private copy here, verified as realise verifies it.
        realise: (bundle, name) =>
          (deps.realisePlan ?? realisePlan)(
            bundle,
            {
              name,
              trustedKeys: settings.trustedKeys,
              noCheckSigs: settings.noCheckSigs,
              optionNames: ACTION_OPTION_NAMES,
            },
            hostDeps,
          ),
      },
    ),
  );
  io.setOutput(DeployOutput.Result, JSON.stringify(result));
  await io.appendSummary(deploySummary(plan.label, result, new Date(), settings.unpinned));
  throwIfFailed(result.hosts);
}

/** Each host's log lines and output, led by `[NAME] ` when there are several. */
function hostOutputs(log: Logger, hosts: number, write: (c: Uint8Array) => void): HostOutputs {
  return (name) =>
    prefixedOutput(hosts > 1 ? `[${name}] ` : '', log, (c) =>
      write(typeof c === 'string' ? Buffer.from(c) : c),
    );
}

/**
 * Runs a deploy or a rollback with what both take from the action: the hosts and how they are
 * reached (its SSH key and known hosts in a private directory, removed afterwards) and activated,
 * and each host's output in the Nix build log.
 */
async function onHosts<R>(
  deps: DeployActionDeps,
  settings: ReturnType<typeof parseDeploySettings>,
  go: (options: Omit<RollbackOptions, 'action'>, hostDeps: DeployDeps) => Promise<R>,
): Promise<R> {
  const { io } = deps;
  const ssh = await sshFiles(io, settings.sshPrivateKey, settings.knownHosts);
  const buildLog = nixBuildLog(io);
  try {
    return await go(
      {
        hosts: settings.hosts,
        profile: settings.profile,
        confirmTimeout: settings.confirmTimeout,
        activationTimeout: settings.activationTimeout,
        jobs: settings.jobs,
        keepGoing: settings.keepGoing,
        // The action's identity and host keys come first: ssh keeps the first value of an option.
        sshOptions: [...ssh.args, ...settings.sshOptions],
        useSudo: settings.useSudo,
        // Refusals name this action's inputs, not the command line's flags.
        optionNames: ACTION_OPTION_NAMES,
      },
      {
        runner: deps.runner,
        log: buildLog.log,
        progress: buildLog.progress,
        nixLog: buildLog.write,
        hostOutputs: hostOutputs(buildLog.log, settings.hosts.length, buildLog.write),
      },
    );
  } finally {
    buildLog.close();
    await rm(ssh.dir, { recursive: true, force: true });
  }
}

/** The step fails with the first failed host's error (its exit code's kind). */
function throwIfFailed(hosts: readonly HostResult[]): void {
  const failed = hosts.filter((h) => h.error !== undefined);
  const [first] = failed;
  if (first?.error !== undefined)
    throw new NixPlanError(
      first.error.code,
      hosts.length === 1
        ? first.error.message
        : `${failed.length} of ${hosts.length} hosts failed (first: ${first.name}: ${first.error.message})`,
    );
}

/** `rollback: true`: no plan is fetched; each host goes back one generation, as `deploy --rollback`. */
async function rollBack(
  deps: DeployActionDeps,
  settings: ReturnType<typeof parseDeploySettings>,
): Promise<void> {
  const { io } = deps;
  if (settings.action === 'push')
    throw new NixPlanError('usage', 'a rollback sends no plan: push has no meaning');
  if (settings.unusedInputs.length > 0)
    io.log.info(
      `rollback: no plan is fetched, so ${settings.unusedInputs.map((n) => `"${n}"`).join(', ')} ${settings.unusedInputs.length === 1 ? 'is' : 'are'} not used`,
    );
  const { action } = settings;
  const result = await onHosts(deps, settings, (hostOptions, hostDeps) =>
    (deps.deployRollback ?? deployRollback)({ ...hostOptions, action }, hostDeps),
  );
  io.setOutput(DeployOutput.Result, JSON.stringify(result));
  await io.appendSummary(rollbackSummary(result));
  throwIfFailed(result.hosts);
}
