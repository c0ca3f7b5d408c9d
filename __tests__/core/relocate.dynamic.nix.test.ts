// Dynamic derivations on real Nix 2.34: plans written as DrvWithVersion("xp-dyn-drv", …) with
// inputs through `builtins.outputOf`, their placeholders, and the text-hashed outputs that
// produce .drv files. Relocated, they must be what native evaluation in the target writes, and
// build there what native evaluation builds. Nix 2.8 cannot evaluate them.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { nixVersions, type ScratchStore } from '../support/nix.js';
import { OracleStores, runBundleOracle, runOracle, type OracleCase } from '../support/oracle.js';
import { parseDerivation } from '../../src/core/derivation/index.js';

const FIXTURE = fileURLToPath(new URL('../fixtures/fidelity/dynamic.nix', import.meta.url));
const FEATURES = 'dynamic-derivations ca-derivations recursive-nix';
const CONF = `extra-experimental-features = ${FEATURES}\n`;
const REALISABLE = ['dynamic', 'dynamicUser', 'nested', 'mixed'];
const CASE: OracleCase = {
  file: FIXTURE,
  attrs: [...REALISABLE, 'dynamicFixedUser'],
  args: ['--extra-experimental-features', FEATURES],
  conf: CONF,
  build: REALISABLE,
};

const versions = nixVersions().filter((v) => v.label !== '2.8');

describe.each(versions)('dynamic derivations, on Nix $label', (version) => {
  let root: string;
  let stores: OracleStores;
  let a: ScratchStore;

  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'nix-plan-dynamic-'));
    stores = new OracleStores(version, root);
    a = stores.store('a', 'a/store', CONF);
  });
  afterAll(() => {
    stores.dispose();
    rmSync(root, { recursive: true, force: true });
  });

  test('a dynamic plan relocates to what native evaluation writes, and builds the same there', async () => {
    const run = await runOracle(stores, a, CASE, 'b/s');
    // The shapes are there: DrvWithVersion with one and two levels of outputOf, and one whose
    // outputs are known before building (a fixed text-hashed producer).
    const drvs = run.relocated.objects
      .filter((o) => o.kind === 'drv')
      .map((o) => ({ path: o.path, drv: parseDerivation(o.contents!) }));
    const versioned = drvs.filter((d) => d.drv.version === 'xp-dyn-drv');
    expect(versioned.length).toBeGreaterThanOrEqual(4);
    expect(versioned.some((d) => d.drv.outputs.every((o) => o.path !== ''))).toBe(true);
    expect(run.relocated.report.bareHashRewrites).toBe(0);
  });

  test('to a store dir of another length, and through the product with the features in nix.conf', async () => {
    await runOracle(stores, a, { ...CASE, build: [] }, 'a/much/longer/realm/store');
    await runBundleOracle(
      stores,
      a,
      {
        exportArgs: ['-f', FIXTURE, ...REALISABLE.flatMap((n) => ['-A', n])],
        native: { ...CASE, attrs: REALISABLE },
        build: true,
      },
      'p/s',
    );
  });
});
