// deployPlan: a verified plan to one host or a fleet over SSH — each host needs only Nix, sh and an
// SSH server. Verify here, ask each host about itself, send, build there, activate safely.
import { readBundleHead, openBundle, type BundleSource } from '../../core/bundle/reader.js';
import type { BundleManifest } from '../../core/bundle/manifest.js';
import { trustReportOf, trustStatus, type TrustReport } from '../../core/bundle/trust-report.js';
import { parsePublicKey } from '../../core/signing.js';
import { NixPlanError, stringifyError, type ErrorCode } from '../../core/errors.js';
import { HostProgram } from '../../nix/host-program.js';
import { SshHost, formatSshTarget, type HostShell, type SshTarget } from '../../nix/ssh.js';
import type { Deps, Logger } from '../deps.js';
import { rootLabel } from '../inspect.js';
import { verifyWithProgress } from '../verify.js';
import { DEFAULT_CONFIRM_TIMEOUT, type ActivationAction, type ActivationClock } from './activation.js';
import type { HostChanges } from './changes.js';
import { fileDigest } from './digest.js';
import {
  checkProbe,
  deployToHost,
  sendPlan,
  type BuildOn,
  type HostJob,
  type TransferEncoding,
} from './host.js';
import { linePrefixer } from './prefix.js';
import { checkFreshness, recordFor } from './record.js';
import { assignRoots, systemOfRoot } from './roots.js';

export { ACTIVATION_ACTIONS, DEFAULT_CONFIRM_TIMEOUT, type ActivationAction } from './activation.js';
import { ACTIVATION_ACTIONS } from './activation.js';
export { BUILD_ON, TRANSFER_ENCODINGS, type BuildOn, type TransferEncoding } from './host.js';
export type { HostChanges } from './changes.js';

/** NixOS's system profile. */
export const DEFAULT_PROFILE = '/nix/var/nix/profiles/system';

/** One host to deploy to: a name (matched against the plan's roots) and where to log in. */
export interface DeployHostSpec {
  readonly name?: string | undefined;
  readonly target: SshTarget;
}

/** Options of deployPlan. */
/** What a deploy does on each host: an activation, or `push` (send and import the plan only). */
export type DeployAction = ActivationAction | 'push';

/** Every deploy action, for parsing and help texts. */
export const DEPLOY_ACTIONS: readonly DeployAction[] = [...ACTIVATION_ACTIONS, 'push'];

export interface DeployOptions {
  readonly hosts: readonly DeployHostSpec[];
  readonly action?: DeployAction | undefined;
  readonly profile?: string | undefined;
  /** Seconds a switch waits for confirmation before the host reverts it; 0 turns confirmation off. */
  readonly confirmTimeout?: number | undefined;
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
  /** Refuse a plan created longer ago than this (`--max-age`), in milliseconds and as written. */
  readonly maxAgeMs?: number | undefined;
  readonly maxAgeText?: string | undefined;
  /** Deploy a plan older than the one a host last applied. */
  readonly allowDowngrade?: boolean | undefined;
}

/** How a host ended. */
export type HostOutcome =
  | 'pushed'
  | 'switched'
  | 'booted'
  | 'tested'
  | 'dry-activated'
  | 'rolled-back'
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
  readonly realise?: ((bundlePath: string) => Promise<unknown>) | undefined;
  readonly clock?: ActivationClock | undefined;
  readonly signal?: AbortSignal | undefined;
  /** The clock for the record's appliedAt (default: now). */
  readonly now?: (() => Date) | undefined;
}

const OUTCOME: Record<DeployAction, HostOutcome> = {
  push: 'pushed',
  switch: 'switched',
  boot: 'booted',
  test: 'tested',
  'dry-activate': 'dry-activated',
};

/** The outcome a failed host's error code stands for. */
function failedOutcome(code: ErrorCode): HostOutcome {
  if (code === 'activation') return 'rolled-back';
  if (code === 'attention') return 'needs-attention';
  return 'failed';
}

/**
 * The trust rules of import, here before anything is sent: the verifier proves every path (a
 * .drv, text or source by its content; a build output only by a trusted key's signature) and
 * refuses what nothing proves, unless the user opted out. Even then, a plan with unproven build
 * outputs is never activated (as apply): only `push` stages it.
 */
