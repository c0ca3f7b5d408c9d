// What the host program's marker lines (`@nix-plan KEY VALUE` on its stdout) say, parsed into
// typed answers: the probe, an activation's report, the closures of the current and new systems.
// A host is not trusted to send well-formed lines: each is checked as it is read.
import { NixPlanError } from '../core/errors.js';
import { isStorePath } from '../core/store-path.js';
import { unsafeCharacter } from '../core/text.js';

/** What a host says about itself before anything is sent to it. */
export interface HostProbe {
  readonly nixVersion: string;
  readonly storeDir: string;
  readonly uid: number;
  /** `/run/systemd/system` exists: the host runs systemd. */
  readonly systemd: boolean;
  /** `zstd` is on the host's PATH: the plan can travel compressed. */
  readonly zstd: boolean;
  /** The profile's current generation link (absolute), if it has one. */
  readonly generation?: string | undefined;
  /** The system that generation holds. */
  readonly system?: string | undefined;
  /** The generation a rollback goes to (`nix-env --rollback`'s): the one numbered just below. */
  readonly previousGeneration?: string | undefined;
  /** The system that generation holds. */
  readonly previousSystem?: string | undefined;
  /** The bytes of the last-applied record beside the profile, if there is one. */
  readonly record?: Uint8Array | undefined;
  /** Set when an activation is running on the host (its supervisor's pid, or '' while it starts). */
  readonly busy?: string | undefined;
  /** The newest activation kept beside the profile, when there is one the host described sanely. */
  readonly lastActivation?: LastActivation | undefined;
}

/** How the newest activation beside a profile ended, as its files on the host say. */
export interface LastActivation {
  /** Its id: when it started (UTC, `YYYYMMDDTHHMMSSZ`) and a random part. */
  readonly id: string;
  readonly action: 'switch' | 'boot' | 'test';
  /** The system it activated, when that is a store path of the host's store. */
  readonly out?: string | undefined;
  readonly state: ActivationState;
  /** switch-to-configuration's exit code, once it had one. */
  readonly switchRc?: number | undefined;
  /** No confirmation came in time: the watchdog reverted it. */
  readonly expired: boolean;
  /** It ran out of its activation timeout and was stopped. */
  readonly timedOut: boolean;
}

/**
 * The probe's `last-*` markers as a LastActivation, or undefined when there are none or they are
 * not what the host program writes (the files are only reported: a deploy does not depend on them).
 */
export function parseLastActivation(
  markers: readonly [string, string][],
  storeDir: string,
): LastActivation | undefined {
  const id = lastMarker(markers, 'last-activation');
  const action = lastMarker(markers, 'last-action');
  const state = lastMarker(markers, 'last-state');
  const out = lastMarker(markers, 'last-out');
  if (id === undefined || !/^act-\d{8}T\d{6}Z-[0-9a-f]{8}$/.test(id)) return undefined;
  if (action !== 'switch' && action !== 'boot' && action !== 'test') return undefined;
  if (state === undefined || !isActivationState(state) || state === 'lost') return undefined;
  return {
    id: id.slice('act-'.length),
    action,
    out: out !== undefined && isStorePath(out, storeDir) ? out : undefined,
    state,
    switchRc: markerNumber(lastMarker(markers, 'last-switch-rc')),
    expired: lastMarker(markers, 'last-expired') !== undefined,
    timedOut: lastMarker(markers, 'last-timed-out') !== undefined,
  };
}

/** The states an activation's report can name. */
const ACTIVATION_STATES = [
  'starting',
  'switching',
  'awaiting-confirmation',
  'reverting',
  'done',
  'dry-activated',
  'reverted',
  'no-previous',
  'revert-failed',
  'lost',
] as const;

/** How an activation on the host stands, as its report says. */
export type ActivationState = (typeof ACTIVATION_STATES)[number];

const isActivationState = (s: string): s is ActivationState =>
  (ACTIVATION_STATES as readonly string[]).includes(s);

/** What the activate and confirm phases report. */
export interface ActivationReport {
  readonly id?: string | undefined;
  readonly state?: ActivationState | undefined;
  /** switch-to-configuration's exit code. */
  readonly switchRc?: number | undefined;
  /** The previous generation's switch-to-configuration exit code, when it was re-activated. */
  readonly revertRc?: number | undefined;
  /** A generation link that was removed while reverting. */
  readonly removed?: string | undefined;
  readonly recordFailed: boolean;
  /** The generation current before the activation (absolute link), and its system. */
  readonly previous?: string | undefined;
  readonly previousSystem?: string | undefined;
  /** The generation the activation made current. */
  readonly generation?: string | undefined;
  /** The profile's current generation when the report was made, and its system. */
  readonly current?: string | undefined;
  readonly currentSystem?: string | undefined;
  /** Bytes of the host's activation log shown so far (where a reconnect goes on from). */
  readonly logged: number;
  /** The confirm phase's rename: true when this confirmation won, false when the watchdog had. */
  readonly confirmed?: boolean | undefined;
  /** Set when switch-to-configuration ran out of its activation timeout (seconds) and was stopped. */
  readonly timedOut?: number | undefined;
  /** Set when re-activating the previous generation ran out of that time too. */
  readonly revertTimedOut?: number | undefined;
}

