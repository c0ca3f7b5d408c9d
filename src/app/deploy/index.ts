// deployPlan: a verified plan to one host or a fleet over SSH — each host needs only Nix, sh and an
// SSH server. Verify here, ask each host about itself, send, build there, activate safely.
import { readBundleHead, type BundleSource } from '../../core/bundle/index.js';
import type { BundleManifest } from '../../core/bundle/manifest.js';
import { checkSignatures } from '../../core/bundle/policy.js';
import { trustReportOf, trustStatus, type TrustReport } from '../../core/bundle/trust-report.js';
import { parsePublicKey } from '../../core/signing.js';
import { ArgumentError, NixPlanError, stringifyError, type ErrorCode } from '../../core/errors.js';
import { optionName, optionSet } from '../../core/option-names.js';
import { HostProgram } from '../../nix/host-program.js';
import { generationOf } from '../../nix/profile.js';
import { SshHost, formatSshTarget, type SshTarget } from '../../nix/ssh.js';
import type { Deps, Logger } from '../deps.js';
import { rootLabel } from '../inspect.js';
import { verifyWithProgress } from '../verify.js';
import { DEFAULT_ACTIVATION_TIMEOUT, DEFAULT_CONFIRM_TIMEOUT, type ActivationOutcome } from './activation.js';
import type { HostChanges } from './changes.js';
import { privateBundle } from '../private-copy.js';
import { checkProbe, deployToHost, sendPlan, type HostJob } from './host.js';
import { lastActivationNotes } from './last-activation.js';
import type { HostProbe } from '../../nix/host-markers.js';
import { checkShapes } from '../../core/derivation/requirements.js';
import type { VerifyReport } from '../../core/bundle/reader.js';
import { linePrefixer, prefixLines } from './prefix.js';
import { pool } from './pool.js';
import { checkFreshness, recordFor } from './record.js';
import { assignRoots, systemOfRoot } from './roots.js';

import {
  DEFAULT_PROFILE,
  type DeployAction,
  type DeployDeps,
  type DeployOptions,
  type DeployResult,
  type HostOutcome,
  type HostOutputs,
  type HostResult,
} from './types.js';

export { ACTIVATION_ACTIONS, DEFAULT_CONFIRM_TIMEOUT, type ActivationAction } from './activation.js';
export { BUILD_ON, TRANSFER_ENCODINGS, type BuildOn, type TransferEncoding } from './host.js';
export type { HostChanges } from './changes.js';
export * from './types.js';

export const OUTCOME: Record<DeployAction, HostOutcome> = {
  push: 'pushed',
  switch: 'switched',
  boot: 'booted',
  test: 'tested',
  'dry-activate': 'dry-activated',
};

/** The outcome a failed host's error code stands for. */
export function failedOutcome(code: ErrorCode): HostOutcome {
  if (code === 'activation') return 'rolled-back';
  if (code === 'attention') return 'needs-attention';
  return 'failed';
}

/**
 * The checks deploy and deploy --rollback make of their host list and profile before asking any
 * host: each host's name (`--host NAME=…`, else its address), given once, and the profile (absolute
 * with `--use-sudo`). Messages name the options as `options.optionNames` spells them.
 */
export function checkHosts(
  options: Pick<DeployOptions, 'hosts' | 'profile' | 'useSudo' | 'optionNames'>,
  command: string,
): { readonly names: string[]; readonly profile: string } {
  const spelling = options.optionNames;
  if (options.hosts.length === 0)
    throw new ArgumentError(`${command} needs at least one ${optionName(spelling, 'host')}`);
  const names = options.hosts.map((h) => h.name ?? formatSshTarget(h.target));
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup !== undefined) throw new ArgumentError(`host '${dup}' is given twice`);
  const profile = options.profile ?? DEFAULT_PROFILE;
  if (profile === '' || profile.includes('\0'))
    throw new ArgumentError(`${optionName(spelling, 'profile')} must be a path`);
  // A relative profile is taken from $HOME on the host, and under sudo that is whatever home sudo
  // sets (root's by default, the login's where sudoers keeps HOME): not one path to name.
  if (options.useSudo === true && !profile.startsWith('/'))
    throw new ArgumentError(
      `${optionName(spelling, 'profile')} '${profile}' is relative: with ${optionSet(spelling, 'useSudo')} give an absolute path ` +
        "(a relative one would be taken from the home sudo chooses, not the login's)",
    );
  return { names, profile };
}

