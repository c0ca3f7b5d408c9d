// The actions' run(deps) with a recording runner IO: what each reads, what it sets and writes,
// and that a bad input or a plan that is not the one asked for stops it before any work. The use
// cases that need Nix (export, realise) are replaced by recording fakes; the bundle, the artifact
// directory and the digest checks are real.
import { afterEach, beforeEach, describe, expect, test } from '@jest/globals';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspectPlan } from '../../src/app/inspect.js';
import { diffPlanSources } from '../../src/app/diff.js';
import type { exportPlan } from '../../src/app/export.js';
import { realisePlan, selectRoots } from '../../src/app/realise.js';
import type { Logger, Progress } from '../../src/app/deps.js';
import {
  encodeExport,
  bundleOf,
  draftFor,
  FIXTURE_CREATED_AT,
  fileEntries,
  narOfFile,
} from '../support/bundle-fixtures.js';
import { Builder } from '../support/closure-builder.js';
import { SYSTEM } from '../support/nix.js';
import type { Derivation } from '../../src/core/derivation/index.js';
import { sha256, toHex } from '../../src/core/hash.js';
import { generateKeyPair, parseSecretKey } from '../../src/core/signing.js';
import type { BundleManifest } from '../../src/core/bundle/manifest.js';
import {
  DEFAULT_ARTIFACT_NAME,
  DeployInput,
  PlanInput,
  PromoteInput,
  PromoteOutput,
  PlanOutput,
  RealiseInput,
  RealiseOutput,
  RunnerEnv,
} from '../../src/action/constants.js';
import { run as runPlan, type PlanDeps } from '../../src/action/plan.js';
import { run as runRealise, type RealiseDeps } from '../../src/action/realise.js';
import { run as runDeploy } from '../../src/action/deploy.js';
import { run as runPromote } from '../../src/action/promote.js';
import { comparePlans } from '../../src/action/compare.js';
import { relocatePlan as realRelocatePlan, type relocatePlan } from '../../src/app/relocate.js';
import { deployPlan } from '../../src/app/deploy/index.js';
import { NixPlanError } from '../../src/core/errors.js';
import { nixBuildLog, runAction, type ActionIO } from '../../src/action/run.js';
import { recordingIO, type Recorded } from '../support/recording-io.js';
import { workflowCommands } from '../support/workflow-commands.js';
import { LocalDirectoryTransport } from '../../src/transport/local.js';
import type { CommandRunner } from '../../src/nix/runner.js';
import { SshHost, type HostShell } from '../../src/nix/ssh.js';

const STORE = '/nix/store';
const ROOTS = [0, 1, 2].map((n) => ({
  attribute: `r${n}`,
  drvPath: `${STORE}/${'abcdfghijklmnpqrsvwxyz0123456789'.slice(n, n + 1).repeat(32)}-r${n}.drv`,
  outputs: { out: `${STORE}/${'0123456789abcdfghijklmnpqrsvwxyz'.slice(n, n + 1).repeat(32)}-r${n}` },
}));

/** A real bundle of an empty closure with three roots (what the actions read of it is the manifest). */
function planBundle(roots = ROOTS): { bytes: Uint8Array; manifest: BundleManifest } {
  const exportBytes = encodeExport([]);
  return bundleOf(
    {
      tool: 'nix-plan test',
      nixVersion: 'test',
      createdAt: FIXTURE_CREATED_AT,
      provenance: {},
      storeDir: STORE,
      systems: ['x86_64-linux'],
      include: 'drvs',
      roots,
      counts: { drv: 0, text: 0, source: 0, output: 0 },
      narBytes: { drv: 0, text: 0, source: 0, output: 0 },
      paths: 0,
    },
    exportBytes,
  );
}

const noRunner: CommandRunner = {
  run: () => Promise.reject(new Error('the action ran a command the test did not expect')),
};

/** No compare-to input is given, so the root action must not diff. */
const noDiff = (() =>
  Promise.reject(
    new Error('the action diffed a plan the test did not ask to compare'),
  )) as unknown as typeof diffPlanSources;

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'nix-plan-action-run-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const digestOf = (bytes: Uint8Array): string => `sha256:${toHex(sha256(bytes))}`;

/** An `outputs` plan of one NixOS system whose build output (forged content) no key signed. */
async function unprovenSystemPlan(): Promise<{ bytes: Uint8Array; out: string }> {
  const b = new Builder(STORE);
  const drv = await b.drv('nixos-system-web-24.05.1', { system: SYSTEM });
  const out = b.outPath(drv);
  const exportBytes = encodeExport([
    ...fileEntries(b.objects),
    { path: out, references: [], deriver: drv, nar: narOfFile('forged') },
  ]);
  const draft = await draftFor(
    exportBytes,
    STORE,
    [{ attribute: 'web', drvPath: drv, outputs: { out } }],
    'outputs',
  );
  return { bytes: bundleOf(draft, exportBytes).bytes, out };
}

/** What a relocation of the bundle `input` into `storeDir` reports (a fake relocatePlan's answer). */
function promotedTo(
  storeDir: string,
  input: { bytes: Uint8Array; manifest: BundleManifest },
  output: string,
): ReturnType<typeof relocatePlan> {
  const promotion = {
    digest: digestOf(input.bytes),
    storeDir: STORE,
    checksum: input.manifest.checksum,
    signedBy: [],
    at: FIXTURE_CREATED_AT,
  };
  return Promise.resolve({
    bundlePath: output,
    manifest: { ...input.manifest, storeDir, promotions: [promotion] },
    report: {
      objects: { drv: 0, text: 0, source: 0 },
      hashesRewritten: 0,
      bareHashRewrites: 0,
      bareStoreDirMentions: [],
      warnings: [],
    },
    trust: { keysGiven: false, verifiedBy: [], signatures: [], noCheckSigs: false, unproven: 0 },
    timings: { verifyMs: 1, relocateMs: 1 },
  }) as unknown as ReturnType<typeof relocatePlan>;
}

/**
 * A fake exportPlan that writes `bundle` where it is asked to; `during` sees each call's options
 * and deps first (what the action handed the exporter).
 */
function exportWriting(
  bundle: { bytes: Uint8Array; manifest: BundleManifest },
  during: (options: Parameters<typeof exportPlan>[0], deps: Parameters<typeof exportPlan>[1]) => void,
): typeof exportPlan {
  return (options: Parameters<typeof exportPlan>[0], deps: Parameters<typeof exportPlan>[1]) => {
    during(options, deps);
    writeFileSync(options.output, bundle.bytes);
    return Promise.resolve({
      bundlePath: options.output,
      manifest: bundle.manifest,
      bundleBytes: bundle.bytes.length,
      timings: { evaluateMs: 3, collectMs: 1, writeMs: 1 },
    });
  };
}

