// What every \`nix-plan\` subcommand is made of: its spec and context, the options several share,
// and the helpers that turn arguments into use-case options and results into output.
import { IMPORT_METHODS, type ImportDeps } from '../app/import.js';
import type { Deps } from '../app/deps.js';
import { assertSignable } from '../app/signing-policy.js';
import { DEFAULT_ACTIVATION_TIMEOUT } from '../app/deploy/activation.js';
import {
  MAX_LEVEL,
  MIN_LEVEL,
  trustReportOf,
  type BundleManifest,
  type TrustReport,
} from '../core/bundle/index.js';
import { parsePublicKey } from '../core/signing.js';
import { parseDuration } from '../core/freshness.js';
import { splitShellWords } from '../core/shell-words.js';
import type { DocumentedCommand } from './manpage.js';
import type { UseCases } from './use-cases.js';
import {
  flag,
  list,
  optionsHelp,
  parseCommandArgs,
  readSecretKeyFile,
  str,
  usageError,
  type OptionSpecs,
  type ParsedArgs,
} from './args.js';
import { toJson } from './format.js';
import type { CliIo } from './terminal.js';

/** What a command runs with. */
export interface CommandContext {
  readonly io: CliIo;
  readonly useCases: UseCases;
  readonly deps: Deps;
}

/** One subcommand. */
export interface Command extends DocumentedCommand {
  /** What its positional arguments are, for completions: files, a fixed set, or anything. */
  readonly operand?: { readonly value: string; readonly complete: 'file' | 'none' | readonly string[] };
  parse(argv: readonly string[]): ParsedArgs;
  run(args: ParsedArgs, ctx: CommandContext): Promise<void>;
}

export const COMMON: OptionSpecs = {
  json: { type: 'boolean', help: 'print the result as one JSON document on stdout' },
  quiet: { type: 'boolean', short: 'q', help: 'print no progress or messages, only the result and errors' },
  verbose: {
    type: 'boolean',
    short: 'v',
    multiple: true,
    help: 'print each Nix command run; -vv also passes -v to Nix and shows its messages',
  },
  help: { type: 'boolean', short: 'h', help: 'show this help' },
};

export const TRUSTED_KEY = {
  type: 'string',
  multiple: true,
  value: 'KEY',
  help: 'a public key (NAME:base64) or a file of them; the bundle must be signed by one',
} as const;
export const STORE = {
  type: 'string',
  value: 'URI',
  help: "the Nix store to use (Nix's --store; default: Nix's default)",
} as const;
export const CACHE_KEY = {
  type: 'string',
  value: 'FILE',
  help: 'for an untrusted import of build outputs: sign them with this secret key (the daemon must trust its public key)',
} as const;
/** Nix's `--log-format` values. */
export const LOG_FORMATS = [
  'raw',
  'internal-json',
  'bar',
  'bar-with-logs',
  'multiline',
  'multiline-with-logs',
] as const;
export const LOG_FORMAT = {
  type: 'string',
  value: 'FORMAT',
  choices: LOG_FORMATS,
  help: `Nix's --log-format for the Nix output nix-plan shows (${LOG_FORMATS.join(', ')}); internal-json feeds nom --json`,
} as const;
export const NIX_ARG = {
  type: 'string',
  multiple: true,
  dashValue: true,
  value: 'ARGS',
  help: 'extra arguments for Nix, split as a shell would: --nix-arg \'--option extra-substituters "a b"\'',
} as const;

/** `--nix-arg` values split shell-style, then everything after `--`. */
export function nixArgs(args: ParsedArgs): string[] {
  return [...list(args, 'nix-arg').flatMap((v) => splitShellWords(v, '--nix-arg')), ...args.rest];
}

