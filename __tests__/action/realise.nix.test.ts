// The realise action on real Nix, with its real realisePlan: what it refuses of a plan comes in
// the order a user needs, the realm first (no `roots` or `shard` makes a plan for another store
// dir importable here, and the realm's refusal says what would), then the roots or the shard,
// each naming the action's input; the store is unchanged either way.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RealiseInput, RunnerEnv } from '../../src/action/constants.js';
import { run as runRealise } from '../../src/action/realise.js';
import { silentLogger } from '../../src/app/deps.js';
import { exportPlan } from '../../src/app/export.js';
import { fileDigest } from '../../src/app/files.js';
import { inspectPlan } from '../../src/app/inspect.js';
import { realisePlan } from '../../src/app/realise.js';
import { NixPlanError } from '../../src/core/errors.js';
import { nixVersions, ScratchStore, SYSTEM } from '../support/nix.js';
import { recordingIO } from '../support/recording-io.js';

describe.each(nixVersions())('the realise action on Nix $label', (version) => {
  let work: string;
  let bundle: string;
  let storeDir: string;
  const stores: ScratchStore[] = [];

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'nix-plan-realise-action-'));
    storeDir = join(work, 'store');
    const maker = new ScratchStore(version, { storeDir, root: join(work, 'maker') });
    stores.push(maker);
    const [drv] = await maker.instantiateExpr(
      `derivation { name = "echo"; system = "${SYSTEM}"; builder = "/bin/sh"; args = [ "-c" "echo hi > $out" ]; }`,
    );
    bundle = join(work, 'plan.nixplan');
    await exportPlan({ drvPaths: [drv ?? ''], output: bundle }, { runner: maker.runner, log: silentLogger });
  });
  afterAll(() => {
    for (const s of stores) s.wipe();
    rmSync(work, { recursive: true, force: true });
  });

  /** A fresh store (for this plan's realm, or another) and its database before anything ran. */
  async function target(name: string, dir: string): Promise<{ store: ScratchStore; db: string }> {
    const store = new ScratchStore(version, { storeDir: dir, root: join(work, name) });
    stores.push(store);
    await store.validPaths(); // the database exists before the snapshot
    return { store, db: (await store.run('nix-store', ['--dump-db'])).stdout.toString('utf8') };
  }

  /** Runs the step on `store` with `inputs` beside the pinned bundle; what it threw. */
  async function refusal(store: ScratchStore, inputs: Record<string, string>): Promise<NixPlanError> {
    const { io } = recordingIO(
      { [RealiseInput.Bundle]: bundle, [RealiseInput.Digest]: await fileDigest(bundle), ...inputs },
      { [RunnerEnv.RunnerTemp]: join(work, 'runner') },
    );
    const refused = await runRealise({
      io,
      runner: store.runner,
      transport: () => {
        throw new Error('no artifact service for a bundle file');
      },
      inspectPlan,
      realisePlan,
    }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(NixPlanError);
    return refused as NixPlanError;
  }

  const dump = async (store: ScratchStore): Promise<string> =>
    (await store.run('nix-store', ['--dump-db'])).stdout.toString('utf8');

  test.each([
    [
      'roots',
      { [RealiseInput.Roots]: 'ecoh' },
      'usage',
      `"roots" 'ecoh' matches no root of the bundle; its roots are: 0=echo`,
    ],
    [
      'shard',
      { [RealiseInput.Shard]: '1/2' },
      'usage',
      'input "shard": "1/2" selects no root: the plan has 1',
    ],
  ])(
    '%s that selects no root: a plan for another realm says so first, then the input is named',
    async (what, inputs, code, message) => {
      const otherDir = join(work, `other-${what}`, 'store');
      const elsewhere = await target(`elsewhere-${what}`, otherDir);
      const realm = await refusal(elsewhere.store, inputs);
      expect(realm.code).toBe('realm');
      expect(realm.message).toContain(`'${bundle}' is a plan for the store dir ${storeDir}`);
      // An action user relocates with the promote action, not with a command they cannot run.
      expect(realm.message).toContain(`relocate it first (the promote action, "to: ${otherDir}")`);
      expect(realm.message).not.toMatch(/--to|nix-plan relocate/);
      expect(await dump(elsewhere.store)).toBe(elsewhere.db);

      // In the plan's own realm, the same input is what is wrong, and the refusal names it.
      const here = await target(`here-${what}`, storeDir);
      const wrong = await refusal(here.store, inputs);
      expect(wrong.code).toBe(code);
      expect(wrong.message).toContain(message);
      expect(wrong.message).not.toMatch(/--roots/);
      expect(await dump(here.store)).toBe(here.db);
    },
  );
});