describe('the root action', () => {
  test('exports with its settings, publishes the bundle and describes it in outputs and the summary', async () => {
    const bundle = planBundle();
    const key = generateKeyPair('ci');
    const calls: Parameters<typeof exportPlan>[0][] = [];
    const fakeExport = exportWriting(bundle, (options) => calls.push(options));
    const { io, rec } = recordingIO(
      {
        [PlanInput.Installables]: '.#a\n.#b',
        [PlanInput.CompressionLevel]: '7',
        [PlanInput.SigningKey]: key.secretKey,
        [PlanInput.ArtifactName]: 'my-plan',
        [PlanInput.ArtifactDir]: join(dir, 'artifacts'),
        [PlanInput.Matrix]: '2',
      },
      { [RunnerEnv.RunnerTemp]: join(dir, 'runner'), [RunnerEnv.RunId]: '42' },
    );
    const deps: PlanDeps = {
      io,
      runner: noRunner,
      transport: (artifactDir) => new LocalDirectoryTransport(artifactDir!, '42'),
      exportPlan: fakeExport,
      diffPlanSources: noDiff,
    };

    await runPlan(deps);

    // The key is masked before anything can print it, and reaches the exporter as given.
    expect(rec.secrets).toEqual([key.secretKey]);
    expect(calls).toHaveLength(1);
    expect(calls[0]).toMatchObject({ installables: ['.#a', '.#b'], level: 7, signingKey: key.secretKey });
    expect(calls[0]!.output).toBe(join(dir, 'runner', 'nix-plan', 'plan', 'my-plan'));
    expect(calls[0]!.provenance?.env?.(RunnerEnv.RunId)).toBe('42');

    const digest = digestOf(bundle.bytes);
    expect(rec.outputs[PlanOutput.BundlePath]).toBe(calls[0]!.output);
    expect(rec.outputs[PlanOutput.Digest]).toBe(digest);
    expect(rec.outputs[PlanOutput.Bytes]).toBe(String(bundle.bytes.length));
    expect(rec.outputs[PlanOutput.ArtifactName]).toBe('my-plan');
    expect(JSON.parse(rec.outputs[PlanOutput.DrvPaths]!)).toEqual(ROOTS.map((r) => r.drvPath));
    expect(JSON.parse(rec.outputs[PlanOutput.OutPaths]!)).toEqual(
      Object.fromEntries(ROOTS.map((r) => [r.drvPath, r.outputs])),
    );
    const matrix = JSON.parse(rec.outputs[PlanOutput.Matrix]!) as { include: unknown[] };
    expect(matrix.include).toHaveLength(2);

    // The published copy is the bundle, byte for byte.
    const published = await new LocalDirectoryTransport(join(dir, 'artifacts'), '42').download(
      { name: 'my-plan' },
      join(dir, 'down'),
    );
    expect(digestOf(readFileSync(published.path))).toBe(digest);

    expect(rec.summary).toHaveLength(1);
    expect(rec.summary[0]).toContain('my-plan');
    expect(rec.summary[0]).toContain(digest.slice('sha256:'.length, 'sha256:'.length + 12));
  });

  test('what the evaluator says goes to the job log in a group of its own, workflow commands off', async () => {
    const bundle = planBundle();
    const fakeExport = exportWriting(bundle, (_options, exportDeps) =>
      exportDeps.nixLog?.(Buffer.from('trace: evaluating web\n::add-mask::x\n')),
    );
    const { io, rec } = recordingIO(
      { [PlanInput.Installables]: '.#a', [PlanInput.ArtifactDir]: join(dir, 'artifacts') },
      { [RunnerEnv.RunnerTemp]: join(dir, 'runner'), [RunnerEnv.RunId]: '42' },
    );
    await runPlan({
      io,
      runner: noRunner,
      transport: (artifactDir) => new LocalDirectoryTransport(artifactDir!, '42'),
      exportPlan: fakeExport,
      diffPlanSources: noDiff,
    });
    const raw = rec.raw.join('');
    const token = /::stop-commands::([0-9a-f-]{36})\n/.exec(raw)?.[1];
    expect(token).toBeDefined();
    expect(raw).toBe(
      `::group::Nix evaluation log\n::stop-commands::${token}\n` +
        'trace: evaluating web\n::add-mask::x\n' +
        `::${token}::\n::endgroup::\n`,
    );
  });

  /**
   * A real plan with one .drv (`edit` forges it, its own path recomputed), as bundle bytes; with
   * `output`, an `outputs` plan that also holds its build output (signed by `keys`).
   */
  async function builtPlan(
    name: string,
    options: { edit?: (d: Derivation) => void; output?: string; keys?: readonly string[] } = {},
  ): Promise<Uint8Array> {
    const b = new Builder(STORE);
    const drv = await b.drv(name, {
      system: SYSTEM,
      ...(options.edit !== undefined && { edit: options.edit }),
    });
    const entries = fileEntries(b.objects);
    const out = b.outPath(drv);
    if (options.output !== undefined)
      entries.push({ path: out, references: [], deriver: drv, nar: narOfFile(options.output) });
    const exportBytes = encodeExport(entries);
    const root = { attribute: name, drvPath: drv, outputs: { out } };
    const draft = await draftFor(
      exportBytes,
      STORE,
      [root],
      options.output === undefined ? 'drvs' : 'outputs',
    );
    return bundleOf(draft, exportBytes, { keys: (options.keys ?? []).map(parseSecretKey) }).bytes;
  }

  /** Runs the root action, whose export writes `mine`, comparing with `compareTo`. */
  async function planComparing(
    mine: Uint8Array,
    compareTo: Uint8Array,
    inputs: Record<string, string> = {},
    diff: typeof diffPlanSources = diffPlanSources,
  ): Promise<{ rec: Recorded; run: Promise<void> }> {
    const baseline = join(dir, 'baseline.nixplan');
    writeFileSync(baseline, compareTo);
    const fakeExport = ((options: Parameters<typeof exportPlan>[0]) => {
      writeFileSync(options.output, mine);
      return inspectPlan(options.output).then(({ manifest }) => ({
        bundlePath: options.output,
        manifest,
        bundleBytes: mine.length,
        timings: { evaluateMs: 3, collectMs: 1, writeMs: 1 },
      }));
    }) as unknown as typeof exportPlan;
    const { io, rec } = recordingIO(
      {
        [PlanInput.Installables]: '.#a',
        [PlanInput.Upload]: 'false',
        [PlanInput.CompareTo]: baseline,
        ...inputs,
      },
      { [RunnerEnv.RunnerTemp]: join(dir, 'runner') },
    );
    const run = runPlan({
      io,
      runner: noRunner,
      transport: () => ({}) as never,
      exportPlan: fakeExport,
      diffPlanSources: diff,
    });
    await run.catch(() => undefined);
    return { rec, run };
  }

  test('compare-to a plan verify would refuse: the summary says so instead of a diff, and the step fails', async () => {
    // Real plans, verified by the real diff; the forged one names an output path Nix would not
    // compute for its .drv (whose own path is recomputed, so only that check can catch it).
    const wrong = `${STORE}/${'0'.repeat(32)}-hello-2.12`;
    const mine = await builtPlan('hello-2.13');

    // The control: an honest plan to compare with gives a diff.
    const honest = await planComparing(mine, await builtPlan('hello-2.12'));
    await honest.run;
    expect(honest.rec.outputs[PlanOutput.Changed]).toBe('true');
    expect(honest.rec.summary[0]).toContain('hello');
    expect(honest.rec.summary[0]).not.toContain('refused');

    const forgedPlan = await builtPlan('hello-2.12', {
      edit: (d) => {
        d.outputs[0]!.path = wrong;
      },
    });
    const forged = await planComparing(mine, forgedPlan);
    await expect(forged.run).rejects.toThrow(`has output 'out' at '${wrong}', but Nix computes`);
    expect(forged.rec.outputs[PlanOutput.Changed]).toBeUndefined();
    expect(forged.rec.summary).toHaveLength(1);
    const summary = forged.rec.summary[0]!;
    expect(summary).toContain('**Not compared: a plan was refused.**');
    expect(summary).toContain(`has output 'out' at '${wrong}', but Nix computes`);
    expect(summary).toContain('No diff is shown, and this step fails.');
    expect(summary).not.toMatch(/version change|rebuilt|verified/i);
  });

  test("compare-to: build outputs are proven by trusted-keys or the job's own signing key, else refused", async () => {
    const ci = generateKeyPair('ci');
    const mine = await builtPlan('hello-2.13');
    const withOutputs = await builtPlan('hello-2.12', { output: 'hello\n', keys: [ci.secretKey] });
    // Signed, but by a key this job was not given: nothing proves the output.
    const unproven = await planComparing(mine, withOutputs);
    await expect(unproven.run).rejects.toThrow(
      /is a build output, whose content only a signature by a trusted key/,
    );
    expect(unproven.rec.summary[0]).toContain('**Not compared: a plan was refused.**');
    // The key this job signs with proves what it signed in an earlier run, as trusted-keys would.
    for (const inputs of <Record<string, string>[]>[
      { [PlanInput.SigningKey]: ci.secretKey },
      { [PlanInput.TrustedKeys]: ci.publicKey },
    ]) {
      const proven = await planComparing(mine, withOutputs, inputs);
      await proven.run;
      expect(proven.rec.outputs[PlanOutput.Changed]).toBe('true');
      expect(proven.rec.summary[0]).toContain('verified: signed by trusted key');
    }
  });

  test('compare-to: a compared file replaced after its diff shows nothing of the other plan', async () => {
    // The forger swaps the file once it has been verified and diffed: the summary's origin and
    // signers of the compared plan are read from the file again, so they must be the verified one's.
    const ci = generateKeyPair('ci');
    const other = await builtPlan('hello-2.11', { keys: [ci.secretKey] });
    const swapping = (async (...args: Parameters<typeof diffPlanSources>) => {
      const d = await diffPlanSources(...args);
      writeFileSync(args[0].path, other);
      return d;
    }) as typeof diffPlanSources;
    const mine = await builtPlan('hello-2.13');
    const swapped = await planComparing(mine, await builtPlan('hello-2.12'), {}, swapping);
    await expect(swapped.run).rejects.toThrow(/changed while it was compared/);
    const summary = swapped.rec.summary[0]!;
    expect(summary).toContain('**Not compared: a plan was refused.**');
    expect(summary).not.toMatch(/hello-2\.11|`ci`|upgrade/);
    expect(swapped.rec.outputs[PlanOutput.Changed]).toBeUndefined();
  });

  test("compare-to with this job's own unsigned build outputs: compared, and the summary says NOT CHECKED", async () => {
    // include: outputs and no signing-key: nothing proves the outputs this job realised, but it
    // wrote them itself, so its plan is compared all the same, and the reviewer is told.
    const mine = await builtPlan('hello-2.13', { output: 'hello\n' });
    const own = await planComparing(mine, await builtPlan('hello-2.12'));
    await own.run;
    expect(own.rec.outputs[PlanOutput.Changed]).toBe('true');
    const summary = own.rec.summary[0]!;
    expect(summary).not.toContain('refused');
    expect(summary).toContain('`hello` | ⬆ upgrade | `2.12 → 2.13`');
    expect(summary).toContain(
      '**NOT CHECKED: 1 unproven (built by this job)**: this plan carries 1 build output this job realised',
    );
    expect(summary).toMatch(
      /\| trust \| unsigned; \*\*NOT CHECKED: 1 unproven \(built by this job\)\*\* \| unsigned \|/,
    );
    expect(own.rec.log).toContainEqual(
      expect.stringMatching(/^warn: compared with 1 build output of this plan that no key proves/),
    );
    // Only this job's own plan: the plan compared with still needs a key for its outputs…
    const earlier = await builtPlan('hello-2.12', { output: 'hello\n' });
    const theirs = await planComparing(mine, earlier);
    await expect(theirs.run).rejects.toThrow(
      /is a build output, whose content only a signature by a trusted key/,
    );
    expect(theirs.rec.summary[0]).toContain('**Not compared: a plan was refused.**');
    // …or no-check-sigs, which compares with it and says what was not checked on each side.
    const optOut = await planComparing(mine, earlier, { [PlanInput.NoCheckSigs]: 'true' });
    await optOut.run;
    expect(optOut.rec.outputs[PlanOutput.Changed]).toBe('true');
    expect(optOut.rec.summary[0]).toContain(
      '| trust | unsigned; **NOT CHECKED: 1 unproven (built by this job)** | NOT CHECKED (--no-check-sigs): 1 unproven path |',
    );
    expect(optOut.rec.log).toContainEqual(
      'warn: no-check-sigs: compared with a plan holding 1 build output no trusted key proves',
    );
    // Signed by this job: proven, nothing NOT CHECKED.
    const ci = generateKeyPair('ci');
    const signed = await planComparing(
      await builtPlan('hello-2.13', { output: 'hello\n', keys: [ci.secretKey] }),
      await builtPlan('hello-2.12'),
      { [PlanInput.SigningKey]: ci.secretKey },
    );
    await signed.run;
    expect(signed.rec.summary[0]).not.toContain('NOT CHECKED');
  });

  test('a bad input fails before anything is exported or set', async () => {
    const { io, rec } = recordingIO(
      { [PlanInput.Installables]: '.#a', [PlanInput.CompressionLevel]: '99' },
      { [RunnerEnv.RunnerTemp]: join(dir, 'runner') },
    );
    let exported = 0;
    const deps: PlanDeps = {
      io,
      runner: noRunner,
      transport: () => {
        throw new Error('no transport expected');
      },
      exportPlan: () => {
        exported++;
        return Promise.reject(new Error('not expected'));
      },
      diffPlanSources: noDiff,
    };
    await expect(runPlan(deps)).rejects.toThrow(/compression-level/);
    expect(exported).toBe(0);
    expect(rec.outputs).toEqual({});
    expect(rec.summary).toEqual([]);
  });

  test('a compare-to file that cannot be read fails before anything is evaluated or published', async () => {
    const { io, rec } = recordingIO(
      { [PlanInput.Installables]: '.#a', [PlanInput.CompareTo]: join(dir, 'no-such.nixplan') },
      { [RunnerEnv.RunnerTemp]: join(dir, 'runner') },
    );
    let exported = 0;
    const deps: PlanDeps = {
      io,
      runner: noRunner,
      transport: () => {
        throw new Error('no transport expected');
      },
      exportPlan: () => {
        exported++;
        return Promise.reject(new Error('not expected'));
      },
      diffPlanSources: noDiff,
    };
    await expect(runPlan(deps)).rejects.toThrow(
      /^input "compare-to": cannot read the bundle to compare with, ".*no-such\.nixplan" \(ENOENT\)/,
    );
    expect(exported).toBe(0);
    expect(rec.outputs).toEqual({});
  });
});

