// The subcommands that change a store or a system: import, realise, relocate and apply.
import { APPLY_ACTIONS } from '../app/apply.js';
import { IMPORT_METHODS, storeDirAsker } from '../app/import.js';
import { assertSignable } from '../app/signing-policy.js';
import { MAX_LEVEL, MIN_LEVEL, trustStatus } from '../core/bundle/index.js';
import {
  byteSize,
  flag,
  integer,
  list,
  oneOf,
  onePositional,
  readKeys,
  required,
  str,
  usageError,
  type ParsedArgs,
} from './args.js';
import { formatApply, formatImport, formatRealise, formatRelocate } from './format.js';
import { formatDryRun } from './format-dry-run.js';
import { withBundleFile } from './stdin-bundle.js';
import {
  ACTIVATION_TIMEOUT,
  ALLOW_DOWNGRADE,
  BUNDLE,
  CACHE_KEY,
  LEVELS,
  LOG_FORMAT,
  MAX_AGE,
  MAX_SIZE,
  METHOD,
  NIX_ARG,
  NO_CHECK_SIGS,
  STORE,
  TRUSTED_KEY,
  define,
  importDeps,
  maxAge,
  nixArgs,
  noRest,
  print,
  signingKeys,
  withTrust,
} from './command.js';

/**
 * The `--roots` selectors, split on commas. No `--roots` means every root; a `--roots` that names
 * nothing (`--roots ""`, `--roots "$UNSET"`, `--roots ,`) is refused rather than read as every root.
 */
function rootSelectors(args: ParsedArgs): string[] {
  const selectors = list(args, 'roots', true);
  if (selectors.length === 0 && args.values['roots'] !== undefined)
    throw usageError(
      '--roots names no root (an empty value); give an index, label or .drv path, or leave --roots out to build every root',
    );
  return selectors;
}

/** `nix-plan import`. */
export const importCommand = define({
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
      method: oneOf(str(args, 'method'), 'method', IMPORT_METHODS),
      maxSize: byteSize(str(args, 'max-size'), 'max-size'),
    };
    const deps = await importDeps(args, ctx, trustedKeys);
    const result = await ctx.useCases.withFreshness(
      onePositional(args, 'BUNDLE'),
      { ...maxAge(args), storeDir: storeDirAsker(deps, options.store) },
      ctx.deps.log,
      (bundle, name) => ctx.useCases.importPlan(bundle, { ...options, name }, deps),
    );
    const shown = withTrust(result, trustedKeys, flag(args, 'no-check-sigs'));
    print(ctx, args, shown, () => formatImport(shown));
  },
});

/** `nix-plan realise`. */
export const realiseCommand = define({
  name: 'realise',
  operand: BUNDLE,
  summary: 'import a bundle and build its roots',
  usage: [
    'nix-plan realise BUNDLE [--out-link PREFIX] [--store URI] [--roots SEL…] [--trusted-key KEY…] [--max-age DURATION] [--dry-run] [-- NIX ARGS]',
  ],
  description:
    "Imports the bundle (as import does), then builds every output of the selected roots by .drv path with the host's " +
    'substituters. --roots selects roots by index (0-based), attribute, installable, .drv path or the label inspect ' +
    'shows (comma-separated or repeated), e.g. one shard of a build matrix. Arguments after -- (or in --nix-arg) go to nix-store --realise ' +
    '(e.g. -- --max-jobs 4). Prints the output paths, one per line. With --out-link, the plan is remembered in ' +
    'PREFIX.nix-plan.json and an older plan for the same link is refused (exit 11) unless --allow-downgrade.',
  options: {
    'out-link': {
      type: 'string',
      value: 'PREFIX',
      help: 'make GC roots (symlinks to the outputs) named as Nix names them: PREFIX, PREFIX-doc, PREFIX-2, …',
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
          roots: rootSelectors(args),
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
      roots: rootSelectors(args),
      trustedKeys,
      noCheckSigs: flag(args, 'no-check-sigs'),
      method: oneOf(str(args, 'method'), 'method', IMPORT_METHODS),
      maxSize: byteSize(str(args, 'max-size'), 'max-size'),
      nixArgs: nixArgs(args),
      logFormat: str(args, 'log-format'),
    };
    const deps = await importDeps(args, ctx, trustedKeys);
    // With --out-link, the link's last-applied record: an older plan is refused.
    const result = await ctx.useCases.withFreshness(
      onePositional(args, 'BUNDLE'),
      {
        ...maxAge(args),
        target: outLink,
        allowDowngrade: flag(args, 'allow-downgrade'),
        storeDir: storeDirAsker(deps, options.store),
      },
      ctx.deps.log,
      (bundle, name) => ctx.useCases.realisePlan(bundle, { ...options, name }, deps),
    );
    const shown = withTrust(result, trustedKeys, flag(args, 'no-check-sigs'));
    // stdout holds the output paths only (scripts read them); who made the plan goes to stderr.
    ctx.deps.log.info(`plan ${trustStatus(shown.manifest, shown.trust)}`);
    print(ctx, args, shown, () => formatRealise(shown));
  },
});

