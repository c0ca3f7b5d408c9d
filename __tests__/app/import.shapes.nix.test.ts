// Genuine plans with .drv shapes only a newer Nix reads, or only with an experimental feature on
// (floating content-addressed, git-hashed), made by Nix 2.34 with the features on: refused before
// any byte reaches a store whose Nix cannot read them (2.8, or 2.34 with the feature off), with
// `nix-store --dump-db` unchanged; imported and built where the feature is on. Through a daemon,
// whose features cannot be asked, the check is said to be skipped and the rollback restores the store.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportPlan } from '../../src/app/export.js';
import { silentLogger } from '../../src/app/deps.js';
import { cli, dumpDb, RecordingRunner } from '../support/cli-run.js';
import { nixVersions, ScratchStore, type NixVersion } from '../support/nix.js';
import { openTargetStore } from '../support/stores.js';

const versions = nixVersions();
const v234 = versions.find((v) => v.label === '2.34');
const v28 = versions.find((v) => v.label === '2.8') as NixVersion;

/** Every feature the fixtures need, on in the store that makes them. */
const ALL_FEATURES = 'experimental-features = nix-command flakes ca-derivations git-hashing\n';
/** A store with none of them. */
const NO_FEATURES = 'experimental-features = nix-command flakes\n';

/** A derivation of each shape, built by /bin/sh; `git` is fixed (its hash is never built). */
const EXPR = (kind: string): string => `
builtins.derivation ({
  name = "shape-${kind}"; system = builtins.currentSystem; builder = "/bin/sh";
  args = [ "-c" "echo ${kind} > $out" ];
} // (if "${kind}" == "floating" then {
  __contentAddressed = true; outputHashMode = "recursive"; outputHashAlgo = "sha256";
} else {
  outputHashMode = "git"; outputHashAlgo = "sha1"; outputHash = "0000000000000000000000000000000000000000";
}))`;

(v234 === undefined ? describe.skip : describe)('plans a target Nix cannot read', () => {
  const base = mkdtempSync(join(tmpdir(), 'nix-plan-shapes-'));
  const storeDir = join(base, 'store');
  const plans: Record<'floating' | 'git', string> = { floating: '', git: '' };

  beforeAll(async () => {
    const maker = new ScratchStore(v234!, { storeDir, root: join(base, 'maker'), extraConf: ALL_FEATURES });
    try {
      for (const kind of ['floating', 'git'] as const) {
        // Made by Nix 2.34 with the features on: a genuine plan, nothing forged.
        writeFileSync(join(maker.root, `${kind}.nix`), EXPR(kind));
        const [drv] = await maker.instantiate(join(maker.root, `${kind}.nix`));
        plans[kind] = join(base, `${kind}.nixplan`);
        await exportPlan(
          { drvPaths: [drv!], output: plans[kind], include: 'drvs' },
          { runner: maker.runner, log: silentLogger },
        );
      }
    } finally {
      maker.wipe();
    }
  }, 300_000);
  afterAll(() => rmSync(base, { recursive: true, force: true }));

  /** A local target store (as root) of `version` with `conf` added to its nix.conf. */
  function local(version: NixVersion, name: string, conf: string): ScratchStore {
    return new ScratchStore(version, { storeDir, root: join(base, name), extraConf: conf });
  }

  /** Runs `argv` against `store` and expects a refusal that left its database as it was. */
  async function refused(store: ScratchStore, argv: string[]): Promise<string> {
    await store.validPaths(); // the database exists before the snapshot
    const before = await dumpDb(store);
    const r = await cli(argv, store.runner);
    expect(r.err).not.toMatch(/importing with|removed again/);
    expect(r.code).toBe(3);
    expect(await dumpDb(store)).toBe(before);
    return r.err;
  }

  test.each([
    ['Nix 2.8 without ca-derivations', 'l28', NO_FEATURES],
    ['Nix 2.34 without ca-derivations', 'l34', NO_FEATURES],
  ])('a floating-CA plan into %s is refused before anything is imported', async (_name, root, conf) => {
    const store = local(root === 'l28' ? v28 : v234!, root, conf);
    try {
      for (const command of ['import', 'realise']) {
        const err = await refused(store, [command, plans.floating]);
        expect(err).toMatch(
          /derivation '[^']*-shape-floating\.drv' output 'out' is a floating content-addressed output/,
        );
        expect(err).toContain("the experimental feature 'ca-derivations'");
        expect(err).toContain(root === 'l28' ? 'its Nix 2.8.0' : 'its Nix 2.34');
      }
    } finally {
      store.wipe();
    }
  });

  test('a git-hashed plan into Nix 2.8 is refused by version, whatever its features', async () => {
    const store = local(
      v28,
      'g28',
      'experimental-features = nix-command flakes ca-derivations impure-derivations\n',
    );
    try {
      const err = await refused(store, ['import', plans.git]);
      expect(err).toContain("is a git-hashed output ('git:')");
      expect(err).toContain('runs Nix 2.8.0, which cannot read it');
    } finally {
      store.wipe();
    }
  });

  test('a git-hashed plan into Nix 2.34 without git-hashing is refused', async () => {
    const store = local(v234!, 'g34', NO_FEATURES);
    try {
      const err = await refused(store, ['import', plans.git]);
      expect(err).toContain("the experimental feature 'git-hashing'");
    } finally {
      store.wipe();
    }
  });

  test.each([
    ['2.8', 'ok28'],
    ['2.34', 'ok34'],
  ])('with ca-derivations on, Nix %s imports the floating-CA plan and builds it', async (label, root) => {
    const store = local(label === '2.8' ? v28 : v234!, root, ALL_FEATURES.replace(' git-hashing', ''));
    try {
      const runner = new RecordingRunner(store.runner);
      const r = await cli(['realise', plans.floating], runner);
      expect(r.err).not.toContain('cannot be imported');
      expect(r.code).toBe(0);
      // Checked, not skipped: the store's features were asked, and had what the plan needs.
      expect(runner.commands.some((c) => c[0] === 'nix' && c.includes('show-config'))).toBe(true);
      expect(r.err).not.toContain('not checked');
      const built = (await store.validPaths()).filter((p) => p.endsWith('-shape-floating'));
      expect(built).toHaveLength(1);
    } finally {
      store.wipe();
    }
  });

  test("through a daemon (features unknown) the check is said to be skipped, and Nix's refusal is undone", async () => {
    const target = await openTargetStore('daemon', v234!, { storeDir, root: join(base, 'd34') });
    try {
      // The test daemons run with the scratch config, which has ca-derivations on: the git plan,
      // which needs git-hashing, is the one the daemon refuses.
      await target.scratch.validPaths();
      const before = await dumpDb(target.scratch);
      const r = await cli(['import', plans.git], target.runner);
      expect(r.err).toContain(
        "the experimental feature 'git-hashing': not checked (the daemon's experimental features cannot be asked)",
      );
      expect(r.code).toBe(9);
      expect(r.err).toMatch(/git-hashing/);
      expect(await dumpDb(target.scratch)).toBe(before);
    } finally {
      await target.close();
      rmSync(storeDir, { recursive: true, force: true });
    }
  });
});
