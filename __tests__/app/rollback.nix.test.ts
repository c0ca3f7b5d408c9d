// Rollback for real: Nix made to fail part-way through an import (a store path it cannot replace)
// and through a build, and the store's `nix-store --dump-db` unchanged afterwards; as root and as an
// untrusted user through a daemon, on Nix 2.8 and 2.34.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CommandRunner } from '../../src/nix/runner.js';
import { editDerivation, forgeBundle, realPlan, type Plan } from '../support/forge.js';
import { cli, dumpDb } from '../support/cli-run.js';
import { nixVersions, type ScratchStore } from '../support/nix.js';
import { inThrowawayStore, openTargetStore, type TargetStore } from '../support/stores.js';

const versions = nixVersions();

/**
 * Makes `path` (not yet in the store) a directory nobody, not even root, can remove (the immutable
 * attribute): Nix, which first deletes whatever is at a path it is about to unpack, fails there.
 * Returns what lifts it again.
 */
function blockPath(realPath: string): () => void {
  mkdirSync(realPath);
  writeFileSync(join(realPath, 'in-the-way'), '');
  execFileSync('chattr', ['+i', realPath]);
  return () => {
    execFileSync('chattr', ['-i', realPath]);
    rmSync(realPath, { recursive: true, force: true });
  };
}

describe.each(versions.map((v) => [v.label, v] as const))('rollback, Nix %s', (_label, version) => {
  const base = mkdtempSync(join(tmpdir(), 'nix-plan-rollback-'));
  const storeDir = join(base, 'store');
  let plan: Plan;
  let failing: Plan;

  beforeAll(async () => {
    plan = await inThrowawayStore(version, storeDir, join(base, 'maker'), (maker) =>
      realPlan(maker, 'r', 'drvs', join(base, 'marker')),
    );
    // The same plan whose system fails to build (its builder exits 1) after its dependencies built.
    failing = await editDerivation(
      plan,
      plan.roots[0]!.drvPath,
      (d) => {
        d.args = [
          new Uint8Array(Buffer.from('-c')),
          new Uint8Array(Buffer.from('echo failing on purpose >&2; exit 1')),
        ];
      },
      { fillOutputs: true },
    );
  });
  afterAll(() => rmSync(base, { recursive: true, force: true }));

  describe.each(['local', 'daemon'] as const)('%s store', (mode) => {
    let target: TargetStore;
    let scratch: ScratchStore;
    let runner: CommandRunner;

    beforeAll(async () => {
      target = await openTargetStore(mode, version, { storeDir, root: join(base, 'local') });
      ({ scratch, runner } = target);
      await scratch.validPaths(); // the database exists before the first snapshot
    });
    afterAll(async () => {
      await target.close();
      rmSync(storeDir, { recursive: true, force: true });
    });

    test('an import Nix fails part-way is undone: the paths before the failure are removed again', async () => {
      const file = join(base, `plan-${mode}.nixplan`);
      writeFileSync(file, await forgeBundle(plan));
      // The root .drv comes last: everything before it is imported, then Nix fails on it.
      const last = plan.entries[plan.entries.length - 1]!.path;
      expect(last).toBe(plan.roots[0]!.drvPath);
      const before = await dumpDb(scratch);
      const unblock = blockPath(last);
      let result: { code: number; err: string };
      try {
        result = await cli(['import', file], runner);
      } finally {
        unblock();
      }
      expect(result.code).toBe(9);
      expect(result.err).toMatch(/Operation not permitted|cannot (unlink|delete|remove)/);
      expect(result.err).toMatch(/the \d+ paths it had added were removed again, the store is as it was/);
      expect(await dumpDb(scratch)).toBe(before);
      // With the obstacle gone, the same import completes.
      expect((await cli(['import', file, '-q'], runner)).code).toBe(0);
      expect((await scratch.validPaths()).filter((p) => plan.entries.some((e) => e.path === p))).toHaveLength(
        plan.entries.length,
      );
    });

    test('a realise whose build fails removes what it imported and built', async () => {
      const file = join(base, `failing-${mode}.nixplan`);
      writeFileSync(file, await forgeBundle(failing));
      const before = await dumpDb(scratch);
      const result = await cli(['realise', file], runner);
      expect(result.code).toBe(9);
      expect(result.err).toContain('failing on purpose');
      expect(result.err).toMatch(/removed again, the store is as it was/);
      expect(await dumpDb(scratch)).toBe(before);
    });

    test('a realise whose --roots names no root is refused before any of the plan is imported', async () => {
      const file = join(base, `roots-${mode}.nixplan`);
      writeFileSync(file, await forgeBundle(plan));
      const before = await dumpDb(scratch);
      const result = await cli(['realise', file, '--roots', 'no-such-root'], runner);
      expect(result.code).toBe(2);
      expect(result.err).toContain("--roots 'no-such-root' matches no root of the bundle");
      expect(result.err).not.toMatch(/importing|removed again/);
      expect(await dumpDb(scratch)).toBe(before);
    });
  });
});
