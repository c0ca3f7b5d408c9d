// What the three actions share: the runner's IO behind one interface, the transport choice, and
// the single top-level catch that turns any error into one `setFailed`.
import { randomUUID } from 'node:crypto';
import * as core from '@actions/core';
import { DefaultArtifactClient } from '@actions/artifact';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringifyError } from '../core/errors.js';
import { logLine } from '../core/text.js';
import type { Logger, Progress } from '../app/deps.js';
import type { CommandRunner } from '../nix/runner.js';
import { ExecRunner } from './exec-runner.js';
import { failureSummary } from './summary-failure.js';
import { GitHubArtifactTransport } from '../transport/github.js';
import { LocalDirectoryTransport } from '../transport/local.js';
import type { ArtifactTransport } from '../transport/transport.js';
import { RunnerEnv } from './constants.js';
import type { EnvReader, InputReader } from './inputs.js';

/** Everything an action reads from or writes to the runner; tests pass their own. */
export interface ActionIO {
  readonly input: InputReader;
  readonly env: EnvReader;
  setOutput(name: string, value: string | number): void;
  /** Masks a value in the log from now on. */
  setSecret(value: string): void;
  readonly log: Logger;
  readonly progress: Progress;
  /** Appends Markdown to the job summary. */
  appendSummary(markdown: string): Promise<void>;
  /** Milliseconds from an arbitrary origin, for the timings in the summary. */
  now(): number;
  /** Raw bytes into the job log (Nix's build log); dropped when absent. */
  readonly writeLog?: ((chunk: Uint8Array | string) => void) | undefined;
}

/** Nix's build log in the job log, and the step's own lines beside it (see nixBuildLog). */
export interface BuildLog {
  /** Raw bytes of Nix's (or a host's) output, with workflow commands switched off. */
  readonly write: (chunk: Uint8Array) => void;
  /** The step's own lines: commands are switched back on first, so warnings stay annotations. */
  readonly log: Logger;
  /** Progress lines, likewise. */
  readonly progress: Progress;
  /** Switches commands back on and ends the group. */
  readonly close: () => void;
}

/**
 * A sink for Nix's build log in the job log, in a collapsible group (`title`). A build's output is
 * untrusted text, so workflow commands (`::set-output`, `::add-mask`, `::endgroup::`, …) are
 * switched off while it is written, with a token only this step knows. The step's own log lines
 * (`log`, `progress`) switch them back on before they are written — inside a fence a warning would
 * be plain text, and a debug line would show as `::debug::…` to everyone — and the next chunk of
 * output switches them off again with a new token. `close` switches them on and ends the group.
 */
export function nixBuildLog(io: ActionIO, title = 'Nix build log'): BuildLog {
  let token: string | undefined;
  let grouped = false;
  let atLineStart = true;
  const resume = (): void => {
    if (token === undefined) return;
    io.writeLog?.(`${atLineStart ? '' : '\n'}::${token}::\n`);
    token = undefined;
    atLineStart = true;
  };
  const own =
    <A extends unknown[], R>(f: (...args: A) => R) =>
    (...args: A): R => {
      resume();
      return f(...args);
    };
  return {
    write: (chunk) => {
      if (io.writeLog === undefined || chunk.length === 0) return;
      if (!grouped) io.writeLog(`::group::${title}\n`);
      grouped = true;
      if (token === undefined) {
        token = randomUUID();
        io.writeLog(`::stop-commands::${token}\n`);
      }
      io.writeLog(chunk);
      atLineStart = chunk[chunk.length - 1] === 0x0a;
    },
    log: {
      info: own((m: string) => io.log.info(m)),
      warn: own((m: string) => io.log.warn(m)),
      debug: own((m: string) => io.log.debug(m)),
    },
    progress: {
      start: own((label: string, total?: number) => {
        const task = io.progress.start(label, total);
        return { tick: (n?: number, bytes?: number) => task.tick(n, bytes), done: own(() => task.done()) };
      }),
    },
    close: () => {
      resume();
      if (grouped) io.writeLog?.('::endgroup::\n');
      grouped = false;
    },
  };
}

