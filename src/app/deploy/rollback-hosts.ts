// deployRollback: `nix-plan deploy --rollback` — each host goes back one generation of its profile
// over SSH, with a deploy's safety (rollback.ts), in parallel as a deploy's hosts are.
import { NixPlanError, stringifyError, type ErrorCode } from '../../core/errors.js';
import { HostProgram } from '../../nix/host-program.js';
import { SshHost, formatSshTarget, type SshTarget } from '../../nix/ssh.js';
import { DEFAULT_ACTIVATION_TIMEOUT, DEFAULT_CONFIRM_TIMEOUT } from './activation.js';
import type { HostChanges } from './changes.js';
import { checkProbe } from './host.js';
import { defaultOutputs, failedOutcome, generationOfLink, OUTCOME } from './index.js';
import { pool } from './pool.js';
import { rollBackHost, type RollbackStep } from './rollback.js';
import {
  DEFAULT_PROFILE,
  type DeployDeps,
  type HostResult,
  type RollbackOptions,
  type RollbackResult,
} from './types.js';

/**
 * Rolls every host in `options.hosts` back one generation of `options.profile`: probes it (its
 * generations, the record, whether an activation is running), refuses a host with no generation
 * before the current one, says what changes, and activates the previous generation safely. Hosts
 * fail one by one, as in a deploy: the result lists each (`ok` false when any failed).
 */
export async function deployRollback(options: RollbackOptions, deps: DeployDeps): Promise<RollbackResult> {
  if (options.hosts.length === 0)
    throw new NixPlanError('usage', 'deploy --rollback needs at least one --host');
  const names = options.hosts.map((h) => h.name ?? formatSshTarget(h.target));
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup !== undefined) throw new NixPlanError('usage', `host '${dup}' is given twice`);
  const action = options.action ?? 'switch';
  const profile = options.profile ?? DEFAULT_PROFILE;
  if (profile === '' || profile.includes('\0')) throw new NixPlanError('usage', '--profile must be a path');
  const shellFor =
    deps.shellFor ?? ((t: SshTarget) => new SshHost(t, { sshOptions: options.sshOptions ?? [] }));
  const outputs = deps.hostOutputs ?? defaultOutputs(deps, options.hosts.length > 1);
  let failed = false;
  const hosts = await pool<HostResult>(
    options.hosts.length,
    options.jobs ?? Math.min(8, options.hosts.length),
    async (i) => {
      const name = names[i] ?? '';
      const spec = options.hosts[i];
      if (spec === undefined) throw new NixPlanError('internal', 'host list out of step');
      const base = { name, target: formatSshTarget(spec.target), action };
      if (failed && options.keepGoing !== true) return { ...base, outcome: 'skipped', seconds: 0 };
      const started = performance.now();
      const program = new HostProgram(shellFor(spec.target), { sudo: options.useSudo });
      const label = options.hosts.length > 1 ? name : program.shell.label;
      const out = outputs(name);
      let changes: HostChanges | undefined;
      let step: RollbackStep | undefined;
      try {
        const probe = await program.probe(profile, deps.signal);
        checkProbe({ label }, { storeDir: probe.storeDir }, probe, true);
        const done = await rollBackHost(
          program,
          probe,
          {
            label,
            profile,
            action,
            confirmTimeout: options.confirmTimeout ?? DEFAULT_CONFIRM_TIMEOUT,
            activationTimeout: options.activationTimeout ?? DEFAULT_ACTIVATION_TIMEOUT,
          },
          {
            log: out.log,
            output: out.output,
            clock: deps.clock,
            signal: deps.signal,
            now: deps.now,
            labelled: true,
            onChanges: (c) => (changes = c),
            onStep: (s) => (step = s),
          },
        );
        const { activation } = done;
        if (activation.report.recordFailed)
          out.log.warn(`${label}: the host could not write its last-applied record`);
        return {
          ...base,
          system: done.step.toSystem,
          outcome: OUTCOME[action],
          generation: activation.generation,
          previousGeneration: activation.previousGeneration,
          currentSystem: activation.report.currentSystem,
          confirmed: activation.confirmed,
          changes,
          rollback: { from: done.step.fromGeneration, to: done.step.to },
          seconds: (performance.now() - started) / 1000,
        };
      } catch (e) {
        failed = true;
        const code: ErrorCode = e instanceof NixPlanError ? e.code : 'internal';
        const message = stringifyError(e);
        const report = (e as { report?: { current?: string; previous?: string; currentSystem?: string } })
          .report;
        if (options.hosts.length > 1) out.log.warn(message);
        return {
          ...base,
          ...(step !== undefined && {
            system: step.toSystem,
            rollback: { from: step.fromGeneration, to: step.to },
          }),
          outcome: failedOutcome(code),
          ...(report !== undefined && {
            generation: generationOfLink(report.current),
            previousGeneration: generationOfLink(report.previous),
            currentSystem: report.currentSystem,
          }),
          changes,
          seconds: (performance.now() - started) / 1000,
          error: { code, message },
        };
      } finally {
        out.done();
      }
    },
  );
  return {
    rollback: true,
    profile,
    hosts,
    ok: hosts.every((h) => h.error === undefined && h.outcome !== 'skipped'),
  };
}
