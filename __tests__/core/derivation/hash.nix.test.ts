// hashDerivationModulo, output paths and drv paths: against real Nix 2.8 and 2.34, and unit properties.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  computeDrvPath,
  DerivationHasher,
  derivationReferences,
  drvName,
  parseDerivation,
  serialiseDerivation,
  type Derivation,
} from '../../../src/core/derivation/index.js';
import { NixPlanError } from '../../../src/core/errors.js';
import { sha256, toHex } from '../../../src/core/hash.js';
import { nixVersions, ScratchStore } from '../../support/nix.js';
import {
  instantiatePlan,
  planStoreConf,
  readStoreFile,
  type InstantiatedPlan,
} from '../../fixtures/plan/fixture.js';

const enc = new TextEncoder();
const b = (s: string): Uint8Array => enc.encode(s);

// ---------------------------------------------------------------------------------------------
// A miniature `derivation` primop over our own interfaces, to build graphs for unit tests.

const STORE = '/test/store';

interface MiniStore {
  drvs: Map<string, Derivation>;
  lookups: Map<string, number>;
  hasher: DerivationHasher;
}

function miniStore(): MiniStore {
  const drvs = new Map<string, Derivation>();
  const lookups = new Map<string, number>();
  const hasher = new DerivationHasher(STORE, (p) => {
    lookups.set(p, (lookups.get(p) ?? 0) + 1);
    const d = drvs.get(p);
    if (d === undefined) throw new NixPlanError('closure', `no ${p}`);
    return d;
  });
  return { drvs, lookups, hasher };
}

interface Spec {
  name: string;
  inputs?: { path: string; outputs: string[] }[];
  outputs?: string[];
  env?: Record<string, string>;
  fixed?: { hashAlgo: string; hash: string };
  floating?: boolean;
}

/** Like Nix's derivationStrict: fills outputs and their env vars, writes the drv, returns its path. */
function add(store: MiniStore, spec: Spec): string {
  const outputs = (spec.outputs ?? ['out']).sort();
  const env = { ...spec.env, name: spec.name, builder: '/bin/sh', system: 'x86_64-linux' };
  for (const o of outputs) env[o as keyof typeof env] = '';
  const drv: Derivation = {
    version: undefined,
    outputs: outputs.map((name) => ({
      name,
      path: '',
      hashAlgo: spec.fixed?.hashAlgo ?? (spec.floating === true ? 'r:sha256' : ''),
      hash: spec.fixed?.hash ?? '',
    })),
    inputDrvs: (spec.inputs ?? []).slice().sort((x, y) => (x.path < y.path ? -1 : 1)),
    inputSrcs: [],
    system: b('x86_64-linux'),
    builder: b('/bin/sh'),
    args: [],
    env: Object.keys(env)
      .sort()
      .map((k) => ({ key: b(k), value: b(env[k as keyof typeof env] ?? '') })),
  };
  const paths = store.hasher.outputPaths(drv, spec.name);
  for (const o of drv.outputs) o.path = paths.get(o.name) ?? '';
  drv.env = drv.env.map((e) => {
    const p = paths.get(Buffer.from(e.key).toString());
    return p === undefined || spec.floating === true ? e : { key: e.key, value: b(p) };
  });
  const bytes = serialiseDerivation(drv);
  const path = computeDrvPath(STORE, spec.name, bytes, derivationReferences(drv));
  store.drvs.set(path, parseDerivation(bytes));
  return path;
}

const HELLO = toHex(sha256('hello\n'));

