// Undoing an import or a realise on a CI runner or an air-gapped machine, as docs/cli.md says: an
// import leaves nothing rooted, a realise roots only its --out-link links (one per output), and
// once those are removed `nix-store --gc` leaves the store as it was before the plan came.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { cli, dumpDb } from '../support/cli-run.js';
import { nixVersions, ScratchStore } from '../support/nix.js';

describe.each(nixVersions().map((v) => [v.label, v] as const))(
  'undoing a plan, Nix %s',
  (_label, version) => {
    let evaluator: ScratchStore;
    let store: ScratchStore;
    let plan: string;

    beforeAll(async () => {
      evaluator = new ScratchStore(version);
      plan = join(evaluator.root, 'hello.nixplan');
      const made = await cli(
        ['export', '-f', resolve('examples/hello'), '-A', 'hello', '-o', plan],
        evaluator.runner,
      );
      expect(made.code).toBe(0);
      // A fresh machine in the same realm: nothing of the plan in it.
      store = new ScratchStore(version, { storeDir: evaluator.storeDir, root: join(evaluator.root, 'host') });
      rmSync(evaluator.storeDir, { recursive: true, force: true });
    });
    afterAll(() => {
      store?.dispose();
      evaluator?.dispose();
    });

    const gc = async (): Promise<void> => {
      await store.run('nix-store', ['--gc']);
    };

    test('an import roots nothing: a garbage collection takes it all back', async () => {
      const before = await dumpDb(store);
      expect((await cli(['import', plan], store.runner)).code).toBe(0);
      expect(await dumpDb(store)).not.toBe(before);
      await gc();
      expect(await dumpDb(store)).toBe(before);
    });

    test('a realise without --out-link roots nothing either', async () => {
      const before = await dumpDb(store);
      const run = await cli(['realise', plan], store.runner);
      expect(run.code).toBe(0);
      expect(run.out.trim().split('\n')).toHaveLength(2);
      await gc();
      expect(await dumpDb(store)).toBe(before);
    });

    test('--out-link roots every output by its own link; with all of them removed, nothing is left', async () => {
      const before = await dumpDb(store);
      const prefix = join(store.root, 'result');
      expect((await cli(['realise', plan, '--out-link', prefix], store.runner)).code).toBe(0);
      const made = readdirSync(store.root)
        .filter((f) => f.startsWith('result'))
        .sort();
      expect(made).toEqual(['result', 'result-doc', 'result.nix-plan.json']);
      await gc();
      const kept = await dumpDb(store);
      expect(kept).not.toBe(before);
      // One link left keeps its output, and the .drv files it came from.
      rmSync(prefix);
      await gc();
      const withDoc = await store.validPaths();
      expect(withDoc.some((p) => p.endsWith('-hello-doc'))).toBe(true);
      expect(withDoc.some((p) => p.endsWith('-hello.drv'))).toBe(true);
      expect(withDoc.some((p) => p.endsWith('-hello'))).toBe(false);
      rmSync(`${prefix}-doc`);
      await gc();
      expect(await dumpDb(store)).toBe(before);
      // The record is no root: it stays, and keeps the downgrade floor, until it is removed.
      expect(existsSync(`${prefix}.nix-plan.json`)).toBe(true);
    });
  },
);
