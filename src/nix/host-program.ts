// The client side of the host program (host-script.ts): runs its phases through a HostShell and
// turns their marker lines into typed answers and their refusals into NixPlanErrors.
import { NixPlanError, type ErrorCode } from '../core/errors.js';
import { unsafeCharacter } from '../core/text.js';
import {
  activationReport,
  HOST_OUTPUT_LIMIT,
  lastMarker,
  markerBytes,
  markerNumber,
  parseClosures,
  parseLastActivation,
  parseMarkers,
  type ActivationReport,
  type HostClosures,
  type HostProbe,
} from './host-markers.js';
import { hostProgramArgv, HOST_PROTOCOL } from './host-script.js';
import { FileInput } from './runner.js';
import type { HostInput, HostRunOptions, HostRunResult, HostShell } from './ssh.js';
import { parseNixVersion } from './store.js';

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

/** What follows a plan sent before it was verified, once it has been (see HostProgram.receive). */
const GO_SIGNAL = '@nix-plan-verified';

/** `input`, then, once `verified` resolves, the go signal; if it rejects, the stream fails instead. */
async function* thenGo(
  input: Uint8Array | AsyncIterable<Uint8Array>,
  verified: Promise<unknown>,
): AsyncGenerator<Uint8Array> {
  if (input instanceof Uint8Array) yield input;
  else yield* input;
  await verified;
  yield new TextEncoder().encode(GO_SIGNAL);
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
  /** Seconds switch-to-configuration may run before it is stopped and the switch undone (0: no limit). */
  readonly activationTimeout: number;
  /**
   * The deploy's id whose roots (host-roots.ts) keep the system built here alive until the deploy
   * ends (see HostProgram.release); undefined: none are made.
   */
  readonly roots?: string | undefined;
  /**
   * A rollback: the existing generation to go back to (its number; `out` is its system) and the
   * current generation's link as the probe saw it. The profile is switched to that generation
   * (switch/boot), no new one is made; the host refuses if either changed meanwhile.
   */
  readonly rollback?: { readonly to: number; readonly from: string } | undefined;
}

/** What a deploy roots on the host as it imports (see HostProgram.receive). */
export interface HostRoots {
  readonly profile: string;
  /** The deploy's id, [A-Za-z0-9-]. */
  readonly id: string;
  /** The derivation to root (the host builds it). */
  readonly drvPath?: string | undefined;
  /** The system to root when it is valid after the import (built elsewhere). */
  readonly out?: string | undefined;
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

  /**
   * Runs `phase`, stopping the session once the host has sent more than HOST_OUTPUT_LIMIT bytes
   * on standard output (what it prints for a person goes to `onStderr`, passed on and not kept).
   */
  private async run(
    phase: string,
    args: readonly string[],
    options: Omit<HostRunOptions, 'onStdout'> = {},
  ): Promise<HostRunResult> {
    const stop = new AbortController();
    const stopNow = (): void => stop.abort();
    const { signal } = options;
    if (signal?.aborted === true) stopNow();
    signal?.addEventListener('abort', stopNow, { once: true });
    let bytes = 0;
    try {
      const result = await this.shell.run(this.argv(phase, args), {
        ...options,
        signal: stop.signal,
        onStdout: (c) => {
          bytes += c.length;
          if (bytes > HOST_OUTPUT_LIMIT) stopNow();
        },
      });
      if (bytes > HOST_OUTPUT_LIMIT)
        throw new NixPlanError(
          'host',
          `${this.shell.label}: the host sent more than ${HOST_OUTPUT_LIMIT} bytes of answers during the ${phase} phase: refused`,
        );
      return result;
    } finally {
      signal?.removeEventListener('abort', stopNow);
    }
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
    // The kind is the host's word: only our own keys, not `constructor` or `__proto__`.
    return new NixPlanError(Object.hasOwn(codes, kind) ? codes[kind]! : 'host', where);
  }

