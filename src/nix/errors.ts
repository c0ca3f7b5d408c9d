// How a Nix command's failure reaches the caller: one error carrying the command, its exit code and
// the tail of what it printed on stderr, and named recognisers for the refusals we act on.
import { NixPlanError } from '../core/errors.js';

/** How much of a failed command's stderr a message carries (its end, where Nix says why). */
export const STDERR_TAIL = 4000;

/** How a NixCommandError describes its command. */
interface ErrorOptions {
  readonly what?: string | undefined;
  readonly hint?: string | undefined;
  readonly shown?: boolean | undefined;
}

/** A Nix command (or a program of a Nix store path) that exited non-zero. */
export class NixCommandError extends NixPlanError {
  override readonly name = 'NixCommandError';
  /** The last `STDERR_TAIL` characters of its stderr, trimmed. */
  readonly stderrTail: string;

  /**
   * @param what names the command in the message (default: the program and its first three arguments)
   * @param hint said in parentheses after the exit code, e.g. what state the failure left behind
   * @param shown the stderr was passed on to the user as it came (a build log): the message says
   *   so instead of repeating its tail
   */
  constructor(
    readonly command: string,
    readonly args: readonly string[],
    readonly exitCode: number,
    readonly stderr: string,
    options: ErrorOptions = {},
  ) {
    const tail = stderr.trim().slice(-STDERR_TAIL);
    const what = options.what ?? `${command} ${args.slice(0, 3).join(' ')}…`;
    const hints = [
      ...(options.hint === undefined ? [] : [options.hint]),
      ...(options.shown === true ? ['its output is above'] : []),
    ];
    const hint = hints.length === 0 ? '' : ` (${hints.join('; ')})`;
    super(
      'nix',
      `${what} failed with exit code ${exitCode}${hint}${options.shown === true ? '' : `:\n${tail}`}`,
    );
    this.stderrTail = tail;
  }

  /** Throws a NixCommandError for a run that exited non-zero (one run with `allowFailure`). */
  static check(
    command: string,
    args: readonly string[],
    result: { readonly code: number; readonly stderr: string },
    options: ErrorOptions = {},
  ): void {
    if (result.code !== 0) throw new NixCommandError(command, args, result.code, result.stderr, options);
  }
}

/** Nix's refusal to add paths without a signature it trusts (`nix-store --import`, `nix copy`). */
const SIGNATURE_REFUSAL = /lacks a (valid )?signature|lacks a signature by a trusted key/;

/** Whether `stderr` (or a NixCommandError) says the store refused paths for want of a trusted signature. */
export function isSignatureRefusal(failure: string | NixCommandError): boolean {
  return SIGNATURE_REFUSAL.test(typeof failure === 'string' ? failure : failure.stderr);
}
