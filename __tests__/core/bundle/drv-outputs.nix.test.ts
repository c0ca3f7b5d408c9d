// The output-path checks of a plan's .drv files, against every shape of derivation the fixtures
// make and against Nix's own import, which refuses the same mutants.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DerivationOutputChecks } from '../../../src/core/bundle/drv-outputs.js';
import { DerivationHasher, computeDrvPath } from '../../../src/core/derivation/index.js';
import {
  derivationReferences,
  drvName,
  parseDerivation,
  serialiseDerivation,
  type Derivation,
} from '../../../src/core/derivation/index.js';
import { NixPlanError } from '../../../src/core/errors.js';
import { concatBytes } from '../../../src/core/bytes.js';
import { DEFAULT_NAR_LIMITS, readNar } from '../../../src/core/nar.js';
import { regularFileNar } from '../../../src/core/nar-write.js';
import { ByteReader } from '../../../src/core/wire.js';
import { encodeExport, splitExport, type RawEntry } from '../../support/bundle-fixtures.js';
import {
  PLAN_FIXTURE,
  instantiatePlan,
  planStoreConf,
  readStoreFile,
  type InstantiatedPlan,
} from '../../fixtures/plan/fixture.js';
import { ScratchStore, nixVersions } from '../../support/nix.js';

const enc = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'latin1'));

/** The error a check gives (undefined when it passes). */
async function outcome(run: () => void | Promise<void>): Promise<NixPlanError | undefined> {
  try {
    await run();
    return undefined;
  } catch (e) {
    if (e instanceof NixPlanError) return e;
    throw e;
  }
}

/** The contents of a one-file NAR. */
async function splitNar(nar: Uint8Array): Promise<Uint8Array | undefined> {
  const reader = ByteReader.from([nar], 'NAR');
  return (await readNar(reader, DEFAULT_NAR_LIMITS, nar.length)).file?.contents;
}

/** The output path, its env variable, and the variable removed: of a .drv that has inputs before it. */
function mutantsOf(
  path: string,
  bytes: Uint8Array,
  storeDir: string,
  contents: ReadonlyMap<string, Uint8Array>,
): [string, Uint8Array][] {
  const o = parseDerivation(bytes).outputs[0]!;
  const other = `${storeDir}/${'0'.repeat(32)}${o.path.slice(storeDir.length + 33)}`;
  const edit = (f: (x: Derivation) => void): Uint8Array => {
    const x = parseDerivation(bytes);
    f(x);
    return serialiseDerivation(x);
  };
  const isOut = (k: Uint8Array): boolean => Buffer.from(k).toString() === o.name;
  return [
    ['output path', edit((x) => (x.outputs[0]!.path = other))],
    ['env value', edit((x) => (x.env.find((e) => isOut(e.key))!.value = enc(other)))],
    [
      'env removed',
      edit((x) => {
        x.env = x.env.filter((e) => !isOut(e.key));
        const known = new Map([...contents].map(([p, b]) => [p, parseDerivation(b)]));
        const hasher = new DerivationHasher(storeDir, (q) => known.get(q)!);
        x.outputs[0]!.path = hasher.outputPaths(x, drvName(path)).get(o.name)!;
      }),
    ],
  ].map(([w, b]) => [`${w as string} of ${drvName(path)}`, b as Uint8Array]);
}