/** The program run on a host over SSH (or the shell the deps give, in tests). */
export function hostProgram(
  target: SshTarget,
  options: Pick<DeployOptions, 'sshOptions' | 'useSudo'>,
  deps: Pick<DeployDeps, 'shellFor'>,
): HostProgram {
  const shell =
    deps.shellFor !== undefined
      ? deps.shellFor(target)
      : new SshHost(target, { sshOptions: options.sshOptions ?? [] });
  return new HostProgram(shell, { sudo: options.useSudo });
}

/**
 * What a host's result says of an activation that went through (warning when the host could
 * not write its last-applied record).
 */
export function hostActivated(
  label: string,
  action: DeployAction,
  activation: ActivationOutcome,
  log: Logger,
): Pick<HostResult, 'outcome' | 'generation' | 'previousGeneration' | 'currentSystem' | 'confirmed'> {
  if (activation.report.recordFailed) log.warn(`${label}: the host could not write its last-applied record`);
  return {
    outcome: OUTCOME[action],
    generation: activation.generation,
    previousGeneration: activation.previousGeneration,
    currentSystem: activation.report.currentSystem,
    confirmed: activation.confirmed,
  };
}

/**
 * What a host's result says of the error that ended it: the outcome its code stands for, the
 * error, and the generations the host reported with it (an activation error carries them).
 */
export function hostFailure(e: unknown): Pick<
  HostResult,
  'outcome' | 'generation' | 'previousGeneration' | 'currentSystem'
> & {
  readonly error: { readonly code: ErrorCode; readonly message: string };
} {
  const code: ErrorCode = e instanceof NixPlanError ? e.code : 'internal';
  const report = (e as { report?: { current?: string; previous?: string; currentSystem?: string } }).report;
  return {
    outcome: failedOutcome(code),
    ...(report !== undefined && {
      generation: generationOfLink(report.current),
      previousGeneration: generationOfLink(report.previous),
      currentSystem: report.currentSystem,
    }),
    error: { code, message: stringifyError(e) },
  };
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
): Promise<{ signedBy: readonly string[]; trust: TrustReport; shapes: VerifyReport['shapes'] }> {
  const noCheckSigs = options.noCheckSigs === true;
  const trusted = (options.trustedKeys ?? []).map(parsePublicKey);
  const report = await verifyWithProgress(
    source,
    { trustedKeys: trusted, noCheckSigs, optionNames: options.optionNames },
    deps.progress,
    deps.signal,
  );
  const trust = trustReportOf(report.manifest, trusted, {
    noCheckSigs: report.noCheckSigs,
    unproven: report.unproven,
  });
  deps.log.info(`plan ${trustStatus(report.manifest, trust)}`);
  const outputs = `${report.unproven} build output${report.unproven === 1 ? '' : 's'} no trusted key signed`;
  const names = options.optionNames;
  if (report.unproven > 0 && activates)
    throw new NixPlanError(
      'signature',
      `the plan holds ${outputs}: deploy activates only a proven system (give ${optionName(names, 'trustedKey')}; ` +
        `${optionSet(names, 'action', 'push')} only stages it)`,
    );
  if (report.unproven > 0) deps.log.warn(`${optionSet(names, 'noCheckSigs')}: sending ${outputs}`);
  return { signedBy: report.trustedSignatures, trust, shapes: report.shapes };
}

/** The refusals of checkHostReads, told apart from the transfer failures they cause. */
const hostRefusals = new WeakSet<object>();

/**
 * Refuses to send a host a plan with a .drv its Nix cannot read: one older than the shape (the
 * probe's `nix-store --version`), or one needing an experimental feature the host has off (asked
 * only then, one more small query); warns when the host could not say its features.
 */