/** Marker lines of a session: `@nix-plan KEY VALUE`, in order. */
export function parseMarkers(stdout: Buffer | string): [string, string][] {
  const out: [string, string][] = [];
  for (const line of stdout.toString().split('\n')) {
    // [^\n], not `.`: a carriage return or U+2028 in a value is kept for the checks to see (with
    // `.` the whole line was dropped, as if the host had not said it).
    const m = /^@nix-plan ([a-z-]+)(?: ([^\n]*))?$/.exec(line);
    if (m?.[1] !== undefined) out.push([m[1], m[2] ?? '']);
  }
  return out;
}

/** The last value of `key` among `markers`. */
export function lastMarker(markers: readonly [string, string][], key: string): string | undefined {
  let v: string | undefined;
  for (const [k, value] of markers) if (k === key) v = value;
  return v;
}

/** A marker's value as a whole number, or undefined when it is not one. */
export const markerNumber = (v: string | undefined): number | undefined =>
  v === undefined || !/^\d+$/.test(v) ? undefined : Number(v);

/** Hex (od's output with the spaces removed) to bytes. */
export function markerBytes(hex: string): Uint8Array {
  if (!/^(?:[0-9a-f]{2})*$/.test(hex)) throw new NixPlanError('host', 'the host sent its record garbled');
  return new Uint8Array(Buffer.from(hex, 'hex'));
}

/** The report in a session's markers (partial when the session ended early). */
export function activationReport(markers: readonly [string, string][]): ActivationReport {
  const state = lastMarker(markers, 'state');
  const confirmed = lastMarker(markers, 'confirmed');
  return {
    id: lastMarker(markers, 'activation'),
    state: state === undefined ? undefined : isActivationState(state) ? state : 'lost',
    switchRc: markerNumber(lastMarker(markers, 'switch-rc')),
    revertRc: markerNumber(lastMarker(markers, 'revert-rc')),
    removed: lastMarker(markers, 'removed') || undefined,
    recordFailed: lastMarker(markers, 'record-failed') !== undefined,
    previous: lastMarker(markers, 'previous') || undefined,
    previousSystem: lastMarker(markers, 'previous-system') || undefined,
    generation: lastMarker(markers, 'generation') || undefined,
    current: lastMarker(markers, 'current'),
    currentSystem: lastMarker(markers, 'current-system'),
    logged: markerNumber(lastMarker(markers, 'logged')) ?? 0,
    confirmed: confirmed === undefined ? undefined : confirmed === '1',
    timedOut: markerNumber(lastMarker(markers, 'timed-out')),
    revertTimedOut: markerNumber(lastMarker(markers, 'revert-timed-out')),
  };
}

/** One path of a runtime closure as a host reported it: the path and its NAR size. */
export interface ClosurePath {
  readonly path: string;
  readonly narSize: number;
}

/** What the closure phase says: the profile's current generation and both systems' closures. */
export interface HostClosures {
  /** The profile's current generation link (absolute), if it has one. */
  readonly current?: string | undefined;
  /** The system that generation holds. */
  readonly currentSystem?: string | undefined;
  /** The current system's runtime closure; undefined when there is none or it is not valid there. */
  readonly old?: readonly ClosurePath[] | undefined;
  /** The current generation's system is not a valid path in the host's store (nothing to compare). */
  readonly oldInvalid: boolean;
  /** The new system's runtime closure on the host. */
  readonly new: readonly ClosurePath[];
}

/**
 * Most bytes of marker lines any phase may send: the largest, two closures of a large NixOS
 * system (about 5,000 paths of under 200 bytes each) or the validity answer for one, take a few
 * MiB; a host sending more is refused (and its session stopped) before it fills this machine's memory.
 */
export const HOST_OUTPUT_LIMIT = 64 * 1024 * 1024;

/**
 * The closures in a closure phase's markers, each line checked: a store path of `storeDir` and a
 * size in decimal digits. A host is not trusted to send well-formed lines.
 */
export function parseClosures(
  markers: readonly [string, string][],
  storeDir: string,
  label: string,
): HostClosures {
  const bad = (what: string): NixPlanError =>
    new NixPlanError('host', `${label}: the host sent ${what} in the closure it reported`);
  const old: ClosurePath[] = [];
  const now: ClosurePath[] = [];
  let oldSeen = false;
  for (const [k, v] of markers) {
    if (k !== 'old' && k !== 'new') continue;
    const space = v.indexOf(' ');
    const size = v.slice(0, space);
    const path = v.slice(space + 1);
    if (space < 1 || !/^\d{1,15}$/.test(size)) throw bad('a line without a size');
    if (!isStorePath(path, storeDir)) throw bad(`a path outside ${storeDir} or not a store path`);
    (k === 'old' ? old : now).push({ path, narSize: Number(size) });
    if (k === 'old') oldSeen = true;
  }
  const current = lastMarker(markers, 'current') || undefined;
  const currentSystem = lastMarker(markers, 'current-system') || undefined;
  for (const p of [current, currentSystem])
    if (p !== undefined && unsafeCharacter(p) !== undefined)
      throw bad('a generation with control characters');
  if (now.length === 0) throw bad('no path of the new system');
  const oldInvalid = lastMarker(markers, 'old-invalid') !== undefined;
  return {
    current,
    currentSystem,
    old: oldSeen && !oldInvalid ? old : undefined,
    oldInvalid,
    new: now,
  };
}