describe.each(nixVersions())('against Nix $label', (version) => {
  let store: ScratchStore;
  let plan: InstantiatedPlan;
  const bytesOf = new Map<string, Uint8Array>();
  const drvs = new Map<string, Derivation>();

  beforeAll(async () => {
    const root = mkdtempSync(join(tmpdir(), 'nix-plan-drv-outputs-'));
    store = new ScratchStore(version, { root, extraConf: planStoreConf(version) });
    plan = await instantiatePlan(store);
    for (const p of plan.drvs) {
      bytesOf.set(p, readStoreFile(p));
      drvs.set(p, parseDerivation(bytesOf.get(p)!));
    }
  });
  afterAll(() => store.dispose());

  /** Checks every .drv of the closure in its (dependency) order. */
  async function checkAll(
    checks: DerivationOutputChecks,
    replace = new Map<string, Uint8Array>(),
  ): Promise<void> {
    for (const p of plan.drvs) {
      const bytes = replace.get(p) ?? bytesOf.get(p)!;
      await checks.check(p, parseDerivation(bytes), bytes);
    }
  }

  test('every derivation Nix wrote passes, whatever its kind', async () => {
    const checks = new DerivationOutputChecks(store.storeDir, { indexOutputs: true });
    await checkAll(checks);
    // Every output path Nix wrote is indexed to the .drv that declares it.
    for (const d of drvs.values())
      for (const o of d.outputs) {
        if (o.path === '') continue;
        const by = checks.declaredOutput(o.path);
        expect(by?.output).toBe(o.name);
        // Two fetchers of one file declare one path: either may be named.
        expect(drvs.get(by!.drvPath)?.outputs.some((x) => x.path === o.path)).toBe(true);
      }
    const fixed = [...drvs].find(([p]) => p.endsWith('-fixed-sha512.drv'))!;
    expect(checks.declaredOutput(fixed[1].outputs[0]!.path)?.fixed?.hashAlgo).toBe('sha512');
  });

  test('inputs the plan does not hold are read from the store, with their own inputs', async () => {
    const root = plan.roots.find((r) => r.endsWith('-plain.drv'))!;
    const read: string[] = [];
    const checks = new DerivationOutputChecks(store.storeDir, {
      readStore: (p) => {
        read.push(p);
        return Promise.resolve(bytesOf.get(p));
      },
    });
    await checks.check(root, drvs.get(root)!, bytesOf.get(root)!);
    expect(read.map(drvName).sort()).toEqual(['leaf', 'mid']);
    // Without the store, or with a store that lacks them, the check cannot be made: refused.
    const none = new DerivationOutputChecks(store.storeDir);
    expect((await outcome(() => none.check(root, drvs.get(root)!, bytesOf.get(root)!)))?.code).toBe(
      'closure',
    );
    const lacking = new DerivationOutputChecks(store.storeDir, {
      readStore: () => Promise.resolve(undefined),
    });
    const e = await outcome(() => lacking.check(root, drvs.get(root)!, bytesOf.get(root)!));
    expect(e?.code).toBe('closure');
    expect(e?.message).toMatch(/-(mid|leaf)\.drv/);
  });

  /** Mutants of one .drv, each with what its error must mention. */
  function mutants(path: string): [string, Uint8Array, string][] {
    const d = drvs.get(path)!;
    const out: [string, Uint8Array, string][] = [];
    const edit = (what: string, f: (x: Derivation) => void, mention: string): void => {
      const x = parseDerivation(bytesOf.get(path)!);
      f(x);
      out.push([what, serialiseDerivation(x), mention]);
    };
    const o = d.outputs[0]!;
    const isOut = (k: Uint8Array): boolean => Buffer.from(k).toString() === o.name;
    if (o.path !== '') {
      const other = `${store.storeDir}/${'0'.repeat(32)}${o.path.slice(store.storeDir.length + 33)}`;
      edit('output path', (x) => (x.outputs[0]!.path = other), other);
      edit(
        'env value',
        (x) => (x.env.find((e) => isOut(e.key))!.value = enc(other)),
        `environment variable '${o.name}'`,
      );
      // Removed, with the output paths a forger recomputes for what is left (Nix 2.8 refuses it).
      edit(
        'env removed',
        (x) => {
          x.env = x.env.filter((e) => !isOut(e.key));
          if (o.hashAlgo === '') {
            const hasher = new DerivationHasher(store.storeDir, (q) => drvs.get(q)!);
            const paths = hasher.outputPaths(x, drvName(path));
            for (const y of x.outputs) {
              y.path = paths.get(y.name)!;
              const e = x.env.find((v) => Buffer.from(v.key).toString() === y.name);
              if (e !== undefined) e.value = enc(y.path);
            }
          }
        },
        `no environment variable '${o.name}'`,
      );
    }
    if (o.hash !== '' && o.hash !== 'impure')
      edit('fixed hash', (x) => (x.outputs[0]!.hash = '0'.repeat(o.hash.length)), 'fixed output');
    if (o.path === '' && o.hashAlgo === '')
      edit(
        'deferred given a path',
        (x) => (x.outputs[0]!.path = plan.closure.find((p) => !p.endsWith('.drv'))!),
        'defer',
      );
    edit('a builder that no longer matches the paths', (x) => (x.builder = enc('/bin/sh2')), 'Nix computes');
    return out;
  }

  test('every mutant of every derivation is refused, naming the .drv', async () => {
    let refused = 0;
    for (const p of plan.drvs) {
      if (drvs.get(p)!.outputs.every((o) => o.hashAlgo !== '' && o.hash === '')) continue; // floating: no paths
      for (const [what, bytes, mention] of mutants(p)) {
        if (
          what.startsWith('a builder') &&
          drvs.get(p)!.outputs.some((o) => o.hashAlgo !== '' || o.path === '')
        )
          continue; // fixed or deferred outputs do not depend on the builder
        const checks = new DerivationOutputChecks(store.storeDir);
        const e = await outcome(() => checkAll(checks, new Map([[p, bytes]])));
        expect([p, what, e?.code]).toEqual([p, what, 'bundle']);
        expect(e?.message).toContain(p);
        expect(e?.message).toContain(mention);
        refused++;
      }
    }
    expect(refused).toBeGreaterThan(40);
  });

  test('Nix refuses the same mutants on import, after importing the paths before them', async () => {
    // `plain` made in a store of its own, whose dir is then reused by one fresh store per mutant.
    const base = mkdtempSync(join(tmpdir(), 'nix-plan-drv-outputs-'));
    const storeDir = join(base, 'store');
    const maker = new ScratchStore(version, { storeDir, root: join(base, 'maker') });
    let entries: RawEntry[];
    let root: string;
    try {
      [root] = (await maker.instantiate(PLAN_FIXTURE, ['plain'])) as [string];
      const closure = await maker.requisites([root]);
      const { stdout } = await maker.run('nix-store', ['--export', ...closure]);
      entries = await splitExport(new Uint8Array(stdout));
    } finally {
      maker.dispose();
      rmSync(storeDir, { recursive: true, force: true });
    }
    const contents = new Map<string, Uint8Array>();
    for (const e of entries) if (e.path.endsWith('.drv')) contents.set(e.path, (await splitNar(e.nar))!);
    let tried = 0;
    try {
      for (const [what, bytes] of mutantsOf(root, contents.get(root)!, storeDir, contents)) {
        const refs = derivationReferences(parseDerivation(bytes));
        const path = computeDrvPath(storeDir, drvName(root), bytes, refs);
        const forged = entries.map((e) =>
          e.path === root ? { ...e, path, nar: concatBytes(regularFileNar(bytes)) } : e,
        );
        const checks = new DerivationOutputChecks(storeDir);
        const verdict = await outcome(async () => {
          for (const e of forged) {
            if (!e.path.endsWith('.drv')) continue;
            const b = e.path === path ? bytes : contents.get(e.path)!;
            await checks.check(e.path, parseDerivation(b), b);
          }
        });
        expect([what, verdict?.code]).toEqual([what, 'bundle']);
        const fresh = new ScratchStore(version, { storeDir, root: join(base, `import-${tried++}`) });
        try {
          const res = await fresh.run('nix-store', ['--import'], {
            input: encodeExport(forged),
            allowFailure: true,
          });
          // Nix 2.34 checks no variable of an input-addressed output (2.8 does): it lets these through.
          if (what.startsWith('env') && version.label !== '2.8') {
            expect([what, res.code]).toEqual([what, 0]);
            continue;
          }
          expect([what, res.code === 0]).toEqual([what, false]);
          expect(res.stderr).toMatch(/incorrect (output|environment variable)|missing environment variable/);
          // The paths before it stayed valid: the partial import the verifier exists to prevent.
          expect((await fresh.validPaths()).length).toBe(entries.length - 1);
        } finally {
          fresh.dispose();
          rmSync(storeDir, { recursive: true, force: true });
        }
      }
      expect(tried).toBe(3);
    } finally {
      rmSync(base, { recursive: true, force: true });
    }
  });
});
