// `nix-plan diff` on plans built in the test with real Nix 2.8 and 2.34: a version bump, an added
// and a removed package, a rebuild-only change (an input's environment), a renamed output, a
// floating content-addressed change, a relocated plan, a .drv and a profile as the old side, the
// drill-down, the JSON document against its published schema, and refusals: every plan verify
// refuses (a damaged one, a forged .drv, unproven build outputs) is refused alike.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { createHash } from 'node:crypto';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger, type Deps } from '../../src/app/deps.js';
import { diffPlanSources } from '../../src/app/diff.js';
import { type PlanLocation } from '../../src/app/plan-reader.js';
import { exportPlan } from '../../src/app/export.js';
import { relocatePlan } from '../../src/app/relocate.js';
import { formatDiff } from '../../src/cli/diff-format.js';
import { main } from '../../src/cli/main.js';
import type { CliIo } from '../../src/cli/terminal.js';
import { PLAN_DIFF_JSON_SCHEMA, parsePlanDiff } from '../../src/core/diff/schema.js';
import type { PlanDiff } from '../../src/core/diff/plan-diff.js';
import type { DrvDiff } from '../../src/core/diff/derivation-diff.js';
import { generateKeyPair, parseSecretKey } from '../../src/core/signing.js';
import { NixPlanError } from '../../src/core/errors.js';
import { nixVersions, ScratchStore, SYSTEM, type NixVersion } from '../support/nix.js';
import type { PlanContents } from '../../src/app/contents.js';
import {
  draftOf,
  editDerivation,
  entryEnding,
  fileOfNar,
  forgeBundle,
  loadPlan,
  narOfFile,
  withEntry,
  withNar,
  type Plan,
} from '../support/forge.js';

const REPO = join(import.meta.dirname, '..', '..');
const SOURCE = join(REPO, '__tests__', 'fixtures', 'diff', 'default.nix');
const bundle = (path: string): PlanLocation => ({ kind: 'bundle', path });

/** The package changes of a diff as `name: change`, sorted. */
const changes = (d: PlanDiff): string[] => d.total.packages.map((p) => `${p.name}: ${p.change}`);

