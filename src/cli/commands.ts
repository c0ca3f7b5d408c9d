// The \`nix-plan\` subcommands, in the order help lists them: plan-commands.ts (export, inspect,
// diff, verify, keygen) and store-commands.ts (import, realise, relocate, apply), built from the
// parts in command.ts.
import type { Command } from './command.js';
import {
  diffPlansCommand,
  exportCommand,
  inspectCommand,
  keygenCommand,
  verifyCommand,
} from './plan-commands.js';
import { applyCommand, importCommand, realiseCommand, relocateCommand } from './store-commands.js';

export { commandHelp, type Command, type CommandContext } from './command.js';
export type { UseCases } from './use-cases.js';

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
];
