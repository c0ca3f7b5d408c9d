// The subcommands that make and read plans: export, inspect, diff, verify and keygen.
import { INCLUDE_KINDS, MAX_LEVEL, MIN_LEVEL } from '../core/bundle/index.js';
import { freshnessProblem } from '../core/freshness.js';
import { assertStoreDir } from '../core/store-path.js';
import { flag, integer, list, oneOf, onePositional, readKeys, required, str } from './args.js';
import { formatExport, formatInspect, formatVerify } from './format.js';
import { diffCommand } from './diff-command.js';
import { formatContents } from './diff-format.js';
import {
  BUNDLE,
  LEVELS,
  LOG_FORMAT,
  MAX_AGE,
  NIX_ARG,
  NO_CHECK_SIGS,
  STORE,
  TRUSTED_KEY,
  define,
  maxAge,
  nixArgs,
  noRest,
  print,
  signingKeys,
} from './command.js';

/** `nix-plan export`. */
export const exportCommand = define({
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
      choices: INCLUDE_KINDS,
      help: 'drvs (default: .drv files and sources), sources (plus fetched fixed outputs), outputs (plus the built outputs)',
    },
    level: {
      type: 'string',
      value: 'N',
      help: `zstd level ${LEVELS} (default: a tuned level 10 in a 64 MiB window, see docs/bundle-format.md)`,
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
        include: oneOf(str(args, 'include'), 'include', INCLUDE_KINDS),
        level: integer(str(args, 'level'), 'level', MIN_LEVEL, MAX_LEVEL),
        signingKeys: keys,
        relocateTo: str(args, 'relocate-to'),
        store: str(args, 'store'),
        provenance: { env: ctx.io.env },
      },
      ctx.deps,
    );
    print(ctx, args, result, () => formatExport(result));
  },
});

/** `nix-plan inspect`. */
export const inspectCommand = define({
  name: 'inspect',
  operand: BUNDLE,
  summary: 'show what a bundle holds (touches no store)',
  usage: ['nix-plan inspect BUNDLE [--contents [--trusted-key KEY…] [--no-check-sigs]] [--json]'],
  description:
    'Reads the manifest and prints the roots, counts and sizes. Checks the manifest, not the stream: use verify for that. ' +
    'With --contents it also reads the whole bundle, verified as verify does (build outputs need a --trusted-key ' +
    'signature, or --no-check-sigs), and lists the packages of each root: name, version, outputs, system.',
  options: {
    contents: { type: 'boolean', help: "list each root's packages (reads and verifies the whole bundle)" },
    'trusted-key': TRUSTED_KEY,
    'no-check-sigs': NO_CHECK_SIGS,
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
      { trustedKeys: await readKeys(list(args, 'trusted-key')), noCheckSigs: flag(args, 'no-check-sigs') },
      ctx.deps,
    );
    print(ctx, args, { ...result, contents }, () => formatInspect(result) + formatContents(contents));
  },
});

/** `nix-plan diff`. */
export const diffPlansCommand = define(
  diffCommand({ print, noRest, store: STORE, trustedKey: TRUSTED_KEY, noCheckSigs: NO_CHECK_SIGS }),
);

/** `nix-plan verify`. */
export const verifyCommand = define({
  name: 'verify',
  operand: BUNDLE,
  summary: 'check a bundle completely: framing, checksums, every NAR and path, signatures',
  usage: [
    'nix-plan verify BUNDLE [--trusted-key KEY…] [--no-check-sigs] [--store-dir DIR] [--max-age DURATION]',
  ],
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
    // Not a store dir at all (relative, a trailing slash): said so, not "relocate it there".
    const storeDir = str(args, 'store-dir');
    if (storeDir !== undefined) assertStoreDir(storeDir);
    const report = await ctx.useCases.verifyPlan(
      onePositional(args, 'BUNDLE'),
      {
        trustedKeys: await readKeys(list(args, 'trusted-key')),
        storeDir,
        noCheckSigs: flag(args, 'no-check-sigs'),
      },
      ctx.deps,
    );
    // verify changes nothing, so the age is checked on the manifest it verified.
    const stale = age.maxAgeMs === undefined ? undefined : freshnessProblem(report.manifest, age, new Date());
    if (stale !== undefined) throw stale;
    print(ctx, args, report, () => formatVerify(report));
  },
});

/** `nix-plan keygen`. */
export const keygenCommand = define({
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
});
