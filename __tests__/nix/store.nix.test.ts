// Reading closures from real stores (Nix 2.8 and 2.34): evaluation, the one-query closure read,
// include kinds, physical store dirs; plus the pure parsers of Nix's output.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import fc from 'fast-check';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NixPlanError } from '../../src/core/errors.js';
import { nameOf } from '../../src/core/store-path.js';
import { dependencyOrder } from '../../src/core/closure.js';
import { collectClosure } from '../../src/nix/collect.js';
import { checkEvaluateRequest, evaluate } from '../../src/nix/evaluate.js';
import { ProcessRunner } from '../../src/nix/runner.js';
import {
  batchPaths,
  NixStore,
  parseDumpDb,
  parseNixVersion,
  physicalStoreDir,
  storeUriQuery,
} from '../../src/nix/store.js';
import { RecordingRunner } from '../support/cli-run.js';
import { nixVersions, ScratchStore, SYSTEM } from '../support/nix.js';

const EXAMPLE = join(import.meta.dirname, '..', '..', 'examples', 'hello');

describe('parsers of Nix output', () => {
  test('parseDumpDb reads entries with and without derivers and references', () => {
    const text = [
      '/s/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-a',
      'a1d0ecb9f7c68e1ca8d54e95bb1fb99947ec81f938a36a62064d11e51580108c',
      '552',
      '',
      '0',
      '/s/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-b',
      'sha256:0a430879c266f8b57f4092a0f935cf3facd48bbccde5760d4748ca405171e969',
      '120',
      '/s/cccccccccccccccccccccccccccccccc-b.drv',
      '2',
      '/s/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-a',
      '/s/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-b',
      '',
    ].join('\n');
    const infos = parseDumpDb(text);
    expect(infos).toEqual([
      {
        path: '/s/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-a',
        narHash: 'a1d0ecb9f7c68e1ca8d54e95bb1fb99947ec81f938a36a62064d11e51580108c',
        narSize: 552,
        deriver: '',
        references: [],
      },
      {
        path: '/s/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-b',
        narHash: '0a430879c266f8b57f4092a0f935cf3facd48bbccde5760d4748ca405171e969',
        narSize: 120,
        deriver: '/s/cccccccccccccccccccccccccccccccc-b.drv',
        references: ['/s/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-a', '/s/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-b'],
      },
    ]);
    expect(() => parseDumpDb('/s/x\nzz\n1\n\n0\n')).toThrow(NixPlanError);
    expect(() => parseDumpDb(text.split('\n').slice(0, 10).join('\n'))).toThrow(/truncated/);
  });

  test('parseNixVersion reads Nix, Lix and Determinate banners', () => {
    expect(parseNixVersion('nix-store (Nix) 2.8.0\n')).toBe('2.8.0');
    expect(parseNixVersion('nix-store (Nix) 2.34.8')).toBe('2.34.8');
    expect(parseNixVersion('nix-store (Lix, like Nix) 2.91.1')).toBe('2.91.1');
    expect(() => parseNixVersion('hello')).toThrow(NixPlanError);
  });

  test('physicalStoreDir follows root= and real= and bare paths', () => {
    expect(physicalStoreDir('/nix/store')).toBe('/nix/store');
    expect(physicalStoreDir('/nix/store', { store: 'daemon' })).toBe('/nix/store');
    expect(physicalStoreDir('/nix/store', { store: 'local?root=/tmp/r' })).toBe('/tmp/r/nix/store');
    expect(physicalStoreDir('/nix/store', { store: '/tmp/r' })).toBe('/tmp/r/nix/store');
    expect(physicalStoreDir('/nix/store', { store: 'local?real=/x/s&root=/tmp/r' })).toBe('/x/s');
    expect(physicalStoreDir('/nix/store', { store: 'daemon', realStoreDir: '/y' })).toBe('/y');
    // A chroot store keeps its files in <root>/nix/store whatever the logical store dir.
    expect(physicalStoreDir('/beta/store', { store: 'local?root=/tmp/r/' })).toBe('/tmp/r/nix/store');
  });

  test('store URI parameters are only percent-decoded, as Nix decodes them', () => {
    // A `+` is a plus (not a space, as URLSearchParams would have it); %2B is one too.
    expect(physicalStoreDir('/nix/store', { store: 'local?root=/tmp/a+b' })).toBe('/tmp/a+b/nix/store');
    expect(physicalStoreDir('/nix/store', { store: 'local?real=/x%2By%20z' })).toBe('/x+y z');
    expect(storeUriQuery('root=/a&root=/b&flag&real=%2Fs')).toEqual(
      new Map([
        ['root', '/a'],
        ['real', '/s'],
      ]),
    );
    expect(() => storeUriQuery('root=/a%zz')).toThrow(/not percent-encoded correctly/);
  });

  test('batchPaths keeps order, covers every path and respects the budget', () => {
    fc.assert(
      fc.property(
        fc.array(fc.string({ minLength: 1, maxLength: 40 }), { maxLength: 200 }),
        fc.integer({ min: 1, max: 300 }),
        (paths, budget) => {
          const batches = batchPaths(paths, budget);
          expect(batches.flat()).toEqual(paths);
          for (const b of batches) {
            expect(b.length).toBeGreaterThan(0);
            const size = b.reduce((n, p) => n + p.length + 1, 0);
            if (b.length > 1) expect(size).toBeLessThanOrEqual(budget);
          }
        },
      ),
    );
  });

  test('dependencyOrder puts references first and refuses cycles', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 40 }), fc.array(fc.tuple(fc.nat(), fc.nat())), (n, edges) => {
        // A DAG: edges only from higher to lower numbers.
        const names = Array.from({ length: n }, (_, i) => `p${i}`);
        const refs = new Map<string, string[]>(names.map((p) => [p, [p]]));
        for (const [a, b] of edges) {
          const hi = Math.max(a % n, b % n);
          const lo = Math.min(a % n, b % n);
          if (hi !== lo) refs.get(`p${hi}`)?.push(`p${lo}`);
        }
        const shuffled = [...names].reverse();
        const order = dependencyOrder(shuffled, (p) => refs.get(p) ?? []);
        expect([...order].sort()).toEqual([...names].sort());
        const pos = new Map(order.map((p, i) => [p, i]));
        for (const [p, rs] of refs)
          for (const r of rs) if (r !== p) expect(pos.get(r)).toBeLessThan(pos.get(p) ?? -1);
      }),
    );
    expect(() => dependencyOrder(['a', 'b'], (p) => (p === 'a' ? ['b'] : ['a']))).toThrow(/cycle/);
  });
});

