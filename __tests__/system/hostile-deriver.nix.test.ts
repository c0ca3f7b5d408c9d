// `diff --profile` reads the profile's plan through the deriver the store records for its current
// generation. A store records whatever deriver a path came with (a substituter's narinfo, an
// export stream), unchecked: a path imported naming another system's .drv as its deriver must not
// be compared as if it ran that system. Refused (usage), the store unchanged.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../../src/app/deps.js';
import { diffPlanSources } from '../../src/app/diff.js';
import { exportPlan } from '../../src/app/export.js';
import { dumpDb } from '../support/cli-run.js';
import { nixVersions, ScratchStore } from '../support/nix.js';

const system = (label: string): string => `
derivation { name = "nixos-system-${label}-1.0"; system = builtins.currentSystem; builder = "/bin/sh";
  args = [ "-c" "echo ${label} > $out" ]; }`;

describe.each(nixVersions())(
  'a profile whose system names a deriver that does not build it, Nix $label',
  (version) => {
    const base = mkdtempSync(join(tmpdir(), 'nix-plan-hostile-deriver-'));
    const storeDir = join(base, 'store');
    let store: ScratchStore;
    let profile: string;
    let plan: string;
    let a: string;
    let b: string;

    beforeAll(async () => {
      const maker = new ScratchStore(version, { storeDir, root: join(base, 'maker') });
      let exported: Buffer;
      try {
        writeFileSync(join(base, 'a.nix'), system('a'));
        writeFileSync(join(base, 'b.nix'), system('b'));
        a = (await maker.instantiate(join(base, 'a.nix')))[0] ?? '';
        b = (await maker.instantiate(join(base, 'b.nix')))[0] ?? '';
        const out = (await maker.run('nix-store', ['--realise', a])).stdout.toString().trim();
        // System a's output as an export stream names its deriver: the forger names b's instead
        // (the same length: the stream holds no checksum over it).
        exported = (await maker.run('nix-store', ['--export', out])).stdout;
        const at = exported.indexOf(Buffer.from(a));
        expect(at).toBeGreaterThan(0);
        exported = Buffer.concat([
          exported.subarray(0, at),
          Buffer.from(b),
          exported.subarray(at + a.length),
        ]);
        plan = join(base, 'b.nixplan');
        await exportPlan({ drvPaths: [b], output: plan }, { runner: maker.runner, log: silentLogger });
      } finally {
        maker.wipe();
      }
      store = new ScratchStore(version, { storeDir, root: join(base, 'host') });
      await store.instantiate(join(base, 'a.nix'));
      await store.instantiate(join(base, 'b.nix'));
      const [imported] = (await store.run('nix-store', ['--import'], { input: exported })).stdout
        .toString()
        .trim()
        .split('\n');
      expect(
        (await store.run('nix-store', ['--query', '--deriver', imported!])).stdout.toString().trim(),
      ).toBe(b);
      profile = join(base, 'profile');
      await store.run('nix-env', ['--profile', profile, '--set', imported!]);
    }, 300_000);
    afterAll(() => {
      store?.dispose();
      rmSync(base, { recursive: true, force: true });
    });

    test('diff --profile refuses it, naming the deriver, rather than compare the plan of b as what runs', async () => {
      const before = await dumpDb(store);
      const e = await diffPlanSources(
        { kind: 'profile', path: profile },
        { kind: 'bundle', path: plan },
        {},
        { runner: store.runner, log: silentLogger },
      ).catch((x: unknown) => x);
      expect(e).toMatchObject({
        code: 'usage',
        message: expect.stringContaining(
          `the store names ${b} as the deriver of the current generation`,
        ) as unknown,
      });
      expect((e as Error).message).toContain('but that .drv does not build it');
      expect(await dumpDb(store)).toBe(before);
    }, 120_000);
  },
);