async function verifyForDeploy(
  source: BundleSource,
  options: DeployOptions,
  activates: boolean,
  deps: DeployDeps,
): Promise<{ signedBy: readonly string[]; trust: TrustReport }> {
  const noCheckSigs = options.noCheckSigs === true;
  const trusted = (options.trustedKeys ?? []).map(parsePublicKey);
  const report = await verifyWithProgress(
    source,
    { trustedKeys: trusted, noCheckSigs },
    deps.progress,
    deps.signal,
  );
  const trust = trustReportOf(report.manifest, trusted, {
    noCheckSigs: report.noCheckSigs,
    unproven: report.unproven,
  });
  deps.log.info(`plan ${trustStatus(report.manifest, trust)}`);
  const outputs = `${report.unproven} build output${report.unproven === 1 ? '' : 's'} no trusted key signed`;
  if (report.unproven > 0 && activates)
    throw new NixPlanError(
      'signature',
      `the plan holds ${outputs}: deploy activates only a proven system (give --trusted-key; --action push only stages it)`,
    );
  if (report.unproven > 0) deps.log.warn(`--no-check-sigs: sending ${outputs}`);
  return { signedBy: report.trustedSignatures, trust };
}

/** Runs `tasks` with at most `jobs` at once; `stop()` true means start no more. */
async function pool<T>(count: number, jobs: number, task: (index: number) => Promise<T>): Promise<T[]> {
  const results: T[] = new Array<T>(count);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) {
      const i = next++;
      results[i] = await task(i);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(jobs, count)) }, worker));
  return results;
}

/**
 * Deploys the plan in `bundlePath`: checks its shape for every host and verifies it completely
 * here before any of it is sent; asks each host (store dir, Nix, profile, record) meanwhile; then
 * per host sends it, builds the system there (or here), sets the profile and activates safely.
 * Hosts fail one by one: the result lists each (`ok` false when any failed). Errors about the plan
 * itself or the command line are thrown.
 */