async function checkHostReads(
  shapes: VerifyReport['shapes'],
  probe: HostProbe,
  program: HostProgram,
  label: string,
  log: Logger,
  signal?: AbortSignal,
): Promise<void> {
  if (shapes.length === 0) return;
  const target = { version: probe.nixVersion, label: `the host ${label}` };
  let verdict = checkShapes(shapes, { kind: 'other', ...target });
  if (verdict.refusal === undefined && verdict.unchecked.length > 0) {
    // The host's own Nix imports the plan (the login is root there), so its settings are the ones.
    const features = await program.features(signal).catch(() => undefined);
    if (features !== undefined) verdict = checkShapes(shapes, { kind: 'local', features, ...target });
  }
  if (verdict.refusal !== undefined) {
    const refusal = new NixPlanError(
      'bundle',
      `${label}: the plan cannot be imported there: ${verdict.refusal}; nothing was imported`,
    );
    hostRefusals.add(refusal);
    throw refusal;
  }
  for (const w of verdict.unchecked) log.warn(`${label}: ${w}`);
}

/**
 * Whether the plan's head holds all its verification will rest on: every trusted key given has
 * signed the manifest as one must (the check the verifier starts with), and build outputs, which
 * only such a signature proves, are covered by one or absent. Only then may it be sent early.
 */
function provenByHead(manifest: BundleManifest, options: DeployOptions): boolean {
  let signed: readonly string[];
  try {
    signed = checkSignatures(manifest, options.trustedKeys, undefined);
  } catch {
    return false;
  }
  return manifest.counts.output === 0 || signed.length > 0;
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
  const { names, profile } = checkHosts(options, 'deploy');
  const action = options.action ?? 'switch';
  const confirmTimeout = options.confirmTimeout ?? DEFAULT_CONFIRM_TIMEOUT;
  const buildOn = options.buildOn ?? 'host';

  // Everything below reads a private copy: the plan verified is the plan sent and built, even if
  // the file named is rewritten in place or replaced meanwhile (and `digest` is checked on it).
  const copy = await privateBundle(bundlePath, { digest: options.digest, optionNames: options.optionNames });
  const { source } = copy;
  try {
    // The plan's shape, from its manifest: which root goes where, and that each is a system.
    const head = await readBundleHead(source);
    const { manifest } = head;
    // `push` sends the whole plan to every host and activates nothing: no root to choose.
    const push = action === 'push';
    const roots = push ? undefined : assignRoots(manifest.roots, options.hosts, options.optionNames);
    const systems = roots?.map((r) => systemOfRoot(r, options.allowAnyRoot === true, options.optionNames));

    const programs = options.hosts.map((h) => hostProgram(h.target, options, deps));
    const outputs = deps.hostOutputs ?? defaultOutputs(deps, options.hosts.length > 1);

    // Verify here while the hosts answer their probes.
    const verified = verifyForDeploy(source, options, !push, deps);
    const built = buildOn === 'local' ? buildLocally(copy.path, bundlePath, deps) : Promise.resolve();
    const ready = Promise.all([verified, built]);
    // The probes and transfers stop (their ssh is killed) when the plan is refused here.
    const stopping = new AbortController();
    const stop = (): void => stopping.abort();
    deps.signal?.addEventListener('abort', stop, { once: true });
    const probes = programs.map((p) => p.probe(profile, stopping.signal));
    for (const p of [verified, built, ready, ...probes]) p.catch(() => undefined);
    // A plan whose head already holds what its verification rests on (a trusted key's signature
    // on the manifest, or no build outputs to prove) is sent while it is verified: the host holds
    // it unread until the verification here succeeds. Any other plan is verified before any of it
    // is sent, so a plan the head alone shows will be refused never leaves this machine.
    const early = buildOn === 'host' && provenByHead(manifest, options);

    let failed = false;
    const runHosts = (): Promise<HostResult[]> =>
      pool<HostResult>(options.hosts.length, options.jobs ?? Math.min(8, options.hosts.length), async (i) => {
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
        // The host's Nix parses the plan's .drv files: one it cannot read is refused before the
        // host imports any of it (a plan sent early is held there until this resolves).
        const hostReads =
          buildOn === 'host'
            ? Promise.all([ready, probe]).then(([[v], answer]) =>
                checkHostReads(v.shapes, answer, program, label, out.log, stopping.signal),
              )
            : ready;
        hostReads.catch(() => undefined);
        const io = {
          log: out.log,
          output: out.output,
          deps,
          clock: deps.clock,
          signal: stopping.signal,
          verified: hostReads,
          onChanges: (c: HostChanges) => (changes = c),
        };
        try {
          const answer = await probe;
          checkProbe({ label }, manifest, answer, !push, options.optionNames);
          for (const note of lastActivationNotes(answer, label, profile, false)) out.log.warn(note);
          if (buildOn === 'host' && !early) await hostReads;
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
          const record = JSON.stringify(recordFor(manifest, copy.digest, [root.drvPath], now));
          const job: HostJob = {
            label,
            program,
            drvPath: root.drvPath,
            system,
            profile,
            action,
            confirmTimeout,
            activationTimeout: options.activationTimeout ?? DEFAULT_ACTIVATION_TIMEOUT,
            encoding: options.compress ?? 'auto',
            buildOn,
            record,
          };
          out.log.info(`deploying ${rootLabel(root)} to ${program.shell.label} (${action})`);
          const done = await deployToHost(job, plan, answer, io);
          return {
            ...base,
            ...hostActivated(label, action, done.activation, out.log),
            imported: done.imported,
            changes,
            seconds: (performance.now() - started) / 1000,
          };
        } catch (e) {
          failed = true;
          // A plan sent early fails on the host when refused for it: the refusal is the error.
          const refused = await hostReads.then(
            () => undefined,
            (r: unknown) => (hostRefusals.has(r as object) ? r : undefined),
          );
          const failure = hostFailure(refused ?? e);
          // A session stopped because the plan was refused here says nothing of the host.
          if (options.hosts.length > 1 && !stopping.signal.aborted) out.log.warn(failure.error.message);
          return { ...base, ...failure, changes, seconds: (performance.now() - started) / 1000 };
        } finally {
          out.done();
        }
      });
    const deploying = early ? runHosts() : ready.then(runHosts);
    deploying.catch(() => undefined);
    let signedBy: readonly string[];
    let trust: TrustReport;
    let hosts: HostResult[];
    try {
      try {
        ({ signedBy, trust } = await verified);
        await built;
      } catch (e) {
        // Refused here: every session stops, and a host holding part or all of the plan removes it.
        stop();
        await Promise.allSettled([deploying, ...probes]);
        throw e;
      }
      hosts = await deploying;
    } finally {
      deps.signal?.removeEventListener('abort', stop);
    }
    return {
      bundle: bundlePath,
      digest: copy.digest,
      storeDir: manifest.storeDir,
      signedBy,
      trust,
      manifest,
      hosts,
      ok: hosts.every((h) => h.error === undefined && h.outcome !== 'skipped'),
    };
  } finally {
    await copy.dispose();
  }
}

