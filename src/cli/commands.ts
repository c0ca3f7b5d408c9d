// The `nix-plan` subcommands: their options and help, how arguments become use-case options, and
// how results are printed (human text, or one JSON document with --json).
import type { ImportDeps } from '../app/import.js';
import type { Deps } from '../app/deps.js';
import type { UseCases } from './use-cases.js';
import {
  flag,
  byteSize,
  integer,
  list,
  oneOf,
  onePositional,
  optionsHelp,
  parseCommandArgs,
  readKeys,
  readTextFile,
  required,
  str,
  usageError,
  type OptionSpecs,
  type ParsedArgs,
} from './args.js';
import {
  formatApply,
  formatExport,
  formatImport,
  formatInspect,
  formatRealise,
  formatRelocate,
  formatVerify,
  toJson,
} from './format.js';
import type { CliIo } from './terminal.js';

export type { UseCases } from './use-cases.js';

/** What a command runs with. */
export interface CommandContext {
  readonly io: CliIo;
  readonly useCases: UseCases;
  readonly deps: Deps;
}

/** One subcommand. */
export interface Command {
  readonly name: string;
  readonly summary: string;
  readonly usage: readonly string[];
  readonly description: string;
  readonly options: OptionSpecs;
  readonly examples: readonly string[];
  parse(argv: readonly string[]): ParsedArgs;
  run(args: ParsedArgs, ctx: CommandContext): Promise<void>;
}

const COMMON: OptionSpecs = {
  json: { type: 'boolean', help: 'print the result as one JSON document on stdout' },
  quiet: { type: 'boolean', short: 'q', help: 'print no progress or messages, only the result and errors' },
  verbose: { type: 'boolean', short: 'v', help: 'print more detail' },
  help: { type: 'boolean', short: 'h', help: 'show this help' },
};

const TRUSTED_KEY = {
  type: 'string',
  multiple: true,
  value: 'KEY',
  help: 'a public key (NAME:base64) or a file of them; the bundle must be signed by one',
} as const;
const STORE = {
  type: 'string',
  value: 'URI',
  help: "the Nix store to use (Nix's --store; default: Nix's default)",
} as const;
const CACHE_KEY = {
  type: 'string',
  value: 'FILE',
  help: 'for an untrusted import of build outputs: sign them with this secret key (the daemon must trust its public key)',
} as const;
/** `--no-check-sigs` (the name `nix copy` uses): the explicit opt-out of proof before trust. */
export const NO_CHECK_SIGS = {
  type: 'boolean',
  help: 'accept build outputs no trusted key signed (warned, and reported as NOT CHECKED)',
} as const;
const MAX_SIZE = {
  type: 'string',
  value: 'BYTES',
  help: 'refuse a plan larger than this uncompressed, e.g. 128G (default 64G; it is written to TMPDIR, then the store)',
} as const;
const METHOD = {
  type: 'string',
  value: 'METHOD',
  help: 'auto (default), import (nix-store --import; needs a trusted user) or copy (binary cache; works untrusted)',
} as const;

function define(spec: Omit<Command, 'parse' | 'options'> & { options: OptionSpecs }): Command {
  const options = { ...spec.options, ...COMMON };
  return { ...spec, options, parse: (argv) => parseCommandArgs(argv, options) };
}

function print(ctx: CommandContext, args: ParsedArgs, value: unknown, human: () => string): void {
  ctx.io.stdout.write(flag(args, 'json') ? toJson(value) : human());
}

function noRest(args: ParsedArgs, command: string): void {
  if (args.rest.length > 0) throw usageError(`${command} takes no arguments after --`);
}

const METHODS = ['auto', 'import', 'copy'] as const;
const INCLUDES = ['drvs', 'sources', 'outputs'] as const;
const ACTIONS = ['switch', 'boot', 'test', 'dry-activate'] as const;

