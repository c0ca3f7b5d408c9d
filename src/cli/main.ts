// The `nix-plan` command line: picks the subcommand, runs it, and turns every outcome into output
// and a documented exit code. Everything process-facing is injected, so tests call `main` directly.
import * as zlib from 'node:zlib';
import { interruption, stringifyError, NixPlanError } from '../core/errors.js';
import { escapeTerminal } from '../core/text.js';
import { AbortableRunner, ProcessRunner, type CommandRunner } from '../nix/runner.js';
import { abortOnStopSignals, type SignalSource } from './signals.js';
import { COMMANDS, commandHelp, type CommandContext, type UseCases } from './commands.js';
import { defaultUseCases } from './use-cases.js';
import { ExitCode, exitCodeFor } from './exit-codes.js';
import { terminalLogger, terminalProgress, type CliIo } from './terminal.js';
import { TOOL_VERSION } from '../app/version.js';

/** What `main` may be given instead of the real process, runner and use cases. */
export interface CliOptions {
  readonly io?: CliIo;
  readonly runner?: CommandRunner;
  readonly useCases?: Partial<UseCases>;
  /**
   * Where stop signals come from (default: the process, when `io` is the process's own). On the
   * first, the command is aborted: it stops its children, undoes an import and cleans up.
   */
  readonly signals?: SignalSource | undefined;
}

/** Top-level help: the commands and where to read more. */
export function mainHelp(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return [
    'Usage: nix-plan COMMAND [OPTIONS]',
    '',
    'Evaluate a Nix configuration once, carry its build plan as one small file (a plan bundle),',
    'and realise or relocate it anywhere without evaluating again.',
    '',
    'Commands:',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    'Options for every command: -h/--help, -q/--quiet, -v/--verbose, --json (machine-readable result).',
    "Run 'nix-plan COMMAND --help' for a command's options. Exit codes: see 'nix-plan help exit-codes'.",
    '',
  ].join('\n');
}

/** The exit code table, as `nix-plan help exit-codes` prints it. */
export function exitCodesHelp(): string {
  const rows: [number, string][] = [
    [ExitCode.ok, 'success'],
    [ExitCode.internal, 'internal error (a bug: please report it)'],
    [ExitCode.usage, 'bad command line'],
    [ExitCode.bundle, 'the bundle is corrupt, truncated, inconsistent or not a bundle'],
    [ExitCode.signature, 'a signature is missing, untrusted or invalid'],
    [ExitCode.realm, 'the bundle is for another store dir, or the store dir is invalid'],
    [ExitCode.relocate, 'the closure cannot be relocated faithfully'],
    [ExitCode.closure, 'the closure is not closed, has a cycle, or is out of order'],
    [ExitCode.limit, 'a size or count limit was exceeded'],
    [ExitCode.nix, 'a Nix command failed (evaluation, import, build)'],
    [ExitCode.transport, 'an artifact could not be uploaded or downloaded'],
    [ExitCode.stale, 'the plan is older than the one last applied there, or than --max-age'],
    [ExitCode.hangup, 'interrupted by SIGHUP, after cleaning up (what it had imported is removed again)'],
    [ExitCode.interrupted, 'interrupted by SIGINT (Ctrl-C), after cleaning up the same way'],
    [ExitCode.terminated, 'terminated by SIGTERM, after cleaning up the same way'],
  ];
  return ['Exit codes:', ...rows.map(([c, d]) => `  ${String(c).padStart(3)}  ${d}`), ''].join('\n');
}

const processIo: CliIo = { stdout: process.stdout, stderr: process.stderr };

/** Runs `nix-plan` with `argv` (without node and script) and returns the exit code. */
export async function main(argv: readonly string[], options: CliOptions = {}): Promise<number> {
  const io = options.io ?? processIo;
  const [first, ...rest] = argv;
  if (first === undefined || first === '-h' || first === '--help' || first === 'help') {
    if (first === 'help' && rest[0] === 'exit-codes') io.stdout.write(exitCodesHelp());
    else if (first === 'help' && rest[0] !== undefined) {
      const cmd = COMMANDS.find((c) => c.name === rest[0]);
      if (cmd === undefined) return usage(io, `unknown command '${rest[0]}'`);
      io.stdout.write(commandHelp(cmd));
    } else io.stdout.write(mainHelp());
    return first === undefined ? ExitCode.usage : ExitCode.ok;
  }
  if (first === '--version' || first === 'version') {
    io.stdout.write(`${TOOL_VERSION}\n`);
    return ExitCode.ok;
  }
  if (typeof zlib.createZstdCompress !== 'function') {
    io.stderr.write(
      `nix-plan: error: this Node.js (${process.version}) has no zstd in node:zlib; nix-plan needs Node.js 22.15 or newer\n`,
    );
    return ExitCode.internal;
  }
  const command = COMMANDS.find((c) => c.name === first);
  if (command === undefined) return usage(io, `unknown command '${first}'`);
  if (rest.includes('-h') || rest.includes('--help')) {
    const dash = rest.indexOf('--');
    const help = rest.findIndex((a) => a === '-h' || a === '--help');
    if (dash < 0 || help < dash) {
      io.stdout.write(commandHelp(command));
      return ExitCode.ok;
    }
  }
  const verbosity = {
    quiet: rest.includes('-q') || rest.includes('--quiet'),
    verbose: rest.includes('-v') || rest.includes('--verbose'),
  };
  const controller = new AbortController();
  const log = terminalLogger(io, verbosity);
  const signals = options.signals ?? (options.io === undefined ? process : undefined);
  const stopListening =
    signals === undefined
      ? () => undefined
      : abortOnStopSignals(controller, signals, (s) => log.warn(`${s}: still cleaning up, please wait`));
  const ctx: CommandContext = {
    io,
    useCases: { ...defaultUseCases, ...options.useCases },
    deps: {
      runner: new AbortableRunner(options.runner ?? new ProcessRunner(), controller.signal),
      log,
      progress: terminalProgress(io, verbosity),
      nixLog: verbosity.quiet ? undefined : (chunk) => io.stderr.write(chunk),
      signal: controller.signal,
    },
  };
  try {
    await command.run(command.parse(rest), ctx);
    return ExitCode.ok;
  } catch (error) {
    // Stopped by a signal, whatever error the stopping caused: exit as the signal says.
    const code = exitCodeFor(controller.signal.aborted ? interruption(controller.signal) : error);
    // An error may quote the bundle (a path, a field): its control characters are made visible.
    io.stderr.write(
      `nix-plan ${command.name}: error: ${escapeTerminal(stringifyError(error), { multiline: true })}\n`,
    );
    if (code === ExitCode.usage) io.stderr.write(`Try 'nix-plan ${command.name} --help'.\n`);
    if (!(error instanceof NixPlanError) && !controller.signal.aborted) {
      io.stderr.write('This is a bug in nix-plan; please report it with the output of --verbose.\n');
      if (verbosity.verbose && error instanceof Error && error.stack !== undefined)
        io.stderr.write(`${error.stack}\n`);
    }
    return code;
  } finally {
    stopListening();
  }
}

function usage(io: CliIo, message: string): number {
  io.stderr.write(`nix-plan: error: ${message}\nTry 'nix-plan --help'.\n`);
  return ExitCode.usage;
}