/** Builds the plan here from the private copy `copyPath`; messages name the user's file, `name`. */
async function buildLocally(copyPath: string, name: string, deps: DeployDeps): Promise<void> {
  if (deps.realise === undefined)
    throw new NixPlanError('internal', '--build-on local needs a local realise');
  await deps.realise(copyPath, name);
}

/**
 * One host's outputs: messages about it to `log` and its raw output to `write`, every line of both
 * led by `prefix` (empty for a single host) — the library default, the command line and the deploy
 * action differ only in where the two go.
 */
export function prefixedOutput(
  prefix: string,
  log: Logger,
  write: (chunk: Uint8Array | string) => void,
): ReturnType<HostOutputs> {
  const raw = linePrefixer(prefix, write);
  return {
    log: {
      info: (m) => log.info(prefixLines(prefix, m)),
      warn: (m) => log.warn(prefixLines(prefix, m)),
      debug: (m) => log.debug(prefixLines(prefix, m)),
    },
    output: (c) => raw.write(c),
    done: () => raw.flush(),
  };
}

/** deps.log and deps.nixLog, each line led by `[NAME] ` when several hosts share the terminal. */
export function defaultOutputs(deps: Deps, prefixed: boolean): HostOutputs {
  return (name) =>
    prefixedOutput(prefixed ? `[${name}] ` : '', deps.log, (c) =>
      deps.nixLog?.(typeof c === 'string' ? Buffer.from(c) : c),
    );
}

/** The manifest type, for callers that show the plan. */
export type { BundleManifest };

/** The generation number of a profile's generation link, if the host reported one. */
export function generationOfLink(link: string | undefined): number | undefined {
  return link === undefined ? undefined : generationOf(link);
}
