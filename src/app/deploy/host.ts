// One host of a deploy: what it says about itself (probe), the checks that need its answers (realm,
// a running activation), the transfer of the plan (or of locally built outputs), and activation.
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { finished } from 'node:stream/promises';
import type { BundleManifest } from '../../core/bundle/manifest.js';
import { exportStream, type BundleSource } from '../../core/bundle/index.js';
import { NixPlanError, stringifyError } from '../../core/errors.js';
import { relocateAdvice, type OptionNames } from '../../core/option-names.js';
import { notRootText, type HostProgram, type HostRoots } from '../../nix/host-program.js';
import { ROOTS_STALE_SECONDS } from '../../nix/host-roots.js';
import { type HostProbe } from '../../nix/host-markers.js';
import { FileInput } from '../../nix/runner.js';
import { NixStore } from '../../nix/store.js';
import { progressOf, type Deps, type Logger } from '../deps.js';
import {
  activateSafely,
  newActivationId,
  type ActivationAction,
  type ActivationClock,
  type ActivationOutcome,
} from './activation.js';
import { readChanges, type HostChanges } from './changes.js';
import { recordSeen } from './record.js';

/** Every transfer encoding, for parsing and help texts. */
export const TRANSFER_ENCODINGS = ['auto', 'zstd', 'none'] as const;
/** How the plan travels: compressed (the host has zstd), raw, or as the host allows. */
export type TransferEncoding = (typeof TRANSFER_ENCODINGS)[number];

/** Every place a deploy can build, for parsing and help texts. */
export const BUILD_ON = ['host', 'local'] as const;
/** Where the system is built: on the host from the plan, or here (outputs copied over). */
export type BuildOn = (typeof BUILD_ON)[number];

/** The verified plan a deploy sends: its manifest and the open bundle it was verified from. */
export interface VerifiedPlan {
  readonly manifest: BundleManifest;
  readonly source: BundleSource;
  /** Byte offset of the compressed export stream in the bundle. */
  readonly dataOffset: number;
}

/** What one host is given. */
export interface HostJob {
  readonly label: string;
  readonly program: HostProgram;
  readonly drvPath: string;
  readonly system: string;
  readonly profile: string;
  readonly action: ActivationAction;
  readonly confirmTimeout: number;
  readonly activationTimeout: number;
  readonly encoding: TransferEncoding;
  readonly buildOn: BuildOn;
  /** The record to leave on the host after a switch/boot (JSON), or '' for none. */
  readonly record: string;
}

/** Where one host's messages and output go. */
export interface HostIo {
  readonly log: Logger;
  readonly output: (chunk: Uint8Array) => void;
  readonly deps: Deps;
  readonly clock?: ActivationClock | undefined;
  readonly signal?: AbortSignal | undefined;
  /**
   * Resolves once the plan is verified here: the plan may be sent before, and the host imports it
   * only after (see HostProgram.receive). Absent: the plan was verified before anything was sent.
   */
  readonly verified?: Promise<unknown> | undefined;
  /** Told what the deploy changes on the host, once the new system is built there. */
  readonly onChanges?: ((changes: HostChanges) => void) | undefined;
}

/** Refuses, from the probe alone, a host the plan cannot go to: another realm, a busy host. */
export function checkProbe(
  job: Pick<HostJob, 'label'>,
  manifest: Pick<BundleManifest, 'storeDir'>,
  probe: HostProbe,
  activating = true,
  names?: OptionNames,
): void {
  if (probe.storeDir !== manifest.storeDir)
    throw new NixPlanError(
      'realm',
      `${job.label}: the plan is for store dir ${manifest.storeDir}, the host's Nix uses ${probe.storeDir}: ` +
        `relocate the plan to the host's realm first (${names?.style === 'input' ? relocateAdvice(names, probe.storeDir) : 'nix-plan relocate --to …'}); nothing was sent`,
    );
  if (activating && probe.uid !== 0)
    throw new NixPlanError('host', `${job.label}: ${notRootText(probe.uid)}; nothing was sent`);
  if (activating && probe.busy !== undefined)
    throw new NixPlanError(
      'host',
      `${job.label}: another activation is running on the host${probe.busy === '' ? '' : ` (process ${probe.busy})`}; nothing was sent`,
    );
}

/** Counts bytes of a stream into a progress task as they pass. */
async function* counted(
  chunks: AsyncIterable<Uint8Array>,
  tick: (bytes: number) => void,
): AsyncGenerator<Uint8Array> {
  for await (const c of chunks) {
    tick(c.length);
    yield c;
  }
}

/**
 * Sends the verified plan's export stream (zstd as in the bundle when the host can read it) and
 * has the host import it; returns how many paths Nix imported. This is all `--action push` does.
 */
