// The command line's view of the Nix commands it runs: `-v` echoes each one (argv, quoted for a
// shell), `-vv` passes verbosity on to Nix and shows its messages, `--log-format` reaches the Nix
// commands whose output is shown (so `nix-plan realise … --log-format internal-json |& nom --json`
// works). A decorator over any CommandRunner, so tests and the real runner see the same.
import { basename } from 'node:path';
import { formatCommandLine } from '../core/shell-words.js';
import type { CommandRunner, RunOptions, RunResult } from '../nix/runner.js';

/** Nix's own tools: these take `-v` and `--log-format`; anything else (an activation script) does not. */
const NIX_TOOLS = new Set([
  'nix',
  'nix-store',
  'nix-instantiate',
  'nix-env',
  'nix-build',
  'nix-shell',
  'nix-copy-closure',
  'nix-collect-garbage',
]);

/** How chatty the Nix commands are. */
export interface NixVerbosity {
  /** nix-plan's `-v` count: 1 echoes commands, 2 and more also give Nix `-v` (level - 1 times). */
  readonly level: number;
  /** Nix's `--log-format` for the commands whose stderr is shown. */
  readonly logFormat?: string | undefined;
  /** Where echoed commands and (from level 2) Nix's messages go. */
  write(text: string | Uint8Array): void;
  /**
   * The sink use cases pass as `onStderr` for Nix output the user sees (`deps.nixLog`): such
   * commands get the log format; one that collects its stderr for itself does not.
   */
  readonly shownLog?: ((chunk: Uint8Array) => unknown) | undefined;
}

/** Whether `cmd` is one of Nix's tools. */
export function isNixTool(cmd: string): boolean {
  return NIX_TOOLS.has(basename(cmd));
}

/** Wraps `inner` so it runs each command as `verbosity` asks. */
export class VerboseRunner implements CommandRunner {
  constructor(
    private readonly inner: CommandRunner,
    private readonly verbosity: NixVerbosity,
  ) {}

  run(cmd: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    const { level, logFormat, shownLog } = this.verbosity;
    const nix = isNixTool(cmd);
    // From -vv the stderr of every Nix command not already passed on is shown as it comes, so
    // its -v has something to say.
    const showAll = nix && level >= 2 && options.onStderr === undefined;
    const shown = showAll || (options.onStderr !== undefined && options.onStderr === shownLog);
    const extra = nix
      ? [
          ...Array.from({ length: Math.max(0, level - 1) }, () => '-v'),
          ...(logFormat !== undefined && shown ? ['--log-format', logFormat] : []),
        ]
      : [];
    const argv = [...extra, ...args];
    if (level >= 1) this.verbosity.write(`+ ${formatCommandLine(cmd, argv)}\n`);
    return this.inner.run(
      cmd,
      argv,
      showAll ? { ...options, onStderr: (c: Uint8Array) => this.verbosity.write(c) } : options,
    );
  }
}
