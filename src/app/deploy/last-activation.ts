// What the newest activation on a host left it running, said before the next deploy or rollback
// changes anything: a switch the watchdog reverted, one that failed and was undone, one whose
// supervisor never finished, or a `test` that no generation of the profile names (a rollback goes
// past it rather than undoing it).
import type { HostProbe } from '../../nix/host-markers.js';
import { generationNumber } from './activation.js';

/** "2026-12-07T23:03:00Z" from an activation id ("20261207T230300Z-…"). */
function startedAt(id: string): string {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z/.exec(id);
  return m === null ? id : `${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}Z`;
}

/**
 * Warnings about the newest activation the probe found beside `profile` on the host `label`, for
 * a deploy or (`rollback`) a rollback about to start; none when it ended as planned.
 */
export function lastActivationNotes(
  probe: HostProbe,
  label: string,
  profile: string,
  rollback: boolean,
): string[] {
  const last = probe.lastActivation;
  if (last === undefined) return [];
  const what = `${label}: the last activation here (${last.action} of ${last.out ?? 'a system'}, started ${startedAt(last.id)})`;
  const log = `${profile}.nix-plan.d/act-${last.id}/log on the host`;
  const current = generationNumber(probe.generation);
  const why = last.expired
    ? 'was not confirmed in time'
    : last.timedOut
      ? 'did not finish within its activation timeout'
      : last.switchRc !== undefined && last.switchRc !== 0
        ? `failed (switch-to-configuration exited with ${last.switchRc})`
        : 'did not complete';
  switch (last.state) {
    case 'reverted':
      return [
        `${what} ${why}: ${last.expired ? "the host's watchdog" : 'the supervisor'} re-activated the generation before it` +
          (rollback && current !== undefined
            ? `. The host runs generation ${current} again, and a rollback goes one further back`
            : ''),
      ];
    case 'no-previous':
      return [`${what} ${why}, and was undone; there was no generation before it to re-activate`];
    case 'revert-failed':
      return [
        `${what} failed, and re-activating the generation before it failed too: the host may need attention (${log})`,
      ];
    case 'starting':
    case 'switching':
    case 'awaiting-confirmation':
    case 'reverting':
      return probe.busy !== undefined
        ? []
        : [`${what} never finished: its supervisor is gone (was the host restarted?); see ${log}`];
    case 'done':
      if (last.action !== 'test' || last.out === undefined || last.out === probe.system) return [];
      return [
        `${what} is not in the profile: unless the host restarted since, it runs that system, not generation ${current ?? '-'}'s` +
          (rollback && current !== undefined
            ? `. A rollback goes from generation ${current} to the one before it; it does not re-activate generation ${current} (to undo only the test, run that generation's bin/switch-to-configuration switch on the host, or restart it)`
            : ''),
      ];
    default:
      return [];
  }
}
