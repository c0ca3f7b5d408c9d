// Typed errors: every failure a user can cause carries a stable code and an actionable message.

/** Stable error codes; the CLI maps each to an exit code (see README, "Exit codes"). */
export type ErrorCode =
  | 'usage' // bad command line or action input
  | 'malformed' // a byte format (ATerm, NAR, export stream, hash, store path) is broken
  | 'bundle' // a plan bundle is corrupt, truncated, oversized or inconsistent
  | 'signature' // a signature is missing or does not verify
  | 'realm' // a store dir mismatch (bundle for another realm, invalid target realm)
  | 'relocate' // a closure cannot be relocated faithfully
  | 'closure' // a closure is not closed, has a cycle, or is out of order
  | 'limit' // a size or count limit was exceeded
  | 'nix' // a Nix command failed
  | 'transport' // an artifact could not be uploaded or downloaded
  | 'stale' // a plan older than the one last applied to the same target, or than --max-age
  | 'host' // an SSH connection or a command on the host failed
  | 'activation' // activation failed; the previous generation was restored
  | 'attention' // activation failed and could not be undone: the host needs attention
  | 'interrupted' // a signal stopped it (after cleaning up and rolling back)
  | 'internal';

/** Base class for every error nix-plan raises on purpose. */
export class NixPlanError extends Error {
  override readonly name: string = 'NixPlanError';
  constructor(
    readonly code: ErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * A usage error about the arguments themselves (an option or operand missing, malformed, unknown
 * or in conflict with another), as opposed to a refusal of what they ask for (nothing to roll
 * back, not a NixOS system): only after these does the command line point to `--help`.
 */
export class ArgumentError extends NixPlanError {
  override readonly name = 'ArgumentError';
  constructor(message: string) {
    super('usage', message);
  }
}

/** A byte format is broken at a known offset. */
export class MalformedError extends NixPlanError {
  override readonly name = 'MalformedError';
  constructor(
    readonly what: string,
    readonly offset: number | undefined,
    detail: string,
  ) {
    super('malformed', `${what}: ${detail}${offset === undefined ? '' : ` at byte offset ${offset}`}`);
  }
}

/** The signals nix-plan stops on, cleaning up first (exit 128 + the signal's number). */
export type StopSignal = 'SIGHUP' | 'SIGINT' | 'SIGTERM';

/** Numbers of the stop signals (the exit code is 128 + this). */
export const STOP_SIGNAL_NUMBERS: Readonly<Record<StopSignal, number>> = {
  SIGHUP: 1,
  SIGINT: 2,
  SIGTERM: 15,
};

/** Work stopped by a signal; what it had started was undone before this reached the caller. */
export class InterruptedError extends NixPlanError {
  override readonly name = 'InterruptedError';
  constructor(
    readonly signal: StopSignal,
    detail = '',
  ) {
    super('interrupted', `interrupted by ${signal}${detail === '' ? '' : `: ${detail}`}`);
  }
}

/** The InterruptedError an aborted signal carries (its reason), or one for SIGINT. */
export function interruption(signal: AbortSignal): InterruptedError {
  const reason: unknown = signal.reason;
  return reason instanceof InterruptedError ? reason : new InterruptedError('SIGINT');
}

/** A limit that guards memory or time was exceeded. */
export class LimitError extends NixPlanError {
  override readonly name = 'LimitError';
  constructor(message: string) {
    super('limit', message);
  }
}

/** Turns anything thrown into one line a user can read (no stack for our own errors). */
export function stringifyError(error: unknown): string {
  if (error instanceof NixPlanError) return error.message;
  if (error instanceof Error) return error.message || error.name;
  if (typeof error === 'string') return error;
  try {
    return JSON.stringify(error) ?? String(error);
  } catch {
    return String(error);
  }
}
