// What deployPlan takes and gives: the hosts and options, each host's result and the whole
// deploy's, and the dependencies it is handed.
import type { BundleManifest } from '../../core/bundle/manifest.js';
import type { TrustReport } from '../../core/bundle/trust-report.js';
import type { ErrorCode } from '../../core/errors.js';
import type { HostShell, SshTarget } from '../../nix/ssh.js';
import type { Deps, Logger } from '../deps.js';
import type { FreshnessChecks } from '../freshness.js';
import { ACTIVATION_ACTIONS, type ActivationAction, type ActivationClock } from './activation.js';
import type { HostChanges } from './changes.js';
import type { BuildOn, TransferEncoding } from './host.js';

/** NixOS's system profile. */
export const DEFAULT_PROFILE = '/nix/var/nix/profiles/system';

/** One host to deploy to: a name (matched against the plan's roots) and where to log in. */
export interface DeployHostSpec {
  readonly name?: string | undefined;
  readonly target: SshTarget;
}

/** What a deploy does on each host: an activation, or `push` (send and import the plan only). */
export type DeployAction = ActivationAction | 'push';

/** Every deploy action, for parsing and help texts. */
export const DEPLOY_ACTIONS: readonly DeployAction[] = [...ACTIVATION_ACTIONS, 'push'];

/** Options of deployPlan. */
export interface DeployOptions extends FreshnessChecks {
  readonly hosts: readonly DeployHostSpec[];
  readonly action?: DeployAction | undefined;
  readonly profile?: string | undefined;
  /** Seconds a switch waits for confirmation before the host reverts it; 0 turns confirmation off. */
  readonly confirmTimeout?: number | undefined;
  /** Seconds switch-to-configuration may run before it is stopped and undone; 0: no limit. */
  readonly activationTimeout?: number | undefined;
  readonly buildOn?: BuildOn | undefined;
  /** Public keys; the plan must be signed by one (unless noCheckSigs). */
  readonly trustedKeys?: readonly string[] | undefined;
  /** Accept the plan without proof (warned). */
  readonly noCheckSigs?: boolean | undefined;
  /** Deploy a root that is not a NixOS system derivation. */
  readonly allowAnyRoot?: boolean | undefined;
  /** Hosts deployed at once (default: all, at most 8). */
  readonly jobs?: number | undefined;
  /** Go on with the other hosts after one fails. */
  readonly keepGoing?: boolean | undefined;
  readonly compress?: TransferEncoding | undefined;
  /** Raw arguments for ssh, in order. */
  readonly sshOptions?: readonly string[] | undefined;
  /** Log in as a user allowed `sudo -n` and run the host program with it. */
  readonly useSudo?: boolean | undefined;
  /**
   * The sha256 the bundle must have (`sha256:<hex>` or hex): checked on the private copy that is
   * verified and sent, not on the path.
   */
  readonly digest?: string | undefined;
}

/**
 * How a host ended. `rolled-back`: a deploy's activation failed and the generation before it was
 * re-activated (or, with none, the new one removed); `reverted`: a rollback's activation failed
 * and the generation it went back from was re-activated, so the host was not rolled back.
 */
export type HostOutcome =
  | 'pushed'
  | 'switched'
  | 'booted'
  | 'tested'
  | 'dry-activated'
  | 'rolled-back'
  | 'reverted'
  | 'failed'
  | 'needs-attention'
  | 'skipped';

/** One row of the final table (and of `--json`). */
export interface HostResult {
  /** The host's name (`--host NAME=…`), else its address. */
  readonly name: string;
  readonly target: string;
  /** The root deployed (its .drv) and the system it builds. */
  readonly root?: string | undefined;
  readonly system?: string | undefined;
  readonly action: DeployAction;
  readonly outcome: HostOutcome;
  /** The profile's generation afterwards, and before. */
  readonly generation?: number | undefined;
  readonly previousGeneration?: number | undefined;
  /** The system the profile points at afterwards. */
  readonly currentSystem?: string | undefined;
  /** Whether the switch was confirmed over a new connection. */
  readonly confirmed?: boolean | undefined;
  readonly imported?: number | undefined;
  /** What the deploy changes on the host (known once the system is built there; not for push). */
  readonly changes?: HostChanges | undefined;
  readonly seconds: number;
  readonly error?: { readonly code: ErrorCode; readonly message: string } | undefined;
  /** A rollback (`--rollback`): the generation it went back from, and the one it went back to. */
  readonly rollback?: { readonly from: number; readonly to: number } | undefined;
}

/** What deployPlan did. */
export interface DeployResult {
  readonly bundle: string;
  /** `sha256:<hex>` of the bundle file. */
  readonly digest: string;
  readonly storeDir: string;
  /** The names of the trusted keys whose signature verified. */
  readonly signedBy: readonly string[];
  /** What was proven about who made the plan (as import reports it). */
  readonly trust: TrustReport;
  /** The plan's manifest: its roots, and when and where it was made. */
  readonly manifest: BundleManifest;
  readonly hosts: readonly HostResult[];
  /** True when every host succeeded. */
  readonly ok: boolean;
}

/** Where each host's messages and output go (the CLI prefixes lines with the host's name). */
export interface HostOutputs {
  (name: string): { log: Logger; output: (chunk: Uint8Array) => void; done(): void };
}

/** Dependencies of deployPlan. */
export interface DeployDeps extends Deps {
  /** How a host is reached (default: the system ssh with the options given). */
  readonly shellFor?: ((target: SshTarget) => HostShell) | undefined;
  /** Per-host output (default: deps.log and deps.nixLog, lines prefixed with `[NAME] ` for fleets). */
  readonly hostOutputs?: HostOutputs | undefined;
  /** For `--build-on local`: builds the plan here and gives the roots' outputs. */
  readonly realise?: ((bundlePath: string, name: string) => Promise<unknown>) | undefined;
  readonly clock?: ActivationClock | undefined;
  readonly signal?: AbortSignal | undefined;
  /** The clock for the record's appliedAt (default: now). */
  readonly now?: (() => Date) | undefined;
}

/** Options of deployRollback: the hosts and how they are reached and activated; no plan. */
export type RollbackOptions = Pick<
  DeployOptions,
  | 'hosts'
  | 'profile'
  | 'confirmTimeout'
  | 'activationTimeout'
  | 'jobs'
  | 'keepGoing'
  | 'sshOptions'
  | 'useSudo'
  | 'optionNames'
> & { readonly action?: ActivationAction | undefined };

/** What deployRollback did. */
export interface RollbackResult {
  /** Always true: tells a rollback's result (and `--json`) from a deploy's. */
  readonly rollback: true;
  /** The profile rolled back on each host. */
  readonly profile: string;
  readonly hosts: readonly HostResult[];
  /** True when every host rolled back. */
  readonly ok: boolean;
}
