// Where the command line's output goes: results on stdout, messages and progress on stderr
// (a redrawn bar on a terminal, one plain line per phase otherwise, so logs stay readable).
import type { Logger, Progress, ProgressTask } from '../app/deps.js';
import { escapeTerminal } from '../core/text.js';

/** An output sink (process.stdout/stderr or a test's recorder); bytes pass through untouched. */
export interface TextSink {
  write(chunk: string | Uint8Array): unknown;
  readonly isTTY?: boolean | undefined;
  readonly columns?: number | undefined;
}

/** The process-facing side of the CLI, injected so tests need no globals. */
export interface CliIo {
  readonly stdout: TextSink;
  readonly stderr: TextSink;
  /** Where `-` reads a bundle from (the process's standard input; none: `-` is refused). */
  readonly stdin?: NodeJS.ReadableStream | undefined;
  /** Milliseconds clock for throttling redraws (Date.now by default). */
  readonly now?: () => number;
  /** The environment (provenance reads GitHub Actions' variables from it); none by default. */
  readonly env?: ((name: string) => string | undefined) | undefined;
  /** Calls `fn` every `ms` until the returned function is called (an unref'd setInterval by default). */
  readonly every?: (ms: number, fn: () => void) => () => void;
}

/** setInterval that does not keep the process alive. */
function every(ms: number, fn: () => void): () => void {
  const timer = setInterval(fn, ms);
  timer.unref();
  return () => clearInterval(timer);
}

const SPINNER = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

/** Elapsed time as the spinner and the closing line show it: `4.2 s`, `1 min 03 s`. */
export function formatElapsed(ms: number): string {
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  const whole = Math.floor(s);
  return `${Math.floor(whole / 60)} min ${String(whole % 60).padStart(2, '0')} s`;
}

/** How chatty the CLI is. */
export interface Verbosity {
  readonly quiet: boolean;
  readonly verbose: boolean;
}

/**
 * A Logger writing lines to stderr. Messages may quote a bundle (a path, a relocation warning),
 * so control characters in them are made visible; newlines stay.
 */
export function terminalLogger(io: CliIo, verbosity: Verbosity): Logger {
  const line = (m: string): string => `${escapeTerminal(m, { multiline: true })}\n`;
  return {
    info: (m) => {
      if (!verbosity.quiet) io.stderr.write(line(m));
    },
    warn: (m) => {
      io.stderr.write(`warning: ${line(m)}`);
    },
    debug: (m) => {
      if (verbosity.verbose) io.stderr.write(line(m));
    },
  };
}

import { formatBytes } from '../app/display.js';

export { formatBytes };

const REDRAW_MS = 100;

/** One bar line: `label [#####-----] 123/456 1.2 MiB`. */
export function renderBar(
  label: string,
  count: number,
  total: number | undefined,
  bytes: number,
  width: number,
): string {
  const tail = `${count}${total === undefined ? '' : `/${total}`}${bytes > 0 ? ` ${formatBytes(bytes)}` : ''}`;
  if (total === undefined || total <= 0) return `${label} ${tail}`.slice(0, width);
  const barWidth = Math.max(10, Math.min(40, width - label.length - tail.length - 4));
  const filled = Math.min(barWidth, Math.round((count / total) * barWidth));
  return `${label} [${'#'.repeat(filled)}${'-'.repeat(barWidth - filled)}] ${tail}`.slice(0, width);
}

/**
 * Progress on stderr: on a terminal a bar redrawn at most every 100 ms and cleared when done, or,
 * for a phase without a known total (evaluating, waiting on Nix), a spinner with the elapsed
 * time redrawn every 100 ms; otherwise one line per phase when it ends. Quiet shows nothing.
 */
export function terminalProgress(io: CliIo, verbosity: Verbosity): Progress {
  const now = io.now ?? Date.now;
  const tty = io.stderr.isTTY === true;
  return {
    start(label: string, total?: number): ProgressTask {
      let count = 0;
      let bytes = 0;
      let last = -Infinity;
      let ended = false;
      let frame = 0;
      const started = now();
      const width = (): number => Math.max(20, (io.stderr.columns ?? 80) - 1);
      const line = (): string =>
        total === undefined
          ? `${SPINNER[frame % SPINNER.length] ?? ''} ${label} ${formatElapsed(now() - started)}${count > 0 ? ` ${count}` : ''}${bytes > 0 ? ` ${formatBytes(bytes)}` : ''}`.slice(
              0,
              width(),
            )
          : renderBar(label, count, total, bytes, width());
      const draw = (): void => {
        io.stderr.write(`\r${line()}\x1b[K`);
      };
      const stop =
        total === undefined && tty && !verbosity.quiet
          ? (io.every ?? every)(REDRAW_MS, () => {
              frame++;
              draw();
            })
          : undefined;
      if (stop !== undefined) draw();
      return {
        tick(n = 1, b = 0): void {
          count += n;
          bytes += b;
          if (verbosity.quiet || !tty || ended) return;
          const t = now();
          if (t - last >= REDRAW_MS) {
            last = t;
            draw();
          }
        },
        done(): void {
          if (ended) return;
          ended = true;
          stop?.();
          if (verbosity.quiet) return;
          if (tty) io.stderr.write('\r\x1b[K');
          const counted =
            total === undefined && count === 0
              ? ''
              : ` ${count}${total === undefined || total === count ? '' : `/${total}`}${bytes > 0 ? ` (${formatBytes(bytes)})` : ''}`;
          const elapsed = total === undefined ? ` in ${formatElapsed(now() - started)}` : '';
          io.stderr.write(`${label}:${counted}${elapsed}\n`);
        },
      };
    },
  };
}