export async function sendPlan(
  job: Pick<HostJob, 'label' | 'program' | 'encoding'>,
  plan: VerifiedPlan,
  probe: HostProbe,
  io: HostIo,
  roots?: HostRoots,
): Promise<number> {
  const zstd = job.encoding === 'zstd' || (job.encoding === 'auto' && probe.zstd);
  if (job.encoding === 'zstd' && !probe.zstd)
    throw new NixPlanError('host', `${job.label}: --compress zstd, but the host has no zstd on its PATH`);
  const { stream } = plan.manifest;
  const task = progressOf(io.deps).start(`${job.label}: sending`, undefined);
  try {
    const chunks = zstd ? plan.source.stream(plan.dataOffset) : exportStream(plan.source);
    const { imported } = await job.program.receive(
      counted(chunks, (n) => task.tick(0, n)),
      zstd
        ? { size: stream.compressedSize, sha256: stream.compressedSha256, encoding: 'zstd' }
        : { size: stream.size, sha256: stream.sha256, encoding: 'raw' },
      { onOutput: io.output, signal: io.signal, verified: io.verified, roots },
    );
    return imported;
  } finally {
    task.done();
  }
}

/**
 * Sends the locally built system's closure, only the paths the host lacks, as one export stream
 * checked (size, sha256) on the host like a plan.
 */
async function sendOutputs(job: HostJob, io: HostIo, roots: HostRoots, rooting: () => void): Promise<number> {
  const store = new NixStore(io.deps.runner);
  const closure = await store.requisites([job.system]);
  const missing = await job.program.missing(closure, io.signal, `the closure of ${job.system}`);
  if (missing.length === 0) return 0;
  rooting();
  const dir = await mkdtemp(join(tmpdir(), 'nix-plan-deploy-'));
  try {
    const file = join(dir, 'export');
    const out = createWriteStream(file, { mode: 0o600 });
    const hash = createHash('sha256');
    let size = 0;
    try {
      await store.export(missing, (c) => {
        hash.update(c);
        size += c.length;
        out.write(c);
      });
    } finally {
      out.end();
      await finished(out);
    }
    const { imported } = await job.program.receive(
      new FileInput(file),
      { size, sha256: hash.digest('hex'), encoding: 'raw' },
      { onOutput: io.output, signal: io.signal, roots },
    );
    return imported;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** What happened on one host that got as far as activating. */
export interface HostDeployment {
  readonly probe: HostProbe;
  readonly imported: number;
  /** What the activation changed (or, for dry-activate, would change). */
  readonly changes: HostChanges;
  readonly activation: ActivationOutcome;
}

/**
 * Deploys to one host whose probe is `probe` (already checked): sends what it needs, then
 * activates safely. The plan reaches Nix on the host only once `io.verified` (if given) resolves.
 */
export async function deployToHost(
  job: HostJob,
  plan: VerifiedPlan,
  probe: HostProbe,
  io: HostIo,
): Promise<HostDeployment> {
  // What this deploy stages on the host stays rooted there, from the import until it ends: a
  // garbage collection between its sessions cannot take the plan or the system built from it.
  // The activation removes them once the profile holds the new system; a deploy that ends short
  // of that releases them (a deploy cut off leaves them to the next deploy to the host).
  const id = newActivationId();
  // Whether a session that makes roots has started (a deploy refused before needs no release).
  let rooting = false;
  try {
    return await stageAndActivate(job, plan, probe, io, id, () => (rooting = true));
  } catch (e) {
    if (rooting && io.signal?.aborted !== true)
      await job.program
        .release(job.profile, id, io.signal)
        .catch((r: unknown) =>
          io.log.warn(
            `${job.label}: could not remove this deploy's garbage collector roots on the host, ` +
              `if it made any (${job.profile}.nix-plan.d/roots/${id}): ${stringifyError(r)}; ` +
              `the next deploy to it removes them once no session has used them for ${ROOTS_STALE_SECONDS / 60} minutes`,
          ),
        );
    throw e;
  }
}

async function stageAndActivate(
  job: HostJob,
  plan: VerifiedPlan,
  probe: HostProbe,
  io: HostIo,
  id: string,
  rooting: () => void,
): Promise<HostDeployment> {
  const roots: HostRoots = {
    profile: job.profile,
    id,
    ...(job.buildOn === 'local' ? { out: job.system } : { drvPath: job.drvPath }),
  };
  let imported: number;
  if (job.buildOn === 'local') imported = await sendOutputs(job, io, roots, rooting);
  else {
    rooting();
    imported = await sendPlan(job, plan, probe, io, roots);
  }
  io.log.info(`${job.label}: ${imported} path${imported === 1 ? '' : 's'} imported`);
  // Build the system there and compare its closure with the current one before activating.
  rooting();
  const changes = await readChanges(
    job.program,
    {
      profile: job.profile,
      drvPath: job.buildOn === 'local' ? undefined : job.drvPath,
      out: job.system,
      storeDir: probe.storeDir,
      roots: id,
    },
    { log: io.log, label: job.label, output: io.output, signal: io.signal },
  );
  io.onChanges?.(changes);
  const activation = await activateSafely(
    job.program,
    {
      profile: job.profile,
      action: job.action,
      drvPath: job.buildOn === 'local' ? undefined : job.drvPath,
      out: job.system,
      confirmTimeout: job.confirmTimeout,
      activationTimeout: job.activationTimeout,
      recordSeen: recordSeen(probe.record),
      record: job.action === 'switch' || job.action === 'boot' ? job.record : '',
      roots: id,
    },
    { log: io.log, output: io.output, clock: io.clock },
  );
  return { probe, imported, changes, activation };
}
