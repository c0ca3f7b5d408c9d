// The `nix-plan` command line: picks the subcommand, runs it, and turns every outcome into output
// and a documented exit code. Everything process-facing is injected, so tests call `main` directly.
import * as zlib from 'node:zlib';
import { ArgumentError, interruption, stringifyError, NixPlanError } from '../core/errors.js';
import { escapeTerminal } from '../core/text.js';
import { AbortableRunner, ProcessRunner, type CommandRunner } from '../nix/runner.js';
import { abortOnStopSignals, type SignalSource } from './signals.js';
import { COMMANDS } from './commands.js';
import { commandHelp, LOG_FORMATS, type CommandContext } from './command.js';
import { defaultUseCases, type UseCases } from './use-cases.js';
import { EXIT_CODE_MEANINGS, ExitCode, exitCodeFor } from './exit-codes.js';
import { oneOf, str, type ParsedArgs } from './args.js';
import { terminalLogger, terminalProgress, type CliIo, type Verbosity } from './terminal.js';
import { VerboseRunner } from './verbose-runner.js';
import { NODE_REQUIRED, TOOL_VERSION } from '../app/version.js';

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
    "Options for every command: -h/--help, -q/--quiet, -v/--verbose (each Nix command; -vv also Nix's messages),",
    '--json (machine-readable result).',
    "Run 'nix-plan COMMAND --help' for a command's options. Exit codes: see 'nix-plan help exit-codes'.",
    '',
  ].join('\n');
}

/** The exit code table, as `nix-plan help exit-codes` prints it. */
export function exitCodesHelp(): string {
  return ['Exit codes:', ...EXIT_CODE_MEANINGS.map(([c, d]) => `  ${String(c).padStart(3)}  ${d}`), ''].join(
    '\n',
  );
}

const processIo: CliIo = {
  stdout: process.stdout,
  stderr: process.stderr,
  stdin: process.stdin,
  env: (name) => process.env[name],
};

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
      `nix-plan: error: this Node.js (${process.version}) has no zstd in node:zlib; nix-plan needs Node.js ${NODE_REQUIRED} or newer\n`,
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
  const verbosity = verbosityOf(rest);
  // An echoed command starts on a clean line, even under a progress bar.
  const write = (text: string | Uint8Array): unknown =>
    io.stderr.write(typeof text === 'string' && io.stderr.isTTY === true ? `\r\x1b[K${text}` : text);
  const controller = new AbortController();
  const log = terminalLogger(io, verbosity);
  const signals = options.signals ?? (options.io === undefined ? process : undefined);
  const stopListening =
    signals === undefined
      ? () => undefined
      : abortOnStopSignals(controller, signals, (s) => log.warn(`${s}: still cleaning up, please wait`));
  const makeContext = (args: ParsedArgs): CommandContext => {
    const base = options.runner ?? new ProcessRunner();
    const logFormat = oneOf(str(args, 'log-format'), 'log-format', LOG_FORMATS);
    const nixLog = verbosity.quiet ? undefined : (chunk: Uint8Array): unknown => io.stderr.write(chunk);
    const runner =
      verbosity.level > 0 || logFormat !== undefined
        ? new VerboseRunner(base, { level: verbosity.level, logFormat, write, shownLog: nixLog })
        : base;
    return {
      io,
      useCases: { ...defaultUseCases, ...options.useCases },
      deps: {
        // Every command stops when a signal comes; what cleans up after it runs on `runner`.
        runner: new AbortableRunner(runner, controller.signal),
        log,
        progress: terminalProgress(io, verbosity),
        nixLog,
        signal: controller.signal,
      },
    };
  };
  try {
    const args = command.parse(rest);
    await command.run(args, makeContext(args));
    return ExitCode.ok;
  } catch (error) {
    // Stopped by a signal, whatever error the stopping caused: exit as the signal says.
    const code = exitCodeFor(controller.signal.aborted ? interruption(controller.signal) : error);
    // An error may quote the bundle (a path, a field): its control characters are made visible.
    io.stderr.write(
      `nix-plan ${command.name}: error: ${escapeTerminal(stringifyError(error), { multiline: true })}\n`,
    );
    // Only after a mistake in the arguments: a refusal of what they ask for is not helped by --help.
    if (error instanceof ArgumentError) io.stderr.write(`Try 'nix-plan ${command.name} --help'.\n`);
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

/**
 * `-q` and the `-v` count from the options before `--` (`-v -v`, `-vv` and `--verbose` add up;
 * letters grouped with the other flags, `-qv`, count too).
 */
export function verbosityOf(argv: readonly string[]): Verbosity & { level: number } {
  const dash = argv.indexOf('--');
  const head = dash < 0 ? argv : argv.slice(0, dash);
  let level = 0;
  let quiet = false;
  for (const a of head) {
    if (a === '--verbose') level++;
    else if (a === '--quiet') quiet = true;
    else if (/^-[qvh]+$/.test(a)) {
      level += a.split('v').length - 1;
      quiet ||= a.includes('q');
    }
  }
  return { quiet, verbose: level > 0, level };
}

function usage(io: CliIo, message: string): number {
  io.stderr.write(`nix-plan: error: ${message}\nTry 'nix-plan --help'.\n`);
  return ExitCode.usage;
}
