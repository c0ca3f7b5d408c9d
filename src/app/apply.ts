// applyPlan: put a realised NixOS system plan into effect, as nixos-rebuild does: set the system
// profile's generation, then run the system's `bin/switch-to-configuration`; or roll back one.
import { access, readlink } from 'node:fs/promises';
import { constants } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { NixPlanError } from '../core/errors.js';
import type { Deps } from './deps.js';

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

/** The generation number of a profile link target like `system-42-link`. */
export function generationOf(linkTarget: string): number | undefined {
  const m = /-(\d+)-link$/.exec(basename(linkTarget));
  return m?.[1] === undefined ? undefined : Number(m[1]);
}

/** The profile's current generation link (`system-N-link`, absolute), or undefined if it has none. */
async function currentLink(profile: string): Promise<string | undefined> {
  try {
    return resolve(dirname(profile), await readlink(profile));
  } catch {
    return undefined;
  }
}

/** The store path a generation link points to. */
async function generationPath(link: string): Promise<string> {
  return resolve(dirname(link), await readlink(link));
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

/** The system's activation script, checked to exist so a non-NixOS plan fails with a clear message. */
async function switchScript(systemPath: string): Promise<string> {
  const script = `${systemPath}/bin/switch-to-configuration`;
  try {
    await access(script, constants.X_OK);
  } catch {
    throw new NixPlanError(
      'usage',
      `'${systemPath}' is not a NixOS system: it has no executable bin/switch-to-configuration ` +
        '(export the system attribute, e.g. `nixosConfigurations.HOST.config.system.build.toplevel`)',
    );
  }
  return script;
}

/** The generation before the current one, found without changing the profile. */
async function previousGeneration(profile: string, storeArgs: string[], deps: Deps): Promise<string> {
  const current = generationOf((await currentLink(profile)) ?? '');
  const { stdout } = await deps.runner.run('nix-env', [
    ...storeArgs,
    '--profile',
    profile,
    '--list-generations',
  ]);
  const numbers = stdout
    .toString('utf8')
    .split('\n')
    .map((l) => /^\s*(\d+)\s/.exec(l)?.[1])
    .filter((n): n is string => n !== undefined)
    .map(Number)
    .filter((n) => current === undefined || n < current);
  const previous = numbers.length === 0 ? undefined : Math.max(...numbers);
  if (previous === undefined)
    throw new NixPlanError(
      'usage',
      `profile '${profile}' has no generation before the current one to roll back to`,
    );
  return generationPath(`${profile}-${previous}-link`);
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
  const profile = resolve(options.profile);
  const storeArgs = options.store === undefined ? [] : ['--store', options.store];
  const setsProfile = SETS_PROFILE.has(action);
  let systemPath: string;
  if (options.rollback === true) {
    if (setsProfile) {
      const before = await currentLink(profile);
      await deps.runner.run('nix-env', [...storeArgs, '--profile', profile, '--rollback']);
      const after = await currentLink(profile);
      if (after === undefined || after === before)
        throw new NixPlanError('nix', `nix-env --rollback did not change profile '${profile}'`);
      systemPath = await generationPath(after);
    } else systemPath = await previousGeneration(profile, storeArgs, deps);
  } else {
    if (bundlePath === undefined)
      throw new NixPlanError('usage', 'apply needs a plan bundle (or --rollback)');
    systemPath = systemOutput(await deps.realise(bundlePath));
  }
  const script = await switchScript(systemPath);
  if (options.rollback !== true && setsProfile) {
    deps.log.info(`setting ${profile} to ${systemPath}`);
    await deps.runner.run('nix-env', [...storeArgs, '--profile', profile, '--set', systemPath]);
  }
  deps.log.info(`running ${script} ${action}`);
  const result = await deps.runner.run(script, [action], { allowFailure: true });
  const output = result.stdout.toString('utf8');
  if (result.code !== 0)
    throw new NixPlanError(
      'nix',
      `switch-to-configuration ${action} failed with exit code ${result.code}` +
        (setsProfile
          ? ` (the profile already points at the new generation; \`--rollback\` restores the previous one)`
          : '') +
        `:\n${result.stderr.trim().slice(-4000)}`,
    );
  const link = await currentLink(profile);
  return {
    action,
    systemPath,
    profile,
    profileChanged: setsProfile,
    generation: link === undefined ? undefined : generationOf(link),
    output,
  };
}
