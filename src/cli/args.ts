// Command-line parsing helpers over node:util parseArgs: typed values, `--` pass-through, and
// usage errors that name the option and the accepted values.
import { readFile } from 'node:fs/promises';
import { parseArgs, type ParseArgsOptionsConfig } from 'node:util';
import { ArgumentError, NixPlanError } from '../core/errors.js';
import { parsePublicKey, parseSecretKey } from '../core/signing.js';

/** One option of a command, with its help text. */
export interface OptionSpec {
  readonly type: 'string' | 'boolean';
  readonly short?: string;
  readonly multiple?: boolean;
  /** Placeholder shown in help (`FILE`, `DIR`). */
  readonly value?: string;
  /** The value may start with a dash (`--nix-arg --max-jobs`): the next argument is taken as it is. */
  readonly dashValue?: boolean;
  /** The values it accepts, when they are a fixed set (for help, completions and the man page). */
  readonly choices?: readonly string[];
  readonly help: string;
}

/** The options of a command by long name. */
export type OptionSpecs = Readonly<Record<string, OptionSpec>>;

/** Parsed command line: option values, positionals, and everything after `--`. */
export interface ParsedArgs {
  readonly values: Readonly<Record<string, string | boolean | (string | boolean)[] | undefined>>;
  readonly positionals: readonly string[];
  readonly rest: readonly string[];
}

/** A usage error about the arguments (followed by the hint to `--help`). */
export function usageError(message: string): NixPlanError {
  return new ArgumentError(message);
}

/** Parses `argv` against `specs`; unknown options and missing values become usage errors. */
export function parseCommandArgs(argv: readonly string[], specs: OptionSpecs): ParsedArgs {
  const dash = argv.indexOf('--');
  const head = joinDashValues(dash < 0 ? argv : argv.slice(0, dash), specs);
  const rest = dash < 0 ? [] : argv.slice(dash + 1);
  const options: ParseArgsOptionsConfig = {};
  for (const [name, s] of Object.entries(specs))
    options[name] = {
      type: s.type,
      ...(s.short !== undefined && { short: s.short }),
      ...(s.multiple === true && { multiple: true }),
    };
  try {
    const { values, positionals } = parseArgs({
      args: [...head],
      options,
      allowPositionals: true,
      strict: true,
    });
    return { values, positionals, rest };
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    throw usageError(message.replace(/\. To specify a positional argument.*$/s, ''));
  }
}

/** `--name VALUE` as `--name=VALUE` for options whose value may look like an option. */
function joinDashValues(argv: readonly string[], specs: OptionSpecs): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] ?? '';
    const name = a.startsWith('--') ? a.slice(2) : undefined;
    const value = argv[i + 1];
    if (name !== undefined && specs[name]?.dashValue === true && value !== undefined) {
      out.push(`${a}=${value}`);
      i++;
    } else out.push(a);
  }
  return out;
}

/** A string option's value, or undefined. */
export function str(args: ParsedArgs, name: string): string | undefined {
  const v = args.values[name];
  return typeof v === 'string' ? v : undefined;
}

/** A required string option's value. */
export function required(args: ParsedArgs, name: string, what: string): string {
  const v = str(args, name);
  if (v === undefined || v === '') throw usageError(`missing --${name} ${what}`);
  return v;
}

/** A repeatable string option's values (also splitting on commas when `commas`). */
export function list(args: ParsedArgs, name: string, commas = false): string[] {
  const v = args.values[name];
  const items = Array.isArray(v)
    ? v.filter((x): x is string => typeof x === 'string')
    : typeof v === 'string'
      ? [v]
      : [];
  return commas ? items.flatMap((x) => x.split(',')).filter((x) => x !== '') : items;
}

/** A boolean flag. */
export function flag(args: ParsedArgs, name: string): boolean {
  return args.values[name] === true;
}

/** A value that must be one of `allowed`. */
export function oneOf<T extends string>(
  value: string | undefined,
  name: string,
  allowed: readonly T[],
): T | undefined {
  if (value === undefined) return undefined;
  if (!(allowed as readonly string[]).includes(value))
    throw usageError(`--${name} must be one of ${allowed.join(', ')} (got '${value}')`);
  return value as T;
}