describe('the realise action', () => {
  async function published(): Promise<{ bundle: ReturnType<typeof planBundle>; artifacts: string }> {
    const bundle = planBundle();
    const artifacts = join(dir, 'artifacts');
    const file = join(dir, 'plan.nixplan');
    writeFileSync(file, bundle.bytes);
    await new LocalDirectoryTransport(artifacts, '42').upload(file, DEFAULT_ARTIFACT_NAME);
    return { bundle, artifacts };
  }

  function realiseDeps(io: ActionIO, calls: { bundle: string; options: unknown }[]): RealiseDeps {
    // As realisePlan: what the action refuses of the manifest is refused before anything is done.
    const fakeRealise = (async (bundle: string, options: Parameters<typeof realisePlan>[1]) => {
      const { manifest } = await inspectPlan(bundle);
      options.checkManifest?.(manifest);
      calls.push({ bundle, options });
      const roots = options.roots ?? manifest.roots.map((r) => r.drvPath);
      return {
        manifest,
        outPaths: Object.fromEntries(
          manifest.roots.filter((r) => roots.includes(r.drvPath)).map((r) => [r.drvPath, r.outputs]),
        ),
        import: { imported: 0, alreadyValid: 0, method: 'none' },
        links: [],
      };
    }) as unknown as typeof realisePlan;
    return {
      io,
      runner: noRunner,
      transport: (artifactDir) => new LocalDirectoryTransport(artifactDir!, '42'),
      inspectPlan,
      realisePlan: fakeRealise,
    };
  }

  test('fetches the plan by digest, builds its shard and sets the out paths', async () => {
    const { bundle, artifacts } = await published();
    const { io, rec } = recordingIO(
      {
        [RealiseInput.ArtifactDir]: artifacts,
        [RealiseInput.Digest]: digestOf(bundle.bytes),
        [RealiseInput.Shard]: '1/2',
      },
      { [RunnerEnv.RunnerTemp]: join(dir, 'runner'), [RunnerEnv.RunId]: '42' },
    );
    const calls: { bundle: string; options: unknown }[] = [];

    await runRealise(realiseDeps(io, calls));

    expect(calls).toHaveLength(1);
    expect(calls[0]!.bundle).toBe(rec.outputs[RealiseOutput.BundlePath]);
    const shardRoots = (calls[0]!.options as { roots: string[] }).roots;
    expect(shardRoots.length).toBeGreaterThan(0);
    expect(shardRoots.length).toBeLessThan(ROOTS.length);
    expect(Object.keys(JSON.parse(rec.outputs[RealiseOutput.OutPaths]!) as object)).toEqual(shardRoots);
    expect(rec.log.some((l) => l.startsWith(`info: shard 1/2: ${shardRoots.length} of 3 root(s)`))).toBe(
      true,
    );
    expect(rec.summary).toHaveLength(1);
  });

  test('a shard that selects no root is refused, not taken as every root', async () => {
    const { bundle, artifacts } = await published();
    const { io, rec } = recordingIO(
      {
        [RealiseInput.ArtifactDir]: artifacts,
        [RealiseInput.Digest]: digestOf(bundle.bytes),
        [RealiseInput.Shard]: '1/5', // 3 roots over 5 shards: the first is empty
      },
      { [RunnerEnv.RunnerTemp]: join(dir, 'runner'), [RunnerEnv.RunId]: '42' },
    );
    const calls: { bundle: string; options: unknown }[] = [];
    await expect(runRealise(realiseDeps(io, calls))).rejects.toThrow(
      'input "shard": "1/5" selects no root: the plan has 3',
    );
    expect(calls).toEqual([]);
    expect(rec.outputs[RealiseOutput.OutPaths]).toBeUndefined();
  });

  test('a step that fails before its summary still writes one: what failed, the error in a code span', async () => {
    const { artifacts } = await published();
    const { io, rec } = recordingIO(
      { [RealiseInput.ArtifactDir]: artifacts, [RealiseInput.Digest]: `sha256:${'0'.repeat(64)}` },
      { [RunnerEnv.RunnerTemp]: join(dir, 'runner'), [RunnerEnv.RunId]: '42' },
    );
    const calls: { bundle: string; options: unknown }[] = [];
    const failed: string[] = [];
    await runAction('nix-plan realise', (tracked) => runRealise(realiseDeps(tracked, calls)), {
      io,
      fail: (m) => failed.push(m),
      debug: () => undefined,
    });
    expect(calls).toEqual([]);
    expect(failed).toHaveLength(1);
    expect(failed[0]).toMatch(/digest/);
    expect(rec.summary).toHaveLength(1);
    expect(rec.summary[0]).toMatch(
      /^## nix-plan realise: failed\n\n\*\*This step failed\*\* \(\w+\): `[^`\n]*digest[^`\n]*`\n/,
    );
  });

  test('runAction: a summary the step wrote before failing is the only one; success adds none', async () => {
    const { io, rec } = recordingIO({}, {});
    const failed: string[] = [];
    const options = { io, fail: (m: string) => failed.push(m), debug: () => undefined };
    await runAction(
      'nix-plan',
      async (tracked) => {
        await tracked.appendSummary("## nix-plan: the step's own\n");
        throw new NixPlanError('bundle', 'refused after the summary');
      },
      options,
    );
    expect(rec.summary).toEqual(["## nix-plan: the step's own\n"]);
    expect(failed).toEqual(['refused after the summary']);
    await runAction('nix-plan', () => Promise.resolve(), options);
    expect(rec.summary).toHaveLength(1);
    expect(failed).toHaveLength(1);
    // What the error quotes cannot render: a plan's text stays in a code span, on one line.
    await runAction(
      'nix-plan promote',
      () => Promise.reject(new NixPlanError('signature', "not signed by 'x'\n## <img src=x> `@admin`")),
      options,
    );
    expect(rec.summary[1]).toBe(
      "## nix-plan promote: failed\n\n**This step failed** (signature): `` not signed by 'x' ## <img src=x> `@admin` ``\n\n" +
        "The job log has what it did before (and Nix's output, if it ran).\n",
    );
  });

  test('a plan whose digest is not the one asked for is refused before anything is realised', async () => {
    const { artifacts } = await published();
    const { io, rec } = recordingIO(
      { [RealiseInput.ArtifactDir]: artifacts, [RealiseInput.Digest]: `sha256:${'0'.repeat(64)}` },
      { [RunnerEnv.RunnerTemp]: join(dir, 'runner'), [RunnerEnv.RunId]: '42' },
    );
    const calls: { bundle: string; options: unknown }[] = [];
    await expect(runRealise(realiseDeps(io, calls))).rejects.toThrow(/digest/);
    expect(calls).toEqual([]);
    expect(rec.outputs[RealiseOutput.OutPaths]).toBeUndefined();
    expect(rec.summary).toEqual([]);
  });

  test('an artifact with neither a digest nor trusted keys is refused (fail closed)', async () => {
    const { artifacts } = await published();
    const { io, rec } = recordingIO(
      { [RealiseInput.ArtifactDir]: artifacts },
      { [RunnerEnv.RunnerTemp]: join(dir, 'runner'), [RunnerEnv.RunId]: '42' },
    );
    const calls: { bundle: string; options: unknown }[] = [];
    await expect(runRealise(realiseDeps(io, calls))).rejects.toThrow(/trusted-keys/);
    expect(calls).toEqual([]);
    expect(rec.outputs).toEqual({});
  });

  test('no-check-sigs does not unpin a shared directory; allow-unpinned-source does, warned in log and summary', async () => {
    const { artifacts } = await published();
    const env = { [RunnerEnv.RunnerTemp]: join(dir, 'runner'), [RunnerEnv.RunId]: '42' };
    const refused = recordingIO(
      { [RealiseInput.ArtifactDir]: artifacts, [RealiseInput.NoCheckSigs]: 'true' },
      env,
    );
    const none: { bundle: string; options: unknown }[] = [];
    await expect(runRealise(realiseDeps(refused.io, none))).rejects.toThrow(/allow-unpinned-source: true/);
    expect(none).toEqual([]);
    expect(refused.rec.outputs).toEqual({});

    const { io, rec } = recordingIO(
      { [RealiseInput.ArtifactDir]: artifacts, [RealiseInput.AllowUnpinnedSource]: 'true' },
      env,
    );
    const calls: { bundle: string; options: unknown }[] = [];
    await runRealise(realiseDeps(io, calls));
    expect(calls).toHaveLength(1);
    // Unpinned is not unproven: build outputs still need their proof.
    expect(calls[0]!.options).not.toHaveProperty('noCheckSigs');
    expect(rec.log).toContain(
      'warn: allow-unpinned-source: taking the plan from a shared directory ("artifact-dir") with neither "digest" nor "trusted-keys": whoever can write there chooses the plan',
    );
    expect(rec.summary[0]).toContain(
      '**NOT PINNED (allow-unpinned-source)**: this plan was taken from a shared directory ("artifact-dir") with neither `digest` nor `trusted-keys`',
    );
  });
});

