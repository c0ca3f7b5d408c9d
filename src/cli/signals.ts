// Stopping cleanly: SIGINT, SIGTERM and SIGHUP abort the running use case instead of killing the
// process, so it stops its child processes, removes what an import had added, and deletes its
// temporary files before nix-plan exits with 128 + the signal's number (130, 143, 129).
import { InterruptedError, type StopSignal } from '../core/errors.js';

/** The signals nix-plan stops on. */
export const STOP_SIGNALS: readonly StopSignal[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

/** What listens for signals (the process; a fake in tests). */
export interface SignalSource {
  on(signal: StopSignal, listener: () => void): unknown;
  off(signal: StopSignal, listener: () => void): unknown;
}

/**
 * Aborts `controller` with an InterruptedError on the first stop signal; later ones are ignored
 * (the cleanup is what they would interrupt) except that `onRepeat` hears of them. Returns what
 * removes the handlers again.
 */
export function abortOnStopSignals(
  controller: AbortController,
  source: SignalSource = process,
  onRepeat: (signal: StopSignal) => void = () => undefined,
): () => void {
  const handlers = STOP_SIGNALS.map((signal) => {
    const handler = (): void => {
      if (controller.signal.aborted) onRepeat(signal);
      else controller.abort(new InterruptedError(signal));
    };
    source.on(signal, handler);
    return [signal, handler] as const;
  });
  return () => {
    for (const [signal, handler] of handlers) source.off(signal, handler);
  };
}
