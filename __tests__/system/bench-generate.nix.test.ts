// The benchmark's closure generator: deterministic, exact derivation counts, nixpkgs-like drv sizes.
import { describe, expect, test } from '@jest/globals';
import fc from 'fast-check';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateClosure, MIN_COUNT, WORKLOADS, writeClosure, type Workload } from '../../bench/generate.js';
import { nixVersions, ScratchStore } from '../support/nix.js';

describe('generateClosure', () => {
  test('same seed, count and workload give the same files, byte for byte', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: MIN_COUNT, max: 150 }),
        fc.integer(),
        fc.constantFrom(...WORKLOADS),
        (count, seed, workload) => {
          const a = generateClosure({ count, seed, workload });
          const b = generateClosure({ count, seed, workload });
          expect([...b.files]).toEqual([...a.files]);
          expect(b.derivations).toEqual(a.derivations);
          expect(b.depth).toBe(a.depth);
        },
      ),
      { numRuns: 20 },
    );
  });

  test('the nixpkgs workload is the default, and its files are the ones published figures were measured on', () => {
    const digest = (workload?: Workload): string => {
      const h = createHash('sha256');
      for (const [k, v] of generateClosure({ count: 200, seed: 7, workload }).files) h.update(`${k}\0${v}\0`);
      return h.digest('hex');
    };
    expect(digest()).toBe('f1c05c7a5d5ed1acd866d42458b1302c7b101d8beea8d3c43c315fd5fdf9dccb');
    expect(digest('nixpkgs')).toBe(digest());
    expect(digest('deep')).not.toBe(digest());
  });

  test('the deep workload: longer chains, larger environments, more sources than the nixpkgs one', () => {
    const n = generateClosure({ count: 2000, seed: 9 });
    const d = generateClosure({ count: 2000, seed: 9, workload: 'deep' });
    // The chain: nearly every package depends on the one before it.
    expect(d.depth).toBeGreaterThan(0.8 * d.derivations.packages);
    expect(d.depth).toBeGreaterThan(2 * n.depth);
    // Sources per derivation, and the Nix text per derivation (environment values).
    const sources = (c: typeof n): number => c.sources.pathLiterals + c.sources.toFiles;
    expect(sources(d)).toBeGreaterThan(5 * sources(n));
    expect(sources(d) / 2000).toBeGreaterThan(0.5);
    const text = (c: typeof n): number => c.files.get('default.nix')?.length ?? 0;
    expect(text(d)).toBeGreaterThan(2 * text(n));
    expect(() => generateClosure({ count: 100, seed: 1, workload: 'nope' as Workload })).toThrow(RangeError);
  });

  test('a different seed gives a different graph', () => {
    const a = generateClosure({ count: 100, seed: 1 }).files.get('default.nix');
    const b = generateClosure({ count: 100, seed: 2 }).files.get('default.nix');
    expect(a).toBeDefined();
    expect(b).not.toEqual(a);
  });

  test('the derivations by role add up to the requested count', () => {
    for (const workload of WORKLOADS)
      for (const count of [MIN_COUNT, 50, 1000, 2000]) {
        const { derivations: d } = generateClosure({ count, seed: 3, workload });
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
  async function instantiate(
    count: number,
    seed: number,
    workload?: Workload,
  ): Promise<{ store: ScratchStore; paths: string[] }> {
    const dir = mkdtempSync(join(tmpdir(), 'nix-plan-bench-gen-'));
    const store = new ScratchStore(version);
    try {
      writeClosure(dir, generateClosure({ count, seed, workload }));
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

  test.each(WORKLOADS)(
    'a 50-derivation %s graph instantiates to exactly 50 .drv files, plus sources',
    async (workload) => {
      const { store, paths } = await instantiate(50, 11, workload);
      try {
        expect(paths.filter((p) => p.endsWith('.drv'))).toHaveLength(50);
        const others = paths.filter((p) => !p.endsWith('.drv'));
        // The builders (builtins.toFile) and the shared path-literal directory at least.
        expect(others.some((p) => p.endsWith('-default-builder.sh'))).toBe(true);
        expect(others.some((p) => p.endsWith('-common'))).toBe(true);
      } finally {
        store.dispose();
      }
    },
  );

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

  // The size of each .drv of a generated closure as it would be in /nix/store, sorted.
  async function drvSizes(workload: Workload): Promise<{ sizes: number[]; sources: number }> {
    const { store, paths } = await instantiate(200, 5, workload);
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
      return { sizes, sources: paths.length - sizes.length };
    } finally {
      store.dispose();
    }
  }

  test('the median .drv of a 200-derivation sample is nixpkgs-sized (about 6 KB)', async () => {
    const { sizes } = await drvSizes('nixpkgs');
    expect(sizes).toHaveLength(200);
    const median = sizes[sizes.length >> 1] ?? 0;
    // A small sample varies by a few hundred bytes.
    expect(median).toBeGreaterThan(4500);
    expect(median).toBeLessThan(8000);
  });

  test('the deep workload: a median .drv of about 16 KB, and many sources in the closure', async () => {
    const { sizes, sources } = await drvSizes('deep');
    expect(sizes).toHaveLength(200);
    const median = sizes[sizes.length >> 1] ?? 0;
    expect(median).toBeGreaterThan(11000);
    expect(median).toBeLessThan(22000);
    expect(sources).toBeGreaterThan(60);
  });
});
