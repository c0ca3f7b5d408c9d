// Runs Nix's command-line tools as argv arrays (never shell strings), with bytes in and bytes out.
import { spawn, type ChildProcess } from 'node:child_process';
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

/** A child process started by `startChild`, with what it has written so far. */
export interface StartedChild {
  readonly child: ChildProcess;
  /** Standard output gathered so far (empty when it was handed on instead). */
  stdout(): Buffer;
  /** The tail (at least the last 64 KiB) of standard error so far. */
  stderr(): string;
}

/**
 * Starts `cmd args` with `input` as its standard input (a `FileInput` is handed to the child as
 * its descriptor: no pipe, no copying through this process; other input is piped and a child
 * that exits early just closes its end), gathering standard output (unless `passStdout`: then
 * `onStdout` alone gets it) and keeping the tail of standard error. The caller listens for the
 * child's 'error' and 'close'.
 */
export function startChild(
  cmd: string,
  args: readonly string[],
  spawnOptions: { env: NodeJS.ProcessEnv; cwd?: string | undefined },
  io: {
    input?: Uint8Array | AsyncIterable<Uint8Array> | undefined;
    onStdout?: ((chunk: Uint8Array) => void) | undefined;
    onStderr?: ((chunk: Uint8Array) => void) | undefined;
    passStdout?: boolean;
  },
): StartedChild {
  const fileFd = io.input instanceof FileInput ? openInput(io.input.path) : undefined;
  let child: ChildProcess;
  try {
    child = spawn(cmd, args, {
      ...spawnOptions,
      stdio: [fileFd ?? (io.input === undefined ? 'ignore' : 'pipe'), 'pipe', 'pipe'],
    });
  } finally {
    // The child has its own copy of the descriptor once spawned.
    if (fileFd !== undefined) closeSync(fileFd);
  }
  const out: Buffer[] = [];
  let err = '';
  child.stdout?.on('data', (c: Buffer) => {
    if (io.passStdout !== true) out.push(c);
    io.onStdout?.(c);
  });
  child.stderr?.on('data', (c: Buffer) => {
    io.onStderr?.(c);
    err += c.toString('utf8');
    if (err.length > STDERR_KEEP * 2) err = err.slice(-STDERR_KEEP);
  });
  if (io.input !== undefined && fileFd === undefined && child.stdin !== null) {
    const input = io.input;
    const source = input instanceof Uint8Array ? Readable.from([input]) : Readable.from(input);
    // A child that exits early closes its stdin; its exit status tells the real story.
    pipeline(source, child.stdin).catch(() => undefined);
  }
  return { child, stdout: () => Buffer.concat(out), stderr: () => err };
}

/** A CommandRunner over `child_process.spawn`. */
export class ProcessRunner implements CommandRunner {
  constructor(private readonly nix: NixEnvironment = {}) {}

  async run(cmd: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    const { signal } = options;
    if (signal?.aborted === true) throw interruption(signal);
    const started = startChild(
      cmd,
      args,
      { env: childEnv(this.nix), cwd: options.cwd },
      { ...options, passStdout: options.onStdout !== undefined },
    );
    const { child } = started;
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
    let code: number;
    try {
      code = await exited;
    } finally {
      signal?.removeEventListener('abort', stop);
      if (killer !== undefined) clearTimeout(killer);
    }
    if (signal !== undefined && isAborted(signal)) throw interruption(signal);
    const result = { code, stdout: started.stdout(), stderr: started.stderr() };
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
