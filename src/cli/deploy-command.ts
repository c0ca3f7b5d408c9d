// `nix-plan deploy`: its options, how `--host` values are read, and the final table per host.
import {
  ACTIVATION_ACTIONS,
  BUILD_ON,
  type DeployDeps,
  DEPLOY_ACTIONS,
  DEFAULT_CONFIRM_TIMEOUT,
  DEFAULT_PROFILE,
  type DeployResult,
  type HostResult,
  type RollbackResult,
  TRANSFER_ENCODINGS,
  prefixedOutput,
} from '../app/deploy/index.js';
import { changesLines } from './diff-format.js';
import { NixPlanError } from '../core/errors.js';
import { parseHostOption } from '../app/deploy/hosts.js';
import {
  flag,
  integer,
  list,
  oneOf,
  onePositional,
  readKeys,
  str,
  usageError,
  type ParsedArgs,
} from './args.js';
import {
  ACTIVATION_TIMEOUT,
  ALLOW_DOWNGRADE,
  define,
  MAX_AGE,
  maxAge,
  NO_CHECK_SIGS,
  noRest,
  print,
  TRUSTED_KEY,
  type Command,
  type CommandContext,
} from './command.js';

export { parseHostOption };

/** Options about the plan, meaningless for --rollback (which sends none): refused with it. */
const PLAN_OPTIONS = [
  'build-on',
  'trusted-key',
  'no-check-sigs',
  'max-age',
  'allow-downgrade',
  'allow-any-root',
  'compress',
] as const;

const RESULT_WORDS: Record<HostResult['outcome'], string> = {
  pushed: 'plan imported',
  switched: 'switched',
  booted: 'set for next boot',
  tested: 'tested',
  'dry-activated': 'dry-activated',
  'rolled-back': 'FAILED, rolled back',
  reverted: 'rollback FAILED, undone',
  failed: 'FAILED',
  'needs-attention': 'FAILED, NEEDS ATTENTION',
  skipped: 'skipped',
};

/**
 * A failed host's result, saying where it was left: a deploy rolled back to generation N (or
 * undone with no generation before it), a rollback that failed and was undone (back on the
 * generation it went back from), or one that needs attention — so that a failed rollback never
 * reads as a host rolled back.
 */
export function failureWords(h: Pick<HostResult, 'outcome' | 'generation' | 'rollback'>): string {
  const g = h.generation;
  if (h.outcome === 'rolled-back')
    return g === undefined ? 'FAILED, undone (no generation before it)' : `FAILED, rolled back to ${g}`;
  if (h.outcome === 'reverted')
    return g === undefined ? 'rollback FAILED, undone' : `rollback FAILED, ${g} re-activated`;
  if (h.outcome === 'needs-attention' && h.rollback !== undefined) return 'rollback FAILED, NEEDS ATTENTION';
  return RESULT_WORDS[h.outcome];
}

/**
 * What a rollback did, in the table: `switch` and `boot` went back to generation N; `test` and
 * `dry-activate` only ran its script and left the profile where it was.
 */
export function rollbackWords(action: HostResult['action'], to: number): string {
  if (action === 'switch') return `rolled back to ${to}, switched`;
  if (action === 'boot') return `rolled back to ${to} for next boot`;
  if (action === 'test') return `generation ${to} tested, profile unchanged`;
  return `generation ${to} dry-activated, nothing changed`;
}

