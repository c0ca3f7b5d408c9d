// deployRollback: `nix-plan deploy --rollback` — each host goes back one generation of its profile
// over SSH, with a deploy's safety (rollback.ts), in parallel as a deploy's hosts are.
import { NixPlanError } from '../../core/errors.js';
import { formatSshTarget } from '../../nix/ssh.js';
import { DEFAULT_ACTIVATION_TIMEOUT, DEFAULT_CONFIRM_TIMEOUT } from './activation.js';
import type { HostChanges } from './changes.js';
import { checkProbe } from './host.js';
import { checkHosts, defaultOutputs, hostActivated, hostFailure, hostProgram } from './index.js';
import { pool } from './pool.js';
import { rollBackHost, type RollbackStep } from './rollback.js';
import { type DeployDeps, type HostResult, type RollbackOptions, type RollbackResult } from './types.js';

/**
 * Rolls every host in `options.hosts` back one generation of `options.profile`: probes it (its
 * generations, the record, whether an activation is running), refuses a host with no generation
 * before the current one, says what changes, and activates the previous generation safely. Hosts
 * fail one by one, as in a deploy: the result lists each (`ok` false when any failed).
 */
export async function deployRollback(options: RollbackOptions, deps: DeployDeps): Promise<RollbackResult> {
  const { names, profile } = checkHosts(options, 'deploy --rollback');
  const action = options.action ?? 'switch';
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
      const program = hostProgram(spec.target, options, deps);
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
        return {
          ...base,
          system: done.step.toSystem,
          ...hostActivated(label, action, done.activation, out.log),
          changes,
          rollback: { from: done.step.fromGeneration, to: done.step.to },
          seconds: (performance.now() - started) / 1000,
        };
      } catch (e) {
        failed = true;
        const failure = hostFailure(e);
        if (options.hosts.length > 1) out.log.warn(failure.error.message);
        return {
          ...base,
          ...(step !== undefined && {
            system: step.toSystem,
            rollback: { from: step.fromGeneration, to: step.to },
          }),
          ...failure,
          // The rollback was undone, not done: never the outcome a deploy that was rolled back has.
          ...(failure.outcome === 'rolled-back' && { outcome: 'reverted' as const }),
          changes,
          seconds: (performance.now() - started) / 1000,
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
