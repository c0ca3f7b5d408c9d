// Running the command line in-process against a scratch store, as the Nix integration tests do.
import { main, type CliOptions } from '../../src/cli/main.js';
import type { CliIo } from '../../src/cli/terminal.js';
import type { CommandRunner, RunOptions, RunResult } from '../../src/nix/runner.js';
import type { ScratchStore } from './nix.js';

/** An io that keeps what the command line writes. */
export function capture(): CliIo & { out: () => string; err: () => string } {
  let out = '';
  let err = '';
  return {
    stdout: { write: (s: string) => ((out += s), true), isTTY: false },
    stderr: { write: (s: string) => ((err += s), true), isTTY: false, columns: 80 },
    now: () => 0,
    out: () => out,
    err: () => err,
  };
}

/** Runs `nix-plan ARGV…`; its exit code, stdout and stderr. */
export async function cli(
  argv: readonly string[],
  runner: CommandRunner,
  options: Omit<CliOptions, 'io' | 'runner'> = {},
): Promise<{ code: number; out: string; err: string }> {
  const io = capture();
  const code = await main(argv, { ...options, io, runner });
  return { code, out: io.out(), err: io.err() };
}

/** The store's whole database, as `nix-store --dump-db` prints it: what a refusal must not change. */
export async function dumpDb(store: ScratchStore): Promise<string> {
  return (await store.run('nix-store', ['--dump-db'])).stdout.toString('utf8');
}

/** A runner that records every command it runs (then runs it on `inner`). */
export class RecordingRunner implements CommandRunner {
  readonly commands: (readonly string[])[] = [];

  constructor(private readonly inner: CommandRunner) {}

  run(cmd: string, args: readonly string[], options?: RunOptions): Promise<RunResult> {
    this.commands.push([cmd, ...args]);
    return this.inner.run(cmd, args, options);
  }
}