describe.each(nixVersions())('diff with Nix $label', (version: NixVersion) => {
  let work: string;
  /** The fixture copied out of this repository: evaluated inside it, every plan would carry this
   * checkout's commit and dirty flag as provenance, and a file changed during the run would make
   * two plans of the same content differ. */
  let FIXTURE: string;
  let store: ScratchStore;
  let deps: Deps;
  const key = generateKeyPair('diff-ci-1');
  let oldPlan: string;
  let newPlan: string;

  async function exportVariant(variant: string, name: string, extra: object = {}): Promise<string> {
    const output = join(work, `${name}.nixplan`);
    await exportPlan(
      {
        file: FIXTURE,
        attributes: ['app', 'tools'],
        evalArgs: ['--argstr', 'variant', variant],
        output,
        // One creation time for every variant: the plans differ in content only.
        now: () => new Date('2026-12-01T00:00:00Z'),
        ...extra,
      },
      deps,
    );
    return output;
  }

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'nix-plan-diff-'));
    FIXTURE = join(work, 'default.nix');
    copyFileSync(SOURCE, FIXTURE);
    store = new ScratchStore(version);
    deps = { runner: store.runner, log: silentLogger };
    oldPlan = await exportVariant('old', 'old', { signingKey: key.secretKey });
    newPlan = await exportVariant('new', 'new');
  }, 120_000);

  afterAll(() => {
    store.dispose();
    rmSync(work, { recursive: true, force: true });
  });

  /** Runs the command line quietly: its exit code and what it wrote. */
  async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
    let out = '';
    let err = '';
    const io: CliIo = {
      stdout: { write: (s: string) => (out += s) },
      stderr: { write: (s: string) => (err += s) },
    };
    const code = await main([...args, '-q'], { io, runner: store.runner });
    return { code, out, err };
  }

  /**
   * `forged` is refused by verify, and by diff as the old and as the new plan, with verify's exit
   * code and a message containing `what`; diff prints nothing on stdout.
   */
  async function refusedAsVerifyRefuses(forged: string, what: string): Promise<void> {
    const verify = await cli(['verify', forged]);
    expect(verify.code).toBeGreaterThan(2);
    expect(verify.err).toContain(what);
    for (const pair of [
      [oldPlan, forged],
      [forged, newPlan],
    ]) {
      const diff = await cli(['diff', ...pair]);
      expect({ code: diff.code, out: diff.out }).toEqual({ code: verify.code, out: '' });
      expect(diff.err).toContain(what);
    }
  }

  /** The plan with the output path of its .drv ending in `suffix` set to `wrong`, every other path recomputed. */
  async function wrongOutput(plan: Plan, suffix: string, wrong: string): Promise<Plan> {
    return editDerivation(plan, entryEnding(plan, suffix).path, (d) => {
      d.outputs[0]!.path = wrong;
    });
  }

  test('package by package, per root and in total', async () => {
    const d = await diffPlanSources(bundle(oldPlan), bundle(newPlan), {}, deps);
    expect(d.identical).toBe(false);
    expect(changes(d)).toEqual([
      'app: rebuilt',
      'cathing: rebuilt',
      'curl: rebuilt',
      'libbar: added',
      'libfoo: removed',
      'openssl: upgrade',
      'tool: rebuilt',
      'tools: rebuilt',
      'zlib: rebuilt',
    ]);
    expect(d.total.counts).toEqual({
      upgrade: 1,
      downgrade: 0,
      changed: 0,
      added: 1,
      removed: 1,
      rebuilt: 6,
    });
    expect(d.total.derivations).toEqual({ old: 9, new: 9, added: 8, removed: 8 });
    const byName = Object.fromEntries(d.total.packages.map((p) => [p.name, p]));
    expect(byName['openssl']?.old.versions).toEqual(['3.0.12']);
    expect(byName['openssl']?.new.versions).toEqual(['3.0.13']);
    // The renamed output and the floating content-addressed output are visible at package level.
    expect(byName['tool']?.old.outputs).toEqual(['dev', 'out']);
    expect(byName['tool']?.new.outputs).toEqual(['lib', 'out']);
    expect(byName['cathing']?.old.outputKinds).toEqual(['input-addressed']);
    expect(byName['cathing']?.new.outputKinds).toEqual(['floating']);
    // Every drv path listed is one of the plans' own.
    expect(byName['openssl']?.new.drvs[0]).toMatch(/-openssl-3\.0\.13\.drv$/);

    expect(d.roots.map((r) => [r.label, r.status])).toEqual([
      ['app', 'changed'],
      ['tools', 'changed'],
    ]);
    const [app, tools] = d.roots;
    expect(app?.counts).toEqual({ upgrade: 1, downgrade: 0, changed: 0, added: 1, removed: 1, rebuilt: 4 });
    expect(app?.packages?.rebuilt).toEqual(['app', 'cathing', 'curl', 'zlib']);
    expect(tools?.packages).toEqual({ versions: [], added: [], removed: [], rebuilt: ['tool', 'tools'] });

    // The plan facts: the old one is signed (not checked without keys), the new one is not.
    expect(d.old.bundle?.signatures).toEqual([{ key: 'diff-ci-1', status: 'not-checked' }]);
    // (Each was evaluated at its own time: createdAt may differ by a second.)
    expect(d.fields.filter((f) => f.field !== 'createdAt')).toEqual([
      { field: 'signedBy', old: 'diff-ci-1', new: 'unsigned' },
    ]);

    const text = formatDiff(d);
    expect(text).toContain('Version changes:\n  [U] openssl  3.0.12 → 3.0.13');
    expect(text).toContain('Added packages:\n  [A] libbar  2.0');
    expect(text).toContain('Removed packages:\n  [R] libfoo  1.0');
    expect(text).toContain('Rebuilt at the same version (inputs changed): 6');
    expect(text).toMatch(/\[B\] tool +1\.0 +\(outputs dev, out → lib, out\)/);
    expect(text).toMatch(/\[B\] cathing +1\.0 +\(input-addressed → floating\)/);
    expect(text).toContain('  tools: changed — 2 rebuilt');
  });

  test('a plan against itself is empty; with trusted keys its signature is verified', async () => {
    const d = await diffPlanSources(bundle(oldPlan), bundle(oldPlan), { trustedKeys: [key.publicKey] }, deps);
    expect(d.identical).toBe(true);
    expect(d.total.packages).toEqual([]);
    expect(d.fields).toEqual([]);
    expect(d.roots.every((r) => r.status === 'unchanged')).toBe(true);
    expect(d.old.bundle?.signatures).toEqual([{ key: 'diff-ci-1', status: 'verified' }]);
    expect(formatDiff(d)).toContain('No changes: both hold the same 9 derivations and roots.');
    expect(formatDiff(d)).toContain('verified: signed by trusted key diff-ci-1');
  });

  test('what is shown is what was verified: a bundle rewritten in place while it is read changes nothing', async () => {
    // The forger owns the old side's file and rewrites it in place with another plan once the
    // diff has opened it. Every read (store dir, manifest, digest, verified stream, drill-down
    // files) comes from a private copy made first, so the diff is the one of the file as it was.
    const file = join(work, 'rewritten.nixplan');
    const original = readFileSync(oldPlan);
    writeFileSync(file, original);
    const progress = {
      start: () => {
        writeFileSync(file, readFileSync(newPlan));
        return { tick: () => undefined, done: () => undefined };
      },
    };
    const d = await diffPlanSources(bundle(file), bundle(newPlan), { drv: 'curl' }, { ...deps, progress });
    const expected = await diffPlanSources(bundle(oldPlan), bundle(newPlan), { drv: 'curl' }, deps);
    expect(d.identical).toBe(false);
    expect(d.old.bundle?.digest).toBe(`sha256:${createHash('sha256').update(original).digest('hex')}`);
    expect({ ...d, old: { ...d.old, source: oldPlan } }).toEqual(expected);
    expect(d.old.source).toBe(file);
  });

  test('a .drv both plans hold is still checked against its path on each side', async () => {
    // The new side takes the heads of .drv files the old one holds instead of parsing them again;
    // the bytes behind each such path must still be the ones the path is the hash of.
    const [oldEntries, newEntries] = await Promise.all(
      [oldPlan, newPlan].map(async (f) => loadPlan(readFileSync(f))),
    );
    const oldPaths = new Set(oldEntries!.entries.map((e) => e.path));
    const shared = newEntries!.entries.find((e) => e.path.endsWith('.drv') && oldPaths.has(e.path));
    if (shared === undefined) throw new Error('the fixture plans share no .drv');
    const contents = Buffer.from(await fileOfNar(shared.nar));
    const at = contents.indexOf('/bin/sh');
    expect(at).toBeGreaterThan(0);
    contents[at + 6] = 'X'.charCodeAt(0);
    for (const [side, plan] of [
      ['new', newEntries!],
      ['old', oldEntries!],
    ] as const) {
      const forged = join(work, `forged-${side}.nixplan`);
      // Counted as the .drv it claims to be (the same size), so only the path check can catch it.
      const { counts, narBytes } = await draftOf(plan);
      writeFileSync(
        forged,
        await forgeBundle(withNar(plan, shared.path, narOfFile(contents)), {
          manifest: { counts, narBytes },
        }),
      );
      const pair = side === 'new' ? [oldPlan, forged] : [forged, newPlan];
      await expect(diffPlanSources(bundle(pair[0]!), bundle(pair[1]!), {}, deps)).rejects.toThrow(
        /is not the hash of its contents and references: the bundle was altered/,
      );
    }

    // The same .drv forged alike in both plans (an output path Nix would not compute, every path
    // recomputed, so it is again one .drv both hold): refused with the old side, whose checks the
    // new side would have taken; and refused when only the new plan holds it.
    const wrong = `${oldEntries!.storeDir}/${'1'.repeat(32)}-hello-2.12`;
    const [forgedOld, forgedNew] = await Promise.all(
      [oldEntries!, newEntries!].map((p) => wrongOutput(p, '-hello-2.12.drv', wrong)),
    );
    const hello = entryEnding(forgedNew!, '-hello-2.12.drv').path;
    expect(entryEnding(forgedOld!, '-hello-2.12.drv').path).toBe(hello);
    const files = await Promise.all(
      [forgedOld!, forgedNew!].map(async (p, i) => {
        const f = join(work, `wrong-hello-${i}.nixplan`);
        writeFileSync(f, await forgeBundle(p));
        return f;
      }),
    );
    const message = `derivation '${hello}' has output 'out' at '${wrong}', but Nix computes`;
    await expect(diffPlanSources(bundle(files[0]!), bundle(files[1]!), {}, deps)).rejects.toThrow(message);
    await expect(diffPlanSources(bundle(oldPlan), bundle(files[1]!), {}, deps)).rejects.toThrow(message);
  });

  test('a .drv whose output path is not the one Nix computes is refused as verify refuses it', async () => {
    const plan = await loadPlan(readFileSync(newPlan));
    const wrong = `${plan.storeDir}/${'0'.repeat(32)}-openssl-3.0.13`;
    const edited = await wrongOutput(plan, '-openssl-3.0.13.drv', wrong);
    const forged = join(work, 'wrong-output.nixplan');
    writeFileSync(forged, await forgeBundle(edited));
    const drv = entryEnding(edited, '-openssl-3.0.13.drv').path;
    await refusedAsVerifyRefuses(
      forged,
      `derivation '${drv}' has output 'out' at '${wrong}', but Nix computes`,
    );
  });

  test('build outputs no trusted key signed are refused, or shown unproven, as verify treats them', async () => {
    // An `outputs` plan whose root outputs hold whatever its author wrote: only a signature by a
    // trusted key can vouch for them.
    const plan = await loadPlan(readFileSync(newPlan));
    let withOutputs: Plan = { ...plan, include: 'outputs' };
    const outputs: string[] = [];
    for (const r of plan.roots)
      for (const path of Object.values(r.outputs))
        if (path !== '') {
          withOutputs = withEntry(withOutputs, {
            path,
            references: [],
            deriver: r.drvPath,
            nar: narOfFile('#!/bin/sh\necho forged\n'),
          });
          outputs.push(path);
        }
    expect(outputs.length).toBeGreaterThan(0);
    const unsigned = join(work, 'unsigned-outputs.nixplan');
    writeFileSync(unsigned, await forgeBundle(withOutputs));
    await refusedAsVerifyRefuses(unsigned, `'${outputs[0]}' is a build output`);

    // --no-check-sigs, as verify takes it: accepted, and the diff says how much was not proven.
    expect((await cli(['verify', unsigned, '--no-check-sigs'])).code).toBe(0);
    const d = await diffPlanSources(bundle(oldPlan), bundle(unsigned), { noCheckSigs: true }, deps);
    expect(d.new.bundle).toMatchObject({ include: 'outputs', noCheckSigs: true, unproven: outputs.length });
    expect(d.old.bundle).toMatchObject({ noCheckSigs: true, unproven: 0 });
    expect(parsePlanDiff(JSON.parse(JSON.stringify(d)))).toEqual(d);
    const text = (await cli(['diff', oldPlan, unsigned, '--no-check-sigs'])).out;
    expect(text).toContain(
      `NOT CHECKED (--no-check-sigs): ${outputs.length} unproven path${outputs.length === 1 ? '' : 's'}`,
    );
    expect(text).not.toContain('verified');
    // inspect --contents reads a plan the same way.
    expect((await cli(['inspect', unsigned, '--contents'])).code).toBe(4);
    const contents = await cli(['inspect', unsigned, '--contents', '--no-check-sigs']);
    expect(contents.code).toBe(0);
    expect(contents.out).toContain(
      `trust: NOT CHECKED (--no-check-sigs): ${outputs.length} unproven path${outputs.length === 1 ? '' : 's'}`,
    );

    // Signed: a trusted key proves them; a signature by a key not given proves nothing.
    const signed = join(work, 'signed-outputs.nixplan');
    writeFileSync(signed, await forgeBundle(withOutputs, { keys: [parseSecretKey(key.secretKey)] }));
    const s = await diffPlanSources(bundle(oldPlan), bundle(signed), { trustedKeys: [key.publicKey] }, deps);
    expect(s.new.bundle?.signatures).toEqual([{ key: 'diff-ci-1', status: 'verified' }]);
    expect(s.new.bundle?.unproven).toBeUndefined();
    await refusedAsVerifyRefuses(signed, `'${outputs[0]}' is a build output`);
  });

  test('--json round-trips through the published schema', async () => {
    const d = await diffPlanSources(bundle(oldPlan), bundle(newPlan), { drv: 'curl' }, deps);
    const text = JSON.stringify(d);
    const back = parsePlanDiff(JSON.parse(text));
    expect(back).toEqual(d);
    expect(JSON.stringify(back)).toBe(text);
    // docs/diff.schema.json is the schema the validator checks with.
    const published = JSON.parse(readFileSync(join(REPO, 'docs', 'diff.schema.json'), 'utf8')) as unknown;
    expect(published).toEqual(PLAN_DIFF_JSON_SCHEMA);
    // And the validator is not a rubber stamp.
    const bad = JSON.parse(text) as { total: { counts: Record<string, unknown> } };
    bad.total.counts['upgrade'] = -1;
    expect(() => parsePlanDiff(bad)).toThrow(/\$\.total\.counts\.upgrade must be at least 0/);
    const extra = { ...(JSON.parse(text) as object), surprise: 1 };
    expect(() => parsePlanDiff(extra)).toThrow(/unknown member 'surprise'/);
  });

  test('--drv: an environment change, followed from a rebuilt package down to its cause', async () => {
    const d = await diffPlanSources(bundle(oldPlan), bundle(newPlan), { drv: 'curl' }, deps);
    const [curl] = d.drv ?? [];
    expect(curl?.old).toMatch(/-curl-8\.6\.0\.drv$/);
    // curl's own environment differs only by its inputs' new paths…
    expect(curl?.env.changed).toEqual([]);
    expect(curl?.env.pathsOnly).toEqual(expect.arrayContaining(['buildInputs', 'out']));
    // …its inputs changed: openssl (a version bump) and zlib (an environment variable).
    const inputs = Object.fromEntries((curl?.inputDrvs.changed ?? []).map((c) => [c.name, c]));
    expect(Object.keys(inputs).sort()).toEqual(['openssl', 'zlib-1.3']);
    const zlib = inputs['zlib-1.3']?.diff as DrvDiff;
    expect(zlib.env.changed).toEqual([
      { key: 'configureFlags', old: '--disable-static', new: '--enable-static' },
    ]);
    // zlib is reached again below openssl: compared once.
    const viaOpenssl = inputs['openssl']?.diff?.inputDrvs.changed.find((c) => c.name === 'zlib-1.3');
    expect(viaOpenssl?.note).toBe('already-compared');
    const text = formatDiff(d);
    expect(text).toContain('• The input derivation zlib-1.3 differs:');
    expect(text).toMatch(/• configureFlags:\n\s+- --disable-static\n\s+\+ --enable-static/);
  });

  test('--drv: a renamed output and a floating content-addressed output', async () => {
    const tool = await diffPlanSources(bundle(oldPlan), bundle(newPlan), { drv: 'tool' }, deps);
    const [t] = tool.drv ?? [];
    expect(t?.outputs.removed.map((o) => o.name)).toEqual(['dev']);
    expect(t?.outputs.added.map((o) => o.name)).toEqual(['lib']);
    expect(t?.env.changed.map((e) => e.key)).toEqual(['outputs']);
    const ca = await diffPlanSources(bundle(oldPlan), bundle(newPlan), { drv: 'cathing-1.0' }, deps);
    const [c] = ca.drv ?? [];
    expect(c?.outputs.changed).toEqual([
      {
        name: 'out',
        old: { name: 'out', kind: 'input-addressed', hashAlgo: '', hash: '' },
        new: { name: 'out', kind: 'floating', hashAlgo: 'r:sha256', hash: '' },
      },
    ]);
    // (Nix keeps __contentAddressed out of the environment.)
    expect(c?.env.added.map((e) => e.key).sort()).toEqual(['outputHashAlgo', 'outputHashMode']);
    expect(formatDiff(ca)).toMatch(/- out input-addressed\n\s+\+ out floating r:sha256/);
  });

  test('--drv refuses a name that is unchanged, unknown or on one side only', async () => {
    const err = async (name: string): Promise<NixPlanError> => {
      try {
        await diffPlanSources(bundle(oldPlan), bundle(newPlan), { drv: name }, deps);
      } catch (e) {
        return e as NixPlanError;
      }
      throw new Error(`--drv ${name} did not fail`);
    };
    expect((await err('hello')).message).toMatch(/-hello-2\.12\.drv is the same in both plans/);
    expect((await err('nothing')).message).toMatch(/names no derivation of either plan/);
    expect((await err('libbar')).message).toMatch(/is only in the new plan/);
    expect((await err('hello')).code).toBe('usage');
  });

  test('a relocated plan is the same plan in another realm, and compares across realms', async () => {
    const realm = join(mkdtempSync(join(work, 'realm-')), 'store');
    const relocated = join(work, 'old-relocated.nixplan');
    await relocatePlan(oldPlan, { to: realm, output: relocated }, deps);
    const same = await diffPlanSources(bundle(oldPlan), bundle(relocated), {}, deps);
    expect(same.identical).toBe(true);
    expect(same.realm).toEqual({ old: store.storeDir, new: realm, relocated: true });
    expect(same.fields.map((f) => f.field)).toEqual(['storeDir', 'relocatedFrom', 'signedBy']);
    expect(same.old.bundle?.createdAt).toBe(same.new.bundle?.createdAt); // relocation keeps it
    expect(formatDiff(same)).toContain(`Same plan, other realm: relocated to ${realm}`);
    // The relocated old plan against the new one (in the original realm): the same changes.
    const across = await diffPlanSources(bundle(relocated), bundle(newPlan), {}, deps);
    const direct = await diffPlanSources(bundle(oldPlan), bundle(newPlan), {}, deps);
    expect(across.realm.relocated).toBe(true);
    expect(across.total).toEqual(direct.total);
    expect(across.roots).toEqual(direct.roots);
  });

  test('what a comparison holds in memory is bounded: past it, it is refused (exit 8), not exhausted', async () => {
    // A plan's file size bounds neither what relocating it for a comparison across store dirs
    // holds, nor the .drv files a drill-down reads (every one that differs): a few MiB of zstd
    // can declare gigabytes of .drv files. Both count the bytes they keep against one limit.
    const refusal = async (run: Promise<unknown>): Promise<NixPlanError> => {
      try {
        await run;
      } catch (e) {
        return e as NixPlanError;
      }
      throw new Error('the comparison was not refused');
    };
    const realm = join(mkdtempSync(join(work, 'realm-')), 'store');
    const relocated = join(work, 'old-relocated-bounded.nixplan');
    await relocatePlan(oldPlan, { to: realm, output: relocated }, deps);
    const across = await refusal(
      diffPlanSources(bundle(relocated), bundle(newPlan), { maxHeldBytes: 1000 }, deps),
    );
    expect(across.code).toBe('limit');
    expect(across.message).toBe(
      `${relocated} is for another store dir than the plan it is compared with, and relocating it to compare ` +
        'them holds its .drv and file contents in memory: more than 1000 bytes, refused (relocate it first, ' +
        `with nix-plan relocate --to ${store.storeDir}, and compare that)`,
    );
    const drill = await refusal(
      diffPlanSources(bundle(oldPlan), bundle(newPlan), { drv: 'curl', maxHeldBytes: 1000 }, deps),
    );
    expect(drill.code).toBe('limit');
    expect(drill.message).toMatch(
      /: the \.drv files that differ between the plans, which --drv reads to explain a difference, hold more than 1000 bytes: refused/,
    );
    // Within the limit, the same comparisons are made.
    const roomy = { maxHeldBytes: 1024 * 1024 };
    expect((await diffPlanSources(bundle(relocated), bundle(newPlan), roomy, deps)).realm.relocated).toBe(
      true,
    );
    const curl = await diffPlanSources(bundle(oldPlan), bundle(newPlan), { ...roomy, drv: 'curl' }, deps);
    expect(curl.drv?.[0]?.old).toMatch(/-curl-8\.6\.0\.drv$/);
  });

  test('a .drv in the store and a profile as the old side', async () => {
    const [oldTools] = await store.instantiate(FIXTURE, ['tools']);
    const fromDrv = await diffPlanSources({ kind: 'drv', path: oldTools ?? '' }, bundle(newPlan), {}, deps);
    expect(fromDrv.old.kind).toBe('drv');
    expect(fromDrv.roots.map((r) => [r.label, r.status])).toEqual([
      ['tools', 'changed'],
      ['app', 'added'],
    ]);
    expect(fromDrv.roots[0]?.packages?.rebuilt).toEqual(['tool', 'tools']);

    const built = (await store.run('nix-store', ['--realise', oldTools ?? ''])).stdout.toString().trim();
    const profile = join(work, 'profile');
    await store.run('nix-env', ['--profile', profile, '--set', built]);
    const fromProfile = await diffPlanSources({ kind: 'profile', path: profile }, bundle(newPlan), {}, deps);
    expect(fromProfile.old).toMatchObject({ kind: 'profile', source: profile });
    expect(fromProfile.roots[0]).toMatchObject({ label: 'tools', status: 'changed', old: oldTools });

    // Without its deriver the profile's plan cannot be read: said so, not guessed.
    const loose = join(work, 'loose-profile');
    const text = (await store.run('nix-store', ['--add', FIXTURE])).stdout.toString().trim();
    await store.run('nix-env', ['--profile', loose, '--set', text]);
    await expect(
      diffPlanSources({ kind: 'profile', path: loose }, bundle(newPlan), {}, deps),
    ).rejects.toThrow(/has no known deriver/);
  });

  test("inspect --contents lists each root's packages: name, version, outputs, system", async () => {
    let out = '';
    const io: CliIo = { stdout: { write: (s: string) => (out += s) }, stderr: { write: () => true } };
    expect(await main(['inspect', newPlan, '--contents', '--json', '-q'], { io, runner: store.runner })).toBe(
      0,
    );
    const { contents } = JSON.parse(out) as { contents: PlanContents };
    const tools = contents.roots.find((r) => r.label === 'tools');
    expect(tools?.packages.map((p) => [p.name, p.version, p.outputs.join(',')])).toEqual([
      ['hello', '2.12', 'out'],
      ['tool', '1.0', 'lib,out'],
      ['tools', '1.0', 'out'],
    ]);
    expect(new Set(contents.roots.flatMap((r) => r.packages.map((p) => p.system)))).toEqual(
      new Set([SYSTEM]),
    );
    expect(contents.roots.find((r) => r.label === 'app')?.packages).toHaveLength(6);
    out = '';
    expect(await main(['inspect', newPlan, '--contents', '-q'], { io, runner: store.runner })).toBe(0);
    expect(out).toContain('packages of tools (3 derivations):');
    expect(out).toMatch(new RegExp(`\\n  tool +1\\.0 +lib,out +${SYSTEM}\\n`));
  });

  test('the command line: text, --json, and a damaged bundle is refused with the bundle exit code', async () => {
    let out = '';
    let err = '';
    const io: CliIo = {
      stdout: { write: (s: string) => (out += s) },
      stderr: { write: (s: string) => (err += s) },
    };
    expect(await main(['diff', oldPlan, newPlan, '-q'], { io, runner: store.runner })).toBe(0);
    expect(out).toContain('[U] openssl  3.0.12 → 3.0.13');
    out = '';
    expect(await main(['diff', oldPlan, newPlan, '--json', '-q'], { io, runner: store.runner })).toBe(0);
    expect(parsePlanDiff(JSON.parse(out)).total.counts.upgrade).toBe(1);
    const damaged = join(work, 'damaged.nixplan');
    const bytes = readFileSync(newPlan);
    bytes[bytes.length - 100] = (bytes[bytes.length - 100] ?? 0) ^ 0xff;
    writeFileSync(damaged, bytes);
    out = '';
    expect(await main(['diff', oldPlan, damaged, '-q'], { io, runner: store.runner })).toBe(3);
    expect(out).toBe('');
    expect(err).toMatch(/nix-plan diff: error: .*corrupt/);
    expect(await main(['diff', oldPlan], { io, runner: store.runner })).toBe(2);
  });
});

test('the published schema is the one the code checks with', () => {
  const published = JSON.parse(readFileSync(join(REPO, 'docs', 'diff.schema.json'), 'utf8')) as unknown;
  expect(published).toEqual(PLAN_DIFF_JSON_SCHEMA);
});
