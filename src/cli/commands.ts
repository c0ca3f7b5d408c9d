// The `nix-plan` subcommands: their options and help, how arguments become use-case options, and
// how results are printed (human text, or one JSON document with --json).
import type { ImportDeps } from '../app/import.js';
import type { Deps } from '../app/deps.js';
import { assertSignable } from '../app/signing-policy.js';
import { trustReportOf, trustStatus, type BundleManifest, type TrustReport } from '../core/bundle/index.js';
import { parsePublicKey } from '../core/signing.js';
import { freshnessProblem, parseDuration } from '../core/freshness.js';
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
  readSecretKeyFile,
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
import { deployCommand } from './deploy-command.js';
import { withBundleFile } from './stdin-bundle.js';
import { formatDryRun } from './format-dry-run.js';
import { completionScript, SHELLS } from './completions.js';
import { EXIT_CODE_MEANINGS } from './exit-codes.js';
import { manPage } from './manpage.js';
import { VERSION } from '../app/version.js';
import { splitShellWords } from '../core/shell-words.js';
import { diffCommand } from './diff-command.js';
import { formatContents } from './diff-format.js';

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
  /** What its positional arguments are, for completions: files, a fixed set, or anything. */
  readonly operand?: { readonly value: string; readonly complete: 'file' | 'none' | readonly string[] };
  parse(argv: readonly string[]): ParsedArgs;
  run(args: ParsedArgs, ctx: CommandContext): Promise<void>;
}