  /** Throws for a refusal or a session that ended without `end`; returns the markers otherwise. */
  private check(result: HostRunResult, what: string): [string, string][] {
    const markers = parseMarkers(result.stdout);
    const error = lastMarker(markers, 'error');
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
    const result = await this.run('probe', [profile], { signal });
    let m: [string, string][];
    try {
      m = this.check(result, 'the probe');
    } catch (e) {
      // A refusal by a login that is not root: that is the likelier cause, say so.
      const uid = markerNumber(lastMarker(parseMarkers(result.stdout), 'uid'));
      if (e instanceof HostSessionError || !(e instanceof NixPlanError) || uid === undefined || uid === 0)
        throw e;
      throw new NixPlanError(e.code, `${e.message}\n(${notRootText(uid)})`, { cause: e });
    }
    const protocol = lastMarker(m, 'protocol');
    if (protocol !== String(HOST_PROTOCOL))
      throw new NixPlanError(
        'host',
        `${this.shell.label}: the host program answered in protocol ${protocol}`,
      );
    let storeDir: unknown;
    try {
      storeDir = JSON.parse(lastMarker(m, 'store-dir') ?? '');
    } catch {
      storeDir = undefined;
    }
    if (typeof storeDir !== 'string')
      throw new NixPlanError(
        'host',
        `${this.shell.label}: cannot read the host's store dir from Nix (it said '${lastMarker(m, 'store-dir') ?? ''}')`,
      );
    const record = lastMarker(m, 'record');
    // Links and systems are shown, passed back to the host and written into the record: absolute
    // paths of printable characters, or the host is not answering as the program does.
    for (const key of ['generation', 'system', 'previous-generation', 'previous-system']) {
      const value = lastMarker(m, key);
      if (value !== undefined && (!value.startsWith('/') || unsafeCharacter(value) !== undefined))
        throw new NixPlanError(
          'host',
          `${this.shell.label}: the host sent a ${key} that is not an absolute path of printable characters: ${JSON.stringify(value.slice(0, 200))}`,
        );
    }
    return {
      nixVersion: parseNixVersion(lastMarker(m, 'nix') ?? ''),
      storeDir,
      uid: markerNumber(lastMarker(m, 'uid')) ?? -1,
      systemd: lastMarker(m, 'systemd') === '1',
      zstd: lastMarker(m, 'zstd') === '1',
      generation: lastMarker(m, 'generation'),
      system: lastMarker(m, 'system'),
      previousGeneration: lastMarker(m, 'previous-generation'),
      previousSystem: lastMarker(m, 'previous-system'),
      record: record === undefined ? undefined : markerBytes(record),
      busy: lastMarker(m, 'busy'),
      lastActivation: parseLastActivation(m, storeDir),
    };
  }

  /**
   * Sends a plan (its export stream, raw or as zstd) to a private temp file on the host, which
   * checks its size and sha256 before `nix-store --import` reads it; returns how many paths Nix
   * imported. Anything short of the whole, exact stream is refused there and removed.
   *
   * With `verified`, the plan may be sent while it is still being verified here: the host holds
   * it unread until the stream is followed by a go signal, sent only once `verified` resolves; if
   * it rejects, the stream ends without the signal and the host removes what it received.
   */
  async receive(
    input: HostInput,
    expected: { size: number; sha256: string; encoding: 'raw' | 'zstd' },
    output: PhaseOutput & {
      readonly verified?: Promise<unknown> | undefined;
      /** Root what is imported for deploy `id` (see release): `drvPath`, else the system `out`. */
      readonly roots?: HostRoots | undefined;
    } = {},
  ): Promise<{ imported: number }> {
    const { verified, roots } = output;
    if (verified !== undefined && input instanceof FileInput)
      throw new NixPlanError('internal', 'a plan sent before it is verified cannot be a file');
    const result = await this.run(
      'receive',
      [
        String(expected.size),
        expected.sha256,
        expected.encoding,
        ...(verified === undefined && roots === undefined ? [] : [verified === undefined ? '' : GO_SIGNAL]),
        ...(roots === undefined ? [] : [roots.profile, roots.id, roots.drvPath ?? '', roots.out ?? '']),
      ],
      {
        input: verified === undefined || input instanceof FileInput ? input : thenGo(input, verified),
        onStderr: output.onOutput,
        signal: output.signal,
      },
    );
    const m = this.check(result, 'the transfer');
    return { imported: markerNumber(lastMarker(m, 'imported')) ?? 0 };
  }

