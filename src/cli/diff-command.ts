// `nix-plan diff`: its options, help and how its arguments become a comparison of two plans.
import type { PlanLocation } from '../app/plan-side.js';
import {
  flag,
  list,
  onePositional,
  readKeys,
  str,
  usageError,
  type OptionSpec,
  type ParsedArgs,
} from './args.js';
import type { Command, CommandContext } from './command.js';
import { formatDiff } from './diff-format.js';

/** What the command borrows from commands.ts (passed in, so the modules do not import each other). */
export interface CommandKit {
  print(ctx: CommandContext, args: ParsedArgs, value: unknown, human: () => string): void;
  noRest(args: ParsedArgs, command: string): void;
  readonly store: OptionSpec;
  readonly trustedKey: OptionSpec;
  readonly noCheckSigs: OptionSpec;
}

/** A bundle file, or a .drv store path (anything ending in `.drv`). */
export function locate(path: string): PlanLocation {
  return { kind: path.endsWith('.drv') ? 'drv' : 'bundle', path };
}

/** The spec of `nix-plan diff`. */
export function diffCommand(kit: CommandKit): Omit<Command, 'parse'> {
  return {
    name: 'diff',
    summary: 'show what changes between two plans, package by package, before anything is built',
    usage: [
      'nix-plan diff OLD NEW [--drv NAME] [--trusted-key KEY…] [--no-check-sigs] [--json]',
      'nix-plan diff --profile PATH NEW [--drv NAME] [--store URI]',
    ],
    description:
      'Compares two plans (bundles, or .drv paths in the store; OLD may be the current generation of a profile ' +
      'with --profile, when its deriver is still in the store) the way nvd compares closures: version changes, ' +
      'packages added and removed, and packages rebuilt at the same version because an input changed, with counts, ' +
      'per root and in total, plus the plan facts that differ (store dir, provenance, signatures). A plan for ' +
      "another store dir is relocated into NEW's first, so a promoted plan compares with its original as the same " +
      'plan in another realm. --drv NAME explains why the derivations of that package (or derivation name, or ' +
      '.drv path) differ: outputs, builder, arguments, environment, inputs, following changed inputs. Each bundle ' +
      'is verified as it is read, as verify does (no store is asked: a path it refers to but does not hold is ' +
      'refused), and refused with the same exit code: its build outputs need a signature by a --trusted-key, or ' +
      '--no-check-sigs, which shows them as unproven. A signature is not required of a plan without build ' +
      'outputs: who signed each side is shown. Nothing is imported or built.',
    options: {
      profile: {
        type: 'string',
        value: 'PATH',
        help: "compare the profile's current generation (through its deriver) as OLD",
      },
      drv: {
        type: 'string',
        value: 'NAME',
        help: 'explain why the derivations NAME differ (a package or derivation name, or a .drv path)',
      },
      store: kit.store,
      'trusted-key': kit.trustedKey,
      'no-check-sigs': kit.noCheckSigs,
    },
    examples: [
      'nix-plan diff main.nixplan pr.nixplan',
      'nix-plan diff --profile /nix/var/nix/profiles/system host.nixplan',
      'nix-plan diff old.nixplan new.nixplan --drv openssl',
      'nix-plan diff alpha.nixplan beta.nixplan --json | jq .identical',
    ],
    async run(args: ParsedArgs, ctx: CommandContext): Promise<void> {
      kit.noRest(args, 'diff');
      const profile = str(args, 'profile');
      let old: PlanLocation;
      let now: PlanLocation;
      if (profile !== undefined) {
        if (profile === '') throw usageError('--profile needs a path');
        old = { kind: 'profile', path: profile };
        now = locate(onePositional(args, 'NEW (a bundle or a .drv path)'));
      } else {
        if (args.positionals.length !== 2)
          throw usageError(
            `expected OLD and NEW (bundles or .drv paths), got ${args.positionals.length} argument${args.positionals.length === 1 ? '' : 's'}`,
          );
        old = locate(args.positionals[0] ?? '');
        now = locate(args.positionals[1] ?? '');
      }
      const trustedKeys = await readKeys(list(args, 'trusted-key'));
      const noCheckSigs = flag(args, 'no-check-sigs');
      if (noCheckSigs && trustedKeys.length === 0)
        ctx.deps.log.warn('--no-check-sigs: showing plans whose build outputs no trusted key vouches for');
      const result = await ctx.useCases.diffPlanSources(
        old,
        now,
        {
          store: str(args, 'store'),
          trustedKeys,
          noCheckSigs,
          drv: str(args, 'drv'),
        },
        ctx.deps,
      );
      kit.print(ctx, args, result, () => formatDiff(result));
    },
  };
}
