// The \`nix-plan\` subcommands, in the order help lists them: plan-commands.ts (export, inspect,
// diff, verify, keygen), store-commands.ts (import, realise, relocate, apply) and
// deploy-command.ts, built from the parts in command.ts; and the two that describe the command table itself (completions, man).
import { VERSION } from '../app/version.js';
import { onePositional, usageError } from './args.js';
import { COMMON, define, noRest, type Command } from './command.js';
import { completionScript, SHELLS } from './completions.js';
import { deployCommand } from './deploy-command.js';
import { EXIT_CODE_MEANINGS } from './exit-codes.js';
import { manPage } from './manpage.js';
import {
  diffPlansCommand,
  exportCommand,
  inspectCommand,
  keygenCommand,
  verifyCommand,
} from './plan-commands.js';
import { applyCommand, importCommand, realiseCommand, relocateCommand } from './store-commands.js';

/** `nix-plan completions`. */
const completionsCommand = define({
  name: 'completions',
  operand: { value: 'SHELL', complete: SHELLS },
  summary: 'print a shell completion script (bash, zsh or fish)',
  usage: ['nix-plan completions bash|zsh|fish'],
  description:
    'Prints a completion script for SHELL, generated from the commands and options --help lists. Install it ' +
    'where the shell looks: bash ~/.local/share/bash-completion/completions/nix-plan, zsh a file _nix-plan in ' +
    'a directory of $fpath, fish ~/.config/fish/completions/nix-plan.fish (the Nix package installs all three).',
  options: {},
  examples: [
    'nix-plan completions bash > ~/.local/share/bash-completion/completions/nix-plan',
    'source <(nix-plan completions bash)',
    'nix-plan completions fish > ~/.config/fish/completions/nix-plan.fish',
  ],
  run(args, ctx) {
    noRest(args, 'completions');
    const given = onePositional(args, 'SHELL (bash, zsh or fish)');
    const shell = SHELLS.find((s) => s === given);
    if (shell === undefined) throw usageError(`SHELL must be one of ${SHELLS.join(', ')} (got '${given}')`);
    ctx.io.stdout.write(completionScript(shell, COMMANDS));
    return Promise.resolve();
  },
});

/** `nix-plan man`. */
const manCommand = define({
  name: 'man',
  summary: 'print the nix-plan(1) man page (roff)',
  usage: ['nix-plan man'],
  description:
    'Prints the manual page, generated from the same command table as --help and the exit codes: ' +
    'read it with `nix-plan man | man -l -`, or install it as man1/nix-plan.1 (the Nix package does).',
  options: {},
  examples: ['nix-plan man | man -l -', 'nix-plan man > ~/.local/share/man/man1/nix-plan.1'],
  run(args, ctx) {
    noRest(args, 'man');
    if (args.positionals.length > 0) throw usageError('man takes no arguments');
    ctx.io.stdout.write(
      manPage({ version: VERSION, commands: COMMANDS, common: COMMON, exitCodes: EXIT_CODE_MEANINGS }),
    );
    return Promise.resolve();
  },
});

/** Every subcommand, in the order help lists them. */
export const COMMANDS: readonly Command[] = [
  exportCommand,
  inspectCommand,
  diffPlansCommand,
  verifyCommand,
  importCommand,
  realiseCommand,
  relocateCommand,
  keygenCommand,
  applyCommand,
  deployCommand(),
  completionsCommand,
  manCommand,
];
