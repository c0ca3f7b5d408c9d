// The `nix-plan` exit codes: one per error code, so scripts can tell a bad bundle from a failed build.
import { InterruptedError, NixPlanError, STOP_SIGNAL_NUMBERS, type ErrorCode } from '../core/errors.js';

/** Every exit code `nix-plan` uses (documented in docs/cli.md, "Exit codes"). */
export const ExitCode = {
  /** Success. */
  ok: 0,
  /** A bug in nix-plan, or an error it did not expect (please report it). */
  internal: 1,
  /** Bad command line: unknown command or option, missing or invalid argument. */
  usage: 2,
  /** The bundle is corrupt, truncated, inconsistent, or not a plan bundle (includes malformed bytes). */
  bundle: 3,
  /** A signature is missing, made by an untrusted key, or does not verify. */
  signature: 4,
  /** Wrong realm: the bundle is for another store dir, or the target store dir is invalid. */
  realm: 5,
  /** The closure cannot be relocated faithfully. */
  relocate: 6,
  /** The closure is not closed, has a cycle, or is out of order. */
  closure: 7,
  /** A size or count limit was exceeded. */
  limit: 8,
  /** A Nix command failed (evaluation, import, build). */
  nix: 9,
  /** An artifact could not be uploaded or downloaded. */
  transport: 10,
  /** The plan is older than the one last applied to the same profile or out-link, or than --max-age. */
  stale: 11,
  /** The host: an SSH connection or a command on the host failed. */
  host: 12,
  /** Activation failed; the previous generation was restored (re-activated). */
  activation: 13,
  /** Activation failed and could not be undone: the host needs attention. */
  attention: 14,
  /** Interrupted by SIGHUP (after cleaning up and rolling back what it had added). */
  hangup: 129,
  /** Interrupted by SIGINT (Ctrl-C), after cleaning up and rolling back. */
  interrupted: 130,
  /** Terminated by SIGTERM, after cleaning up and rolling back. */
  terminated: 143,
} as const;

/** One of the exit codes above. */
export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];

/** What each exit code means, in the order `nix-plan help exit-codes` and the man page list them. */
export const EXIT_CODE_MEANINGS: readonly (readonly [ExitCodeValue, string])[] = [
  [ExitCode.ok, 'success'],
  [ExitCode.internal, 'internal error (a bug: please report it)'],
  [ExitCode.usage, 'bad command line'],
  [ExitCode.bundle, 'the bundle is corrupt, truncated, inconsistent or not a bundle'],
  [ExitCode.signature, 'a signature is missing, untrusted or invalid, or a path is unproven'],
  [ExitCode.realm, 'the bundle is for another store dir, or the store dir is invalid'],
  [ExitCode.relocate, 'the closure cannot be relocated faithfully'],
  [ExitCode.closure, 'the closure is not closed, has a cycle, or is out of order'],
  [ExitCode.limit, 'a size or count limit was exceeded'],
  [ExitCode.nix, 'a Nix command failed (evaluation, import, build)'],
  [ExitCode.transport, 'an artifact could not be uploaded or downloaded'],
  [ExitCode.stale, 'the plan is older than the one last applied there, or than --max-age'],
  [ExitCode.host, 'the host: an SSH connection or a command on the host failed'],
  [ExitCode.activation, 'activation failed; the previous generation was restored'],
  [ExitCode.attention, 'activation failed and could not be undone: the host needs attention'],
  [ExitCode.hangup, 'interrupted by SIGHUP, after cleaning up (what it had imported is removed again)'],
  [ExitCode.interrupted, 'interrupted by SIGINT (Ctrl-C), after cleaning up the same way'],
  [ExitCode.terminated, 'terminated by SIGTERM, after cleaning up the same way'],
];

const BY_ERROR: Readonly<Record<ErrorCode, ExitCodeValue>> = {
  usage: ExitCode.usage,
  malformed: ExitCode.bundle,
  bundle: ExitCode.bundle,
  signature: ExitCode.signature,
  realm: ExitCode.realm,
  relocate: ExitCode.relocate,
  closure: ExitCode.closure,
  limit: ExitCode.limit,
  nix: ExitCode.nix,
  transport: ExitCode.transport,
  stale: ExitCode.stale,
  interrupted: ExitCode.interrupted,
  host: ExitCode.host,
  activation: ExitCode.activation,
  attention: ExitCode.attention,
  internal: ExitCode.internal,
};

/** The exit code for anything thrown: its NixPlanError code, else internal; 128 + n for signal n. */
export function exitCodeFor(error: unknown): ExitCodeValue {
  if (error instanceof InterruptedError) return (128 + STOP_SIGNAL_NUMBERS[error.signal]) as ExitCodeValue;
  if (error instanceof NixPlanError) return BY_ERROR[error.code] ?? ExitCode.internal;
  return ExitCode.internal;
}