/** The final table: host, generation, result, time (a rollback's results say so). */
export function formatDeploy(result: Pick<DeployResult | RollbackResult, 'hosts'>): string {
  const rows = result.hosts.map((h) => [
    h.name,
    h.generation === undefined
      ? '-'
      : `${h.generation}${h.previousGeneration !== undefined && h.previousGeneration !== h.generation ? ` (was ${h.previousGeneration})` : ''}`,
    h.rollback !== undefined && h.error === undefined && h.outcome !== 'skipped'
      ? rollbackWords(h.action, h.rollback.to)
      : failureWords(h),
    h.outcome === 'skipped' ? '-' : `${h.seconds.toFixed(1)} s`,
  ]);
  const header = ['HOST', 'GENERATION', 'RESULT', 'TIME'];
  const widths = header.map((t, i) => Math.max(t.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [
    line(header),
    ...rows.map(line),
    '',
    ...result.hosts.flatMap((h) => changesLines(h.name, h.changes)),
  ].join('\n');
}

/** The error that makes the exit code: the first failed host's (in --host order). */
function failure(result: Pick<DeployResult, 'hosts'>): NixPlanError | undefined {
  const failed = result.hosts.filter((h) => h.error !== undefined);
  const [first] = failed;
  if (first?.error === undefined) return undefined;
  if (result.hosts.length === 1) return new NixPlanError(first.error.code, first.error.message);
  const skipped = result.hosts.filter((h) => h.outcome === 'skipped').length;
  return new NixPlanError(
    first.error.code,
    `${failed.length} of ${result.hosts.length} hosts failed${skipped > 0 ? `, ${skipped} skipped` : ''}` +
      ` (first: ${first.name}: ${first.error.message})`,
  );
}

/** The `deploy` command. */
export function deployCommand(): Command {
  return define({
    name: 'deploy',
    summary: 'send a NixOS system plan to hosts over SSH, build it there and switch safely',
    usage: [
      'nix-plan deploy BUNDLE --host [USER@]HOST[:PORT] [--action ACTION] [--trusted-key KEY…] [OPTIONS]',
      'nix-plan deploy BUNDLE --host NAME=[USER@]HOST … [--jobs N] [--keep-going]',
      'nix-plan deploy --rollback --host [USER@]HOST[:PORT] … [--action ACTION] [OPTIONS]',
    ],
    description:
      'Verifies the plan here and, for each host: asks it for its store dir, Nix, profile and last-applied record, ' +
      'streams the plan with the system ssh into a private temp file there (read by Nix only once the plan is ' +
      'verified here and its sha256 checked there; a plan signed by a trusted key, or without build outputs, is sent ' +
      'while it is verified, any other only after), ' +
      'imports it with nix-store --import, builds the system, sets the profile and runs switch-to-configuration ' +
      '(under systemd-run when the host runs systemd). A failed activation re-activates the previous generation. A ' +
      'switch must be confirmed over a new connection within --confirm-timeout seconds, or a watchdog on the host ' +
      'restores the previous generation. The host needs only Nix, sh and an SSH server. With several hosts, each ' +
      "--host NAME=… gets the plan's root named NAME (its attribute, nixosConfigurations.NAME, or nixos-system-NAME-…). " +
      'Exit codes: 12 SSH or a host command failed, 13 activation failed and the previous generation was restored, ' +
      '14 activation failed and could not be undone. --rollback (no BUNDLE) takes each host back one generation of ' +
      'its profile instead, as nixos-rebuild --rollback does, with the same safety: what changes is shown first, ' +
      'a failed activation re-activates the generation rolled back from, an unconfirmed switch is undone by the ' +
      'watchdog; a host with no generation before the current one is refused (exit 2).',
    options: {
      host: {
        type: 'string',
        multiple: true,
        value: '[NAME=][USER@]HOST[:PORT]',
        help: 'a host to deploy to (required); NAME picks the root for it',
      },
      action: {
        type: 'string',
        value: 'ACTION',
        choices: DEPLOY_ACTIONS,
        help: 'switch (default), boot, test, dry-activate, or push (send and import the plan only)',
      },
      profile: {
        type: 'string',
        value: 'PATH',
        help: `the system profile on the host (default ${DEFAULT_PROFILE}; relative: from the login's home, refused with --use-sudo)`,
      },
      'confirm-timeout': {
        type: 'string',
        value: 'SECONDS',
        help: `revert a switch not confirmed within this time (default ${DEFAULT_CONFIRM_TIMEOUT}; 0: no confirmation)`,
      },
      'activation-timeout': ACTIVATION_TIMEOUT,
      'build-on': {
        type: 'string',
        value: 'WHERE',
        choices: BUILD_ON,
        help: 'host (default: build there) or local (build here, copy outputs)',
      },
      'trusted-key': TRUSTED_KEY,
      'no-check-sigs': NO_CHECK_SIGS,
      'max-age': MAX_AGE,
      'allow-downgrade': ALLOW_DOWNGRADE,
      'allow-any-root': { type: 'boolean', help: 'deploy a root that is not a nixos-system-… derivation' },
      jobs: { type: 'string', value: 'N', help: 'hosts deployed at once (default: all, at most 8)' },
      'keep-going': { type: 'boolean', help: 'go on with the other hosts after one fails' },
      rollback: {
        type: 'boolean',
        help: "no BUNDLE: go back to each host's previous generation and activate it",
      },
      'ssh-option': {
        type: 'string',
        multiple: true,
        dashValue: true,
        value: 'ARG',
        help: 'one raw argument for ssh, e.g. --ssh-option=-F./ssh_config or --ssh-option=-oPort=2222',
      },
      'use-sudo': {
        type: 'boolean',
        help: 'log in as a user allowed `sudo -n` and run the host side with it',
      },
      compress: {
        type: 'string',
        value: 'HOW',
        choices: TRANSFER_ENCODINGS,
        help: 'auto (default: zstd when the host has it), zstd, or none (the raw export stream)',
      },
    },
    examples: [
      'nix-plan deploy host.nixplan --host root@10.0.0.5 --trusted-key ci.pub',
      'nix-plan deploy fleet.nixplan --host web=root@10.0.0.5 --host db=root@10.0.0.6 --trusted-key ci.pub --keep-going',
      'nix-plan deploy host.nixplan --host deploy@host --use-sudo --action boot --ssh-option=-F./ssh_config',
      'nix-plan deploy --rollback --host root@10.0.0.5',
    ],
    async run(args: ParsedArgs, ctx: CommandContext): Promise<void> {
      noRest(args, 'deploy');
      const hosts = list(args, 'host').map(parseHostOption);
      if (hosts.length === 0) throw usageError('missing --host [USER@]HOST');
      const quiet = flag(args, 'quiet');
      const hostOutputs = (name: string): ReturnType<NonNullable<DeployDeps['hostOutputs']>> =>
        prefixedOutput(hosts.length > 1 ? `[${name}] ` : '', ctx.deps.log, (c) => {
          if (!quiet) ctx.io.stderr.write(c);
        });
      if (flag(args, 'rollback')) {
        if (args.positionals.length > 0)
          throw usageError(
            `--rollback takes no BUNDLE: it goes back to a generation the host has (got ${args.positionals.join(' ')})`,
          );
        for (const name of PLAN_OPTIONS)
          if (args.values[name] !== undefined)
            throw usageError(`--${name} is about a plan; --rollback sends none`);
        const action = oneOf(str(args, 'action'), 'action', ACTIVATION_ACTIONS);
        const rolled = await ctx.useCases.deployRollback(
          {
            hosts,
            action,
            profile: str(args, 'profile'),
            confirmTimeout: integer(str(args, 'confirm-timeout'), 'confirm-timeout', 0, 86400),
            activationTimeout: integer(str(args, 'activation-timeout'), 'activation-timeout', 0, 86400),
            jobs: integer(str(args, 'jobs'), 'jobs', 1, 1024),
            keepGoing: flag(args, 'keep-going'),
            sshOptions: list(args, 'ssh-option'),
            useSudo: flag(args, 'use-sudo'),
          },
          { ...ctx.deps, hostOutputs },
        );
        print(ctx, args, rolled, () => formatDeploy(rolled));
        const error = failure(rolled);
        if (error !== undefined) throw error;
        return;
      }
      const trustedKeys = await readKeys(list(args, 'trusted-key'));
      const result = await ctx.useCases.deployPlan(
        onePositional(args, 'BUNDLE'),
        {
          hosts,
          action: oneOf(str(args, 'action'), 'action', DEPLOY_ACTIONS),
          profile: str(args, 'profile'),
          confirmTimeout: integer(str(args, 'confirm-timeout'), 'confirm-timeout', 0, 86400),
          activationTimeout: integer(str(args, 'activation-timeout'), 'activation-timeout', 0, 86400),
          buildOn: oneOf(str(args, 'build-on'), 'build-on', BUILD_ON),
          trustedKeys,
          noCheckSigs: flag(args, 'no-check-sigs'),
          allowAnyRoot: flag(args, 'allow-any-root'),
          jobs: integer(str(args, 'jobs'), 'jobs', 1, 1024),
          keepGoing: flag(args, 'keep-going'),
          sshOptions: list(args, 'ssh-option'),
          useSudo: flag(args, 'use-sudo'),
          ...maxAge(args),
          allowDowngrade: flag(args, 'allow-downgrade'),
          compress: oneOf(str(args, 'compress'), 'compress', TRANSFER_ENCODINGS),
        },
        {
          ...ctx.deps,
          realise: (bundle, name) =>
            ctx.useCases.realisePlan(
              bundle,
              { trustedKeys, noCheckSigs: flag(args, 'no-check-sigs'), name },
              ctx.deps,
            ),
          hostOutputs,
        },
      );
      print(ctx, args, result, () => formatDeploy(result));
      const error = failure(result);
      if (error !== undefined) throw error;
    },
  });
}
