// Runs Nix's command-line tools as argv arrays (never shell strings), with bytes in and bytes out.
import { spawn } from 'node:child_process';
import { closeSync, createReadStream, openSync } from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { NixPlanError, interruption } from '../core/errors.js';
import { NixCommandError } from './errors.js';

/** Where and how to run Nix: an optional bin dir put first in PATH, and extra environment. */
export interface NixEnvironment {
  /** Directory holding `nix`, `nix-store`, … to prefer over PATH. */
  readonly binDir?: string | undefined;
  /** Variables added to (or, when undefined, removed from) the inherited environment. */
  readonly env?: Readonly<Record<string, string | undefined>>;
}

const FILE_CHUNK = 1024 * 1024;

/**
 * Standard input read from a file. `ProcessRunner` hands the child the open file itself, so the
 * bytes never pass through this process; any other runner can iterate it as chunks.
 */
export class FileInput implements AsyncIterable<Uint8Array> {
  /** @param path the file to feed (read from its start) */
  constructor(readonly path: string) {}

  async *[Symbol.asyncIterator](): AsyncGenerator<Uint8Array> {
    for await (const c of createReadStream(this.path, { highWaterMark: FILE_CHUNK }) as AsyncIterable<Buffer>)
      yield new Uint8Array(c.buffer, c.byteOffset, c.byteLength);
  }
}

/** Options of one command run. */
export interface RunOptions {
  /** Bytes, a stream of chunks, or a file (`FileInput`) fed to standard input. */
  readonly input?: Uint8Array | AsyncIterable<Uint8Array>;
  readonly cwd?: string;
  /** Return a non-zero exit instead of throwing. */
  readonly allowFailure?: boolean;
  /** Called with each chunk of standard output instead of collecting it. */
  readonly onStdout?: (chunk: Uint8Array) => void;
  /**
   * Called with each chunk of standard error as it comes (its tail is still kept in the result);
   * a failure's error then does not repeat it.
   */
  readonly onStderr?: ((chunk: Uint8Array) => void) | undefined;
  /**
   * Stops the command when aborted: SIGTERM, then SIGKILL after a grace period; the run then
   * rejects with the signal's reason (an InterruptedError) once the child has exited.
   */
  readonly signal?: AbortSignal | undefined;
}

/** Whether `signal` was aborted (a call, so checks after an await are not narrowed away). */
function isAborted(signal: AbortSignal): boolean {
  return signal.aborted;
}

/** How long a command has to exit after SIGTERM before it gets SIGKILL. */
export const KILL_GRACE_MS = 5000;

/** What a finished command produced. */
export interface RunResult {
  readonly code: number;
  readonly stdout: Buffer;
  readonly stderr: string;
}

/** Runs commands; an interface so use cases can be tested with a runner that records calls. */
export interface CommandRunner {
  run(cmd: string, args: readonly string[], options?: RunOptions): Promise<RunResult>;
}

/** The environment a child gets: inherited, plus overrides, with binDir first in PATH. */
export function childEnv(nix: NixEnvironment): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const [k, v] of Object.entries(nix.env ?? {})) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  if (nix.binDir !== undefined) env['PATH'] = `${nix.binDir}:${env['PATH'] ?? ''}`;
  return env;
}

const STDERR_KEEP = 64 * 1024;

function openInput(path: string): number {
  try {
    return openSync(path, 'r');
  } catch (e) {
    throw new NixPlanError('internal', `cannot open '${path}' as standard input: ${(e as Error).message}`);
  }
}

/** A CommandRunner over `child_process.spawn`. */
export class ProcessRunner implements CommandRunner {
  constructor(private readonly nix: NixEnvironment = {}) {}

  async run(cmd: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    const { signal } = options;
    if (signal?.aborted === true) throw interruption(signal);
    // A file goes to the child as its stdin descriptor: no pipe, no copying through Node.
    const fileFd = options.input instanceof FileInput ? openInput(options.input.path) : undefined;
    let child;
    try {
      child = spawn(cmd, args, {
        env: childEnv(this.nix),
        cwd: options.cwd,
        stdio: [fileFd ?? (options.input === undefined ? 'ignore' : 'pipe'), 'pipe', 'pipe'],
      });
    } finally {
      // The child has its own copy of the descriptor once spawned.
      if (fileFd !== undefined) closeSync(fileFd);
    }
    const out: Buffer[] = [];
    let err = '';
    child.stdout?.on('data', (c: Buffer) => {
      if (options.onStdout) options.onStdout(c);
      else out.push(c);
    });
    child.stderr?.on('data', (c: Buffer) => {
      options.onStderr?.(c);
      err += c.toString('utf8');
      if (err.length > STDERR_KEEP * 2) err = err.slice(-STDERR_KEEP);
    });
    const exited = new Promise<number>((resolve, reject) => {
      child.on('error', (e) =>
        reject(
          new NixPlanError('nix', `cannot run ${cmd}: ${e.message} (is Nix installed and on PATH?)`, {
            cause: e,
          }),
        ),
      );
      child.on('close', (code, killedBy) => resolve(code ?? (killedBy === null ? 1 : 128)));
    });
    // Stopped on request: the child first, then the caller hears of it once the child is gone.
    let killer: NodeJS.Timeout | undefined;
    const stop = (): void => {
      child.kill('SIGTERM');
      killer = setTimeout(() => child.kill('SIGKILL'), KILL_GRACE_MS);
    };
    signal?.addEventListener('abort', stop, { once: true });
    if (options.input !== undefined && fileFd === undefined && child.stdin !== null) {
      const input = options.input;
      const source = input instanceof Uint8Array ? Readable.from([input]) : Readable.from(input);
      // A child that exits early closes its stdin; its exit status tells the real story.
      pipeline(source, child.stdin).catch(() => undefined);
    }
    let code: number;
    try {
      code = await exited;
    } finally {
      signal?.removeEventListener('abort', stop);
      if (killer !== undefined) clearTimeout(killer);
    }
    if (signal !== undefined && isAborted(signal)) throw interruption(signal);
    const result = { code, stdout: Buffer.concat(out), stderr: err };
    // Output already passed on as it came (a build log) is not repeated in the error.
    if (options.allowFailure !== true)
      NixCommandError.check(cmd, args, result, { shown: options.onStderr !== undefined });
    return result;
  }
}

/**
 * A runner whose every command is stopped when `signal` aborts (see `RunOptions.signal`). What
 * must still run after an abort (removing what an interrupted import added) runs on `inner`.
 */
export class AbortableRunner implements CommandRunner {
  constructor(
    readonly inner: CommandRunner,
    readonly signal: AbortSignal,
  ) {}

  run(cmd: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    return this.inner.run(cmd, args, { ...options, signal: this.signal });
  }
}

/** The runner to clean up with once `runner`'s work was aborted: the one beneath the abort. */
export function cleanupRunner(runner: CommandRunner): CommandRunner {
  return runner instanceof AbortableRunner ? runner.inner : runner;
}
