// What every use case is given instead of reaching for globals: a command runner, a logger and an
// optional progress sink. The CLI and the Action supply their own; tests supply recorders.
import type { CommandRunner } from '../nix/runner.js';

/** Messages for a human; the front end decides where they go (stderr, the Actions log). */
export interface Logger {
  info(message: string): void;
  warn(message: string): void;
  /** Detail shown only when asked for (`--verbose`, `ACTIONS_STEP_DEBUG`). */
  debug(message: string): void;
}

/** Progress of one phase that walks many paths (reading a closure, verifying, importing). */
export interface ProgressTask {
  /** Advances by `n` items (and optionally `bytes`). */
  tick(n?: number, bytes?: number): void;
  /** Ends the phase (a bar is cleared or completed; a plain line is printed). */
  done(): void;
}

/** Creates progress tasks; `total` is undefined when the count is not known in advance. */
export interface Progress {
  start(label: string, total?: number): ProgressTask;
}

/** The dependencies of every use case. */
export interface Deps {
  readonly runner: CommandRunner;
  readonly log: Logger;
  readonly progress?: Progress | undefined;
  /** Where Nix's own build log goes while it builds (the CLI: stderr); dropped when absent. */
  readonly nixLog?: ((chunk: Uint8Array) => void) | undefined;
  /**
   * Aborted when the user stops nix-plan (SIGINT, SIGTERM, SIGHUP), its reason an
   * InterruptedError: long work checks it, and `runner` (an `AbortableRunner`) stops its commands.
   * What was added to a store is then removed again before the error reaches the front end.
   */
  readonly signal?: AbortSignal | undefined;
}

/** A logger that drops everything (for library callers that want no output). */
export const silentLogger: Logger = {
  info: () => undefined,
  warn: () => undefined,
  debug: () => undefined,
};

/** A progress sink that shows nothing. */
export const noProgress: Progress = {
  start: () => ({ tick: () => undefined, done: () => undefined }),
};

/** `deps.progress` or one that shows nothing. */
export function progressOf(deps: { progress?: Progress | undefined }): Progress {
  return deps.progress ?? noProgress;
}