/** Progress as log lines: a line when a phase starts and one when it ends (no bars in CI logs). */
const logProgress = (log: Logger): Progress => ({
  start(label: string, total?: number) {
    let n = 0;
    let bytes = 0;
    const started = performance.now();
    log.debug(`${label}${total === undefined ? '' : ` (${total})`}…`);
    return {
      tick(count = 1, b = 0) {
        n += count;
        bytes += b;
      },
      done() {
        const seconds = ((performance.now() - started) / 1000).toFixed(1);
        // A phase without a count (evaluating) is told by its time alone.
        log.info(
          total === undefined && n === 0
            ? `${label}: done in ${seconds} s`
            : `${label}: ${n} done${bytes > 0 ? `, ${bytes} bytes` : ''} in ${seconds} s`,
        );
      },
    };
  },
});

/** The runner's IO through @actions/core. */
export function runnerIO(): ActionIO {
  // info is written as it is; warning and debug are commands whose data @actions/core escapes,
  // but their text is shown too: all three alike.
  const log: Logger = {
    info: (m) => core.info(logLine(m)),
    warn: (m) => core.warning(logLine(m)),
    debug: (m) => core.debug(logLine(m)),
  };
  return {
    input: (name) => core.getInput(name),
    env: (name) => process.env[name],
    setOutput: (name, value) => core.setOutput(name, value),
    setSecret: (value) => core.setSecret(value),
    log,
    progress: logProgress(log),
    appendSummary: async (markdown) => {
      await core.summary.addRaw(markdown, true).write();
    },
    now: () => performance.now(),
    writeLog: (chunk) => process.stdout.write(chunk),
  };
}

/** A scratch directory of this job (RUNNER_TEMP, else the system's). */
export function jobTempDir(io: ActionIO, ...parts: string[]): string {
  const base = io.env(RunnerEnv.RunnerTemp);
  return join(base === undefined || base === '' ? tmpdir() : base, 'nix-plan', ...parts);
}

/** The transport for a set of settings: a shared directory when `artifact-dir` is set, else GitHub. */
export function defaultTransport(io: ActionIO, artifactDir: string | undefined): ArtifactTransport {
  const runId = io.env(RunnerEnv.RunId) ?? 'local';
  if (artifactDir !== undefined) return new LocalDirectoryTransport(artifactDir, runId);
  return new GitHubArtifactTransport(new DefaultArtifactClient(), {
    serverUrl: io.env(RunnerEnv.ServerUrl) ?? 'https://github.com',
    repository: io.env(RunnerEnv.Repository) ?? '',
    runId,
    tempDir: jobTempDir(io, 'staging'),
  });
}

/**
 * The Nix runner of an action: Nix from PATH with the job's environment (NIX_* included), run
 * through @actions/exec (a `[command]` line for each; see exec-runner.ts).
 */
export function defaultRunner(): CommandRunner {
  return new ExecRunner();
}

/**
 * Runs an action's body with the runner's IO; any error becomes one `setFailed` with a message a
 * user can act on (our errors carry no stack; an unexpected one logs its stack at debug level).
 * A body that fails before writing its job summary gets one that says so (`title`: the heading
 * its summaries have, e.g. `nix-plan realise`), so a failed step's summary is never empty.
 */
export async function runAction(
  title: string,
  body: (io: ActionIO) => Promise<void>,
  options: {
    readonly io?: ActionIO;
    readonly fail?: (message: string) => void;
    readonly debug?: (message: string) => void;
  } = {},
): Promise<void> {
  const io = options.io ?? runnerIO();
  const fail = options.fail ?? ((m: string) => core.setFailed(logLine(m)));
  const debug = options.debug ?? ((m: string) => core.debug(logLine(m)));
  let summarised = false;
  const tracked: ActionIO = {
    ...io,
    appendSummary: (markdown) => {
      summarised = true;
      return io.appendSummary(markdown);
    },
  };
  try {
    await body(tracked);
  } catch (e) {
    if (e instanceof Error && e.stack !== undefined) debug(e.stack);
    if (!summarised)
      await io.appendSummary(failureSummary(title, e)).catch((s: unknown) => {
        debug(`the job summary could not be written: ${stringifyError(s)}`);
      });
    fail(stringifyError(e));
  }
}
