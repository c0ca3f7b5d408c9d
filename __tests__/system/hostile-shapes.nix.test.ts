// Forged .drv shapes the shape checks and the output checks must see before any byte reaches a
// store. A forger who recomputes every hash writes a floating content-addressed .drv whose outputs
// use different hash algorithms: every Nix refuses it on import (`Derivation::type()`, "all
// floating outputs must use the same hash algorithm"), after the paths before it are in. `verify`
// refuses it, and `import` into Nix 2.8 and 2.34 with ca-derivations on refuses it before
// importing anything: `nix-store --dump-db` unchanged, nothing to roll back.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../../src/app/deps.js';
import { exportPlan } from '../../src/app/export.js';
import { cli, dumpDb } from '../support/cli-run.js';
import { editDerivation, encodeExport, forgeBundle, loadPlan, type Plan } from '../support/forge.js';
import { nixVersions, ScratchStore, type NixVersion } from '../support/nix.js';

const versions = nixVersions();
const v28 = versions.find((v) => v.label === '2.8')!;

/** A floating content-addressed derivation with two outputs (ca-derivations is on in scratch stores). */
const FLOATING = `
builtins.derivation {
  name = "two-floating"; system = builtins.currentSystem; builder = "/bin/sh";
  args = [ "-c" "echo a > $out; echo b > $dev" ];
  outputs = [ "dev" "out" ];
  __contentAddressed = true; outputHashMode = "recursive"; outputHashAlgo = "sha256";
}`;

describe('a floating .drv whose outputs use different hash algorithms', () => {
  const base = mkdtempSync(join(tmpdir(), 'nix-plan-hostile-shapes-'));
  const storeDir = join(base, 'store');
  const file = join(base, 'forged.nixplan');
  let forged: Plan;

  beforeAll(async () => {
    const maker = new ScratchStore(v28, { storeDir, root: join(base, 'maker') });
    try {
      writeFileSync(join(maker.root, 'floating.nix'), FLOATING);
      // Nix 2.8 prints one line per output ('…drv!dev', '…drv!out').
      const drv = (await maker.instantiate(join(maker.root, 'floating.nix')))[0]?.replace(/!.*/, '');
      const honest = join(base, 'honest.nixplan');
      await exportPlan(
        { drvPaths: [drv!], output: honest, include: 'drvs' },
        { runner: maker.runner, log: silentLogger },
      );
      forged = await editDerivation(await loadPlan(new Uint8Array(readFileSync(honest))), drv!, (d) => {
        d.outputs.find((o) => o.name === 'dev')!.hashAlgo = 'r:sha512';
      });
      writeFileSync(file, await forgeBundle(forged));
    } finally {
      maker.wipe();
    }
  }, 300_000);
  afterAll(() => rmSync(base, { recursive: true, force: true }));

  /** A local target store of `version` in the plan's realm (ca-derivations on). */
  const target = (version: NixVersion, name: string): ScratchStore =>
    new ScratchStore(version, { storeDir, root: join(base, name) });

  test.each(versions)('Nix $label itself refuses it on import (the oracle)', async (version) => {
    const store = target(version, `o${version.label}`);
    try {
      const r = await store.run('nix-store', ['--import'], {
        input: encodeExport(forged.entries),
        allowFailure: true,
      });
      expect(r.code).not.toBe(0);
      expect(r.stderr.toString()).toMatch(/all floating outputs must use the same hash (type|algorithm)/);
    } finally {
      store.wipe();
    }
  });

  test('verify refuses it (exit 3), naming the .drv', async () => {
    const store = target(v28, 'verify');
    const r = await cli(['verify', file], store.runner);
    store.wipe();
    expect(r.err).toMatch(/floating outputs use different hash algorithms[^\n]*-two-floating\.drv/);
    expect(r.code).toBe(3);
  });

  test.each(versions)('import into Nix $label refuses it before anything is imported', async (version) => {
    const store = target(version, `t${version.label}`);
    try {
      await store.validPaths();
      const before = await dumpDb(store);
      const r = await cli(['import', file], store.runner);
      expect(r.err).toContain('floating outputs use different hash algorithms');
      expect(r.err).not.toMatch(/removed again/);
      expect(r.code).toBe(3);
      expect(await dumpDb(store)).toBe(before);
    } finally {
      store.wipe();
    }
  });
});
