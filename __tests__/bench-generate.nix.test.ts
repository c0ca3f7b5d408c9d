// The benchmark's closure generator: deterministic, exact derivation counts, nixpkgs-like drv sizes.
import { describe, expect, test } from '@jest/globals';
import fc from 'fast-check';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateClosure, MIN_COUNT, writeClosure } from '../bench/generate.js';
import { nixVersions, ScratchStore } from './support/nix.js';

describe('generateClosure', () => {
  test('same seed and count give the same files, byte for byte', () => {
    fc.assert(
      fc.property(fc.integer({ min: MIN_COUNT, max: 150 }), fc.integer(), (count, seed) => {
        const a = generateClosure({ count, seed });
        const b = generateClosure({ count, seed });
        expect([...b.files]).toEqual([...a.files]);
        expect(b.derivations).toEqual(a.derivations);
      }),
      { numRuns: 20 },
    );
  });

  test('a different seed gives a different graph', () => {
    const a = generateClosure({ count: 100, seed: 1 }).files.get('default.nix');
    const b = generateClosure({ count: 100, seed: 2 }).files.get('default.nix');
    expect(a).toBeDefined();
    expect(b).not.toEqual(a);
  });

  test('the derivations by role add up to the requested count', () => {
    for (const count of [MIN_COUNT, 50, 1000, 2000]) {
      const { derivations: d } = generateClosure({ count, seed: 3 });
      expect(d.core + d.packages + d.fetches + d.root).toBe(count);
      expect(d.root).toBe(1);
    }
  });

  test('hosts: a function of system giving each host over the one root, and a flake of them', () => {
    const { files, derivations } = generateClosure({ count: 60, seed: 4, hosts: 3 });
    expect(derivations.hosts).toBe(3);
    const text = files.get('default.nix') ?? '';
    expect(text).toMatch(/^\{ system \? builtins\.currentSystem \}:$/m);
    expect(text.match(/^ {2}host\d+ = derivation \{$/gm)).toHaveLength(3);
    expect(text.match(/^ {4}base = root;$/gm)).toHaveLength(3);
    expect(files.get('flake.nix')).toMatch(/import \.\/default\.nix \{ inherit system; \}/);
    // Without hosts nothing changes: the file is the root itself and there is no flake.
    expect(generateClosure({ count: 60, seed: 4 }).files.has('flake.nix')).toBe(false);
    expect(() => generateClosure({ count: 60, seed: 4, hosts: -1 })).toThrow(RangeError);
  });

  test('refuses counts too small to hold the core, and non-integer input', () => {
    expect(() => generateClosure({ count: MIN_COUNT - 1, seed: 1 })).toThrow(RangeError);
    expect(() => generateClosure({ count: 100.5, seed: 1 })).toThrow(RangeError);
    expect(() => generateClosure({ count: 100, seed: Number.NaN })).toThrow(RangeError);
  });
});

describe.each(nixVersions())('generated closures on Nix $label', (version) => {
  // Instantiates a generated closure in a fresh scratch store; returns the closure's paths.
  async function instantiate(count: number, seed: number): Promise<{ store: ScratchStore; paths: string[] }> {
    const dir = mkdtempSync(join(tmpdir(), 'nix-plan-bench-gen-'));
    const store = new ScratchStore(version);
    try {
      writeClosure(dir, generateClosure({ count, seed }));
      const roots = await store.instantiate(dir);
      expect(roots).toHaveLength(1);
      return { store, paths: await store.requisites(roots) };
    } catch (e) {
      store.dispose();
      throw e;
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  test('a 50-derivation graph instantiates to exactly 50 .drv files, plus sources', async () => {
    const { store, paths } = await instantiate(50, 11);
    try {
      expect(paths.filter((p) => p.endsWith('.drv'))).toHaveLength(50);
      const others = paths.filter((p) => !p.endsWith('.drv'));
      // The builders (builtins.toFile) and the shared path-literal directory at least.
      expect(others.some((p) => p.endsWith('-default-builder.sh'))).toBe(true);
      expect(others.some((p) => p.endsWith('-common'))).toBe(true);
    } finally {
      store.dispose();
    }
  });

  test('hosts share the whole closure, and the flake gives the same derivations', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nix-plan-bench-gen-'));
    const store = new ScratchStore(version);
    try {
      writeClosure(dir, generateClosure({ count: 40, seed: 2, hosts: 2 }));
      const hosts = await store.instantiate(dir, ['host0', 'host1']);
      expect(hosts.map((h) => h.replace(/^.*\/[a-z0-9]{32}-/, ''))).toEqual([
        'host0-system.drv',
        'host1-system.drv',
      ]);
      const closure = await store.requisites([hosts[0] ?? '']);
      expect(closure.filter((p) => p.endsWith('.drv'))).toHaveLength(41);
      const { stdout } = await store.run('nix', ['path-info', '--derivation', `path:${dir}#host1`]);
      expect(stdout.toString('utf8').trim()).toBe(hosts[1]);
    } finally {
      store.dispose();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('the median .drv of a 200-derivation sample is nixpkgs-sized (about 6 KB)', async () => {
    const { store, paths } = await instantiate(200, 5);
    try {
      // The size each .drv would have in /nix/store: the scratch store's dir is longer, by an
      // amount that depends on TMPDIR, and a .drv names it once per path it mentions.
      const { storeDir } = store;
      const extra = storeDir.length - '/nix/store'.length;
      const sizes = paths
        .filter((p) => p.endsWith('.drv'))
        .map((p) => {
          const text = readFileSync(p, 'latin1');
          const mentions = text.split(storeDir).length - 1;
          return text.length - extra * mentions;
        })
        .sort((a, b) => a - b);
      expect(sizes).toHaveLength(200);
      const median = sizes[sizes.length >> 1] ?? 0;
      // A small sample varies by a few hundred bytes.
      expect(median).toBeGreaterThan(4500);
      expect(median).toBeLessThan(8000);
    } finally {
      store.dispose();
    }
  });
});
