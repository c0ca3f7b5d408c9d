// Every way Nix 2.34 hashes a fixed output: git hashing (`outputHashMode = "git"`, experimental
// `git-hashing`), blake3 (`blake3-hashes`), and git-hashed floating outputs. Relocated plans must
// be what native evaluation writes in the target and build the same; what nix-plan cannot check
// is refused by name. Nix 2.8 cannot evaluate these shapes at all.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ExitCode } from '../../src/cli/exit-codes.js';
import { nixVersions, type ScratchStore } from '../support/nix.js';
import { OracleStores, cli, runBundleOracle, runOracle, type OracleCase } from '../support/oracle.js';

const FIXTURE = fileURLToPath(new URL('../fixtures/fidelity/hashing.nix', import.meta.url));
const FEATURES = 'git-hashing blake3-hashes ca-derivations';
const CONF = `extra-experimental-features = ${FEATURES}\n`;
const ALL = ['gitSha1', 'gitSha256', 'flatBlake3', 'recursiveBlake3', 'gitFloating', 'user'];
const CASE: OracleCase = {
  file: FIXTURE,
  attrs: ALL,
  args: ['--extra-experimental-features', FEATURES],
  conf: CONF,
  build: ALL,
};

const versions = nixVersions().filter((v) => v.label !== '2.8');

describe.each(versions)('fixed outputs hashed every way, on Nix $label', (version) => {
  let root: string;
  let stores: OracleStores;
  let a: ScratchStore;

  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'nix-plan-hashing-'));
    stores = new OracleStores(version, root);
    a = stores.store('a', 'a/store', CONF);
  });
  afterAll(() => {
    stores.dispose();
    rmSync(root, { recursive: true, force: true });
  });

  test('git-hashed and blake3 fixed outputs relocate as native evaluation writes them, and build the same', async () => {
    const run = await runOracle(stores, a, CASE, 'b/s');
    expect(run.relocated.objects.length).toBe(ALL.length);
    await runOracle(stores, a, { ...CASE, build: [] }, 'a/much/longer/realm/store');
  });

  test('with --include sources, git-hashed outputs are carried and relocated by their content', async () => {
    const git = ['gitSha1', 'gitSha256'];
    await runBundleOracle(
      stores,
      a,
      {
        exportArgs: [
          '-f',
          FIXTURE,
          ...git.flatMap((n) => ['-A', n]),
          '--include',
          'sources',
          '--',
          '--extra-experimental-features',
          FEATURES,
        ],
        native: { ...CASE, attrs: git },
        build: true,
      },
      'g/s',
    );
  });

  test('a blake3 output, which nix-plan cannot hash, is refused by name', async () => {
    const bundle = join(root, 'blake3.nixplan');
    const exported = await cli(a, [
      'export',
      '-o',
      bundle,
      '-f',
      FIXTURE,
      '-A',
      'flatBlake3',
      '--include',
      'sources',
      '--',
      '--extra-experimental-features',
      FEATURES,
    ]);
    expect(exported.code).toBe(0);
    const moved = await cli(a, [
      'relocate',
      bundle,
      '--to',
      join(root, 'b', 's'),
      '-o',
      join(root, 'x.nixplan'),
    ]);
    expect(moved.code).toBe(ExitCode.relocate);
    expect(moved.err).toMatch(
      /cannot relocate .*-fixed-flat-blake3: it is the fixed output of .*-fixed-flat-blake3\.drv, hashed as blake3, which nix-plan cannot compute from its bytes \(blake3 is not among the hashes Node computes\)/,
    );
    expect(moved.err).toContain('--include drvs');
    // Refused before anything is written.
    expect(existsSync(join(root, 'x.nixplan'))).toBe(false);
  });
});