/** Every subcommand, in the order help lists them. */
export const COMMANDS: readonly Command[] = [
  define({
    name: 'export',
    summary: 'evaluate once and write a plan bundle',
    usage: [
      'nix-plan export [INSTALLABLE…] [-f FILE [-A ATTR…]] [--drv PATH…] -o OUT.nixplan [OPTIONS] [-- EVAL ARGS]',
    ],
    description:
      'Evaluates flake installables (with nix), a file (with nix-instantiate) and/or takes existing .drv paths, ' +
      'collects their closure from the store and writes it as one zstd-compressed plan bundle. ' +
      'Arguments after -- go to the evaluator (e.g. -- --arg system \'"x86_64-linux"\').',
    options: {
      file: { type: 'string', short: 'f', value: 'FILE', help: 'a Nix file to instantiate' },
      attr: { type: 'string', short: 'A', multiple: true, value: 'ATTR', help: 'an attribute of FILE' },
      drv: { type: 'string', multiple: true, value: 'PATH', help: 'a .drv path already in the store' },
      output: { type: 'string', short: 'o', value: 'OUT', help: 'where to write the bundle (required)' },
      include: {
        type: 'string',
        value: 'KIND',
        help: 'drvs (default: .drv files and sources), sources (plus fetched fixed outputs), outputs (plus the built outputs)',
      },
      level: {
        type: 'string',
        value: 'N',
        help: 'zstd level 1-19 (default: a tuned level 10 in a 64 MiB window, see docs/bundle-format.md)',
      },
      'sign-key': {
        type: 'string',
        multiple: true,
        value: 'FILE',
        help: 'sign the manifest with this secret key file',
      },
      'relocate-to': {
        type: 'string',
        value: 'DIR',
        help: 'relocate the plan to store dir DIR before writing',
      },
      store: STORE,
    },
    examples: [
      'nix-plan export -f default.nix -A hello -o hello.nixplan',
      'nix-plan export .#packages.x86_64-linux.default -o app.nixplan --sign-key ci.sec',
      'nix-plan export --drv /nix/store/…-hello.drv -o hello.nixplan',
    ],
    async run(args, ctx) {
      const signingKeys = await Promise.all(
        list(args, 'sign-key').map((f) => readTextFile(f, 'secret key file')),
      );
      const result = await ctx.useCases.exportPlan(
        {
          installables: [...args.positionals],
          file: str(args, 'file'),
          attributes: list(args, 'attr'),
          drvPaths: list(args, 'drv'),
          evalArgs: [...args.rest],
          output: required(args, 'output', 'OUT (where to write the bundle)'),
          include: oneOf(str(args, 'include'), 'include', INCLUDES),
          level: integer(str(args, 'level'), 'level', 1, 19),
          signingKeys: signingKeys.map((k) => k.trim()),
          relocateTo: str(args, 'relocate-to'),
          store: str(args, 'store'),
        },
        ctx.deps,
      );
      print(ctx, args, result, () => formatExport(result));
    },
  }),
  define({
    name: 'inspect',
    summary: 'show what a bundle holds (touches no store)',
    usage: ['nix-plan inspect BUNDLE [--json]'],
    description:
      'Reads the manifest and prints the roots, counts and sizes. Checks the manifest, not the stream: use verify for that.',
    options: {},
    examples: [
      'nix-plan inspect hello.nixplan',
      'nix-plan inspect hello.nixplan --json | jq .manifest.roots',
    ],
    async run(args, ctx) {
      noRest(args, 'inspect');
      const result = await ctx.useCases.inspectPlan(onePositional(args, 'BUNDLE'));
      print(ctx, args, result, () => formatInspect(result));
    },
  }),
  define({
    name: 'verify',
    summary: 'check a bundle completely: framing, checksums, every NAR and path, signatures',
    usage: ['nix-plan verify BUNDLE [--trusted-key KEY…] [--store-dir DIR]'],
    description:
      'Streams the whole bundle and validates everything import would, without touching a store. ' +
      'With --trusted-key the manifest must carry a valid signature by one of the keys.',
    options: {
      'trusted-key': TRUSTED_KEY,
      'no-check-sigs': NO_CHECK_SIGS,
      'store-dir': { type: 'string', value: 'DIR', help: 'require the bundle to be for this store dir' },
    },
    examples: ['nix-plan verify hello.nixplan --trusted-key ci.pub'],
    async run(args, ctx) {
      noRest(args, 'verify');
      const report = await ctx.useCases.verifyPlan(
        onePositional(args, 'BUNDLE'),
        {
          trustedKeys: await readKeys(list(args, 'trusted-key')),
          storeDir: str(args, 'store-dir'),
          noCheckSigs: flag(args, 'no-check-sigs'),
        },
        ctx.deps,
      );
      print(ctx, args, report, () => formatVerify(report));
    },
  }),
  define({
    name: 'import',
    summary: 'verify a bundle, then add its paths to a store',
    usage: ['nix-plan import BUNDLE [--store URI] [--trusted-key KEY…] [--method auto|import|copy]'],
    description:
      'Verifies the whole bundle first (nothing reaches the store before), then imports it: with nix-store --import ' +
      'when the user may (root on a local store, or a trusted user), otherwise through a temporary binary cache ' +
      'that Nix accepts from untrusted users for content-addressed paths. Paths already valid are skipped.',
    options: {
      store: STORE,
      'trusted-key': TRUSTED_KEY,
      'no-check-sigs': NO_CHECK_SIGS,
      method: METHOD,
      'sign-key': CACHE_KEY,
      'max-size': MAX_SIZE,
    },
    examples: ['nix-plan import hello.nixplan', 'nix-plan import hello.nixplan --method copy --store daemon'],
    async run(args, ctx) {
      noRest(args, 'import');
      const result = await ctx.useCases.importPlan(
        onePositional(args, 'BUNDLE'),
        {
          store: str(args, 'store'),
          trustedKeys: await readKeys(list(args, 'trusted-key')),
          noCheckSigs: flag(args, 'no-check-sigs'),
          method: oneOf(str(args, 'method'), 'method', METHODS),
          maxSize: byteSize(str(args, 'max-size'), 'max-size'),
        },
        await importDeps(args, ctx),
      );
      print(ctx, args, result, () => formatImport(result));
    },
  }),
  define({
    name: 'realise',
    summary: 'import a bundle and build its roots',
    usage: [
      'nix-plan realise BUNDLE [--out-link PREFIX] [--store URI] [--roots SEL…] [--trusted-key KEY…] [-- NIX ARGS]',
    ],
    description:
      "Imports the bundle (as import does), then builds every output of the selected roots by .drv path with the host's " +
      'substituters. --roots selects roots by index (0-based), attribute, installable or .drv path (comma-separated or ' +
      'repeated), e.g. one shard of a build matrix. Arguments after -- go to nix-store --realise (e.g. -- --max-jobs 4). ' +
      'Prints the output paths, one per line.',
    options: {
      'out-link': {
        type: 'string',
        value: 'PREFIX',
        help: 'make GC roots PREFIX, PREFIX-2, … (symlinks to the outputs)',
      },
      store: STORE,
      roots: { type: 'string', multiple: true, value: 'SEL', help: 'build only these roots' },
      'trusted-key': TRUSTED_KEY,
      'no-check-sigs': NO_CHECK_SIGS,
      method: METHOD,
      'sign-key': CACHE_KEY,
      'max-size': MAX_SIZE,
    },
    examples: [
      'nix-plan realise hello.nixplan --out-link result',
      'nix-plan realise plan.nixplan --roots 0,2 -- --keep-going',
    ],
    async run(args, ctx) {
      const result = await ctx.useCases.realisePlan(
        onePositional(args, 'BUNDLE'),
        {
          store: str(args, 'store'),
          outLink: str(args, 'out-link'),
          roots: list(args, 'roots', true),
          trustedKeys: await readKeys(list(args, 'trusted-key')),
          noCheckSigs: flag(args, 'no-check-sigs'),
          method: oneOf(str(args, 'method'), 'method', METHODS),
          maxSize: byteSize(str(args, 'max-size'), 'max-size'),
          nixArgs: [...args.rest],
        },
        await importDeps(args, ctx),
      );
      print(ctx, args, result, () => formatRealise(result));
    },
  }),
  define({
    name: 'relocate',
    summary: 'rewrite a bundle for another store dir (realm)',
    usage: ['nix-plan relocate BUNDLE --to DIR -o OUT.nixplan [--sign-key FILE] [--trusted-key KEY…]'],
    description:
      'Rewrites every derivation, text file and source of the plan from its store dir to DIR, so the result is what ' +
      'evaluating natively with that store dir would give, and writes a new bundle. Refuses what it cannot relocate faithfully.',
    options: {
      to: { type: 'string', value: 'DIR', help: 'the target store dir (required)' },
      output: {
        type: 'string',
        short: 'o',
        value: 'OUT',
        help: 'where to write the relocated bundle (required)',
      },
      'sign-key': {
        type: 'string',
        multiple: true,
        value: 'FILE',
        help: 'sign the new manifest with this secret key file',
      },
      'trusted-key': TRUSTED_KEY,
      'no-check-sigs': NO_CHECK_SIGS,
      level: {
        type: 'string',
        value: 'N',
        help: 'zstd level 1-19 (default 3 without long-distance matching: promotion favours speed)',
      },
    },
    examples: ['nix-plan relocate hello.nixplan --to /beta/store -o hello-beta.nixplan'],
    async run(args, ctx) {
      noRest(args, 'relocate');
      const signingKeys = await Promise.all(
        list(args, 'sign-key').map((f) => readTextFile(f, 'secret key file')),
      );
      const result = await ctx.useCases.relocatePlan(
        onePositional(args, 'BUNDLE'),
        {
          to: required(args, 'to', 'DIR (the target store dir)'),
          output: required(args, 'output', 'OUT (where to write the bundle)'),
          signingKeys: signingKeys.map((k) => k.trim()),
          trustedKeys: await readKeys(list(args, 'trusted-key')),
          noCheckSigs: flag(args, 'no-check-sigs'),
          level: integer(str(args, 'level'), 'level', 1, 19),
        },
        ctx.deps,
      );
      print(ctx, args, result, () => formatRelocate(result));
    },
  }),
  define({
    name: 'keygen',
    summary: 'create a signing key pair (the format of nix-store --generate-binary-cache-key)',
    usage: ['nix-plan keygen NAME --secret FILE --public FILE'],
    description:
      'Writes NAME:base64 secret and public key files. The secret file is created with mode 0600 and never overwritten.',
    options: {
      secret: { type: 'string', value: 'FILE', help: 'where to write the secret key (required)' },
      public: { type: 'string', value: 'FILE', help: 'where to write the public key (required)' },
    },
    examples: ['nix-plan keygen ci-1 --secret ci.sec --public ci.pub'],
    async run(args, ctx) {
      noRest(args, 'keygen');
      const name = onePositional(args, 'NAME');
      const secretFile = required(args, 'secret', 'FILE');
      const publicFile = required(args, 'public', 'FILE');
      const pair = ctx.useCases.keygen(name);
      await ctx.useCases.writeKeyPair(pair, { secretFile, publicFile });
      print(
        ctx,
        args,
        { name, publicKey: pair.publicKey, secretFile, publicFile },
        () => `${pair.publicKey}\n`,
      );
    },
  }),
  define({
    name: 'apply',
    summary: 'realise a NixOS system plan and switch a profile to it',
    usage: [
      'nix-plan apply BUNDLE --profile PATH [--action switch|boot|test|dry-activate] [--trusted-key KEY…]',
      'nix-plan apply --rollback --profile PATH [--action …]',
    ],
    description:
      "Realises the bundle's single root, sets it as the next generation of PATH and runs its " +
      'bin/switch-to-configuration ACTION. --rollback switches back to the previous generation instead.',
    options: {
      profile: {
        type: 'string',
        value: 'PATH',
        help: 'the system profile (e.g. /nix/var/nix/profiles/system) (required)',
      },
      action: { type: 'string', value: 'ACTION', help: 'switch (default), boot, test or dry-activate' },
      rollback: { type: 'boolean', help: 'go back one generation' },
      store: STORE,
      'trusted-key': TRUSTED_KEY,
      method: METHOD,
      'sign-key': CACHE_KEY,
      'max-size': MAX_SIZE,
    },
    examples: ['nix-plan apply host.nixplan --profile /nix/var/nix/profiles/system --trusted-key ci.pub'],
    async run(args, ctx) {
      noRest(args, 'apply');
      const rollback = flag(args, 'rollback');
      const bundle = rollback && args.positionals.length === 0 ? undefined : onePositional(args, 'BUNDLE');
      const store = str(args, 'store');
      // No --no-check-sigs: apply never activates a system whose paths nothing proves.
      const realiseOptions = {
        store,
        trustedKeys: await readKeys(list(args, 'trusted-key')),
        method: oneOf(str(args, 'method'), 'method', METHODS),
        maxSize: byteSize(str(args, 'max-size'), 'max-size'),
      };
      const deps = await importDeps(args, ctx);
      const result = await ctx.useCases.applyPlan(
        bundle,
        {
          profile: required(args, 'profile', 'PATH'),
          action: oneOf(str(args, 'action'), 'action', ACTIONS),
          rollback,
          store,
        },
        { ...deps, realise: (b) => ctx.useCases.realisePlan(b, realiseOptions, deps) },
      );
      print(ctx, args, result, () => formatApply(result));
    },
  }),
];

/** The deps of commands that import: the untrusted route, signing outputs with --sign-key. */
async function importDeps(args: ParsedArgs, ctx: CommandContext): Promise<ImportDeps> {
  const keyFile = list(args, 'sign-key')[0];
  const signingKey =
    keyFile === undefined ? undefined : (await readTextFile(keyFile, 'secret key file')).trim();
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
