// The client side of the host program (host-script.ts): runs its phases through a HostShell and
// turns their marker lines into typed answers and their refusals into NixPlanErrors.
import { NixPlanError, type ErrorCode } from '../core/errors.js';
import { isStorePath } from '../core/store-path.js';
import { unsafeCharacter } from '../core/text.js';
import { hostProgramArgv, HOST_PROTOCOL } from './host-script.js';
import type { HostInput, HostRunResult, HostShell } from './ssh.js';
import { parseNixVersion } from './store.js';

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
  /** The bytes of the last-applied record beside the profile, if there is one. */
  readonly record?: Uint8Array | undefined;
  /** Set when an activation is running on the host (its supervisor's pid, or '' while it starts). */
  readonly busy?: string | undefined;
}

/** How an activation on the host stands, as its report says. */
export type ActivationState =
  | 'starting'
  | 'switching'
  | 'awaiting-confirmation'
  | 'reverting'
  | 'done'
  | 'dry-activated'
  | 'reverted'
  | 'no-previous'
  | 'revert-failed'
  | 'lost';

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
}

/** A session that ended without its final report: the connection dropped or the program died. */
export class HostSessionError extends NixPlanError {
  override readonly name = 'HostSessionError';
  constructor(
    message: string,
    /** What the session had reported before it ended. */
    readonly partial: ActivationReport,
    /** ssh itself failed (exit 255) or was killed: the connection, not the program. */
    readonly connectionLost: boolean,
  ) {
    super('host', message);
  }
}

/** Marker lines of a session: `@nix-plan KEY VALUE`, in order. */
export function parseMarkers(stdout: Buffer | string): [string, string][] {
  const out: [string, string][] = [];
  for (const line of stdout.toString().split('\n')) {
    const m = /^@nix-plan ([a-z-]+)(?: (.*))?$/.exec(line);
    if (m?.[1] !== undefined) out.push([m[1], m[2] ?? '']);
  }
  return out;
}

/** Every value of `key`, and the last one. */
function last(markers: readonly [string, string][], key: string): string | undefined {
  let v: string | undefined;
  for (const [k, value] of markers) if (k === key) v = value;
  return v;
}

const num = (v: string | undefined): number | undefined =>
  v === undefined || !/^\d+$/.test(v) ? undefined : Number(v);

/** Hex (od's output with the spaces removed) to bytes. */
function fromHex(hex: string): Uint8Array {
  if (!/^(?:[0-9a-f]{2})*$/.test(hex)) throw new NixPlanError('host', 'the host sent its record garbled');
  return new Uint8Array(Buffer.from(hex, 'hex'));
}

const ACTIVATION_STATES: readonly string[] = [
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
];