/** An integer option within [min, max]. */
export function integer(
  value: string | undefined,
  name: string,
  min: number,
  max: number,
): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!/^-?\d+$/.test(value) || n < min || n > max)
    throw usageError(`--${name} must be an integer from ${min} to ${max} (got '${value}')`);
  return n;
}

/** A size in bytes: digits with an optional K, M, G or T (powers of 1024), or a usage error. */
export function byteSize(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  const m = /^(\d+)([KMGT]?)(i?B)?$/i.exec(value.trim());
  if (m === null) throw usageError(`--${name} must be a size in bytes, like 512M or 64G (got '${value}')`);
  const unit = { '': 0, K: 1, M: 2, G: 3, T: 4 }[(m[2] ?? '').toUpperCase() as '' | 'K' | 'M' | 'G' | 'T'];
  return Number(m[1]) * 1024 ** unit;
}

/** Exactly one positional argument (the bundle), or a usage error naming it. */
export function onePositional(args: ParsedArgs, what: string): string {
  if (args.positionals.length === 0) throw usageError(`missing ${what}`);
  if (args.positionals.length > 1)
    throw usageError(`expected one ${what}, got ${args.positionals.length}: ${args.positionals.join(' ')}`);
  return args.positionals[0] ?? '';
}

const KEY_LITERAL = /^[^\s:/]+:[A-Za-z0-9+/]+=*$/;

function publicKeyOrUsage(key: string, where: string): string {
  try {
    parsePublicKey(key);
  } catch (e) {
    throw usageError(`${where}: ${(e as Error).message}`);
  }
  return key;
}

/**
 * Public keys from `--trusted-key` values: each is a key in Nix's format (`name:base64`) or a file
 * holding one or more (whitespace-separated, `#` comments), like `trusted-public-keys`. Fails
 * closed: an empty value (an unset variable), a file without a key, or anything that is not a
 * key is a usage error, never "no keys".
 */
export async function readKeys(values: readonly string[], readText = readTextFile): Promise<string[]> {
  const keys: string[] = [];
  for (const v of values) {
    if (v.trim() === '')
      throw usageError(
        '--trusted-key is empty (an unset variable?): give a public key (NAME:base64) or a file of them',
      );
    if (KEY_LITERAL.test(v)) {
      keys.push(publicKeyOrUsage(v, '--trusted-key'));
      continue;
    }
    const words = (await readText(v, 'trusted key file'))
      .split('\n')
      .map((l) => l.replace(/#.*$/, ''))
      .flatMap((l) => l.split(/\s+/))
      .filter((k) => k !== '');
    if (words.length === 0)
      throw usageError(`trusted key file '${v}' holds no key: it must hold public keys (NAME:base64)`);
    keys.push(...words.map((k) => publicKeyOrUsage(k, `trusted key file '${v}'`)));
  }
  return keys;
}

/**
 * A secret key file's contents (Nix's `NAME:base64`), checked to be one: an empty file or one
 * that is not a key is a usage error naming the file (never echoing what it holds).
 */
export async function readSecretKeyFile(path: string, readText = readTextFile): Promise<string> {
  if (path.trim() === '')
    throw usageError('--sign-key is empty (an unset variable?): give a secret key file');
  const text = (await readText(path, 'secret key file')).trim();
  if (text === '') throw usageError(`secret key file '${path}' is empty`);
  try {
    parseSecretKey(text);
  } catch (e) {
    throw usageError(
      `secret key file '${path}' does not hold a usable secret key (${(e as Error).message.replace(/'[^']*'/g, '(hidden)')})`,
    );
  }
  return text;
}

/** Reads a small text file, turning a missing file into a usage error that names it. */
export async function readTextFile(path: string, what: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (e) {
    throw usageError(`cannot read ${what} '${path}': ${e instanceof Error ? e.message : String(e)}`);
  }
}

/** Help text for a command's options, aligned. */
export function optionsHelp(specs: OptionSpecs): string {
  const rows = Object.entries(specs).map(([name, s]) => {
    const left = `${s.short === undefined ? '    ' : `-${s.short}, `}--${name}${s.value === undefined ? '' : ` ${s.value}`}`;
    return [left, s.help + (s.multiple === true ? ' (repeatable)' : '')] as const;
  });
  const width = Math.max(...rows.map(([l]) => l.length));
  return rows.map(([l, h]) => `  ${l.padEnd(width)}  ${h}`).join('\n');
}
