// Safe activation, for `deploy` and `apply` alike: run the host program's activation, confirm it
// over a new connection (or find out what the watchdog did when the connection was lost), and say
// which generation is current at the end of every path.
import { randomBytes } from 'node:crypto';
import { basename } from 'node:path';
import { NixPlanError, type ErrorCode } from '../../core/errors.js';
import { HostSessionError, type ActivateArgs, type HostProgram } from '../../nix/host-program.js';
import { type ActivationReport } from '../../nix/host-markers.js';
import type { Logger } from '../deps.js';

/** What switch-to-configuration is asked to do (nixos-rebuild's actions of the same names). */
export type ActivationAction = ActivateArgs['action'];

/** Every action, for parsing and help texts. */
export const ACTIVATION_ACTIONS: readonly ActivationAction[] = ['switch', 'boot', 'test', 'dry-activate'];

/** Default seconds the host waits for confirmation after switching (deploy-rs's default too). */
export const DEFAULT_CONFIRM_TIMEOUT = 30;

/**
 * Default seconds switch-to-configuration may run before it is stopped and the previous
 * generation re-activated: a switch that restarts many services takes minutes, one that has not
 * finished in ten is hanging (deploy-rs has a timeout for the same reason, activationTimeout).
 */
export const DEFAULT_ACTIVATION_TIMEOUT = 600;

/** What to activate and how. */
export type ActivationRequest = Omit<ActivateArgs, 'id'>;

/** How an activation ended well. */
export interface ActivationOutcome {
  readonly report: ActivationReport;
  /** Whether a confirmation was needed and given. */
  readonly confirmed: boolean;
  /** The profile's generation number afterwards. */
  readonly generation: number | undefined;
  readonly previousGeneration: number | undefined;
}

/** An activation that failed: the error code says whether the host was restored (13) or not (14). */
export class ActivationError extends NixPlanError {
  override readonly name = 'ActivationError';
  constructor(
    code: ErrorCode,
    message: string,
    readonly report: ActivationReport,
  ) {
    super(code, message);
  }
}

/** The generation number of a link like `/nix/var/nix/profiles/system-42-link`. */
export function generationNumber(link: string | undefined): number | undefined {
  const m = /-(\d+)-link$/.exec(basename(link ?? ''));
  return m?.[1] === undefined ? undefined : Number(m[1]);
}

/** A fresh activation id: sortable by time (the host keeps the newest few), unique by chance. */
export function newActivationId(now = new Date()): string {
  const stamp = now
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
  return `${stamp}-${randomBytes(4).toString('hex')}`;
}

/** "generation 3 (/nix/store/…-nixos-system-…)" or "no generation". */
function describeCurrent(r: ActivationReport): string {
  const n = generationNumber(r.current);
  if (n === undefined) return 'the profile has no generation now';
  return `the current generation is ${n}${r.currentSystem === undefined ? '' : ` (${r.currentSystem})`}`;
}

/** The error for a report that did not end well, or undefined for one that did. */
export function reportProblem(
  report: ActivationReport,
  action: ActivationAction,
  confirmTimeout: number,
  rollingBack = false,
): ActivationError | undefined {
  // In a rollback, the generation restored is the one rolled back from.
  const earlier = rollingBack ? 'the generation rolled back from' : 'the previous generation';
  const why =
    report.timedOut !== undefined
      ? `switch-to-configuration ${action} did not finish within ${report.timedOut} s and was stopped`
      : report.switchRc !== undefined && report.switchRc !== 0
        ? `switch-to-configuration ${action} exited with ${report.switchRc}${report.switchRc === 4 ? ' (some units failed)' : ''}`
        : `the activation was not confirmed within ${confirmTimeout} s`;
  const previous = generationNumber(report.previous);
  switch (report.state) {
    case 'done':
      return undefined;
    case 'dry-activated':
      return report.switchRc === 0
        ? undefined
        : new ActivationError(
            'activation',
            `${report.timedOut !== undefined ? why : `switch-to-configuration dry-activate exited with ${report.switchRc ?? '?'}`}; nothing was changed`,
            report,
          );
    case 'reverted':
      return new ActivationError(
        'activation',
        `${why}: re-activated ${earlier}${previous === undefined ? '' : ` ${previous}`}` +
          `${report.removed === undefined ? '' : ` and removed ${basename(report.removed)}`}; ${describeCurrent(report)}`,
        report,
      );
    case 'no-previous':
      return new ActivationError(
        'activation',
        `${why}: there was no previous generation to re-activate` +
          `${report.removed === undefined ? '' : `; removed ${basename(report.removed)}`}; ${describeCurrent(report)}`,
        report,
      );
    case 'revert-failed':
      return new ActivationError(
        'attention',
        `${why}, and restoring ${earlier} failed` +
          `${report.revertTimedOut !== undefined ? ` (its switch-to-configuration did not finish within ${report.revertTimedOut} s and was stopped)` : report.revertRc === undefined ? '' : ` (its switch-to-configuration exited with ${report.revertRc})`}: ` +
          `the host needs attention; ${describeCurrent(report)}`,
        report,
      );
    default:
      return new ActivationError(
        'attention',
        `the activation on the host stopped in state '${report.state ?? 'unknown'}' without finishing: ` +
          `the host needs attention; ${describeCurrent(report)}`,
        report,
      );
  }
}