describe('the deploy action', () => {
  test('a bundle file replaced after its digest was checked is refused before any host is asked', async () => {
    // `bundle:` proven only by `digest:` — the file is checked when fetched, then replaced (a
    // self-hosted runner's path swapped) before the deploy reads it: the deploy checks the digest
    // again on the private copy it verifies and sends, so the swapped plan goes nowhere.
    const published = planBundle().bytes;
    const file = join(dir, 'plan.nixplan');
    writeFileSync(file, published);
    const other = planBundle(ROOTS.slice(0, 1)).bytes;
    const { io, rec } = recordingIO(
      {
        [DeployInput.Bundle]: file,
        [DeployInput.Digest]: digestOf(published),
        [DeployInput.Hosts]: 'root@host.invalid',
        // push: no shape checks, so only the digest stands between the swapped plan and the host.
        [DeployInput.Action]: 'push',
        [DeployInput.KnownHosts]: 'host.invalid ssh-ed25519 AAAA',
      },
      { [RunnerEnv.RunnerTemp]: join(dir, 'runner') },
    );
    let seen: Parameters<typeof deployPlan>[1] | undefined;
    const shells: string[] = [];
    const deps = {
      io,
      runner: noRunner,
      transport: () => {
        throw new Error('no artifact service for a bundle file');
      },
      deployPlan: ((path, options, d) => {
        seen = options;
        writeFileSync(path, other);
        return deployPlan(path, options, {
          ...d,
          shellFor: (t) => {
            shells.push(t.host);
            throw new Error('a host was contacted');
          },
        });
      }) as typeof deployPlan,
    };
    const refused = await runDeploy(deps).catch((e: unknown) => e);
    expect(seen?.digest).toBe(digestOf(published));
    expect(refused).toBeInstanceOf(NixPlanError);
    expect((refused as NixPlanError).code).toBe('bundle');
    expect((refused as NixPlanError).message).toMatch(
      new RegExp(
        `the bundle '${file}' has sha256:[0-9a-f]{64}, not the expected digest ${digestOf(published)}`,
      ),
    );
    expect(shells).toEqual([]);
    expect(rec.summary).toEqual([]);
  });
});