  /**
   * Which of `paths` are not valid in the host's store (asked with the paths on stdin). The answer
   * is what this machine sends next (`nix-store --export` of it), so a host naming anything it was
   * not asked about — another path of this store, an option for `nix-store` — is refused: it
   * would get that path, or steer the export. `what` names the paths asked about, for the message.
   */
  async missing(
    paths: readonly string[],
    signal?: AbortSignal,
    what = 'the paths asked about',
  ): Promise<string[]> {
    const input = new Uint8Array(Buffer.from(paths.map((p) => `${p}\n`).join(''), 'utf8'));
    const result = await this.run('missing', [], { input, signal });
    const asked = new Set(paths);
    const missing = new Set<string>();
    for (const [k, v] of this.check(result, 'the validity query')) {
      if (k !== 'missing') continue;
      if (!asked.has(v))
        throw new NixPlanError(
          'host',
          `${this.shell.label}: the host answered that ${JSON.stringify(v.slice(0, 300))} is missing, a path it was not asked about (${what}): refused, nothing was sent`,
        );
      missing.add(v);
    }
    // In the order asked (dependency order, as nix-store --export wants it), each once.
    return paths.filter((p) => missing.has(p));
  }

  /**
   * Builds the system `out` on the host (from `drvPath`, when given) and reports what activating
   * it would change: the profile's current generation and the runtime closures of its system and
   * of `out`, each path with its NAR size, as the host's Nix gives them (`nix-store -qR`, `-q
   * --size`). Every line is checked against `storeDir`; more than HOST_OUTPUT_LIMIT bytes is refused.
   */
  async closures(
    args: {
      profile: string;
      drvPath?: string | undefined;
      out: string;
      storeDir: string;
      /** The deploy whose roots keep the system built alive (see release). */
      roots?: string | undefined;
    },
    output: PhaseOutput = {},
  ): Promise<HostClosures> {
    const argv = [
      args.profile,
      args.drvPath ?? '',
      args.out,
      ...(args.roots === undefined ? [] : [args.roots]),
    ];
    const result = await this.run('closure', argv, {
      onStderr: output.onOutput,
      signal: output.signal,
    });
    return parseClosures(this.check(result, 'the closure query'), args.storeDir, this.shell.label);
  }

  /**
   * Builds (when asked), sets the profile, starts the supervisor and follows its log until the
   * switch is over: the report says `awaiting-confirmation` or how it ended.
   */
  async activate(args: ActivateArgs, output: PhaseOutput = {}): Promise<ActivationReport> {
    if (!/^[A-Za-z0-9-]+$/.test(args.id))
      throw new NixPlanError('internal', `bad activation id '${args.id}'`);
    if (!Number.isSafeInteger(args.activationTimeout) || args.activationTimeout < 0)
      throw new NixPlanError('internal', `bad activation timeout ${args.activationTimeout}`);
    const result = await this.run(
      'activate',
      [
        args.profile,
        args.action,
        args.drvPath ?? '',
        args.out,
        String(args.confirmTimeout),
        args.recordSeen,
        args.record,
        args.id,
        String(args.activationTimeout),
        args.rollback === undefined ? '' : String(args.rollback.to),
        args.rollback?.from ?? '',
        args.roots ?? '',
      ],
      { onStderr: output.onOutput, signal: output.signal },
    );
    return activationReport(this.check(result, 'the activation'));
  }

  /**
   * The experimental features the host's Nix has on (its `nix show-config`, or `nix config show`,
   * text form), or undefined when it could not say. Asked only of a plan with a shape that needs one.
   */
  async features(signal?: AbortSignal): Promise<ReadonlySet<string> | undefined> {
    const line = lastMarker(
      this.check(await this.run('features', [], { signal }), 'the feature query'),
      'features',
    );
    return line === undefined ? undefined : new Set(line.split(' ').filter((f) => f !== ''));
  }

  /**
   * The deploy `id` to `profile` is over, whatever its result: the host removes its roots, and
   * those of deploys to `profile` that were cut off (no session for ROOTS_STALE_SECONDS).
   */
  async release(profile: string, id: string, signal?: AbortSignal): Promise<void> {
    if (!/^[A-Za-z0-9-]+$/.test(id)) throw new NixPlanError('internal', `bad deploy id '${id}'`);
    this.check(await this.run('release', [profile, id], { signal }), 'the release of its roots');
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
    const result = await this.run('confirm', [profile, id, String(offset)], {
      onStderr: output.onOutput,
      signal: output.signal,
      freshConnection: true,
    });
    return activationReport(this.check(result, 'the confirmation'));
  }
}
