// Going back one generation on a host (`deploy --rollback` over SSH, `apply --rollback` here), as
// `nix-env --profile P --rollback` and `nixos-rebuild --rollback` do, with the safety of a deploy:
// the host program finds the generation before the current one, the comparison of the two systems
// is shown before anything changes, and the switch runs under the same supervisor — a failed
// switch re-activates the generation rolled back from, an unconfirmed one is undone by the watchdog.
import { basename } from 'node:path';
import { NixPlanError } from '../../core/errors.js';
import { parseLastApplied, type LastApplied } from '../../core/freshness.js';
import { rfc3339 } from '../../core/provenance.js';
import { isStorePath } from '../../core/store-path.js';
import type { HostProbe } from '../../nix/host-markers.js';
import type { HostProgram } from '../../nix/host-program.js';
import type { Logger } from '../deps.js';
import {
  activateSafely,
  generationNumber,
  type ActivationAction,
  type ActivationClock,
  type ActivationOutcome,
} from './activation.js';
import { readChanges, type HostChanges } from './changes.js';
import { lastActivationNotes } from './last-activation.js';
import { RECORD_SUFFIX, recordSeen } from './record.js';

/** Where a rollback goes: from the current generation to the one numbered just below it. */
export interface RollbackStep {
  /** The current generation's link (absolute) and number, and its system. */
  readonly from: string;
  readonly fromGeneration: number;
  readonly fromSystem: string | undefined;
  /** The generation rolled back to: its number and system. */
  readonly to: number;
  readonly toSystem: string;
}

/** What the host's probe says a rollback of `profile` would do; refuses (usage, exit 2) when nothing can. */
export function rollbackStep(probe: HostProbe, label: string, profile: string): RollbackStep {
  const fromGeneration = generationNumber(probe.generation);
  if (probe.generation === undefined || fromGeneration === undefined)
    throw new NixPlanError(
      'usage',
      `${label}: profile '${profile}' has no generation, so there is nothing to roll back; nothing was changed`,
    );
  const to = generationNumber(probe.previousGeneration);
  if (to === undefined)
    throw new NixPlanError(
      'usage',
      `${label}: profile '${profile}' has no generation before the current one (${fromGeneration}) to roll back to; nothing was changed`,
    );
  // nix-env makes generations as links to store paths: anything else (a link to a link, to a
  // directory elsewhere) is not a generation to activate, and what it shows could change under it.
  if (probe.previousSystem === undefined || !isStorePath(probe.previousSystem, probe.storeDir))
    throw new NixPlanError(
      'host',
      `${label}: generation ${to} of '${profile}' (${basename(probe.previousGeneration ?? '')}) is not a link to a system in ${probe.storeDir}; nothing was changed`,
    );
  return {
    from: probe.generation,
    fromGeneration,
    fromSystem: probe.system,
    to,
    toSystem: probe.previousSystem,
  };
}

/**
 * The last-applied record after a rollback (`bytes`, as the probe read it): the plan it names
 * stays the host's downgrade floor — a rollback goes to a generation the host already had, it
 * does not make older plans acceptable again — and `rolledBack` says the host no longer runs that
 * plan's system: which generation it went back to, from which, and when. Readers that do not know
 * the member ignore it; the next deploy writes a record without it. Only the record's own members
 * are written back (a host's record is not trusted to hold nothing else: a member nested 100,000
 * deep would stop the rollback at JSON.stringify). '' (leave the record alone) when there is none,
 * or when it is not a record (said so: a deploy refuses it until repaired).
 */
export function rolledBackRecord(
  bytes: Uint8Array | undefined,
  step: RollbackStep,
  at: Date,
  where: string,
  log: Logger,
): string {
  if (bytes === undefined) return '';
  let record: LastApplied;
  try {
    record = parseLastApplied(Buffer.from(bytes).toString('utf8'), `${where}${RECORD_SUFFIX}`);
  } catch {
    log.warn(`${where}${RECORD_SUFFIX} is not a last-applied record: left as it is`);
    return '';
  }
  return JSON.stringify({
    ...record,
    rolledBack: {
      generation: step.to,
      system: step.toSystem,
      from: step.fromGeneration,
      at: rfc3339(at),
    },
  });
}

/** How to roll back one host. */
export interface RollbackRequest {
  readonly label: string;
  readonly profile: string;
  readonly action: ActivationAction;
  readonly confirmTimeout: number;
  readonly activationTimeout: number;
}

/** Where one host's rollback reports. */
export interface RollbackIo {
  readonly log: Logger;
  readonly output?: ((chunk: Uint8Array) => void) | undefined;
  readonly clock?: ActivationClock | undefined;
  readonly signal?: AbortSignal | undefined;
  /** The clock for the record (default: now). */
  readonly now?: (() => Date) | undefined;
  /** Told what the rollback changes, before anything is activated. */
  readonly onChanges?: ((changes: HostChanges) => void) | undefined;
  /** Told where the rollback goes, once the probe shows it can. */
  readonly onStep?: ((step: RollbackStep) => void) | undefined;
  /** Prefix the comparison's lines with the host's label (several hosts). */
  readonly labelled?: boolean | undefined;
}

/** What a rollback did on one host. */
export interface HostRollback {
  readonly step: RollbackStep;
  readonly changes: HostChanges;
  readonly activation: ActivationOutcome;
  /** What was warned of the last activation before this one (lastActivationNotes). */
  readonly lastActivation: readonly string[];
}

/**
 * Rolls one host back, its probe already read: refuses when there is no generation before the
 * current one, says what changes (the current system → the previous one, package by package),
 * then activates the previous generation safely — `switch`/`boot` switch the profile to it
 * (`nix-env --switch-generation`, no new generation), `test`/`dry-activate` leave the profile
 * alone. The record is updated (see rolledBackRecord) only once a switch is confirmed or a boot set.
 */
export async function rollBackHost(
  program: HostProgram,
  probe: HostProbe,
  request: RollbackRequest,
  io: RollbackIo,
): Promise<HostRollback> {
  const step = rollbackStep(probe, request.label, request.profile);
  io.onStep?.(step);
  const lastActivation = lastActivationNotes(probe, request.label, request.profile, true);
  for (const note of lastActivation) io.log.warn(note);
  io.log.info(
    `${request.label}: rolling back from generation ${step.fromGeneration} to ${step.to} (${request.action})`,
  );
  const changes = await readChanges(
    program,
    { profile: request.profile, out: step.toSystem, storeDir: probe.storeDir },
    {
      log: io.log,
      label: io.labelled === true ? request.label : undefined,
      output: io.output,
      signal: io.signal,
    },
  );
  io.onChanges?.(changes);
  const persistent = request.action === 'switch' || request.action === 'boot';
  const now = (io.now ?? (() => new Date()))();
  const activation = await activateSafely(
    program,
    {
      profile: request.profile,
      action: request.action,
      out: step.toSystem,
      confirmTimeout: request.confirmTimeout,
      activationTimeout: request.activationTimeout,
      recordSeen: recordSeen(probe.record),
      record: persistent ? rolledBackRecord(probe.record, step, now, request.profile, io.log) : '',
      rollback: { to: step.to, from: step.from },
    },
    { log: io.log, output: io.output, clock: io.clock },
  );
  return { step, changes, activation, lastActivation };
}