describe('the deploy action with build-on: local', () => {
  test("builds the private copy on the runner with realise (which verifies it), with the action's trust inputs", async () => {
    const b = new Builder(STORE);
    const drv = await b.drv('nixos-system-web-24.05.1', { system: SYSTEM });
    const exportBytes = encodeExport(fileEntries(b.objects));
    const root = { attribute: 'web', drvPath: drv, outputs: { out: b.outPath(drv) } };
    const bundle = bundleOf(await draftFor(exportBytes, STORE, [root], 'drvs'), exportBytes).bytes;
    const file = join(dir, 'plan.nixplan');
    writeFileSync(file, bundle);
    const { io } = recordingIO(
      {
        [DeployInput.Bundle]: file,
        [DeployInput.Digest]: digestOf(bundle),
        [DeployInput.Hosts]: 'root@host.invalid',
        [DeployInput.KnownHosts]: 'host.invalid ssh-ed25519 AAAA',
        [DeployInput.BuildOn]: 'local',
        [DeployInput.NoCheckSigs]: 'true',
      },
      { [RunnerEnv.RunnerTemp]: join(dir, 'runner') },
    );
    const built: { bytes: Buffer; options: Parameters<typeof realisePlan>[1] }[] = [];
    const refused = await runDeploy({
      io,
      runner: noRunner,
      transport: () => {
        throw new Error('no artifact service for a bundle file');
      },
      deployPlan: (path, options, d) =>
        deployPlan(path, options, {
          ...d,
          // The host does not answer: what is tested is what happens here.
          shellFor: (t) => ({
            label: t.host,
            remote: true,
            run: () => Promise.reject(new NixPlanError('host', `${t.host} does not answer`)),
          }),
        }),
      realisePlan: ((path: string, options: Parameters<typeof realisePlan>[1]) => {
        built.push({ bytes: readFileSync(path), options });
        return Promise.resolve({});
      }) as unknown as typeof realisePlan,
    }).catch((e: unknown) => e);
    // The plan was built here: the private copy (the bytes the digest pins), messages naming the
    // user's file, with the action's trust settings; then the host, which never answered, failed.
    expect(built).toHaveLength(1);
    expect(built[0]!.bytes.equals(Buffer.from(bundle))).toBe(true);
    expect(built[0]!.options).toMatchObject({ name: file, trustedKeys: [], noCheckSigs: true });
    expect((refused as NixPlanError).code).toBe('host');
    expect((refused as NixPlanError).message).toContain('host.invalid does not answer');
  });
});

describe('the Nix build log', () => {
  /** An ActionIO writing what @actions/core would write, in order, into one job log. */
  function jobLog(): { io: ActionIO; text: () => string } {
    const out: string[] = [];
    const log: Logger = {
      info: (m) => out.push(`${m}\n`),
      warn: (m) => out.push(`::warning::${m}\n`),
      debug: (m) => out.push(`::debug::${m}\n`),
    };
    const progress: Progress = {
      start: (label) => {
        log.debug(`${label}…`);
        return { tick: () => undefined, done: () => log.info(`${label}: done`) };
      },
    };
    const { io } = recordingIO({}, {});
    return {
      io: {
        ...io,
        log,
        progress,
        writeLog: (c) => out.push(typeof c === 'string' ? c : Buffer.from(c).toString('utf8')),
      },
      text: () => out.join(''),
    };
  }

  test("the step's own lines between chunks of output are commands again; the output's never are", () => {
    const { io, text } = jobLog();
    const build = nixBuildLog(io);
    build.write(Buffer.from('building a\n::add-mask::secret\n'));
    build.log.warn('[a] activation is slow');
    build.write(Buffer.from('##[error]not ours, and a partial line'));
    const task = build.progress.start('importing');
    build.write(Buffer.from('::warning::still not ours\n'));
    task.tick(1);
    task.done();
    build.close();
    const commands = workflowCommands(text());
    const stops = commands.filter((c) => c.command === 'stop-commands').map((c) => c.data);
    // The runner acts on the group, each fence and its end, our warning and our debug line: not on
    // add-mask, error or warning from the output, and each fence has a token of its own.
    expect(commands.map((c) => (stops.includes(c.command) ? 'resume' : c.command))).toEqual([
      'group',
      'stop-commands',
      'resume',
      'warning',
      'stop-commands',
      'resume',
      'debug',
      'stop-commands',
      'resume',
      'endgroup',
    ]);
    expect(new Set(stops).size).toBe(3);
    expect(commands.find((c) => c.command === 'warning')?.data).toBe('[a] activation is slow');
    // A partial line of output is ended before the fence is lifted, so it cannot swallow it.
    expect(text()).toContain('a partial line\n::');
  });

  test('lines with no output around them are written as they are, outside any group', () => {
    const { io, text } = jobLog();
    const build = nixBuildLog(io);
    build.log.warn('before');
    build.close();
    expect(text()).toBe('::warning::before\n');
  });
});

/** What a rollback must not use: fetching or deploying a plan fails the test. */
const noPlanDeps = {
  runner: noRunner,
  transport: (): never => {
    throw new Error('a rollback fetched a plan');
  },
  deployPlan: (() => {
    throw new Error('a rollback deployed a plan');
  }) as unknown as typeof deployPlan,
};

describe('the deploy action with rollback: true', () => {
  test('plan inputs given beside it are not used: no plan is fetched or pinned, the log says so', async () => {
    // The same step can deploy or roll back (rollback: ${{ inputs.rollback }}): a plan source it
    // never reads needs no digest or allow-unpinned-source.
    const { io, rec } = recordingIO(
      {
        [DeployInput.Rollback]: 'true',
        [DeployInput.ArtifactDir]: join(dir, 'artifacts'),
        [DeployInput.Hosts]: 'root@host.invalid',
        [DeployInput.KnownHosts]: 'host.invalid ssh-ed25519 AAAA',
      },
      { [RunnerEnv.RunnerTemp]: join(dir, 'runner') },
    );
    const rolledBack: number[] = [];
    await runDeploy({
      io,
      ...noPlanDeps,
      deployRollback: (options) => {
        rolledBack.push(options.hosts.length);
        return Promise.resolve({ rollback: true, profile: options.profile ?? '', hosts: [], ok: true });
      },
    });
    expect(rolledBack).toEqual([1]);
    expect(rec.log).toContain('info: rollback: no plan is fetched, so "artifact-dir" is not used');
    expect(rec.log.filter((l) => l.startsWith('warn:'))).toEqual([]);
    expect(rec.outputs).not.toHaveProperty('bundle-path');
  });
});

