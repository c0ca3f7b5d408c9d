// The nix-plan(1) man page, generated from the command table and the exit codes (`nix-plan man`),
// so it says exactly what `--help` says.
import type { OptionSpec, OptionSpecs } from './args.js';

/** What the man page needs of a command (a subset of `Command`). */
export interface DocumentedCommand {
  readonly name: string;
  readonly summary: string;
  readonly usage: readonly string[];
  readonly description: string;
  readonly options: OptionSpecs;
  readonly examples: readonly string[];
}

/** Everything the page is made of. */
export interface ManPageSource {
  readonly version: string;
  readonly commands: readonly DocumentedCommand[];
  /** Options every command takes (documented once, left out of each command's list). */
  readonly common: OptionSpecs;
  readonly exitCodes: readonly (readonly [number, string])[];
}

/**
 * Text for roff: backslashes and hyphens escaped, characters beyond ASCII as `\[uXXXX]` (troff
 * reads its input as Latin-1), no line starting with a control character.
 */
export function roff(text: string): string {
  return text
    .replace(/\\/g, '\\e')
    .replace(/-/g, '\\-')
    .replace(
      /[^\t\n -~]/gu,
      (c) => `\\[u${(c.codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, '0')}]`,
    )
    .split('\n')
    .map((l) => (/^[.']/.test(l) ? `\\&${l}` : l))
    .join('\n');
}

function optionTag(name: string, spec: OptionSpec): string {
  const spellings = [
    ...(spec.short === undefined ? [] : [`\\fB\\-${spec.short}\\fR`]),
    `\\fB\\-\\-${roff(name)}\\fR`,
  ];
  const value = spec.type === 'boolean' ? '' : ` \\fI${roff(spec.value ?? 'VALUE')}\\fR`;
  return `${spellings.join(', ')}${value}`;
}

function optionList(options: OptionSpecs, skip: OptionSpecs = {}): string[] {
  const lines: string[] = [];
  for (const [name, spec] of Object.entries(options)) {
    if (name in skip) continue;
    const choices = spec.choices === undefined ? '' : ` One of: ${spec.choices.join(', ')}.`;
    lines.push(
      '.TP',
      optionTag(name, spec),
      roff(`${spec.help}${spec.multiple === true ? ' (repeatable)' : ''}.${choices}`),
    );
  }
  return lines;
}

/** The page, in roff with the man macros (`man -l`, `groff -man`). */
export function manPage(source: ManPageSource): string {
  const lines = [
    `.TH NIX\\-PLAN 1 "" "nix\\-plan ${roff(source.version)}" "User Commands"`,
    '.SH NAME',
    'nix\\-plan \\- evaluate a Nix configuration once, carry its build plan as one file, realise or relocate it anywhere',
    '.SH SYNOPSIS',
    '.B nix\\-plan',
    '.I COMMAND',
    '[\\fIOPTIONS\\fR] [\\fB\\-\\-\\fR \\fIARGS\\fR]',
    '.br',
    '.B nix\\-plan',
    '.B help',
    '[\\fICOMMAND\\fR | \\fBexit\\-codes\\fR]',
    '.SH DESCRIPTION',
    roff(
      'nix-plan evaluates a Nix configuration once and writes its build plan (the closure of .drv files and ' +
        'their sources) as one small compressed file, a plan bundle. Elsewhere the bundle is verified, imported and ' +
        'realised without evaluating, or relocated into another store dir (a realm).',
    ),
    '.PP',
    roff('Results go to standard output, messages and progress to standard error.'),
    '.SH COMMANDS',
  ];
  for (const c of source.commands) {
    lines.push(
      `.SS ${roff(c.name)}`,
      roff(`${c.summary[0]?.toUpperCase() ?? ''}${c.summary.slice(1)}.`),
      '.PP',
      '.nf',
    );
    lines.push(...c.usage.map(roff), '.fi', '.PP', roff(c.description));
    const own = optionList(c.options, source.common);
    if (own.length > 0) lines.push('.PP', 'Options:', '.RS', ...own, '.RE');
    if (c.examples.length > 0)
      lines.push('.PP', 'Examples:', '.RS', '.nf', ...c.examples.map(roff), '.fi', '.RE');
  }
  lines.push('.SH "COMMON OPTIONS"', roff('Every command takes:'), ...optionList(source.common));
  lines.push('.SH "EXIT STATUS"');
  for (const [code, meaning] of source.exitCodes) lines.push('.TP', `.B ${code}`, roff(meaning));
  lines.push(
    '.SH ENVIRONMENT',
    roff(
      "Nix is found on PATH and reads its usual environment (NIX_REMOTE, NIX_STORE_DIR, NIX_CONF_DIR, …); nix-plan's " +
        'commands run against whatever store that selects.',
    ),
    '.SH "SEE ALSO"',
    '\\fBnix\\fR(1), \\fBnix\\-store\\fR(1), \\fBnix\\-instantiate\\fR(1)',
    '',
  );
  return lines.join('\n');
}
