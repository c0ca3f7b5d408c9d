// What realise reports, from Nix's own log on Nix 2.8 and 2.34: derivations built, paths
// substituted from a binary cache, roots already valid, when each root was ready; and that the
// human log and Nix's errors still read as Nix writes them.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../../src/app/deps.js';
import { exportPlan } from '../../src/app/export.js';
import { realisePlan } from '../../src/app/realise.js';
import { realiseSummary } from '../../src/action/summary.js';
import { nixVersions, ScratchStore, type NixVersion } from '../support/nix.js';

const FIXTURE = join(import.meta.dirname, '..', 'fixtures', 'diff', 'default.nix');

describe.each(nixVersions())('realise reports with Nix $label', (version: NixVersion) => {
  let work: string;
  let storeDir: string;
  let plan: string;
  const stores: ScratchStore[] = [];
  const fresh = (): ScratchStore => {
    const s = new ScratchStore(version, { storeDir });
    stores.push(s);
    return s;
  };

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'nix-plan-realise-report-'));
    storeDir = join(work, 'store');
    const evaluator = fresh();
    plan = join(work, 'plan.nixplan');
    await exportPlan(
      { file: FIXTURE, attributes: ['tools', 'app'], output: plan },
      { runner: evaluator.runner, log: silentLogger },
    );
    evaluator.wipe();
  }, 120_000);

  afterAll(() => {
    for (const s of stores) s.dispose();
    execFileSync('chmod', ['-R', 'u+w', work]);
    rmSync(work, { recursive: true, force: true });
  });

  test('built, then already valid; the log reads as Nix writes it', async () => {
    const store = fresh();
    let log = '';
    const deps = {
      runner: store.runner,
      log: silentLogger,
      nixLog: (c: Uint8Array) => (log += Buffer.from(c).toString()),
    };
    const first = await realisePlan(plan, {}, deps);
    expect(first.build.built).toHaveLength(9);
    expect(first.build.substituted).toEqual([]);
    expect(first.build.roots.map((r) => [r.label, r.how])).toEqual([
      ['tools', 'built'],
      ['app', 'built'],
    ]);
    for (const r of first.build.roots) {
      expect(r.readyMs).toBeGreaterThan(0);
      expect(r.readyMs).toBeLessThanOrEqual(first.build.totalMs);
    }
    // What Nix prints at its default verbosity, not its JSON: the builds and the builders' output.
    expect(log).toMatch(/^building '.*-tools-1\.0\.drv'/m);
    expect(log).not.toContain('@nix');
    const summary = realiseSummary({
      manifest: first.manifest,
      label: 'plan.nixplan',
      shard: undefined,
      outPaths: first.outPaths,
      timings: { fetchMs: 1, realiseMs: 2 },
      build: first.build,
    });
    expect(summary).toContain('Nix built **9** derivations and substituted **0** paths');
    expect(summary).toMatch(/\| `tools` \| built \| [\d.]+ m?s \|/);

    const again = await realisePlan(plan, {}, deps);
    expect(again.build.built).toEqual([]);
    expect(again.build.roots.map((r) => [r.how, r.readyMs])).toEqual([
      ['valid', 0],
      ['valid', 0],
    ]);
    store.wipe();
  });

  test('substituted from a binary cache', async () => {
    const builder = fresh();
    const deps = { runner: builder.runner, log: silentLogger };
    const built = await realisePlan(plan, { roots: ['tools'] }, deps);
    const cache = join(work, 'cache');
    const outs = Object.values(built.outPaths).flatMap((o) => Object.values(o));
    await builder.run('nix', [
      '--extra-experimental-features',
      'nix-command',
      'copy',
      '--to',
      `file://${cache}`,
      ...outs,
    ]);
    builder.wipe();

    const host = fresh();
    const result = await realisePlan(
      plan,
      { nixArgs: ['--option', 'substituters', `file://${cache}`, '--option', 'require-sigs', 'false'] },
      { runner: host.runner, log: silentLogger },
    );
    const tools = result.build.roots.find((r) => r.label === 'tools');
    expect(tools?.how).toBe('substituted');
    expect(result.build.substituted).toEqual(expect.arrayContaining(outs));
    expect(result.build.roots.find((r) => r.label === 'app')?.how).toBe('built');
    expect(result.build.built.some((d) => d.endsWith('-tools-1.0.drv'))).toBe(false);
    // What the realise action's summary tells a reviewer of it.
    const summary = realiseSummary({
      manifest: result.manifest,
      label: 'plan.nixplan',
      shard: undefined,
      outPaths: result.outPaths,
      timings: { fetchMs: 1, realiseMs: 2 },
      build: result.build,
    });
    expect(summary).toContain(
      `Nix built **${result.build.built.length}** derivations and substituted **${result.build.substituted.length}** path`,
    );
    expect(result.build.substituted.length).toBeGreaterThan(0);
    expect(summary).toMatch(/\| `tools` \| substituted \| [\d.]+ m?s \|/);
    expect(summary).toMatch(/\| `app` \| built \| [\d.]+ m?s \|/);
    host.wipe();
  });

  test("a failed build's error is Nix's message, not its JSON", async () => {
    const failing = join(work, 'failing.nix');
    writeFileSync(
      failing,
      `derivation { name = "broken-1"; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" "echo no way >&2; exit 3" ]; }`,
    );
    const evaluator = fresh();
    const bundle = join(work, 'failing.nixplan');
    await exportPlan({ file: failing, output: bundle }, { runner: evaluator.runner, log: silentLogger });
    evaluator.wipe();
    const host = fresh();
    const error = await realisePlan(bundle, {}, { runner: host.runner, log: silentLogger }).catch(
      (e: unknown) => e,
    );
    expect(String(error)).toMatch(/^NixCommandError: nix-store --realise failed with exit code 100:\n/);
    expect(String(error)).toMatch(
      /(builder for '.*-broken-1\.drv' failed|Cannot build '.*-broken-1\.drv'\.\n\s+Reason: builder failed)/,
    );
    expect(String(error)).not.toContain('\x1b');
    expect(String(error)).not.toContain('@nix');
    host.wipe();
  });
});