describe('the deploy action: what a host sent, in the job log', () => {
  test("several hosts: each line of a message about a host carries the host's prefix", async () => {
    const { io, rec } = recordingIO(
      {
        [DeployInput.Rollback]: 'true',
        [DeployInput.Hosts]: 'web=root@w.invalid\ndb=root@d.invalid',
        [DeployInput.KnownHosts]: 'w.invalid ssh-ed25519 AAAA',
      },
      { [RunnerEnv.RunnerTemp]: join(dir, 'runner') },
    );
    await runDeploy({
      io,
      ...noPlanDeps,
      deployRollback: (options, hostDeps) => {
        const out = hostDeps.hostOutputs?.('web');
        out?.log.warn('web: the probe stopped (exit code 1): reset\n[db] switched\n::error::forged');
        out?.done();
        return Promise.resolve({ rollback: true, profile: options.profile ?? '', hosts: [], ok: true });
      },
    });
    expect(rec.log).toContain(
      'warn: [web] web: the probe stopped (exit code 1): reset\n[web] [db] switched\n[web] ::error::forged',
    );
  });
});

describe('the promote action', () => {
  test('relocates the plan the digest names, publishes the result and describes both realms', async () => {
    const read = planBundle();
    const file = join(dir, 'plan.nixplan');
    writeFileSync(file, read.bytes);
    const artifacts = join(dir, 'artifacts');
    const { io, rec } = recordingIO(
      {
        [PromoteInput.Bundle]: file,
        [PromoteInput.Digest]: digestOf(read.bytes),
        [PromoteInput.To]: '/beta/store',
        [PromoteInput.ArtifactDir]: artifacts,
      },
      { [RunnerEnv.RunnerTemp]: join(dir, 'runner'), [RunnerEnv.RunId]: '42' },
    );
    const promotedBytes = Buffer.from('the promoted bundle');
    const calls: { bytes: Buffer; options: Parameters<typeof relocatePlan>[1] }[] = [];
    const relocate = ((bundle: string, options: Parameters<typeof relocatePlan>[1]) => {
      calls.push({ bytes: readFileSync(bundle), options });
      writeFileSync(options.output, promotedBytes);
      return promotedTo('/beta/store', read, options.output);
    }) as unknown as typeof relocatePlan;

    await runPromote({
      io,
      runner: noRunner,
      transport: (artifactDir) => new LocalDirectoryTransport(artifactDir!, '42'),
      inspectPlan,
      relocatePlan: relocate,
      diffPlanSources: noDiff,
    });

    // The plan given was relocated, to the realm asked for, with its digest checked again.
    expect(calls).toHaveLength(1);
    expect(calls[0]!.bytes.equals(Buffer.from(read.bytes))).toBe(true);
    expect(calls[0]!.options).toMatchObject({ to: '/beta/store', digest: digestOf(read.bytes) });
    // What it wrote is what the outputs describe and what was published.
    const output = calls[0]!.options.output;
    const name = 'plan-beta-store.nixplan';
    expect(rec.outputs).toMatchObject({
      [PromoteOutput.BundlePath]: output,
      [PromoteOutput.Digest]: digestOf(promotedBytes),
      [PromoteOutput.Bytes]: String(promotedBytes.length),
      [PromoteOutput.Paths]: '0',
      [PromoteOutput.ArtifactName]: name,
    });
    expect(JSON.parse(rec.outputs[PromoteOutput.DrvPaths]!)).toEqual(ROOTS.map((r) => r.drvPath));
    expect(readFileSync(join(artifacts, '42', name)).equals(promotedBytes)).toBe(true);
    expect(rec.log).toContain(
      `info: published ${name}: ${STORE} → /beta/store (${promotedBytes.length} bytes, ${digestOf(promotedBytes)})`,
    );
    expect(rec.summary).toHaveLength(1);
    expect(rec.summary[0]).toContain('/beta/store');
    expect(rec.summary[0]).toContain(STORE);
  });

  test("a bundle that changed between the summary's read and the relocation is not published", async () => {
    // The summary describes the input from its own read; the relocation verifies and relocates a
    // private copy made later. If the file was replaced in between (a `bundle:` path swapped), the
    // summary would show one plan's origin and signatures beside another: refused, nothing published.
    const read = planBundle();
    const relocated = planBundle(ROOTS.slice(0, 1));
    const file = join(dir, 'plan.nixplan');
    writeFileSync(file, read.bytes);
    const { io, rec } = recordingIO(
      {
        [PromoteInput.Bundle]: file,
        [PromoteInput.Digest]: digestOf(read.bytes),
        [PromoteInput.To]: '/beta/store',
        [PromoteInput.ArtifactDir]: join(dir, 'artifacts'),
      },
      { [RunnerEnv.RunnerTemp]: join(dir, 'runner'), [RunnerEnv.RunId]: '42' },
    );
    const uploads: string[] = [];
    const relocate = ((_bundle: string, options: Parameters<typeof relocatePlan>[1]) => {
      writeFileSync(options.output, 'promoted');
      return promotedTo('/beta/store', relocated, options.output);
    }) as unknown as typeof relocatePlan;
    const refused = await runPromote({
      io,
      runner: noRunner,
      transport: () => ({
        upload: (f: string) => {
          uploads.push(f);
          return Promise.reject(new Error('uploaded'));
        },
        download: () => Promise.reject(new Error('no download for a bundle file')),
      }),
      inspectPlan,
      relocatePlan: relocate,
      diffPlanSources: noDiff,
    }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(NixPlanError);
    expect((refused as NixPlanError).code).toBe('bundle');
    expect((refused as NixPlanError).message).toBe(
      `'${file}' changed while it was promoted (read with manifest ${read.manifest.checksum}, relocated from ${relocated.manifest.checksum}): nothing was published`,
    );
    expect(uploads).toEqual([]);
    expect(rec.summary).toEqual([]);
    expect(rec.outputs).toEqual({});
  });
});

describe("a refusal an action user meets names the action's input, not the command line's flag", () => {
  /** No `--flag` in the message: an action user has none to give. */
  const noFlag = /(^|[\s('"])--[a-z]/;

  /** Runs the deploy action on `bundle` with `inputs`; the hosts never answer. What it threw. */
  async function deployRefusal(
    inputs: Record<string, string>,
    bundle: Uint8Array = planBundle().bytes,
    shell?: (host: string) => HostShell,
  ): Promise<{ error: NixPlanError; asked: string[] }> {
    const file = join(dir, 'plan.nixplan');
    writeFileSync(file, bundle);
    const { io } = recordingIO(
      {
        [DeployInput.Bundle]: file,
        [DeployInput.Digest]: digestOf(bundle),
        [DeployInput.Hosts]: 'root@host.invalid',
        [DeployInput.KnownHosts]: 'host.invalid ssh-ed25519 AAAA',
        ...inputs,
      },
      { [RunnerEnv.RunnerTemp]: join(dir, 'runner') },
    );
    const asked: string[] = [];
    const refused = await runDeploy({
      io,
      runner: noRunner,
      transport: () => {
        throw new Error('no artifact service for a bundle file');
      },
      deployPlan: (path, options, d) =>
        deployPlan(path, options, {
          ...d,
          shellFor: (t) =>
            shell?.(t.host) ?? {
              label: t.host,
              remote: true,
              run: () => {
                asked.push(t.host);
                return Promise.reject(new NixPlanError('host', `${t.host} does not answer`));
              },
            },
        }),
    }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(NixPlanError);
    return { error: refused as NixPlanError, asked };
  }

  test('deploy: a host of another realm is told to relocate with promote\'s "to", not a command', async () => {
    // An `ssh` that runs no host: whatever it is asked, it answers a probe of a Nix whose store is elsewhere.
    const ssh = join(dir, 'ssh');
    writeFileSync(
      ssh,
      "#!/bin/sh\nprintf '@nix-plan protocol 1\\n@nix-plan uid 0\\n@nix-plan nix nix-store (Nix) 2.34.0\\n" +
        '@nix-plan store-dir "/other/store"\\n@nix-plan end\\n\'\n',
      { mode: 0o755 },
    );
    const b = new Builder(STORE);
    const drv = await b.drv('nixos-system-web-24.05.1', { system: SYSTEM });
    const exportBytes = encodeExport(fileEntries(b.objects));
    const draft = await draftFor(exportBytes, STORE, [
      { attribute: 'web', drvPath: drv, outputs: { out: b.outPath(drv) } },
    ]);
    const plan = bundleOf(draft, exportBytes).bytes;
    const { error } = await deployRefusal({ [DeployInput.Action]: 'push' }, plan, (host) => {
      return new SshHost({ host }, { program: ssh });
    });
    expect(error.code).toBe('realm');
    expect(error.message).toBe(
      "host.invalid: the plan is for store dir /nix/store, the host's Nix uses /other/store: " +
        'relocate the plan to the host\'s realm first (the promote action, "to: /other/store"); nothing was sent',
    );
    expect(error.message).not.toMatch(noFlag);
    expect(error.message).not.toMatch(/nix-plan relocate/);
  });

  test('deploy: a plan over the size limit offers no input to raise it (the actions have none)', async () => {
    // A forger's manifest (checksum recomputed) that declares more than the 64 GiB a reader takes.
    const plain = planBundle();
    const draft = await draftFor(encodeExport([]), STORE, ROOTS);
    const size = 64 * 1024 ** 3 + 1;
    const forged = bundleOf(draft, encodeExport([]), {
      manifest: { stream: { ...plain.manifest.stream, size } },
    }).bytes;
    const { error } = await deployRefusal({ [DeployInput.Action]: 'push' }, forged);
    expect(error.code).toBe('limit');
    expect(error.message).toBe(
      `the bundle's export stream is ${size} bytes, more than the limit of ${size - 1} bytes ` +
        "(the limit keeps a plan from filling the runner's disk, and no input raises it)",
    );
    expect(error.message).not.toMatch(noFlag);
  });

  test('deploy: a relative profile with use-sudo names "profile" and "use-sudo"', async () => {
    const { error, asked } = await deployRefusal({
      [DeployInput.Profile]: 'profiles/system',
      [DeployInput.UseSudo]: 'true',
    });
    expect(error.code).toBe('usage');
    expect(error.message).toBe(
      `"profile" 'profiles/system' is relative: with "use-sudo: true" give an absolute path ` +
        "(a relative one would be taken from the home sudo chooses, not the login's)",
    );
    expect(asked).toEqual([]);
  });

  test('deploy: hosts without names name "hosts" and the line to write', async () => {
    // Several roots and one host with no name; several hosts, one without a name.
    const several = await deployRefusal({});
    expect(several.error.message).toContain(
      'name the host after its root ("hosts: NAME=[USER@]HOST") to deploy one',
    );
    const unnamed = await deployRefusal({ [DeployInput.Hosts]: 'r0=root@a.invalid\nroot@b.invalid' });
    expect(unnamed.error.message).toBe('with several hosts, give each a name: "hosts: NAME=[USER@]HOST"');
    for (const { error, asked } of [several, unnamed]) {
      expect(error.message).not.toMatch(noFlag);
      expect(asked).toEqual([]);
    }
  });

  test('deploy: a root that is no NixOS system offers no option the action lacks', async () => {
    // The command line's way out (--allow-any-root) is no input of the action: not offered.
    const { error, asked } = await deployRefusal({ [DeployInput.Hosts]: 'r1=root@host.invalid' });
    expect(error.message).toMatch(/^root 'r1' builds 'r1', not a NixOS system/);
    expect(error.message).not.toMatch(/allow-any-root/);
    expect(error.message).not.toMatch(noFlag);
    expect(asked).toEqual([]);
  });

  test('deploy: an unproven system names "trusted-keys" and "action: push"', async () => {
    // An `outputs` plan whose build output nothing signed, taken with no-check-sigs: activated never.
    const { bytes } = await unprovenSystemPlan();
    const { error } = await deployRefusal({ [DeployInput.NoCheckSigs]: 'true' }, bytes);
    expect(error.code).toBe('signature');
    expect(error.message).toBe(
      'the plan holds 1 build output no trusted key signed: deploy activates only a proven system ' +
        '(give "trusted-keys"; "action: push" only stages it)',
    );
  });

  test('realise: roots that name no root name "roots"; max-age names "max-age"', async () => {
    const bundle = planBundle();
    const file = join(dir, 'plan.nixplan');
    writeFileSync(file, bundle.bytes);
    const env = { [RunnerEnv.RunnerTemp]: join(dir, 'runner') };
    const base = { [RealiseInput.Bundle]: file, [RealiseInput.Digest]: digestOf(bundle.bytes) };
    // The plan was made in January: a day is too old.
    const stale = recordingIO({ ...base, [RealiseInput.MaxAge]: '1d' }, env);
    const deps = (io: ActionIO): RealiseDeps => ({
      io,
      runner: noRunner,
      transport: () => {
        throw new Error('no artifact service for a bundle file');
      },
      inspectPlan,
      realisePlan: () => Promise.reject(new Error('realised a stale plan')),
    });
    const old = await runRealise(deps(stale.io)).catch((e: unknown) => e);
    expect((old as NixPlanError).code).toBe('stale');
    expect((old as NixPlanError).message).toMatch(
      new RegExp(`^the plan was created at ${FIXTURE_CREATED_AT}, .* ago: older than "max-age: 1d" allows$`),
    );
    // The same plan for another realm: refused for its realm, which no max-age would change.
    const elsewhere = recordingIO({ ...base, [RealiseInput.MaxAge]: '1d' }, env);
    const otherStore: CommandRunner = {
      run: (cmd, args) =>
        args.includes('builtins.storeDir')
          ? Promise.resolve({ code: 0, stdout: Buffer.from('"/other/store"'), stderr: '' })
          : Promise.reject(new Error(`not asked in this test: ${cmd}`)),
    };
    const realm = await runRealise({ ...deps(elsewhere.io), runner: otherStore }).catch((e: unknown) => e);
    expect((realm as NixPlanError).code).toBe('realm');
    expect((realm as NixPlanError).message).toBe(
      `'${file}' is a plan for the store dir ${STORE}, but this store's dir is /other/store; ` +
        'relocate it first (the promote action, "to: /other/store")',
    );
    // The roots are refused by realisePlan itself, as the action asks it (its selection, here).
    const typo = recordingIO({ ...base, [RealiseInput.Roots]: 'r9' }, env);
    const named = await runRealise({
      ...deps(typo.io),
      realisePlan: (async (path: string, options: Parameters<typeof realisePlan>[1]) => {
        const { manifest } = await inspectPlan(path);
        selectRoots(manifest.roots, options.roots, options.optionNames);
        throw new Error('the roots were accepted');
      }) as unknown as typeof realisePlan,
    }).catch((e: unknown) => e);
    expect((named as NixPlanError).message).toMatch(
      /^"roots" 'r9' matches no root of the bundle; its roots are: 0=r0/,
    );
  });

  test('promote: max-age names "max-age"', async () => {
    const bundle = planBundle();
    const file = join(dir, 'plan.nixplan');
    writeFileSync(file, bundle.bytes);
    const { io } = recordingIO(
      {
        [PromoteInput.Bundle]: file,
        [PromoteInput.Digest]: digestOf(bundle.bytes),
        [PromoteInput.To]: '/beta/store',
        [PromoteInput.MaxAge]: '2h',
        [PromoteInput.Upload]: 'false',
      },
      { [RunnerEnv.RunnerTemp]: join(dir, 'runner') },
    );
    const refused = await runPromote({
      io,
      runner: noRunner,
      transport: () => {
        throw new Error('no artifact service for a bundle file');
      },
      inspectPlan,
      relocatePlan: (() =>
        Promise.reject(new Error('relocated a stale plan'))) as unknown as typeof relocatePlan,
      diffPlanSources: noDiff,
    }).catch((e: unknown) => e);
    expect((refused as NixPlanError).code).toBe('stale');
    expect((refused as NixPlanError).message).toMatch(/older than "max-age: 2h" allows$/);
  });
  test('deploy: a build output nothing proves names "trusted-keys" and "no-check-sigs: true"', async () => {
    // An `outputs` plan whose build output no key signed, and no no-check-sigs: the verifier refuses.
    const { bytes, out } = await unprovenSystemPlan();
    const { error } = await deployRefusal({}, bytes);
    expect(error.code).toBe('signature');
    expect(error.message).toBe(
      `'${out}' is a build output, whose content only a signature by a trusted key can vouch for, ` +
        'and no trusted key signed this plan: give the public key that signed the plan in "trusted-keys", ' +
        'or accept it unproven with "no-check-sigs: true"',
    );
    expect(error.message).not.toMatch(noFlag);
  });

  test('realise: no room in the temp dir says what a runner\'s user can do, not "point TMPDIR"', async () => {
    // A plan declaring 4 PiB uncompressed: no temp dir has the room; refused before decompressing.
    const plain = planBundle();
    const draft = await draftFor(encodeExport([]), STORE, ROOTS);
    const huge = bundleOf(draft, encodeExport([]), {
      manifest: { stream: { ...plain.manifest.stream, size: 2 ** 52 } },
    }).bytes;
    const file = join(dir, 'plan.nixplan');
    writeFileSync(file, huge);
    const { io } = recordingIO(
      { [RealiseInput.Bundle]: file, [RealiseInput.Digest]: digestOf(huge) },
      { [RunnerEnv.RunnerTemp]: join(dir, 'runner') },
    );
    const commands: string[] = [];
    // Nix answers what its store dir is, and nothing else.
    const storeDirOnly: CommandRunner = {
      run: (cmd, args) => {
        commands.push([cmd, ...args].join(' '));
        if (cmd === 'nix-instantiate' && args.includes('builtins.storeDir'))
          return Promise.resolve({
            code: 0,
            stdout: Buffer.from(JSON.stringify(STORE)),
            stderr: '',
          });
        return Promise.reject(new NixPlanError('nix', `not asked in this test: ${cmd}`));
      },
    };
    const refused = await runRealise({
      io,
      runner: storeDirOnly,
      transport: () => {
        throw new Error('no artifact service for a bundle file');
      },
      inspectPlan,
      realisePlan,
    }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(NixPlanError);
    const error = refused as NixPlanError;
    expect(error.code).toBe('limit');
    expect(error.message).toMatch(
      new RegExp(
        `^the plan is ${2 ** 52} bytes uncompressed, but \\S+ has room for \\d+: free some on the runner ` +
          '\\(a step before this one can delete what the job no longer needs\\), or run the job on a runner with a larger disk$',
      ),
    );
    expect(error.message).not.toMatch(/TMPDIR/);
    // Only questions were asked of Nix (its store dir, whether it trusts this user).
    expect(commands.filter((c) => !/builtins\.storeDir|store ping/.test(c))).toEqual([]);
  });

  test('promote: a copy of a path the plan lacks names the plan action\'s "include: sources"', async () => {
    // A source named after the hash of a store path the plan does not hold (a filtered copy): its
    // name in the target store dir cannot be known, so relocation refuses it.
    const b = new Builder(STORE);
    const copied = await b.source(`${'q'.repeat(32)}-src`, 'filtered bytes');
    const drv = await b.drv('hello-1.0', { system: SYSTEM, inputSrcs: [copied] });
    const exportBytes = encodeExport(fileEntries(b.objects));
    const draft = await draftFor(exportBytes, STORE, [
      { attribute: 'hello', drvPath: drv, outputs: { out: b.outPath(drv) } },
    ]);
    const plan = bundleOf(draft, exportBytes).bytes;
    const file = join(dir, 'plan.nixplan');
    writeFileSync(file, plan);
    const { io } = recordingIO(
      {
        [PromoteInput.Bundle]: file,
        [PromoteInput.Digest]: digestOf(plan),
        [PromoteInput.To]: '/beta/store',
        [PromoteInput.Upload]: 'false',
      },
      { [RunnerEnv.RunnerTemp]: join(dir, 'runner') },
    );
    const refused = await runPromote({
      io,
      runner: noRunner,
      transport: () => {
        throw new Error('no artifact service for a bundle file');
      },
      inspectPlan,
      relocatePlan: realRelocatePlan,
      diffPlanSources: noDiff,
    }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(NixPlanError);
    const error = refused as NixPlanError;
    expect(error.code).toBe('relocate');
    expect(error.message).toMatch(/^cannot relocate \S+-q{32}-src: its name starts with the hash of/);
    expect(error.message).toMatch(
      /give the copy a name \(builtins\.path \{ name = …; \}\) or make the plan with the plan action's "include: sources" if it was built while evaluating$/,
    );
    expect(error.message).not.toMatch(noFlag);
  });

  test('plan: a compare-to plan from another store dir that cannot be relocated names "include: sources"', async () => {
    // The compared plan is for /beta/store and holds a filtered copy of a path it does not have:
    // relocating it into this plan's store dir to compare is refused, and the step says why.
    const b = new Builder('/beta/store');
    const copied = await b.source(`${'q'.repeat(32)}-src`, 'filtered bytes');
    const drv = await b.drv('hello-1.0', { system: SYSTEM, inputSrcs: [copied] });
    const exportBytes = encodeExport(fileEntries(b.objects));
    const draft = await draftFor(exportBytes, '/beta/store', [
      { attribute: 'hello', drvPath: drv, outputs: { out: b.outPath(drv) } },
    ]);
    const baseline = join(dir, 'old', 'plan.nixplan');
    mkdirSync(join(dir, 'old'));
    writeFileSync(baseline, bundleOf(draft, exportBytes).bytes);
    const nb = new Builder(STORE);
    const newDrv = await nb.drv('hello-1.1', { system: SYSTEM });
    const newExport = encodeExport(fileEntries(nb.objects));
    const newDraft = await draftFor(newExport, STORE, [
      { attribute: 'hello', drvPath: newDrv, outputs: { out: nb.outPath(newDrv) } },
    ]);
    const current = join(dir, 'new.nixplan');
    writeFileSync(current, bundleOf(newDraft, newExport).bytes);
    const { io } = recordingIO({}, { [RunnerEnv.RunnerTemp]: join(dir, 'runner') });
    const comparison = await comparePlans(
      { source: { kind: 'file', path: baseline }, token: undefined, trustedKeys: [], artifactDir: undefined },
      current,
      {
        io,
        runner: noRunner,
        transport: () => {
          throw new Error('no artifact service for a file');
        },
        diffPlanSources,
      },
      { changed: PlanOutput.Changed, changes: PlanOutput.Changes },
      join(dir, 'baseline'),
    );
    const refused = 'refused' in comparison ? comparison.refused : undefined;
    expect(refused?.code).toBe('relocate');
    expect(refused?.message).toMatch(
      /or make the plan with the plan action's "include: sources" if it was built while evaluating$/,
    );
    expect(refused?.message).not.toMatch(noFlag);
  });
});