const COMMON: OptionSpecs = {
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

/** `--trusted-key`, as every command that reads a bundle takes it. */
export const TRUSTED_KEY = {
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
/** Nix's `--log-format` values. */
export const LOG_FORMATS = [
  'raw',
  'internal-json',
  'bar',
  'bar-with-logs',
  'multiline',
  'multiline-with-logs',
] as const;
const LOG_FORMAT = {
  type: 'string',
  value: 'FORMAT',
  choices: LOG_FORMATS,
  help: `Nix's --log-format for the Nix output nix-plan shows (${LOG_FORMATS.join(', ')}); internal-json feeds nom --json`,
} as const;
const NIX_ARG = {
  type: 'string',
  multiple: true,
  dashValue: true,
  value: 'ARGS',
  help: 'extra arguments for Nix, split as a shell would: --nix-arg \'--option extra-substituters "a b"\'',
} as const;

/** `--nix-arg` values split shell-style, then everything after `--`. */
function nixArgs(args: ParsedArgs): string[] {
  return [...list(args, 'nix-arg').flatMap((v) => splitShellWords(v, '--nix-arg')), ...args.rest];
}

const METHODS = ['auto', 'import', 'copy'] as const;
const INCLUDES = ['drvs', 'sources', 'outputs'] as const;
const ACTIONS = ['switch', 'boot', 'test', 'dry-activate'] as const;

/** `--no-check-sigs`, as every command that takes it. */
export const NO_CHECK_SIGS = {
  type: 'boolean',
  help: 'accept a plan no --trusted-key vouches for, on purpose (warned; recorded when it is promoted)',
} as const;
const MAX_SIZE = {
  type: 'string',
  value: 'BYTES',
  help: 'refuse a plan larger than this uncompressed, e.g. 128G (default 64G; it is written to TMPDIR, then the store)',
} as const;
/** `--max-age`, as every command that takes it. */
export const MAX_AGE = {
  type: 'string',
  value: 'DURATION',
  help: 'refuse a plan created longer ago than DURATION (e.g. 12h, 7d, 1d12h)',
} as const;
/** `--allow-downgrade`, as every command that takes it. */
export const ALLOW_DOWNGRADE = {
  type: 'boolean',
  help: 'accept a plan older than the one last applied to the same target (see docs/security.md)',
} as const;
const METHOD = {
  type: 'string',
  value: 'METHOD',
  choices: METHODS,
  help: 'auto (default), import (nix-store --import; needs a trusted user) or copy (binary cache; works untrusted)',
} as const;

/** A command with the common options and its parser. */
export function define(spec: Omit<Command, 'parse' | 'options'> & { options: OptionSpecs }): Command {
  const options = { ...spec.options, ...COMMON };
  return { ...spec, options, parse: (argv) => parseCommandArgs(argv, options) };
}

/** Prints a result: one JSON document with --json, else the human form. */
export function print(ctx: CommandContext, args: ParsedArgs, value: unknown, human: () => string): void {
  ctx.io.stdout.write(flag(args, 'json') ? toJson(value) : human());
}

/**
 * A result with its trust report: the one the use case made, or one made here from the keys the
 * verifier required a signature by.
 */
function withTrust<R extends { manifest: BundleManifest; trust?: TrustReport }>(
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
function signingKeys(args: ParsedArgs): Promise<string[]> {
  return Promise.all(list(args, 'sign-key').map((f) => readSecretKeyFile(f)));
}

/** Refuses arguments after `--` for commands that take none. */
export function noRest(args: ParsedArgs, command: string): void {
  if (args.rest.length > 0) throw usageError(`${command} takes no arguments after --`);
}

const BUNDLE = { value: 'BUNDLE', complete: 'file' } as const;

/** Every subcommand, in the order help lists them. */
export const COMMANDS: readonly Command[] = [
  define({
    name: 'export',
    operand: { value: 'INSTALLABLE', complete: 'none' },
    summary: 'evaluate once and write a plan bundle',
    usage: [
      'nix-plan export [INSTALLABLE…] [-f FILE [-A ATTR…]] [--drv PATH…] -o OUT.nixplan [OPTIONS] [-- EVAL ARGS]',
    ],
    description:
      'Evaluates flake installables (with nix), a file (with nix-instantiate) and/or takes existing .drv paths, ' +
      'collects their closure from the store and writes it as one zstd-compressed plan bundle. ' +
      'Arguments after -- (or in --nix-arg) go to the evaluator (e.g. -- --arg system \'"x86_64-linux"\').',
    options: {
      file: { type: 'string', short: 'f', value: 'FILE', help: 'a Nix file to instantiate' },
      attr: { type: 'string', short: 'A', multiple: true, value: 'ATTR', help: 'an attribute of FILE' },
      drv: { type: 'string', multiple: true, value: 'PATH', help: 'a .drv path already in the store' },
      output: { type: 'string', short: 'o', value: 'OUT', help: 'where to write the bundle (required)' },
      include: {
        type: 'string',
        value: 'KIND',
        choices: INCLUDES,
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
      'nix-arg': NIX_ARG,
      'log-format': LOG_FORMAT,
    },
    examples: [
      'nix-plan export -f default.nix -A hello -o hello.nixplan',
      'nix-plan export .#packages.x86_64-linux.default -o app.nixplan --sign-key ci.sec',
      'nix-plan export --drv /nix/store/…-hello.drv -o hello.nixplan',
    ],
    async run(args, ctx) {
      const keys = await signingKeys(args);
      const result = await ctx.useCases.exportPlan(
        {
          installables: [...args.positionals],
          file: str(args, 'file'),
          attributes: list(args, 'attr'),
          drvPaths: list(args, 'drv'),
          evalArgs: nixArgs(args),
          output: required(args, 'output', 'OUT (where to write the bundle)'),
          include: oneOf(str(args, 'include'), 'include', INCLUDES),
          level: integer(str(args, 'level'), 'level', 1, 19),
          signingKeys: keys,
          relocateTo: str(args, 'relocate-to'),
          store: str(args, 'store'),
          provenance: { env: (name) => process.env[name] },
        },
        ctx.deps,
      );
      print(ctx, args, result, () => formatExport(result));
    },
  }),
  define({
    name: 'inspect',
    operand: BUNDLE,
    summary: 'show what a bundle holds (touches no store)',
    usage: ['nix-plan inspect BUNDLE [--contents [--trusted-key KEY…]] [--json]'],
    description:
      'Reads the manifest and prints the roots, counts and sizes. Checks the manifest, not the stream: use verify for that. ' +
      'With --contents it also reads (and verifies) the whole bundle and lists the packages of each root: name, version, outputs, system.',
    options: {
      contents: { type: 'boolean', help: "list each root's packages (reads and verifies the whole bundle)" },
      'trusted-key': TRUSTED_KEY,
    },
    examples: [
      'nix-plan inspect hello.nixplan',
      'nix-plan inspect hello.nixplan --json | jq .manifest.roots',
      'nix-plan inspect hello.nixplan --contents',
    ],
    async run(args, ctx) {
      noRest(args, 'inspect');
      const bundle = onePositional(args, 'BUNDLE');
      const result = await ctx.useCases.inspectPlan(bundle);
      if (!flag(args, 'contents')) {
        print(ctx, args, result, () => formatInspect(result));
        return;
      }
      const contents = await ctx.useCases.planContents(
        bundle,
        { trustedKeys: await readKeys(list(args, 'trusted-key')) },
        ctx.deps,
      );
      print(ctx, args, { ...result, contents }, () => formatInspect(result) + formatContents(contents));
    },
  }),
  define(diffCommand({ print, noRest, store: STORE, trustedKey: TRUSTED_KEY })),
  define({
    name: 'verify',
    operand: BUNDLE,
    summary: 'check a bundle completely: framing, checksums, every NAR and path, signatures',
    usage: ['nix-plan verify BUNDLE [--trusted-key KEY…] [--store-dir DIR] [--max-age DURATION]'],
    description:
      'Streams the whole bundle and validates everything import would, without touching a store. ' +
      'With --trusted-key the manifest must carry a valid signature by one of the keys; without, only the ' +
      "bundle's integrity is checked, not who made it.",
    options: {
      'trusted-key': TRUSTED_KEY,
      'no-check-sigs': NO_CHECK_SIGS,
      'store-dir': { type: 'string', value: 'DIR', help: 'require the bundle to be for this store dir' },
      'max-age': MAX_AGE,
    },
    examples: ['nix-plan verify hello.nixplan --trusted-key ci.pub'],
    async run(args, ctx) {
      noRest(args, 'verify');
      const age = maxAge(args);
      const report = await ctx.useCases.verifyPlan(
        onePositional(args, 'BUNDLE'),
        {
          trustedKeys: await readKeys(list(args, 'trusted-key')),
          storeDir: str(args, 'store-dir'),
          noCheckSigs: flag(args, 'no-check-sigs'),
        },
        ctx.deps,
      );
      // verify changes nothing, so the age is checked on the manifest it verified.
      const stale =
        age.maxAgeMs === undefined ? undefined : freshnessProblem(report.manifest, age, new Date());
      if (stale !== undefined) throw stale;
      print(ctx, args, report, () => formatVerify(report));
    },
  }),
  define({
    name: 'import',
    operand: BUNDLE,
    summary: 'verify a bundle, then add its paths to a store',
    usage: [
      'nix-plan import BUNDLE [--store URI] [--trusted-key KEY…] [--method auto|import|copy] [--max-age DURATION]',
    ],
    description:
      'Verifies the whole bundle first (nothing reaches the store before), then imports it: with nix-store --import ' +
      'when the user may (root on a local store, or a trusted user), otherwise through a temporary binary cache ' +
      'that Nix accepts from untrusted users for content-addressed paths. Paths already valid are skipped.',
    options: {
      store: STORE,
      'trusted-key': TRUSTED_KEY,
      method: METHOD,
      'sign-key': CACHE_KEY,
      'no-check-sigs': NO_CHECK_SIGS,
      'max-age': MAX_AGE,
      'max-size': MAX_SIZE,
    },
    examples: ['nix-plan import hello.nixplan', 'nix-plan import hello.nixplan --method copy --store daemon'],
    async run(args, ctx) {
      noRest(args, 'import');
      const trustedKeys = await readKeys(list(args, 'trusted-key'));
      const options = {
        store: str(args, 'store'),
        trustedKeys,
        noCheckSigs: flag(args, 'no-check-sigs'),
        method: oneOf(str(args, 'method'), 'method', METHODS),
        maxSize: byteSize(str(args, 'max-size'), 'max-size'),
      };
      const deps = await importDeps(args, ctx, trustedKeys);
      const result = await ctx.useCases.withFreshness(
        onePositional(args, 'BUNDLE'),
        maxAge(args),
        ctx.deps.log,
        (bundle) => ctx.useCases.importPlan(bundle, options, deps),
      );
      const shown = withTrust(result, trustedKeys, flag(args, 'no-check-sigs'));
      print(ctx, args, shown, () => formatImport(shown));
    },
  }),
  define({
    name: 'realise',
    operand: BUNDLE,
    summary: 'import a bundle and build its roots',
    usage: [
      'nix-plan realise BUNDLE [--out-link PREFIX] [--store URI] [--roots SEL…] [--trusted-key KEY…] [--max-age DURATION] [--dry-run] [-- NIX ARGS]',
    ],
    description:
      "Imports the bundle (as import does), then builds every output of the selected roots by .drv path with the host's " +
      'substituters. --roots selects roots by index (0-based), attribute, installable or .drv path (comma-separated or ' +
      'repeated), e.g. one shard of a build matrix. Arguments after -- (or in --nix-arg) go to nix-store --realise ' +
      '(e.g. -- --max-jobs 4). Prints the output paths, one per line. With --out-link, the plan is remembered in ' +
      'PREFIX.nix-plan.json and an older plan for the same link is refused (exit 11) unless --allow-downgrade.',
    options: {
      'out-link': {
        type: 'string',
        value: 'PREFIX',
        help: 'make GC roots PREFIX, PREFIX-2, … (symlinks to the outputs)',
      },
      store: STORE,
      roots: { type: 'string', multiple: true, value: 'SEL', help: 'build only these roots' },
      'trusted-key': TRUSTED_KEY,
      method: METHOD,
      'sign-key': CACHE_KEY,
      'nix-arg': NIX_ARG,
      'log-format': LOG_FORMAT,
      'dry-run': {
        type: 'boolean',
        help: 'verify, then list what would be imported, built and fetched; change nothing',
      },
      'no-check-sigs': NO_CHECK_SIGS,
      'max-age': MAX_AGE,
      'allow-downgrade': ALLOW_DOWNGRADE,
      'max-size': MAX_SIZE,
    },
    examples: [
      'nix-plan realise hello.nixplan --out-link result',
      'nix-plan realise plan.nixplan --roots 0,2 -- --keep-going',
      'nix-plan realise plan.nixplan --dry-run',
    ],
    async run(args, ctx) {
      if (flag(args, 'dry-run')) {
        const plan = await ctx.useCases.dryRunRealise(
          onePositional(args, 'BUNDLE'),
          {
            store: str(args, 'store'),
            roots: list(args, 'roots', true),
            trustedKeys: await readKeys(list(args, 'trusted-key')),
          },
          ctx.deps,
        );
        print(ctx, args, plan, () => formatDryRun(plan));
        return;
      }
      const trustedKeys = await readKeys(list(args, 'trusted-key'));
      const outLink = str(args, 'out-link');
      const options = {
        store: str(args, 'store'),
        outLink,
        roots: list(args, 'roots', true),
        trustedKeys,
        noCheckSigs: flag(args, 'no-check-sigs'),
        method: oneOf(str(args, 'method'), 'method', METHODS),
        maxSize: byteSize(str(args, 'max-size'), 'max-size'),
        nixArgs: nixArgs(args),
        logFormat: str(args, 'log-format'),
      };
      const deps = await importDeps(args, ctx, trustedKeys);
      // With --out-link, the link's last-applied record: an older plan is refused.
      const result = await ctx.useCases.withFreshness(
        onePositional(args, 'BUNDLE'),
        { ...maxAge(args), target: outLink, allowDowngrade: flag(args, 'allow-downgrade') },
        ctx.deps.log,
        (bundle) => ctx.useCases.realisePlan(bundle, options, deps),
      );
      const shown = withTrust(result, trustedKeys, flag(args, 'no-check-sigs'));
      // stdout holds the output paths only (scripts read them); who made the plan goes to stderr.
      ctx.deps.log.info(`plan ${trustStatus(shown.manifest, shown.trust)}`);
      print(ctx, args, shown, () => formatRealise(shown));
    },
  }),
  define({
    name: 'relocate',
    operand: BUNDLE,
    summary: 'rewrite a bundle for another store dir (realm)',
    usage: [
      'nix-plan relocate BUNDLE --to DIR -o OUT.nixplan [--sign-key FILE --trusted-key KEY…] [--max-age DURATION]',
    ],
    description:
      'Rewrites every derivation, text file and source of the plan from its store dir to DIR, so the result is what ' +
      'evaluating natively with that store dir would give, and writes a new bundle. Refuses what it cannot relocate faithfully. ' +
      "The new manifest keeps when and where the plan was made, and records what it was promoted from (the input's " +
      'digest, store dir and the trusted keys that signed it). --sign-key needs --trusted-key (or --no-check-sigs): ' +
      'a key signs only what was verified.',
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
      'max-age': MAX_AGE,
      level: {
        type: 'string',
        value: 'N',
        help: 'zstd level 1-19 (default 3 without long-distance matching: promotion favours speed)',
      },
    },
    examples: [
      'nix-plan relocate hello.nixplan --to /beta/store -o hello-beta.nixplan',
      'nix-plan relocate hello.nixplan --to /beta/store -o hello-beta.nixplan --trusted-key ci.pub --sign-key beta.sec',
    ],
    async run(args, ctx) {
      noRest(args, 'relocate');
      const keys = await signingKeys(args);
      const trustedKeys = await readKeys(list(args, 'trusted-key'));
      const noCheckSigs = flag(args, 'no-check-sigs');
      assertSignable(keys.length > 0, trustedKeys.length > 0, noCheckSigs);
      const options = {
        to: required(args, 'to', 'DIR (the target store dir)'),
        output: required(args, 'output', 'OUT (where to write the bundle)'),
        signingKeys: keys,
        trustedKeys,
        noCheckSigs,
        level: integer(str(args, 'level'), 'level', 1, 19),
      };
      if (noCheckSigs && trustedKeys.length === 0)
        ctx.deps.log.warn(
          '--no-check-sigs: relocating a plan no trusted key vouches for (the promotion records it)',
        );
      const result = await ctx.useCases.withFreshness(
        onePositional(args, 'BUNDLE'),
        maxAge(args),
        ctx.deps.log,
        (bundle) => ctx.useCases.relocatePlan(bundle, options, ctx.deps),
      );
      print(ctx, args, result, () => formatRelocate(result));
    },
  }),
  define({
    name: 'keygen',
    operand: { value: 'NAME', complete: 'none' },
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
    operand: BUNDLE,
    summary: 'realise a NixOS system plan and switch a profile to it, safely',
    usage: [
      'nix-plan apply BUNDLE|- --profile PATH [--action switch|boot|test|dry-activate] [--trusted-key KEY…] [--max-age DURATION]',
      'nix-plan apply --rollback --profile PATH [--action …]',
    ],
    description:
      'Checks that the bundle is one NixOS system, realises its root, sets it as the next generation of PATH and runs ' +
      'its bin/switch-to-configuration ACTION (under systemd-run when the machine runs systemd), showing its output. ' +
      'A failed activation re-activates the previous generation (exit 13; 14 if that fails too). A switch or test is ' +
      'confirmed within --confirm-timeout seconds or a watchdog reverts it, so a switch that kills this process undoes ' +
      'itself. The plan applied is remembered in PATH.nix-plan.json; a plan older than it is refused (exit 11) unless ' +
      '--allow-downgrade. BUNDLE - reads the plan from standard input. --rollback switches back to the previous ' +
      'generation instead.',
    options: {
      profile: {
        type: 'string',
        value: 'PATH',
        help: 'the system profile (e.g. /nix/var/nix/profiles/system) (required)',
      },
      action: {
        type: 'string',
        value: 'ACTION',
        choices: ACTIONS,
        help: 'switch (default), boot, test or dry-activate',
      },
      'confirm-timeout': {
        type: 'string',
        value: 'SECONDS',
        help: 'revert a switch not confirmed within this time (default 30; 0: no confirmation)',
      },
      'allow-any-root': { type: 'boolean', help: 'apply a root that is not a nixos-system-… derivation' },
      rollback: { type: 'boolean', help: 'go back one generation' },
      store: STORE,
      'trusted-key': TRUSTED_KEY,
      method: METHOD,
      'sign-key': CACHE_KEY,
      'nix-arg': NIX_ARG,
      'log-format': LOG_FORMAT,
      'no-check-sigs': NO_CHECK_SIGS,
      'max-age': MAX_AGE,
      'allow-downgrade': ALLOW_DOWNGRADE,
      'max-size': MAX_SIZE,
    },
    examples: [
      'nix-plan apply host.nixplan --profile /nix/var/nix/profiles/system --trusted-key ci.pub --max-age 7d',
      'curl -fsS https://example.org/host.nixplan | nix-plan apply - --profile /nix/var/nix/profiles/system --trusted-key ci.pub',
    ],
    async run(args, ctx) {
      noRest(args, 'apply');
      const rollback = flag(args, 'rollback');
      const bundle = rollback && args.positionals.length === 0 ? undefined : onePositional(args, 'BUNDLE');
      const store = str(args, 'store');
      const trustedKeys = await readKeys(list(args, 'trusted-key'));
      // Never noCheckSigs here: apply does not activate a system whose build outputs nothing proves.
      const realiseOptions = {
        store,
        trustedKeys,
        method: oneOf(str(args, 'method'), 'method', METHODS),
        maxSize: byteSize(str(args, 'max-size'), 'max-size'),
        nixArgs: nixArgs(args),
        logFormat: str(args, 'log-format'),
      };
      const deps = await importDeps(args, ctx, trustedKeys);
      const result = await withBundleFile(bundle, ctx.io.stdin ?? process.stdin, (file) =>
        ctx.useCases.applyPlan(
          file,
          {
            profile: required(args, 'profile', 'PATH'),
            action: oneOf(str(args, 'action'), 'action', ACTIONS),
            rollback,
            store,
            confirmTimeout: integer(str(args, 'confirm-timeout'), 'confirm-timeout', 0, 86400),
            allowAnyRoot: flag(args, 'allow-any-root'),
            // The profile's last-applied record (on the activating side): an older plan is refused.
            ...maxAge(args),
            allowDowngrade: flag(args, 'allow-downgrade'),
          },
          { ...deps, realise: (b, roots) => ctx.useCases.realisePlan(b, { ...realiseOptions, roots }, deps) },
        ),
      );
      print(ctx, args, result, () => formatApply(result));
    },
  }),
  deployCommand(),
  define({
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
  }),
  define({
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
  }),
];

/**
 * The deps of commands that import: the untrusted route, signing outputs with --sign-key. That
 * key signs build outputs so a daemon accepts them: only outputs of a plan verified against
 * --trusted-key (or, on purpose, --no-check-sigs).
 */
async function importDeps(
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
