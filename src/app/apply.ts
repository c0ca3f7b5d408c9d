// applyPlan: put a realised NixOS system plan into effect, as nixos-rebuild does: set the system
// profile's generation, then run the system's `bin/switch-to-configuration`; or roll back one.
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { BundleManifest, BundleRoot } from '../core/bundle/manifest.js';
import { readBundleHead } from '../core/bundle/index.js';
import { ArgumentError, NixPlanError } from '../core/errors.js';
import { HostProgram } from '../nix/host-program.js';
import { LocalHost } from '../nix/ssh.js';
import type { Deps, Logger } from './deps.js';
import {
  activateSafely,
  DEFAULT_ACTIVATION_TIMEOUT,
  DEFAULT_CONFIRM_TIMEOUT,
  type ActivationClock,
  type ActivationOutcome,
} from './deploy/activation.js';
import { readChanges, type HostChanges } from './deploy/changes.js';
import { privateBundle } from './private-copy.js';
import type { FreshnessChecks } from './freshness.js';
import { checkFreshness, RECORD_SUFFIX, recordFor, recordSeen } from './deploy/record.js';
import { lastActivationNotes } from './deploy/last-activation.js';
import { assignRoots, systemOfRoot } from './deploy/roots.js';
import { rollBackHost } from './deploy/rollback.js';

/** What switch-to-configuration is asked to do (nixos-rebuild's actions of the same names). */
export type ApplyAction = 'switch' | 'boot' | 'test' | 'dry-activate';

/** Every ApplyAction, for parsing and help texts. */
export const APPLY_ACTIONS: readonly ApplyAction[] = ['switch', 'boot', 'test', 'dry-activate'];

/** Actions that make the system the profile's new generation (`test` and `dry-activate` do not). */
const SETS_PROFILE: ReadonlySet<ApplyAction> = new Set(['switch', 'boot']);

/** Options of applyPlan. */
export interface ApplyOptions extends FreshnessChecks {
  /** The system profile, e.g. `/nix/var/nix/profiles/system`. */
  readonly profile: string;
  /** Default `switch`. */
  readonly action?: ApplyAction | undefined;
  /** Go back to the generation before the current one instead of applying a bundle. */
  readonly rollback?: boolean | undefined;
  /** Nix store URI (`--store`) for nix-env. */
  readonly store?: string | undefined;
  /** Seconds a switch/test waits for confirmation before it is reverted; 0 turns confirmation off. */
  readonly confirmTimeout?: number | undefined;
  /** Seconds switch-to-configuration may run before it is stopped and undone; 0: no limit. */
  readonly activationTimeout?: number | undefined;
  /** Apply a root that is not a NixOS system derivation (nixos-system-…). */
  readonly allowAnyRoot?: boolean | undefined;
  /**
   * How messages name the plan (default: the bundle path): what the user gave when the path is
   * itself a private copy made earlier, e.g. `standard input` for `apply -`.
   */
  readonly label?: string | undefined;
}

/** What realising a bundle yields: its verified manifest and the roots' outputs (as `realisePlan`). */
export interface RealisedOutputs {
  readonly manifest?: BundleManifest | undefined;
  /** drv path → output name → output path. */
  readonly outPaths: Record<string, Record<string, string>>;
  /** What importing found: build outputs accepted without proof (`--no-check-sigs`). */
  readonly import?: { readonly unproven: number } | undefined;
}

