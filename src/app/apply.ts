// applyPlan: put a realised NixOS system plan into effect, as nixos-rebuild does: set the system
// profile's generation, then run the system's `bin/switch-to-configuration`; or roll back one.
import { NixPlanError } from '../core/errors.js';
import { Profile, generationOf, linkTarget, switchScript, switchToConfiguration } from '../nix/profile.js';
import type { Deps } from './deps.js';

export { generationOf } from '../nix/profile.js';

/** What switch-to-configuration is asked to do (nixos-rebuild's actions of the same names). */
export type ApplyAction = 'switch' | 'boot' | 'test' | 'dry-activate';

/** Every ApplyAction, for parsing and help texts. */
export const APPLY_ACTIONS: readonly ApplyAction[] = ['switch', 'boot', 'test', 'dry-activate'];

/** Actions that make the system the profile's new generation (`test` and `dry-activate` do not). */
const SETS_PROFILE: ReadonlySet<ApplyAction> = new Set(['switch', 'boot']);

/** Options of applyPlan. */
export interface ApplyOptions {
  /** The system profile, e.g. `/nix/var/nix/profiles/system`. */
  readonly profile: string;
  /** Default `switch`. */
  readonly action?: ApplyAction | undefined;
  /** Go back to the generation before the current one instead of applying a bundle. */
  readonly rollback?: boolean | undefined;
  /** Nix store URI (`--store`) for nix-env. */
  readonly store?: string | undefined;
}

/** What realising a bundle yields: the roots' outputs (as `realisePlan` returns them). */
export interface RealisedOutputs {
  /** drv path → output name → output path. */
  readonly outPaths: Record<string, Record<string, string>>;
  /** What importing found: build outputs accepted without proof (`--no-check-sigs`). */
  readonly import?: { readonly unproven: number } | undefined;
}

/** Dependencies of applyPlan: the usual ones and a function that realises a bundle. */
export interface ApplyDeps extends Deps {
  /** Imports and builds the bundle (the CLI binds `realisePlan` with its import options). */
  readonly realise: (bundlePath: string) => Promise<RealisedOutputs>;
}

/** What applyPlan did. */
export interface ApplyResult {
  readonly action: ApplyAction;
  /** The system whose switch-to-configuration ran. */
  readonly systemPath: string;
  readonly profile: string;
  /** Whether the profile got a new current generation (switch/boot, or any rollback of those). */
  readonly profileChanged: boolean;
  /** The profile's current generation afterwards (undefined when it has none). */
  readonly generation: number | undefined;
  /** What switch-to-configuration printed on standard output. */
  readonly output: string;
}

/** The one system output of a realised plan (a NixOS plan has one root with output `out`). */
export function systemOutput(realised: RealisedOutputs): string {
  const outs = Object.values(realised.outPaths).flatMap((o) => Object.entries(o));
  const out = outs.filter(([name]) => name === 'out');
  if (out.length !== 1 || out[0] === undefined)
    throw new NixPlanError(
      'usage',
      `apply needs a plan of one NixOS system (one root with an 'out' output); this one has ${outs.length} outputs: ` +
        outs.map(([n, p]) => `${n}=${p}`).join(', '),
    );
  return out[0][1];
}

/** The generation before the current one, found without changing the profile. */
async function previousGeneration(profile: Profile): Promise<string> {
  const current = generationOf((await profile.currentLink()) ?? '');
  const numbers = (await profile.generations()).filter((n) => current === undefined || n < current);
  const previous = numbers.length === 0 ? undefined : Math.max(...numbers);
  if (previous === undefined)
    throw new NixPlanError(
      'usage',
      `profile '${profile.path}' has no generation before the current one to roll back to`,
    );
  return profile.generationPath(previous);
}

/**
 * Applies a NixOS system plan like `nixos-rebuild ACTION`: realises the bundle (through
 * `deps.realise`), makes the system the profile's new generation for `switch` and `boot`
 * (`nix-env --profile P --set PATH`), then runs `PATH/bin/switch-to-configuration ACTION`.
 * With `rollback` no bundle is needed: `switch`/`boot` go back one generation
 * (`nix-env --profile P --rollback`) and run that generation's script; `test`/`dry-activate` run
 * the previous generation's script and leave the profile alone.
 */
export async function applyPlan(
  bundlePath: string | undefined,
  options: ApplyOptions,
  deps: ApplyDeps,
): Promise<ApplyResult> {
  const action = options.action ?? 'switch';
  if (!APPLY_ACTIONS.includes(action))
    throw new NixPlanError(
      'usage',
      `unknown action '${String(action)}'; use one of ${APPLY_ACTIONS.join(', ')}`,
    );
  const profile = new Profile(deps.runner, options.profile, options.store);
  const setsProfile = SETS_PROFILE.has(action);
  let systemPath: string;
  if (options.rollback === true) {
    if (setsProfile) {
      const before = await profile.currentLink();
      await profile.rollback();
      const after = await profile.currentLink();
      if (after === undefined || after === before)
        throw new NixPlanError('nix', `nix-env --rollback did not change profile '${profile.path}'`);
      systemPath = await linkTarget(after);
    } else systemPath = await previousGeneration(profile);
  } else {
    if (bundlePath === undefined)
      throw new NixPlanError('usage', 'apply needs a plan bundle (or --rollback)');
    const realised = await deps.realise(bundlePath);
    // Never activate a system some of whose paths nothing proved.
    const unproven = realised.import?.unproven ?? 0;
    if (unproven > 0)
      throw new NixPlanError(
        'signature',
        `the plan holds ${unproven} build output${unproven === 1 ? '' : 's'} no trusted key signed: apply activates only a proven system (give --trusted-key)`,
      );
    systemPath = systemOutput(realised);
  }
  const script = await switchScript(systemPath);
  if (options.rollback !== true && setsProfile) {
    deps.log.info(`setting ${profile.path} to ${systemPath}`);
    await profile.set(systemPath);
  }
  deps.log.info(`running ${script} ${action}`);
  const output = await switchToConfiguration(
    deps.runner,
    script,
    action,
    setsProfile
      ? 'the profile already points at the new generation; `--rollback` restores the previous one'
      : undefined,
  );
  const link = await profile.currentLink();
  return {
    action,
    systemPath,
    profile: profile.path,
    profileChanged: setsProfile,
    generation: link === undefined ? undefined : generationOf(link),
    output,
  };
}