/** `nix-plan relocate`. */
export const relocateCommand = define({
  name: 'relocate',
  operand: BUNDLE,
  summary: 'rewrite a bundle for another store dir (realm)',
  usage: [
    'nix-plan relocate BUNDLE --to DIR -o OUT.nixplan [--sign-key FILE (--trusted-key KEY… | --no-check-sigs)] [--level N] [--max-age DURATION]',
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
      help: `zstd level ${LEVELS} (default 3 without long-distance matching: promotion favours speed)`,
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
      level: integer(str(args, 'level'), 'level', MIN_LEVEL, MAX_LEVEL),
    };
    if (noCheckSigs && trustedKeys.length === 0)
      ctx.deps.log.warn(
        '--no-check-sigs: relocating a plan no trusted key vouches for (the promotion records it)',
      );
    const result = await ctx.useCases.withFreshness(
      onePositional(args, 'BUNDLE'),
      maxAge(args),
      ctx.deps.log,
      (bundle, name) => ctx.useCases.relocatePlan(bundle, { ...options, name }, ctx.deps),
    );
    print(ctx, args, result, () => formatRelocate(result));
  },
});

/** `nix-plan apply`. */
export const applyCommand = define({
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
    '--allow-downgrade. BUNDLE - reads the plan from standard input. --rollback goes back to the previous ' +
    'generation instead, saying first what changes, with the same safety (exit 2 when there is none).',
  options: {
    profile: {
      type: 'string',
      value: 'PATH',
      help: 'the system profile (e.g. /nix/var/nix/profiles/system) (required)',
    },
    action: {
      type: 'string',
      value: 'ACTION',
      choices: APPLY_ACTIONS,
      help: 'switch (default), boot, test or dry-activate',
    },
    'confirm-timeout': {
      type: 'string',
      value: 'SECONDS',
      help: 'revert a switch not confirmed within this time (default 30; 0: no confirmation)',
    },
    'activation-timeout': ACTIVATION_TIMEOUT,
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
      method: oneOf(str(args, 'method'), 'method', IMPORT_METHODS),
      maxSize: byteSize(str(args, 'max-size'), 'max-size'),
      nixArgs: nixArgs(args),
      logFormat: str(args, 'log-format'),
    };
    const deps = await importDeps(args, ctx, trustedKeys);
    const result = await withBundleFile(bundle, ctx.io.stdin, (file, label) =>
      ctx.useCases.applyPlan(
        file,
        {
          label,
          profile: required(args, 'profile', 'PATH'),
          action: oneOf(str(args, 'action'), 'action', APPLY_ACTIONS),
          rollback,
          store,
          confirmTimeout: integer(str(args, 'confirm-timeout'), 'confirm-timeout', 0, 86400),
          activationTimeout: integer(str(args, 'activation-timeout'), 'activation-timeout', 0, 86400),
          allowAnyRoot: flag(args, 'allow-any-root'),
          // The profile's last-applied record (on the activating side): an older plan is refused.
          ...maxAge(args),
          allowDowngrade: flag(args, 'allow-downgrade'),
        },
        {
          ...deps,
          realise: (b, roots, name) => ctx.useCases.realisePlan(b, { ...realiseOptions, roots, name }, deps),
        },
      ),
    );
    print(ctx, args, result, () => formatApply(result));
  },
});