/** The report in a session's markers (partial when the session ended early). */
export function activationReport(markers: readonly [string, string][]): ActivationReport {
  const state = last(markers, 'state');
  const confirmed = last(markers, 'confirmed');
  return {
    id: last(markers, 'activation'),
    state:
      state === undefined
        ? undefined
        : ACTIVATION_STATES.includes(state)
          ? (state as ActivationState)
          : 'lost',
    switchRc: num(last(markers, 'switch-rc')),
    revertRc: num(last(markers, 'revert-rc')),
    removed: last(markers, 'removed') || undefined,
    recordFailed: last(markers, 'record-failed') !== undefined,
    previous: last(markers, 'previous') || undefined,
    previousSystem: last(markers, 'previous-system') || undefined,
    generation: last(markers, 'generation') || undefined,
    current: last(markers, 'current'),
    currentSystem: last(markers, 'current-system'),
    logged: num(last(markers, 'logged')) ?? 0,
    confirmed: confirmed === undefined ? undefined : confirmed === '1',
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
 * Most bytes of marker lines the closure phase may send: two closures of a large NixOS system
 * (about 5,000 paths of under 200 bytes each) take a few MiB; a host sending more is refused.
 */
export const CLOSURE_OUTPUT_LIMIT = 64 * 1024 * 1024;

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
  const current = last(markers, 'current') || undefined;
  const currentSystem = last(markers, 'current-system') || undefined;
  for (const p of [current, currentSystem])
    if (p !== undefined && unsafeCharacter(p) !== undefined)
      throw bad('a generation with control characters');
  if (now.length === 0) throw bad('no path of the new system');
  const oldInvalid = last(markers, 'old-invalid') !== undefined;
  return {
    current,
    currentSystem,
    old: oldSeen && !oldInvalid ? old : undefined,
    oldInvalid,
    new: now,
  };
}

/** Why a login that is not root cannot activate, and what to do about it. */
export function notRootText(uid: number): string {
  return (
    `the login on the host is uid ${uid}, not root: building into the host's store, setting the system ` +
    'profile and switching need root there; log in as root, or as a user allowed `sudo -n` with --use-sudo'
  );
}

/** Options of a host program. */
export interface HostProgramOptions {
  /** Run the program with `sudo -n` (a non-root login allowed to). */
  readonly sudo?: boolean | undefined;
}

/** Output handlers of a phase that shows what the host prints. */
export interface PhaseOutput {
  /** What the host prints for a person (Nix's build log, switch-to-configuration's output). */
  readonly onOutput?: ((chunk: Uint8Array) => void) | undefined;
  readonly signal?: AbortSignal | undefined;
}

/** Arguments of an activation. */
export interface ActivateArgs {
  readonly profile: string;
  readonly action: 'switch' | 'boot' | 'test' | 'dry-activate';
  /** The derivation to build on the host first (its `out` must be `out`), or undefined when built. */
  readonly drvPath?: string | undefined;
  /** The system (store path) to activate. */
  readonly out: string;
  /** Seconds the host waits for confirmation after the switch (0: no confirmation). */
  readonly confirmTimeout: number;
  /** sha256 (hex) of the record the probe read, or 'none'. */
  readonly recordSeen: string;
  /** The record to write after a confirmed switch/boot ('' for none). */
  readonly record: string;
  /** A fresh id, [A-Za-z0-9-]. */
  readonly id: string;
}

/** The phases of the host program on one host. */
export class HostProgram {
  constructor(
    readonly shell: HostShell,
    private readonly options: HostProgramOptions = {},
  ) {}

  private argv(phase: string, args: readonly string[]): string[] {
    return hostProgramArgv(phase, args, this.options.sudo === true);
  }

  /** The error kind the program named, as one of ours (a remote command failing is the host's). */
  private errorFor(kind: string, message: string): NixPlanError {
    const where = `${this.shell.label}: ${message}`;
    const codes: Record<string, ErrorCode> = {
      usage: 'internal',
      shape: 'usage',
      nix: this.shell.remote ? 'host' : 'nix',
      build: this.shell.remote ? 'host' : 'nix',
    };
    return new NixPlanError(codes[kind] ?? 'host', where);
  }

  /** Throws for a refusal or a session that ended without `end`; returns the markers otherwise. */
  private check(result: HostRunResult, what: string): [string, string][] {
    const markers = parseMarkers(result.stdout);
    const error = last(markers, 'error');
    if (error !== undefined) {
      const space = error.indexOf(' ');
      throw this.errorFor(error.slice(0, space < 0 ? error.length : space), error.slice(space + 1));
    }
    if (result.code === 0 && markers.some(([k]) => k === 'end')) return markers;
    const connectionLost = this.shell.remote && (result.code === 255 || result.signal !== undefined);
    const detail = result.stderr.trim().split('\n').slice(-5).join('\n');
    throw new HostSessionError(
      connectionLost
        ? `${this.shell.label}: the SSH connection failed during ${what}${detail === '' ? '' : `: ${detail}`}`
        : `${this.shell.label}: ${what} stopped (exit code ${result.code}${result.signal === undefined ? '' : `, ${result.signal}`})${detail === '' ? '' : `: ${detail}`}`,
      activationReport(markers),
      connectionLost,
    );
  }

  /** Asks the host for its Nix, store dir, profile state and record (no part of a plan is sent). */
  async probe(profile: string, signal?: AbortSignal): Promise<HostProbe> {
    const result = await this.shell.run(this.argv('probe', [profile]), { signal });
    let m: [string, string][];
    try {
      m = this.check(result, 'the probe');
    } catch (e) {
      // A refusal by a login that is not root: that is the likelier cause, say so.
      const uid = num(last(parseMarkers(result.stdout), 'uid'));
      if (e instanceof HostSessionError || !(e instanceof NixPlanError) || uid === undefined || uid === 0)
        throw e;
      throw new NixPlanError(e.code, `${e.message}\n(${notRootText(uid)})`, { cause: e });
    }
    const protocol = last(m, 'protocol');
    if (protocol !== String(HOST_PROTOCOL))
      throw new NixPlanError(
        'host',
        `${this.shell.label}: the host program answered in protocol ${protocol}`,
      );
    let storeDir: unknown;
    try {
      storeDir = JSON.parse(last(m, 'store-dir') ?? '');
    } catch {
      storeDir = undefined;
    }
    if (typeof storeDir !== 'string')
      throw new NixPlanError(
        'host',
        `${this.shell.label}: cannot read the host's store dir from Nix (it said '${last(m, 'store-dir') ?? ''}')`,
      );
    const record = last(m, 'record');
    return {
      nixVersion: parseNixVersion(last(m, 'nix') ?? ''),
      storeDir,
      uid: num(last(m, 'uid')) ?? -1,
      systemd: last(m, 'systemd') === '1',
      zstd: last(m, 'zstd') === '1',
      generation: last(m, 'generation'),
      system: last(m, 'system'),
      record: record === undefined ? undefined : fromHex(record),
      busy: last(m, 'busy'),
    };
  }

  /**
   * Sends a plan (its export stream, raw or as zstd) to a private temp file on the host, which
   * checks its size and sha256 before `nix-store --import` reads it; returns how many paths Nix
   * imported. Anything short of the whole, exact stream is refused there and removed.
   */
  async receive(
    input: HostInput,
    expected: { size: number; sha256: string; encoding: 'raw' | 'zstd' },
    output: PhaseOutput = {},
  ): Promise<{ imported: number }> {
    const result = await this.shell.run(
      this.argv('receive', [String(expected.size), expected.sha256, expected.encoding]),
      { input, onStderr: output.onOutput, signal: output.signal },
    );
    const m = this.check(result, 'the transfer');
    return { imported: num(last(m, 'imported')) ?? 0 };
  }

  /** Which of `paths` are not valid in the host's store (asked with the paths on stdin). */
  async missing(paths: readonly string[], signal?: AbortSignal): Promise<string[]> {
    const input = new Uint8Array(Buffer.from(paths.map((p) => `${p}\n`).join(''), 'utf8'));
    const result = await this.shell.run(this.argv('missing', []), { input, signal });
    return this.check(result, 'the validity query')
      .filter(([k]) => k === 'missing')
      .map(([, v]) => v);
  }

  /**
   * Builds the system `out` on the host (from `drvPath`, when given) and reports what activating
   * it would change: the profile's current generation and the runtime closures of its system and
   * of `out`, each path with its NAR size, as the host's Nix gives them (`nix-store -qR`, `-q
   * --size`). Every line is checked against `storeDir`; more than CLOSURE_OUTPUT_LIMIT bytes is refused.
   */
  async closures(
    args: { profile: string; drvPath?: string | undefined; out: string; storeDir: string },
    output: PhaseOutput = {},
  ): Promise<HostClosures> {
    const stop = new AbortController();
    const stopNow = (): void => stop.abort();
    if (output.signal?.aborted === true) stopNow();
    output.signal?.addEventListener('abort', stopNow, { once: true });
    let bytes = 0;
    try {
      const result = await this.shell.run(
        this.argv('closure', [args.profile, args.drvPath ?? '', args.out]),
        {
          onStderr: output.onOutput,
          signal: stop.signal,
          onStdout: (c) => {
            bytes += c.length;
            if (bytes > CLOSURE_OUTPUT_LIMIT) stopNow();
          },
        },
      );
      if (bytes > CLOSURE_OUTPUT_LIMIT)
        throw new NixPlanError(
          'host',
          `${this.shell.label}: the host sent more than ${CLOSURE_OUTPUT_LIMIT} bytes of closure: refused`,
        );
      return parseClosures(this.check(result, 'the closure query'), args.storeDir, this.shell.label);
    } finally {
      output.signal?.removeEventListener('abort', stopNow);
    }
  }

  /**
   * Builds (when asked), sets the profile, starts the supervisor and follows its log until the
   * switch is over: the report says `awaiting-confirmation` or how it ended.
   */
  async activate(args: ActivateArgs, output: PhaseOutput = {}): Promise<ActivationReport> {
    if (!/^[A-Za-z0-9-]+$/.test(args.id))
      throw new NixPlanError('internal', `bad activation id '${args.id}'`);
    const result = await this.shell.run(
      this.argv('activate', [
        args.profile,
        args.action,
        args.drvPath ?? '',
        args.out,
        String(args.confirmTimeout),
        args.recordSeen,
        args.record,
        args.id,
      ]),
      { onStderr: output.onOutput, signal: output.signal },
    );
    return activationReport(this.check(result, 'the activation'));
  }

  /**
   * Over a new connection: follows the activation on from `offset` bytes of its log and, if it
   * awaits confirmation, confirms it (an atomic rename the watchdog competes for); then reports.
   */
  async confirm(
    profile: string,
    id: string,
    offset: number,
    output: PhaseOutput = {},
  ): Promise<ActivationReport> {
    const result = await this.shell.run(this.argv('confirm', [profile, id, String(offset)]), {
      onStderr: output.onOutput,
      signal: output.signal,
      freshConnection: true,
    });
    return activationReport(this.check(result, 'the confirmation'));
  }
}