describe.each(nixVersions())('reading closures with Nix $label', (version) => {
  let s: ScratchStore;
  beforeAll(() => {
    s = new ScratchStore(version);
  });
  afterAll(() => s.dispose());

  test('the version is detected', async () => {
    const v = await new NixStore(s.runner).version();
    expect(v.startsWith(version.label + '.')).toBe(true);
  });

  test("a chroot store whose root has a '+' is found where Nix put it, whatever the store dir", async () => {
    const root = mkdtempSync(join(tmpdir(), 'nix-plan-a+b-'));
    try {
      const uri = `local?root=${root}`;
      const file = join(root, 'plus.txt');
      writeFileSync(file, 'plus\n');
      const { stdout } = await s.run('nix-store', ['--store', uri, '--add', file]);
      const path = stdout.toString('utf8').trim();
      const store = new NixStore(s.runner, { store: uri });
      expect(readFileSync(await store.realPath(path), 'utf8')).toBe('plus\n');
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  test('a file with attributes evaluates in one process and keeps each attribute', async () => {
    const counting = new RecordingRunner(s.runner);
    const store = new NixStore(counting);
    const { roots, storeDir } = await evaluate(
      await checkEvaluateRequest({ file: EXAMPLE, attributes: ['hello', 'banner'] }),
      store,
    );
    expect(counting.commands.length).toBe(1);
    expect(storeDir).toBe(s.storeDir);
    expect(roots).toEqual([
      { attribute: 'hello', drvPath: (await s.instantiate(EXAMPLE, ['hello']))[0] },
      { attribute: 'banner', drvPath: (await s.instantiate(EXAMPLE, ['banner']))[0] },
    ]);
  });

  test('a local flake with no inputs evaluates offline to the same derivation', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nix-plan-flake-'));
    try {
      cpSync(EXAMPLE, dir, { recursive: true });
      const store = new NixStore(s.runner);
      const { roots } = await evaluate(
        await checkEvaluateRequest({ installables: [`path:${dir}#hello`, `path:${dir}#banner`] }),
        store,
      );
      const direct = await s.run('nix-instantiate', [
        join(dir, 'default.nix'),
        '--argstr',
        'system',
        SYSTEM,
        '-A',
        'hello',
        '-A',
        'banner',
      ]);
      const [hello, banner] = direct.stdout.toString().trim().split('\n');
      expect(roots).toEqual([
        { installable: `path:${dir}#hello`, drvPath: hello },
        { installable: `path:${dir}#banner`, drvPath: banner },
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('bad requests are usage errors, before any Nix; evaluation failures are nix errors', async () => {
    const store = new NixStore(s.runner);
    await expect(checkEvaluateRequest({})).rejects.toMatchObject({ code: 'usage' });
    await expect(checkEvaluateRequest({ attributes: ['x'] })).rejects.toMatchObject({ code: 'usage' });
    await expect(checkEvaluateRequest({ drvPaths: ['/nix/store/x'] })).rejects.toMatchObject({
      code: 'usage',
    });
    await expect(
      evaluate(await checkEvaluateRequest({ file: EXAMPLE, attributes: ['nope'] }), store),
    ).rejects.toMatchObject({
      code: 'nix',
    });
  });

  test('the drv closure is read with a constant number of processes, dependencies first', async () => {
    const [hello] = await s.instantiate(EXAMPLE, ['hello']);
    if (hello === undefined) throw new Error('no drv');
    const counting = new RecordingRunner(s.runner);
    const store = new NixStore(counting);
    const closure = await collectClosure(store, s.storeDir, [hello], 'drvs');
    expect(counting.commands.map((c) => c.slice(0, 2).join(' '))).toEqual([
      'nix-store --query',
      'nix-store --dump-db',
    ]);
    const paths = closure.objects.map((o) => o.path);
    expect([...paths].sort()).toEqual((await s.requisites([hello])).sort());
    const kinds = Object.fromEntries(closure.objects.map((o) => [nameOf(o.path), o.kind]));
    expect(kinds).toEqual({
      'hello.drv': 'drv',
      'hello-banner.drv': 'drv',
      'message.txt': 'text',
      'build.sh': 'source',
    });
    const pos = new Map(paths.map((p, i) => [p, i]));
    for (const o of closure.objects)
      for (const r of o.references) if (r !== o.path) expect(pos.get(r)).toBeLessThan(pos.get(o.path) ?? -1);
    expect(closure.systems).toEqual([SYSTEM]);
    const outputs = closure.rootOutputs.get(hello);
    expect(Object.keys(outputs ?? {})).toEqual(['doc', 'out']);
    const q = await s.run('nix-store', ['-q', '--outputs', hello]);
    expect(Object.values(outputs ?? {}).sort()).toEqual(q.stdout.toString().trim().split('\n').sort());
  });

  test('include=outputs builds the roots and adds their output closure', async () => {
    const [hello] = await s.instantiate(EXAMPLE, ['hello']);
    if (hello === undefined) throw new Error('no drv');
    const closure = await collectClosure(new NixStore(s.runner), s.storeDir, [hello], 'outputs');
    const outputs = closure.objects.filter((o) => o.kind === 'output').map((o) => nameOf(o.path));
    expect(outputs.sort()).toEqual(['hello', 'hello-banner', 'hello-doc']);
    for (const o of closure.objects.filter((x) => x.kind === 'output'))
      expect(o.deriver.endsWith('.drv')).toBe(true);
  });

  test('include=sources realises fixed-output derivations only', async () => {
    const expr = `let fod = builtins.derivation { name = "fetched"; system = "${SYSTEM}"; builder = "/bin/sh"; args = ["-c" "echo -n data > $out"]; outputHashMode = "flat"; outputHashAlgo = "sha256"; outputHash = "3a6eb0790f39ac87c94f3856b2dd2c5d110e6811602261a9a923d3bb23adc8b7"; }; in builtins.derivation { name = "uses"; system = "${SYSTEM}"; builder = "/bin/sh"; args = ["-c" "/bin/cat \${fod} > $out"]; }`;
    const [uses] = await s.instantiateExpr(expr);
    if (uses === undefined) throw new Error('no drv');
    const closure = await collectClosure(new NixStore(s.runner), s.storeDir, [uses], 'sources');
    // The fixed output is named by its content, so it counts as a source (as the verifier sees it).
    const fetched = closure.objects.filter((o) => o.deriver !== '');
    expect(fetched.map((o) => [nameOf(o.path), o.kind])).toEqual([['fetched', 'source']]);
    expect(closure.objects.filter((o) => o.kind === 'output')).toEqual([]);
    const out = await s.run('nix-store', ['-q', '--outputs', uses]);
    // Only the fixed output was built, not the derivation that uses it.
    const invalid = await s.run('nix-store', [
      '--check-validity',
      '--print-invalid',
      out.stdout.toString().trim(),
    ]);
    expect(invalid.stdout.toString().trim()).toBe(out.stdout.toString().trim());
  });

  test('a chroot store (--store local?root=…) is read from its physical location', async () => {
    const root = mkdtempSync(join(tmpdir(), 'nix-plan-root-'));
    try {
      // The logical store dir is /nix/store; its files live under `root`, and /nix is never touched.
      const runner = new ProcessRunner({
        binDir: version.binDir,
        env: { ...s.env, NIX_STORE_DIR: undefined },
      });
      const store = new NixStore(runner, { store: `local?root=${root}` });
      expect(await store.storeDir()).toBe('/nix/store');
      const { roots, storeDir } = await evaluate(
        await checkEvaluateRequest({ file: EXAMPLE, attributes: ['hello'] }),
        store,
      );
      expect(storeDir).toBe('/nix/store');
      const closure = await collectClosure(
        store,
        storeDir,
        roots.map((r) => r.drvPath),
        'drvs',
      );
      expect(closure.objects.map((o) => o.kind).sort()).toEqual(['drv', 'drv', 'source', 'text']);
      expect(await store.realPath(roots[0]?.drvPath ?? '')).toBe(join(root, roots[0]?.drvPath ?? ''));
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
