// The actions' Nix runner: every command through @actions/exec, so the job log shows the usual
// `[command]…` line for each, behind the same CommandRunner interface the use cases take.
//
// What exec does not do is stream standard input: its `input` is one Buffer, written whole. The
// one command fed a stream is `nix-store --import` of the verified export stream (a file or
// chunks that grow with the closure, never held in memory), so a run with a streamed input goes
// to the streaming runner instead, after the same `[command]` line.
//
// exec echoes the child's output into the log too; here stdout is data (paths, JSON, dump-db
// records that can run to megabytes), so only exec's command line passes through its echo, and
// stderr reaches the log where the caller passes it on (`onStderr`: the build log).
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import * as exec from '@actions/exec';
import { NixPlanError } from '../core/errors.js';
import { logLine } from '../core/text.js';
import { NixCommandError } from '../nix/errors.js';
import {
  childEnv,
  ProcessRunner,
  type CommandRunner,
  type NixEnvironment,
  type RunOptions,
  type RunResult,
} from '../nix/runner.js';

const STDERR_KEEP = 64 * 1024;

/** How the runner reaches the job log and the streaming runner (defaults: the real ones). */
export interface ExecRunnerOptions extends NixEnvironment {
  /** Where exec's `[command]` line goes (default: the job log, process.stdout). */
  readonly echo?: ((text: string) => void) | undefined;
  /** Runs the commands fed a streamed input (default: a ProcessRunner with the same environment). */
  readonly streaming?: CommandRunner | undefined;
}

/** A CommandRunner over @actions/exec, handing streamed input to a streaming runner. */
export class ExecRunner implements CommandRunner {
  private readonly echo: (text: string) => void;
  private readonly streaming: CommandRunner;

  constructor(private readonly options: ExecRunnerOptions = {}) {
    // An argument may come from a plan (a path, a name): no line of it may read as a command.
    this.echo = options.echo ?? ((text) => void process.stdout.write(logLine(text)));
    this.streaming = options.streaming ?? new ProcessRunner(options);
  }

  async run(cmd: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    const { input } = options;
    if (input !== undefined && !(input instanceof Uint8Array)) {
      this.echo(`[command]${cmd} ${args.join(' ')}\n`);
      return this.streaming.run(cmd, args, options);
    }
    const out: Buffer[] = [];
    let err = '';
    // exec writes its `[command]` line to outStream first, then echoes the child's output there
    // as well: pass the first write on, drop the echoes (the listeners below get the output).
    let commandLine = true;
    const outStream = new Writable({
      write: (chunk: Buffer, _encoding, done) => {
        if (commandLine) this.echo(chunk.toString('utf8'));
        commandLine = false;
        done();
      },
    });
    const env = Object.fromEntries(
      Object.entries(childEnv(this.options)).filter((e): e is [string, string] => e[1] !== undefined),
    );
    // exec finds a bare name on the PATH of this process, not the child's: look in binDir first.
    const { binDir } = this.options;
    const tool =
      binDir !== undefined && !cmd.includes('/') && existsSync(join(binDir, cmd)) ? join(binDir, cmd) : cmd;
    let code: number;
    try {
      code = await exec.exec(tool, [...args], {
        env,
        ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
        ...(input === undefined
          ? {}
          : { input: Buffer.from(input.buffer, input.byteOffset, input.byteLength) }),
        outStream,
        ignoreReturnCode: true,
        listeners: {
          stdout: (c: Buffer) => {
            if (options.onStdout) options.onStdout(c);
            else out.push(c);
          },
          stderr: (c: Buffer) => {
            options.onStderr?.(c);
            err += c.toString('utf8');
            if (err.length > STDERR_KEEP * 2) err = err.slice(-STDERR_KEEP);
          },
        },
      });
    } catch (e) {
      // exec looks the tool up on PATH itself and throws when it is not there.
      throw new NixPlanError(
        'nix',
        `cannot run ${cmd}: ${e instanceof Error ? e.message : String(e)} (is Nix installed and on PATH?)`,
        { cause: e },
      );
    }
    const result = { code, stdout: Buffer.concat(out), stderr: err };
    if (options.allowFailure !== true)
      NixCommandError.check(cmd, args, result, { shown: options.onStderr !== undefined });
    return result;
  }
}