/** Dependencies of applyPlan: the usual ones and a function that realises a bundle. */
export interface ApplyDeps extends Deps {
  /**
   * Imports and builds the bundle's `roots` (the CLI binds `realisePlan` with its import options):
   * `bundlePath` is apply's private copy, `name` the user's file, for messages.
   */
  readonly realise: (bundlePath: string, roots: readonly string[], name: string) => Promise<RealisedOutputs>;
  /** Where switch-to-configuration's output goes as it runs (default: `nixLog`). */
  readonly output?: ((chunk: Uint8Array) => void) | undefined;
  readonly clock?: ActivationClock | undefined;
  /** The clock for freshness and the record (default: now). */
  readonly now?: (() => Date) | undefined;
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
  /** The generation current before (a safe activation says). */
  readonly previousGeneration?: number | undefined;
  /** Whether the activation was confirmed (switch and test with a confirm timeout). */
  readonly confirmed?: boolean | undefined;
  /**
   * What activating the plan's system changes (or, for dry-activate, would change): the profile's
   * current generation and the package-level difference of the two runtime closures, as deploy
   * reports per host; for `--rollback`, the current generation's system → the previous one's.
   */
  readonly changes?: HostChanges | undefined;
  /** A rollback: the generation it went back from, and the one it went back to. */
  readonly rollback?: { readonly from: number; readonly to: number } | undefined;
  /** What switch-to-configuration printed on standard output (a rollback; an activation streams it). */
  readonly output: string;
  /**
   * What was said, before activating, of how the newest activation kept beside the profile ended
   * (reverted by the watchdog, failed, timed out, never finished, a `test` no generation names), as
   * deploy says it per host; empty when it ended as planned or there was none.
   */
  readonly lastActivation: readonly string[];
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

/**
 * Applies a NixOS system plan like `nixos-rebuild ACTION`, safely: checks from the manifest that
 * the plan is one NixOS system (before building anything), realises that root (through
 * `deps.realise`), then activates it with the host program on this machine — the same code a
 * deploy runs on its hosts: profile set for `switch`/`boot`, switch-to-configuration under
 * systemd-run when the machine runs systemd with its output streamed, the previous generation
 * re-activated when it fails, and a switch confirmed within `confirmTimeout` or reverted by the
 * watchdog (so a switch that kills this process, e.g. a self-hosted runner's own service, undoes
 * itself). With `rollback` no bundle is needed: the generation before the current one, with the
 * same safety (deploy/rollback.ts) — `switch`/`boot` switch the profile to it and run its script,
 * `test`/`dry-activate` run its script and leave the profile alone.
 */
export async function applyPlan(
  bundlePath: string | undefined,
  options: ApplyOptions,
  deps: ApplyDeps,
): Promise<ApplyResult> {
  const action = options.action ?? 'switch';
  if (!APPLY_ACTIONS.includes(action))
    throw new ArgumentError(`unknown action '${String(action)}'; use one of ${APPLY_ACTIONS.join(', ')}`);
  if (options.rollback === true) return rollBack(options, action, deps);
  if (bundlePath === undefined) throw new ArgumentError('apply needs a plan bundle (or --rollback)');
  const profile = resolve(options.profile);
  const record = await readRecord(`${profile}${RECORD_SUFFIX}`);
  const now = deps.now?.() ?? new Date();
  // Everything about the plan is read from one private copy: the manifest whose age is checked,
  // what is verified, imported and built, and the digest the record names, even if the file named
  // is rewritten in place or replaced meanwhile. Messages name what the user gave, not a copy.
  const label = options.label ?? bundlePath;
  const copy = await privateBundle(bundlePath, { prefix: 'nix-plan-apply-', name: label });
  let manifest: BundleManifest;
  let root: BundleRoot;
  let system: string;
  let realised: RealisedOutputs;
  let digest: string;
  try {
    // The plan's shape, from its manifest, before anything is built.
    ({ manifest } = await readBundleHead(copy.source));
    const [first] = assignRoots(manifest.roots, [{}]);
    if (first === undefined) throw new NixPlanError('internal', 'no root');
    root = first;
    system = systemOfRoot(root, options.allowAnyRoot === true);
    // An older plan than the one last applied here is refused before anything is imported.
    checkFreshness(manifest, record, options, profile, now, deps.log);
    realised = await deps.realise(copy.path, [root.drvPath], label);
    digest = copy.digest;
  } finally {
    await copy.dispose();
  }
  // Never activate a system some of whose paths nothing proved.
  const unproven = realised.import?.unproven ?? 0;
  if (unproven > 0)
    throw new NixPlanError(
      'signature',
      `the plan holds ${unproven} build output${unproven === 1 ? '' : 's'} no trusted key signed: apply activates only a proven system (give --trusted-key)`,
    );
  const built = systemOutput(realised);
  if (
    built !== system ||
    (realised.manifest !== undefined && realised.manifest.checksum !== manifest.checksum)
  )
    throw new NixPlanError('internal', `the plan built from '${label}' is not the plan read`);
  const program = localProgram(options, deps);
  // How the last activation here ended, when not as planned, before this one changes anything.
  const lastActivation = lastActivationNotes(
    await program.probe(profile, deps.signal),
    profile,
    profile,
    false,
  );
  for (const note of lastActivation) deps.log.warn(note);
  // What activating it changes — the profile's current generation → this system, package by
  // package — said before anything is activated, whatever the action, as deploy says it per host.
  const changes = await readChanges(
    program,
    { profile, out: system, storeDir: manifest.storeDir },
    { log: deps.log, output: deps.output ?? deps.nixLog },
  );
  deps.log.info(`activating ${system} (${action})`);
  const outcome = await activateSafely(
    program,
    {
      profile,
      action,
      out: system,
      confirmTimeout: options.confirmTimeout ?? DEFAULT_CONFIRM_TIMEOUT,
      activationTimeout: options.activationTimeout ?? DEFAULT_ACTIVATION_TIMEOUT,
      recordSeen: recordSeen(record),
      record: SETS_PROFILE.has(action)
        ? JSON.stringify(recordFor(realised.manifest ?? manifest, digest, [root.drvPath], now))
        : '',
    },
    { log: deps.log, output: deps.output ?? deps.nixLog, clock: deps.clock },
  );
  return { ...applied(action, system, profile, outcome, changes, deps.log), lastActivation };
}

/** This machine, as the host program sees a deploy's host (its store: `options.store`). */
function localProgram(options: Pick<ApplyOptions, 'store'>, deps: Pick<ApplyDeps, 'runner'>): HostProgram {
  return new HostProgram(
    new LocalHost(deps.runner, options.store === undefined ? {} : { NIX_REMOTE: options.store }),
  );
}

/** The result of an activation that went through (warning when the record could not be written). */
function applied(
  action: ApplyAction,
  systemPath: string,
  profile: string,
  outcome: ActivationOutcome,
  changes: HostChanges,
  log: Logger,
): Omit<ApplyResult, 'lastActivation'> {
  if (outcome.report.recordFailed) log.warn(`could not write ${profile}${RECORD_SUFFIX}`);
  return {
    action,
    systemPath,
    profile,
    profileChanged: SETS_PROFILE.has(action),
    generation: outcome.generation,
    previousGeneration: outcome.previousGeneration,
    confirmed: outcome.confirmed,
    changes,
    output: '',
  };
}

/** The record beside the profile, if there is one. */
async function readRecord(path: string): Promise<Uint8Array | undefined> {
  try {
    return new Uint8Array(await readFile(path));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new NixPlanError('usage', `cannot read ${path}: ${(e as Error).message}`);
  }
}

/**
 * `--rollback`: one generation back, as nixos-rebuild --rollback does, through the same host
 * program and safety as a deploy's rollback: what changes is said first, a failed switch
 * re-activates the generation rolled back from, an unconfirmed one is undone by the watchdog.
 */
async function rollBack(options: ApplyOptions, action: ApplyAction, deps: ApplyDeps): Promise<ApplyResult> {
  const profile = resolve(options.profile);
  const program = localProgram(options, deps);
  const probe = await program.probe(profile, deps.signal);
  const { step, changes, activation, lastActivation } = await rollBackHost(
    program,
    probe,
    {
      label: profile,
      profile,
      action,
      confirmTimeout: options.confirmTimeout ?? DEFAULT_CONFIRM_TIMEOUT,
      activationTimeout: options.activationTimeout ?? DEFAULT_ACTIVATION_TIMEOUT,
    },
    {
      log: deps.log,
      output: deps.output ?? deps.nixLog,
      clock: deps.clock,
      now: deps.now,
      signal: deps.signal,
    },
  );
  return {
    ...applied(action, step.toSystem, profile, activation, changes, deps.log),
    rollback: { from: step.fromGeneration, to: step.to },
    lastActivation,
  };
}