/** Clock and pause, injectable so the retry loop can be tested without waiting. */
export interface ActivationClock {
  now(): number;
  sleep(ms: number): Promise<void>;
}

const realClock: ActivationClock = {
  now: () => Date.now(),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
};

/** Where an activation's messages and the host's output go. */
export interface ActivationIo {
  readonly log: Logger;
  readonly output?: ((chunk: Uint8Array) => void) | undefined;
  readonly clock?: ActivationClock | undefined;
}

/**
 * Keeps trying the confirm phase over new connections until `deadline` (ms): the host answers
 * with the activation's outcome (and whether this confirmation or the watchdog won).
 */
async function confirmUntil(
  program: HostProgram,
  profile: string,
  id: string,
  offset: number,
  deadline: number,
  io: ActivationIo,
): Promise<ActivationReport> {
  const clock = io.clock ?? realClock;
  let logged = offset;
  for (let attempt = 1; ; attempt++) {
    try {
      return await program.confirm(profile, id, logged, { onOutput: io.output });
    } catch (e) {
      if (!(e instanceof HostSessionError) || !e.connectionLost) throw e;
      logged = Math.max(logged, e.partial.logged);
      if (clock.now() >= deadline) throw e;
      io.log.debug(`${program.shell.label}: reconnecting to confirm (attempt ${attempt}): ${e.message}`);
      await clock.sleep(1000);
    }
  }
}

/**
 * Activates `request` through `program` and sees it through: confirms a switch or test over a
 * new connection (deploy-rs's magic rollback, with the race settled on the host), reconnects
 * when the session drops, and fails with the error code that says what state the host is in.
 */
export async function activateSafely(
  program: HostProgram,
  request: ActivationRequest,
  io: ActivationIo,
): Promise<ActivationOutcome> {
  const clock = io.clock ?? realClock;
  const id = newActivationId();
  const earlier =
    request.rollback === undefined ? 'the previous generation' : 'the generation rolled back from';
  const window = Math.max(request.confirmTimeout, 5) * 1000;
  let report: ActivationReport;
  try {
    report = await program.activate({ ...request, id }, { onOutput: io.output });
  } catch (e) {
    // A session lost after the supervisor started: the activation goes on without us. Come back
    // to follow it, and to confirm it if the host still lets us in.
    if (!(e instanceof HostSessionError) || !e.connectionLost || e.partial.id === undefined) throw e;
    io.log.warn(`${program.shell.label}: lost the connection during the activation; reconnecting`);
    try {
      report = await confirmUntil(program, request.profile, id, e.partial.logged, clock.now() + window, io);
    } catch (again) {
      if (!(again instanceof HostSessionError)) throw again;
      throw new NixPlanError(
        'host',
        `${program.shell.label}: lost the connection during the activation and could not reconnect within ` +
          `${window / 1000} s. ${request.confirmTimeout > 0 && (request.action === 'switch' || request.action === 'test') ? `Unconfirmed, the host's watchdog re-activates ${earlier}${e.partial.previous === undefined ? '' : ` (${basename(e.partial.previous)})`} ${request.confirmTimeout} s after the switch ends.` : 'The activation goes on there; check the host.'} Last error: ${again.message}`,
      );
    }
  }
  let confirmed = false;
  if (report.state === 'awaiting-confirmation' && report.id !== undefined) {
    const first = report;
    report = await confirmUntil(
      program,
      request.profile,
      report.id,
      report.logged,
      clock.now() + request.confirmTimeout * 1000,
      io,
    )
      .then((r) => ({
        ...r,
        previous: r.previous ?? first.previous,
        previousSystem: r.previousSystem ?? first.previousSystem,
        generation: r.generation ?? first.generation,
      }))
      .catch((e: unknown) => {
        if (!(e instanceof HostSessionError)) throw e;
        throw new NixPlanError(
          'host',
          `${program.shell.label}: switched, but could not log in again to confirm within ${request.confirmTimeout} s: ` +
            `unconfirmed, the host's watchdog re-activates ${earlier}. Last error: ${e.message}`,
        );
      });
    confirmed = report.confirmed === true && report.state === 'done';
  }
  const problem = reportProblem(
    report,
    request.action,
    request.confirmTimeout,
    request.rollback !== undefined,
  );
  if (problem !== undefined) throw problem;
  return {
    report,
    confirmed,
    generation: generationNumber(report.current),
    previousGeneration: generationNumber(report.previous),
  };
}