describe('DerivationHasher (unit)', () => {
  test('a 20,000-deep chain hashes without recursion, looking each drv up once', () => {
    const s = miniStore();
    let prev = add(s, { name: 'd0' });
    for (let i = 1; i < 20_000; i++)
      prev = add(s, { name: `d${i}`, inputs: [{ path: prev, outputs: ['out'] }] });
    const fresh = new DerivationHasher(STORE, (p) => {
      s.lookups.set(p, (s.lookups.get(p) ?? 0) + 1);
      return s.drvs.get(p) as Derivation;
    });
    s.lookups.clear();
    expect(fresh.hashModulo(prev).kind).toBe('regular');
    expect(fresh.hashModulo(prev)).toBe(fresh.hashModulo(prev));
    expect(s.lookups.size).toBe(20_000);
    expect([...s.lookups.values()].every((n) => n === 1)).toBe(true);
  });

  test('masking: own output paths and output env vars do not matter, other env vars do', () => {
    const s = miniStore();
    const dep = add(s, { name: 'dep', outputs: ['out', 'dev'] });
    const path = add(s, { name: 'top', inputs: [{ path: dep, outputs: ['dev'] }], outputs: ['out', 'lib'] });
    const drv = s.drvs.get(path) as Derivation;
    const expected = s.hasher.outputPaths(drv, 'top');
    expect(expected.get('out')).toBe(drv.outputs.find((o) => o.name === 'out')?.path);
    const scrambled: Derivation = {
      ...drv,
      outputs: drv.outputs.map((o) => ({ ...o, path: `${STORE}/00000000000000000000000000000000-x` })),
      env: drv.env.map((e) => (Buffer.from(e.key).toString() === 'lib' ? { ...e, value: b('junk') } : e)),
    };
    expect(s.hasher.outputPaths(scrambled, 'top')).toEqual(expected);
    const changed: Derivation = {
      ...drv,
      env: drv.env.map((e) => (Buffer.from(e.key).toString() === 'name' ? { ...e, value: b('other') } : e)),
    };
    expect(s.hasher.outputPaths(changed, 'top').get('out')).not.toBe(expected.get('out'));
  });

  test('fixed-output inputs count by what they produce: same hash, different script, same dependents', () => {
    const s = miniStore();
    const fixed = { hashAlgo: 'sha256', hash: HELLO };
    const f1 = add(s, { name: 'src', fixed, env: { script: 'curl a' } });
    const f2 = add(s, { name: 'src', fixed, env: { script: 'curl b' } });
    expect(f1).not.toBe(f2);
    const out1 = (s.drvs.get(f1) as Derivation).outputs[0]?.path;
    expect(out1).toBe((s.drvs.get(f2) as Derivation).outputs[0]?.path);
    const u1 = s.drvs.get(add(s, { name: 'use', inputs: [{ path: f1, outputs: ['out'] }] }));
    const u2 = s.drvs.get(add(s, { name: 'use', inputs: [{ path: f2, outputs: ['out'] }] }));
    const both = s.drvs.get(
      add(s, {
        name: 'use',
        inputs: [
          { path: f1, outputs: ['out'] },
          { path: f2, outputs: ['out'] },
        ],
      }),
    );
    expect(u1?.outputs).toEqual(u2?.outputs);
    // Merged into one (hex, ["out"]) entry, so using both is the same as using one.
    expect(both?.outputs).toEqual(u1?.outputs);
  });

  test('a floating CA input defers every dependent, through regular drvs but not through fixed ones', () => {
    const s = miniStore();
    const ca = add(s, { name: 'ca', floating: true });
    expect(s.hasher.hashModulo(ca)).toEqual({ kind: 'deferred' });
    const user = add(s, { name: 'user', inputs: [{ path: ca, outputs: ['out'] }] });
    expect((s.drvs.get(user) as Derivation).outputs[0]?.path).toBe('');
    const user2 = add(s, { name: 'user2', inputs: [{ path: user, outputs: ['out'] }] });
    expect(s.hasher.hashModulo(user2)).toEqual({ kind: 'deferred' });
    // Deferred by its first input, a derivation still looks every input up: one it cannot is refused.
    const missing = `${STORE}/${'z'.repeat(32)}-missing.drv`;
    const both = s.drvs.get(user) as Derivation;
    const withMissing = { ...both, inputDrvs: [...both.inputDrvs, { path: missing, outputs: ['out'] }] };
    expect(() => s.hasher.outputPaths(withMissing, 'user')).toThrow(`no ${missing}`);
    const fixed = add(s, {
      name: 'fixed',
      inputs: [{ path: user, outputs: ['out'] }],
      fixed: { hashAlgo: 'r:sha256', hash: HELLO },
    });
    expect(s.hasher.hashModulo(fixed).kind).toBe('fixed');
    const after = add(s, { name: 'after', inputs: [{ path: fixed, outputs: ['out'] }] });
    expect(s.hasher.hashModulo(after).kind).toBe('regular');
  });

  test('refuses what Nix refuses, with typed errors', () => {
    const s = miniStore();
    const dep = add(s, { name: 'dep' });
    const bad = (spec: Spec): unknown => {
      try {
        add(s, spec);
      } catch (e) {
        return e;
      }
      return undefined;
    };
    const e1 = bad({ name: 'x', inputs: [{ path: dep, outputs: ['dev'] }] });
    expect(e1).toBeInstanceOf(NixPlanError);
    expect((e1 as Error).message).toMatch(/output 'dev'/);
    expect(
      bad({ name: 'x', outputs: ['out', 'dev'], fixed: { hashAlgo: 'sha256', hash: HELLO } }),
    ).toBeInstanceOf(NixPlanError);
    expect(bad({ name: 'x', fixed: { hashAlgo: 'md7', hash: HELLO } })).toBeInstanceOf(NixPlanError);
    const mixed: Derivation = {
      ...(s.drvs.get(dep) as Derivation),
      outputs: [
        { name: 'a', path: '', hashAlgo: '', hash: '' },
        { name: 'b', path: '', hashAlgo: 'r:sha256', hash: '' },
      ],
    };
    expect(() => s.hasher.outputPaths(mixed, 'mixed')).toThrow(/mixes output types/);
  });

  test('a dependency cycle is a closure error, not a hang or a stack overflow', () => {
    const a = `${STORE}/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-a.drv`;
    const c = `${STORE}/cccccccccccccccccccccccccccccccc-c.drv`;
    const drv = (input: string): Derivation => ({
      version: undefined,
      outputs: [{ name: 'out', path: '', hashAlgo: '', hash: '' }],
      inputDrvs: [{ path: input, outputs: ['out'] }],
      inputSrcs: [],
      system: b('s'),
      builder: b('b'),
      args: [],
      env: [],
    });
    const hasher = new DerivationHasher(STORE, (p) => drv(p === a ? c : a));
    let err: unknown;
    try {
      hasher.hashModulo(a);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(NixPlanError);
    expect((err as NixPlanError).code).toBe('closure');
  });
});

// ---------------------------------------------------------------------------------------------
// Against real Nix: every drv of every fixture, in two store dirs per version.

describe.each(nixVersions())('against Nix $label', (version) => {
  describe.each(['store', 'beta/store'])('store dir <root>/%s', (layout) => {
    let store: ScratchStore;
    let plan: InstantiatedPlan;
    const drvs = new Map<string, Derivation>();
    const bytesOf = new Map<string, Uint8Array>();

    beforeAll(async () => {
      const root = mkdtempSync(join(tmpdir(), 'nix-plan-hash-'));
      store = new ScratchStore(version, {
        root,
        storeDir: join(root, layout),
        extraConf: planStoreConf(version),
      });
      plan = await instantiatePlan(store);
      for (const p of plan.drvs) {
        const bytes = readStoreFile(p);
        bytesOf.set(p, bytes);
        drvs.set(p, parseDerivation(bytes));
      }
    });
    afterAll(() => store.dispose());

    test('the fixtures cover every kind of derivation', () => {
      const all = [...drvs.values()];
      const kinds = new Set(
        all.flatMap((d) =>
          d.outputs.map((o) =>
            o.hashAlgo === ''
              ? o.path === ''
                ? 'deferred'
                : 'input'
              : o.hash === ''
                ? 'floating'
                : o.hashAlgo,
          ),
        ),
      );
      for (const k of ['input', 'deferred', 'floating', 'sha256', 'r:sha256', 'sha1', 'sha512', 'r:sha1'])
        expect(kinds).toContain(k);
      expect(all.some((d) => d.outputs.length === 3)).toBe(true);
      expect(all.some((d) => d.env.some((e) => Buffer.from(e.key).toString() === '__json'))).toBe(true);
      if (version.label !== '2.8') {
        expect(all.some((d) => d.version === 'xp-dyn-drv')).toBe(true);
        expect(kinds).toContain('text:sha256');
      }
    });

    test('serialise(parse(bytes)) is byte-identical for every drv in the closure', () => {
      expect(plan.drvs.length).toBeGreaterThan(20);
      for (const [p, d] of drvs)
        expect(Buffer.from(serialiseDerivation(d)).equals(Buffer.from(bytesOf.get(p) ?? []))).toBe(true);
    });

    test('computeDrvPath gives the real path of every drv, and its references are the store’s', () => {
      for (const [p, d] of drvs) {
        const refs = derivationReferences(d);
        expect(refs).toEqual([...(plan.references.get(p) ?? [])].sort());
        expect(computeDrvPath(store.storeDir, drvName(p), bytesOf.get(p) ?? new Uint8Array(), refs)).toBe(p);
      }
    });

    test('outputPaths equals the outputs Nix wrote (deferred: "") for every drv', () => {
      const hasher = new DerivationHasher(store.storeDir, (p) => {
        const d = drvs.get(p);
        if (d === undefined) throw new NixPlanError('closure', `not in the closure: ${p}`);
        return d;
      });
      let deferred = 0;
      let known = 0;
      for (const [p, d] of drvs) {
        const want = new Map(d.outputs.map((o) => [o.name, o.path]));
        expect([p, hasher.outputPaths(d, drvName(p))]).toEqual([p, want]);
        for (const path of want.values())
          if (path === '') deferred++;
          else known++;
        // Nix also sets each output's env var to its path (except for CA outputs: a placeholder).
      }
      expect(deferred).toBeGreaterThanOrEqual(version.label === '2.8' ? 2 : 4);
      expect(known).toBeGreaterThan(20);
    });

    test('a fixed output path agrees with what Nix realises', async () => {
      const fixed = plan.roots.find((r) => r.endsWith('-fixed-flat.drv')) as string;
      const { stdout } = await store.run('nix-store', ['--realise', fixed]);
      const hasher = new DerivationHasher(store.storeDir, (p) => drvs.get(p) as Derivation);
      const out = hasher.outputPaths(drvs.get(fixed) as Derivation, 'fixed-flat').get('out');
      expect(stdout.toString().trim()).toBe(out);
    });
  });
});