export async function deployPlan(
  bundlePath: string,
  options: DeployOptions,
  deps: DeployDeps,
): Promise<DeployResult> {
  if (options.hosts.length === 0) throw new NixPlanError('usage', 'deploy needs at least one --host');
  const names = options.hosts.map((h) => h.name ?? formatSshTarget(h.target));
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup !== undefined) throw new NixPlanError('usage', `host '${dup}' is given twice`);
  const action = options.action ?? 'switch';
  const profile = options.profile ?? DEFAULT_PROFILE;
  if (profile === '' || profile.includes('\0')) throw new NixPlanError('usage', '--profile must be a path');
  const confirmTimeout = options.confirmTimeout ?? DEFAULT_CONFIRM_TIMEOUT;
  const buildOn = options.buildOn ?? 'host';

  const source = await openBundle(bundlePath);
  try {
    // The plan's shape, from its manifest: which root goes where, and that each is a system.
    const head = await readBundleHead(source);
    const { manifest } = head;
    // `push` sends the whole plan to every host and activates nothing: no root to choose.
    const push = action === 'push';
    const roots = push ? undefined : assignRoots(manifest.roots, options.hosts);
    const systems = roots?.map((r) => systemOfRoot(r, options.allowAnyRoot === true));

    const shellFor =
      deps.shellFor ?? ((t: SshTarget) => new SshHost(t, { sshOptions: options.sshOptions ?? [] }));
    const programs = options.hosts.map((h) => new HostProgram(shellFor(h.target), { sudo: options.useSudo }));
    const outputs = deps.hostOutputs ?? defaultOutputs(deps, options.hosts.length > 1);

    // Verify here while the hosts answer their probes: no part of the plan is sent before both.
    const verified = verifyForDeploy(source, options, !push, deps);
    const digest = fileDigest(bundlePath);
    const built = buildOn === 'local' ? buildLocally(bundlePath, deps) : Promise.resolve();
    // The probes stop (their ssh is killed) when the plan is refused here: nothing lingers.
    const probing = new AbortController();
    const stopProbing = (): void => probing.abort();
    deps.signal?.addEventListener('abort', stopProbing, { once: true });
    const probes = programs.map((p) => p.probe(profile, probing.signal));
    for (const p of [verified, digest, built, ...probes]) p.catch(() => undefined);
    let signedBy: readonly string[];
    let trust: TrustReport;
    let planDigest: string;
    try {
      ({ signedBy, trust } = await verified);
      planDigest = await digest;
      await built;
    } catch (e) {
      stopProbing();
      await Promise.allSettled(probes);
      throw e;
    } finally {
      deps.signal?.removeEventListener('abort', stopProbing);
    }

    let failed = false;
    const hosts: HostResult[] = await pool<HostResult>(
      options.hosts.length,
      options.jobs ?? Math.min(8, options.hosts.length),
      async (i) => {
        const name = names[i] ?? '';
        const spec = options.hosts[i];
        const root = roots?.[i];
        const system = systems?.[i];
        const program = programs[i];
        const probe = probes[i];
        const started = performance.now();
        const base = {
          name,
          target: spec === undefined ? '' : formatSshTarget(spec.target),
          root: root?.drvPath,
          system,
          action,
        };
        if (spec === undefined || program === undefined || probe === undefined)
          throw new NixPlanError('internal', 'host list out of step');
        if (failed && options.keepGoing !== true) return { ...base, outcome: 'skipped', seconds: 0 };
        const out = outputs(name);
        const label = options.hosts.length > 1 ? name : program.shell.label;
        const plan = { manifest, source, dataOffset: head.dataOffset };
        let changes: HostChanges | undefined;
        const io = {
          log: out.log,
          output: out.output,
          deps,
          clock: deps.clock,
          signal: deps.signal,
          onChanges: (c: HostChanges) => (changes = c),
        };
        try {
          const answer = await probe;
          checkProbe({ label }, manifest, answer, !push);
          if (push || root === undefined || system === undefined) {
            if (!push) throw new NixPlanError('internal', 'no root for the host');
            const imported = await sendPlan(
              { label, program, encoding: options.compress ?? 'auto' },
              plan,
              answer,
              io,
            );
            out.log.info(
              `${label}: ${imported} path${imported === 1 ? '' : 's'} imported; nothing activated`,
            );
            return { ...base, outcome: 'pushed', imported, seconds: (performance.now() - started) / 1000 };
          }
          // An older plan than the host last applied (its record, read by the probe) goes no further.
          const now = (deps.now ?? (() => new Date()))();
          checkFreshness(manifest, answer.record, options, `${label}:${profile}`, now, out.log);
          const record = JSON.stringify(recordFor(manifest, planDigest, [root.drvPath], now));
          const job: HostJob = {
            label,
            program,
            drvPath: root.drvPath,
            system,
            profile,
            action,
            confirmTimeout,
            encoding: options.compress ?? 'auto',
            buildOn,
            record,
          };
          out.log.info(`deploying ${rootLabel(root)} to ${program.shell.label} (${action})`);
          const done = await deployToHost(job, plan, answer, io);
          const { activation } = done;
          if (activation.report.recordFailed)
            out.log.warn(`${label}: the host could not write its last-applied record`);
          return {
            ...base,
            outcome: OUTCOME[action],
            generation: activation.generation,
            previousGeneration: activation.previousGeneration,
            currentSystem: activation.report.currentSystem,
            confirmed: activation.confirmed,
            imported: done.imported,
            changes,
            seconds: (performance.now() - started) / 1000,
          };
        } catch (e) {
          failed = true;
          const code: ErrorCode = e instanceof NixPlanError ? e.code : 'internal';
          const message = stringifyError(e);
          const report = (e as { report?: { current?: string; previous?: string; currentSystem?: string } })
            .report;
          if (options.hosts.length > 1) out.log.warn(message);
          return {
            ...base,
            outcome: failedOutcome(code),
            ...(report !== undefined && {
              generation: generationOf(report.current),
              previousGeneration: generationOf(report.previous),
              currentSystem: report.currentSystem,
            }),
            changes,
            seconds: (performance.now() - started) / 1000,
            error: { code, message },
          };
        } finally {
          out.done();
        }
      },
    );
    return {
      bundle: bundlePath,
      digest: planDigest,
      storeDir: manifest.storeDir,
      signedBy,
      trust,
      manifest,
      hosts,
      ok: hosts.every((h) => h.error === undefined && h.outcome !== 'skipped'),
    };
  } finally {
    await source.close();
  }
}

function generationOf(link: string | undefined): number | undefined {
  const m = /-(\d+)-link$/.exec(link ?? '');
  return m?.[1] === undefined ? undefined : Number(m[1]);
}

async function buildLocally(bundlePath: string, deps: DeployDeps): Promise<void> {
  if (deps.realise === undefined)
    throw new NixPlanError('internal', '--build-on local needs a local realise');
  await deps.realise(bundlePath);
}

/** deps.log and deps.nixLog, each line led by `[NAME] ` when several hosts share the terminal. */
function defaultOutputs(deps: Deps, prefixed: boolean): HostOutputs {
  return (name) => {
    const prefix = prefixed ? `[${name}] ` : '';
    const raw = linePrefixer(prefix, (c) => deps.nixLog?.(typeof c === 'string' ? Buffer.from(c) : c));
    const at = (m: string): string => (prefixed ? `[${name}] ${m}` : m);
    return {
      log: {
        info: (m) => deps.log.info(at(m)),
        warn: (m) => deps.log.warn(at(m)),
        debug: (m) => deps.log.debug(at(m)),
      },
      output: (c) => raw.write(c),
      done: () => raw.flush(),
    };
  };
}

/** The manifest type, for callers that show the plan. */
export type { BundleManifest };