export const NO_CHECK_SIGS = {
  type: 'boolean',
  help: 'accept a plan no --trusted-key vouches for, on purpose (warned; recorded when it is promoted)',
} as const;
export const MAX_SIZE = {
  type: 'string',
  value: 'BYTES',
  help: 'refuse a plan larger than this uncompressed, e.g. 128G (default 64G; it is written to TMPDIR, then the store)',
} as const;
export const MAX_AGE = {
  type: 'string',
  value: 'DURATION',
  help: 'refuse a plan created longer ago than DURATION (e.g. 12h, 7d, 1d12h)',
} as const;
/** apply's and deploy's limit on how long switch-to-configuration may run. */
export const ACTIVATION_TIMEOUT = {
  type: 'string',
  value: 'SECONDS',
  help: `stop switch-to-configuration after this long and re-activate the previous generation (default ${DEFAULT_ACTIVATION_TIMEOUT}; 0: no limit)`,
} as const;
export const ALLOW_DOWNGRADE = {
  type: 'boolean',
  help: 'accept a plan older than the one last applied to the same target (see docs/security.md)',
} as const;
export const METHOD = {
  type: 'string',
  value: 'METHOD',
  choices: IMPORT_METHODS,
  help: 'auto (default), import (nix-store --import; needs a trusted user) or copy (binary cache; works untrusted)',
} as const;

/** The operand of the commands that read one bundle. */
export const BUNDLE = { value: 'BUNDLE', complete: 'file' } as const;

export function define(spec: Omit<Command, 'parse' | 'options'> & { options: OptionSpecs }): Command {
  const options = { ...spec.options, ...COMMON };
  return { ...spec, options, parse: (argv) => parseCommandArgs(argv, options) };
}

export function print(ctx: CommandContext, args: ParsedArgs, value: unknown, human: () => string): void {
  ctx.io.stdout.write(flag(args, 'json') ? toJson(value) : human());
}

/**
 * A result with its trust report: the one the use case made, or one made here from the keys the
 * verifier required a signature by.
 */
export function withTrust<R extends { manifest: BundleManifest; trust?: TrustReport }>(
  result: R,
  trustedKeys: readonly string[],
  noCheckSigs: boolean,
): R & { trust: TrustReport } {
  return {
    ...result,
    trust: result.trust ?? trustReportOf(result.manifest, trustedKeys.map(parsePublicKey), { noCheckSigs }),
  };
}

/** `--max-age` in milliseconds (and as written), or nothing. */
export function maxAge(args: ParsedArgs): { maxAgeMs?: number; maxAgeText?: string } {
  const text = str(args, 'max-age');
  return text === undefined ? {} : { maxAgeMs: parseDuration(text), maxAgeText: text };
}

/** The secret keys of the repeatable `--sign-key FILE`. */
export function signingKeys(args: ParsedArgs): Promise<string[]> {
  return Promise.all(list(args, 'sign-key').map((f) => readSecretKeyFile(f)));
}

export function noRest(args: ParsedArgs, command: string): void {
  if (args.rest.length > 0) throw usageError(`${command} takes no arguments after --`);
}

/** zstd levels the bundle writer accepts, as `--level` says them. */
export const LEVELS = `${MIN_LEVEL}-${MAX_LEVEL}`;

/**
 * The deps of commands that import: the untrusted route, signing outputs with --sign-key. That
 * key signs build outputs so a daemon accepts them: only outputs of a plan verified against
 * --trusted-key (or, on purpose, --no-check-sigs).
 */
export async function importDeps(
  args: ParsedArgs,
  ctx: CommandContext,
  trustedKeys: readonly string[],
): Promise<ImportDeps> {
  const keyFile = list(args, 'sign-key')[0];
  const noCheckSigs = flag(args, 'no-check-sigs');
  assertSignable(keyFile !== undefined, trustedKeys.length > 0, noCheckSigs);
  if (noCheckSigs && trustedKeys.length === 0)
    ctx.deps.log.warn('--no-check-sigs: accepting a plan no trusted key vouches for');
  const signingKey = keyFile === undefined ? undefined : await readSecretKeyFile(keyFile);
  return { ...ctx.deps, copyImport: ctx.useCases.copyImport({ signingKey }) };
}

/** A command's help page. */
export function commandHelp(cmd: Command): string {
  return [
    `Usage: ${cmd.usage.join('\n       ')}`,
    '',
    `${cmd.summary[0]?.toUpperCase() ?? ''}${cmd.summary.slice(1)}.`,
    '',
    wrap(cmd.description, 78),
    '',
    'Options:',
    optionsHelp(cmd.options),
    '',
    'Examples:',
    ...cmd.examples.map((e) => `  ${e}`),
    '',
  ].join('\n');
}

function wrap(text: string, width: number): string {
  const out: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/)) {
    if (line !== '' && line.length + 1 + word.length > width) {
      out.push(line);
      line = word;
    } else line = line === '' ? word : `${line} ${word}`;
  }
  if (line !== '') out.push(line);
  return out.join('\n');
}
