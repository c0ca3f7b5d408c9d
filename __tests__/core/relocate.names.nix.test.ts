// Names are content too: a copy of a store path made while evaluating (builtins.path,
// builtins.filterSource) is named `<hash>-<hash of what it copied>-<name>`, and native evaluation
// in another store dir names it after what it copied *there*. Relocation must do the same, on
// real Nix 2.8 and 2.34, or refuse by name where the rule cannot be known.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { nixVersions, type ScratchStore } from '../support/nix.js';
import { OracleStores, instantiateCase, runOracle, type OracleCase } from '../support/oracle.js';
import { readClosure } from '../fixtures/relocate/closure.js';
import { relocateClosure } from '../../src/core/relocate/index.js';
import { NixPlanError } from '../../src/core/errors.js';
import { nameOf } from '../../src/core/store-path.js';

const FIXTURE = fileURLToPath(new URL('../fixtures/fidelity/default.nix', import.meta.url));

const NAMES = [
  'copyDefault',
  'copyNamed',
  'copyFlat',
  'copyDir',
  'copyTwice',
  'copyText',
  'copyKnown',
  'filteredKnown',
];
const NAMES_CASE: OracleCase = { file: FIXTURE, attrs: NAMES, build: NAMES };

/** The error relocating `attr`'s closure out of `a` throws. */
async function refusal(a: ScratchStore, attr: string): Promise<NixPlanError> {
  const roots = await instantiateCase(a, { file: FIXTURE, attrs: [attr] });
  const closure = await readClosure(a, roots);
  try {
    relocateClosure(closure.objects, a.storeDir, join(a.storeDir, '..', '..', 'b', 'store'));
  } catch (e) {
    if (e instanceof NixPlanError) return e;
    throw e;
  }
  throw new Error(`relocating ${attr} was not refused`);
}

describe.each(nixVersions())('names that carry store hashes, on Nix $label', (version) => {
  let root: string;
  let stores: OracleStores;
  let a: ScratchStore;

  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'nix-plan-names-'));
    stores = new OracleStores(version, root);
    a = stores.store('a', 'a/store');
  });
  afterAll(() => {
    stores.dispose();
    rmSync(root, { recursive: true, force: true });
  });

  // Built in one target only: building is what takes the time.
  test.each([
    ['b/s', true],
    ['a/much/longer/realm/store', false],
  ])(
    'copies of store paths are named as native evaluation in …/%s names them (built: %s)',
    async (dir, build) => {
      const run = await runOracle(stores, a, build ? NAMES_CASE : { ...NAMES_CASE, build: [] }, dir);
      // The shapes are really there: names with one, two and three hashes, all rewritten.
      const sources = run.relocated.objects.filter((o) => o.kind === 'source').map((o) => nameOf(o.path));
      const hashes = (n: string): number => n.split('-').filter((p) => /^[0-9a-z]{32}$/.test(p)).length;
      expect(sources.filter((n) => hashes(n) === 1).length).toBeGreaterThanOrEqual(4);
      expect(sources.some((n) => hashes(n) === 2)).toBe(true);
      expect(sources).toContain('explicit');
      for (const o of run.relocated.objects) {
        const old = nameOf(o.oldPath).split('-');
        // No hash of A survives in a name.
        for (const part of old) if (/^[0-9a-z]{32}$/.test(part)) expect(o.path).not.toContain(part);
      }
    },
  );

  test('a filtered copy of a path the plan does not hold is refused, naming it', async () => {
    const e = await refusal(a, 'filteredUnknown');
    expect(e.code).toBe('relocate');
    expect(e.message).toMatch(
      /cannot relocate .*-[0-9a-z]{32}-d: its name starts with the hash of .*-d, a store path that is not in the plan/,
    );
    expect(e.message).toContain('builtins.path { name = …; }');
  });

  test('a hash of the plan inside a name made some other way is refused, naming it', async () => {
    const e = await refusal(a, 'hashInName');
    expect(e.code).toBe('relocate');
    expect(e.message).toMatch(
      /cannot relocate .*-x-[0-9a-z]{32}: its name holds the hash of .*-y\.txt inside it/,
    );
  });
});
