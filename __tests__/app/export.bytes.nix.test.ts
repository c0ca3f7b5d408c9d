// The bytes nix-plan writes, pinned: a change meant to make export or relocation faster (more
// threads, other buffering, another order of work) must leave every bundle byte for byte as it was.
//
// The closures are the benchmark's generated workloads, evaluated in a chroot store
// (`local?root=…`) whose logical store dir is /nix/store, so their paths, and so the bundles'
// bytes, do not depend on where the test runs. A bundle is a manifest frame (which names the Nix
// version and the time) and one zstd frame of the export stream: the zstd frame of the export and
// that of its relocation must have the digests below on every Nix the tests run, and the export
// stream must be, byte for byte, what `nix-store --export` writes for the same paths. (The same
// digests come out on Nix 2.8 and 2.34. The zstd frames' digests are also those of the zstd in
// Node's zlib: a Node whose zstd compresses differently changes them, and says so here first.)
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { zstdDecompressSync } from 'node:zlib';
import { generateClosure, writeClosure, type Workload } from '../../bench/generate.js';
import { silentLogger } from '../../src/app/deps.js';
import { exportPlan } from '../../src/app/export.js';
import { relocatePlan } from '../../src/app/relocate.js';
import { readExport } from '../../src/core/export-stream.js';
import { nixVersions, ScratchStore } from '../support/nix.js';

/** sha256 digests of a bundle's zstd frame and of the export stream it holds. */
interface Pinned {
  readonly frame: string;
  readonly stream: string;
}

/** Where the relocation goes: any store dir will do, as long as it is always the same one. */
const TARGET = '/nix-plan/pinned/store';
const NOW = (): Date => new Date('2026-01-02T03:04:05Z');

/** What each workload's export (at its default level) and relocation to TARGET must be. */
const GOLDEN: Record<Workload, { count: number; seed: number; export: Pinned; relocated: Pinned }> = {
  nixpkgs: {
    count: 60,
    seed: 3,
    export: {
      frame: 'a0392190a6bd0c463ab7ffc8f521be69728cb6d156728dfee792d3fab47ca68f',
      stream: 'cec39e2a1a42c14c00c6caecf593e28bb3fbd7c7919d9601446a3f0fe7ce4093',
    },
    relocated: {
      frame: '49d5af253778e3308b28bbd86252851a155e9061bab643b6b9051c293b92422f',
      stream: 'fc3634b09cb8132b384b6ed333c20ae84fb0822469006499157d6e9b797662ab',
    },
  },
  deep: {
    count: 60,
    seed: 3,
    export: {
      frame: '10e5dc6cf6a4e07ab235f2ef7479663b03689e8a83edcb2ca4152e1e4f80a240',
      stream: 'a5b59732c6ee50848828f27432b6f968ccc8a592d96173a09acb9274a3a52017',
    },
    relocated: {
      frame: '760536e659ab18dd7149193c23e3c165553af81bff7b029666654f7aebae3598',
      stream: '973c5895847e26cf334e5ed27e24e74986da733dc43f2cbeddca2e45aca5c6f4',
    },
  },
};

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/** The zstd data frame behind a bundle's manifest frame (u32 magic, u32 size, payload). */
function dataFrame(bundle: Uint8Array): Uint8Array {
  const size = Buffer.from(bundle.buffer, bundle.byteOffset, bundle.length).readUInt32LE(4);
  return bundle.subarray(8 + size);
}

function pinned(file: string): Pinned & { streamBytes: Uint8Array } {
  const frame = dataFrame(readFileSync(file));
  const streamBytes = zstdDecompressSync(frame);
  return { frame: sha256(frame), stream: sha256(streamBytes), streamBytes };
}

describe.each(nixVersions())('bundle bytes on Nix $label', (version) => {
  let dir: string;
  let store: ScratchStore;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'nix-plan-bytes-'));
    store = new ScratchStore(version, { root: join(dir, 'state'), storeDir: '/nix/store' });
  });
  afterAll(() => {
    store.dispose();
    // The chroot stores' directories are read-only, as in a real store.
    spawnSync('chmod', ['-R', 'u+w', dir]);
    rmSync(dir, { recursive: true, force: true, maxRetries: 2 });
  });

  test.each(Object.keys(GOLDEN) as Workload[])(
    'the %s workload: export and relocation give the pinned bytes',
    async (workload) => {
      const golden = GOLDEN[workload];
      const src = join(dir, `${workload}-src`);
      writeClosure(src, generateClosure({ count: golden.count, seed: golden.seed, workload }));
      // The chroot: paths under /nix/store, files under dir/<workload>/nix/store.
      const uri = `local?root=${join(dir, workload)}`;
      const { stdout } = await store.run('nix-instantiate', ['--store', uri, src]);
      const root = stdout.toString('utf8').trim();
      expect(root).toMatch(/^\/nix\/store\/[a-z0-9]{32}-bench-closure-root\.drv$/);

      const deps = { runner: store.runner, log: silentLogger };
      const bundle = join(dir, `${workload}.nixplan`);
      await exportPlan({ drvPaths: [root], output: bundle, store: uri, now: NOW }, deps);
      const exported = pinned(bundle);

      // The reference for the stream: Nix's own export of the same paths in the same order.
      const paths: string[] = [];
      for await (const e of readExport([exported.streamBytes])) paths.push(e.path);
      expect(paths.filter((p) => p.endsWith('.drv'))).toHaveLength(golden.count);
      const nix = await store.run('nix-store', ['--store', uri, '--export', ...paths]);
      expect(sha256(nix.stdout)).toBe(exported.stream);

      // A second export of the same closure is the same file, manifest and all.
      const again = join(dir, `${workload}-again.nixplan`);
      await exportPlan({ drvPaths: [root], output: again, store: uri, now: NOW }, deps);
      expect(sha256(readFileSync(again))).toBe(sha256(readFileSync(bundle)));

      const relocatedFile = join(dir, `${workload}-relocated.nixplan`);
      await relocatePlan(bundle, { to: TARGET, output: relocatedFile, noCheckSigs: true, now: NOW }, deps);
      const relocated = pinned(relocatedFile);

      expect({
        export: { frame: exported.frame, stream: exported.stream },
        relocated: { frame: relocated.frame, stream: relocated.stream },
      }).toEqual({
        export: golden.export,
        relocated: golden.relocated,
      });
    },
  );
});
