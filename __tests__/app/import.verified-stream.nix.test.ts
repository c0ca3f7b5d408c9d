// importPlan imports the very bytes it verified: a bundle file changed after verification (the
// user's file, or importPlan's own copy of it) cannot get any other path into the store.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { silentLogger, type Progress } from '../../src/app/deps.js';
import { exportPlan } from '../../src/app/export.js';
import { importPlan } from '../../src/app/import.js';
import { exportStream, openBundle } from '../../src/core/bundle/index.js';
import { NixPlanError } from '../../src/core/errors.js';
import { generateKeyPair } from '../../src/core/signing.js';
import type { CommandRunner } from '../../src/nix/runner.js';
import { nixVersions, ScratchStore } from '../support/nix.js';

/** A derivation with a `toFile` input, so each closure has two paths. */
const drvExpr = (name: string): string => `builtins.derivation {
  name = "${name}"; system = builtins.currentSystem; builder = "/bin/sh";
  data = builtins.toFile "${name}.txt" "${name}";
  args = [ "-c" "read x < $data; echo $x > $out" ];
}`;

/** A bundle's decompressed export stream, as `zstd -dc` gives it (the manifest frame is skipped). */
async function exportStreamOf(bundle: string): Promise<Buffer> {
  const source = await openBundle(bundle);
  try {
    const chunks: Uint8Array[] = [];
    for await (const c of exportStream(source)) chunks.push(c);
    return Buffer.concat(chunks);
  } finally {
    await source.close();
  }
}

describe.each(nixVersions())('import of the verified stream, Nix $label', (version) => {
  let work: string;
  let storeDir: string;
  let bundleA: string;
  let bundleB: string;
  let closureA: string[];
  let closureB: string[];

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'nix-plan-ivs-'));
    storeDir = join(work, 'store');
    const source = new ScratchStore(version, { storeDir });
    const [a = ''] = await source.instantiateExpr(drvExpr('a'));
    const [b = ''] = await source.instantiateExpr(drvExpr('b'));
    closureA = (await source.requisites([a])).sort();
    closureB = (await source.requisites([b])).sort();
    bundleA = join(work, 'a.nixplan');
    bundleB = join(work, 'b.nixplan');
    const deps = { runner: source.runner, log: silentLogger };
    await exportPlan({ drvPaths: [a], output: bundleA }, deps);
    await exportPlan({ drvPaths: [b], output: bundleB }, deps);
    source.wipe();
  });
  afterAll(() => {
    execFileSync('chmod', ['-R', 'u+w', work]);
    rmSync(work, { recursive: true, force: true });
  });

  test('a bundle overwritten after verification gets none of its paths in', async () => {
    expect(closureA).toHaveLength(2);
    expect(closureB.filter((p) => closureA.includes(p))).toEqual([]);
    const target = new ScratchStore(version, { storeDir });
    const original = readFileSync(bundleA);
    const replacement = readFileSync(bundleB);
    let overwritten = 0;
    const overwrite = (file: string): void => {
      writeFileSync(file, replacement); // in place: same file, new contents
      overwritten++;
    };
    // importPlan's private directory: the one under the temp dir holding a copy of bundle A.
    const privateDirs: string[] = [];
    const privateCopies = (): string[] =>
      readdirSync(tmpdir())
        .filter((d) => d.startsWith('nix-plan-import-'))
        .map((d) => join(tmpdir(), d, 'bundle.nixplan'))
        .filter((f) => {
          try {
            return readFileSync(f).equals(original);
          } catch {
            return false; // another run's, gone meanwhile
          }
        });
    // The moment verification ends, the bundle and importPlan's copy of it become bundle B.
    const progress: Progress = {
      start: (label) => ({
        tick: () => undefined,
        done: () => {
          if (label !== 'verifying') return;
          overwrite(bundleA);
          for (const copy of privateCopies()) {
            privateDirs.push(dirname(copy));
            overwrite(copy);
          }
        },
      }),
    };
    try {
      const result = await importPlan(
        bundleA,
        { method: 'import' },
        { runner: target.runner, log: silentLogger, progress },
      );
      expect(overwritten).toBe(2);
      expect(result).toMatchObject({ imported: 2, alreadyValid: 0, method: 'import' });
      expect(await target.validPaths()).toEqual(closureA);
    } finally {
      target.wipe();
    }
    // Its private files are gone once it returns.
    expect(privateDirs.filter((d) => existsSync(d))).toEqual([]);
  });

  test('the copy route is handed the verified stream, not the bundle read again', async () => {
    const target = new ScratchStore(version, { storeDir });
    const expected = await exportStreamOf(bundleA);
    const original = readFileSync(bundleA);
    let got: Buffer | undefined;
    // The bundle and importPlan's copy become bundle B once verified: the copy route must not care.
    const progress: Progress = {
      start: (label) => ({
        tick: () => undefined,
        done: () => {
          if (label !== 'verifying') return;
          writeFileSync(bundleA, readFileSync(bundleB));
          for (const d of readdirSync(tmpdir()).filter((n) => n.startsWith('nix-plan-import-'))) {
            const copy = join(tmpdir(), d, 'bundle.nixplan');
            if (existsSync(copy) && readFileSync(copy).equals(original))
              writeFileSync(copy, readFileSync(bundleB));
          }
        },
      }),
    };
    try {
      const result = await importPlan(
        bundleA,
        { method: 'copy' },
        {
          runner: target.runner,
          log: silentLogger,
          progress,
          copyImport: async (stream) => {
            const chunks: Uint8Array[] = [];
            for await (const c of stream) chunks.push(c);
            got = Buffer.concat(chunks);
            // Nothing reaches the store here: the bytes are what this test checks.
            await target.run('nix-store', ['--import'], { input: got });
          },
        },
      );
      expect(got?.equals(expected)).toBe(true);
      expect(result).toMatchObject({ imported: 2, method: 'copy' });
    } finally {
      writeFileSync(bundleA, original);
      target.wipe();
    }
  });

  test('on a store that does not exist yet, the first Nix process runs alone', async () => {
    // Two Nix 2.34 processes starting at once on a new store can fail with "SQLite database is
    // busy"; the first one creates the database, so nothing else may overlap it.
    const target = new ScratchStore(version, { storeDir });
    const calls: { cmd: string; start: number; end: number }[] = [];
    let clock = 0;
    const runner: CommandRunner = {
      run: async (cmd, args, options) => {
        const call = { cmd: [cmd, ...args.slice(0, 2)].join(' '), start: clock++, end: Infinity };
        calls.push(call);
        try {
          return await target.runner.run(cmd, args, options);
        } finally {
          call.end = clock++;
        }
      },
    };
    try {
      const result = await importPlan(bundleA, {}, { runner, log: silentLogger });
      expect(result).toMatchObject({ imported: 2, method: 'import' });
      const [first, ...rest] = calls;
      expect(rest.length).toBeGreaterThan(0);
      for (const c of rest)
        expect({ ...c, startedAfterFirst: c.start > first!.end }).toMatchObject({ startedAfterFirst: true });
    } finally {
      target.wipe();
    }
  });

  test('a plan for another store dir gets that error first, even while its bundle is checked; nothing changes', async () => {
    // The store dir is asked while the copy is verified: its answer still decides the error.
    // (Bundle B: the first test left bundle A's file holding it.)
    const good = readFileSync(bundleB);
    const corrupt = Buffer.from(good);
    corrupt[corrupt.length - 40] = (corrupt[corrupt.length - 40] ?? 0) ^ 0xff;
    const corruptFile = join(work, 'corrupt.nixplan');
    writeFileSync(corruptFile, corrupt);
    const { publicKey } = generateKeyPair('test-key');
    const attempt = async (
      bundle: string,
      target: ScratchStore,
      trustedKeys?: string[],
    ): Promise<unknown> => {
      const before = await target.dumpDb();
      const error = await importPlan(
        bundle,
        { trustedKeys },
        { runner: target.runner, log: silentLogger },
      ).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(await target.dumpDb()).toEqual(before);
      return error;
    };
    const elsewhere = new ScratchStore(version);
    const same = new ScratchStore(version, { storeDir });
    try {
      for (const [bundle, keys] of [
        [corruptFile, undefined],
        [bundleB, [publicKey]],
        [corruptFile, [publicKey]],
      ] as const) {
        const e = await attempt(bundle, elsewhere, keys === undefined ? undefined : [...keys]);
        expect(e).toBeInstanceOf(NixPlanError);
        expect(e).toMatchObject({ code: 'realm' });
        expect((e as Error).message).toContain(`is a plan for the store dir ${storeDir}`);
      }
      // The same bundles into a store of their own store dir: the faults are real.
      expect(await attempt(corruptFile, same)).toMatchObject({ code: 'bundle' });
      expect(await attempt(bundleB, same, [publicKey])).toMatchObject({ code: 'signature' });
    } finally {
      elsewhere.wipe();
      same.wipe();
    }
  });

  test("nix-store --import's list of every path is the check that all are valid; without it Nix is asked", async () => {
    // Records the Nix commands after the import; `hideList` hides what nix-store --import prints.
    // (Bundle B: the first test left bundle A's file holding it.)
    const importing = async (hideList: boolean): Promise<string[]> => {
      const target = new ScratchStore(version, { storeDir });
      const after: string[] = [];
      let imported = false;
      const runner: CommandRunner = {
        run: async (cmd, args, options) => {
          if (imported) after.push([cmd, ...args].filter((a) => !a.startsWith('/')).join(' '));
          const isImport = cmd === 'nix-store' && args.includes('--import');
          const r = await target.runner.run(
            cmd,
            args,
            isImport && hideList ? { ...options, onStdout: () => undefined } : options,
          );
          if (isImport) imported = true;
          return r;
        },
      };
      try {
        const result = await importPlan(bundleB, { method: 'import' }, { runner, log: silentLogger });
        expect(result).toMatchObject({ imported: 2, alreadyValid: 0, method: 'import' });
        expect(await target.validPaths()).toEqual(closureB);
        return after;
      } finally {
        target.wipe();
      }
    };
    expect(await importing(false)).toEqual([]);
    expect(await importing(true)).toEqual(['nix-store --check-validity --print-invalid']);
  });
  test('a refused import leaves no Nix process running or still to start', async () => {
    // A failed import's caller removes the store next (a test, a scratch store): a query started
    // ahead of need (which store trusts us, which paths are valid) that ran on after it would
    // make the store's state again there. Refused before verifying (digest) and after (keys).
    const { publicKey } = generateKeyPair('ci');
    for (const options of [{ digest: `sha256:${'0'.repeat(64)}` }, { trustedKeys: [publicKey] }]) {
      const target = new ScratchStore(version, { storeDir });
      const started: string[] = [];
      let running = 0;
      const runner: CommandRunner = {
        run: async (cmd, args, runOptions) => {
          started.push(`${cmd} ${args.find((a) => a.startsWith('--')) ?? ''}`);
          running++;
          try {
            return await target.runner.run(cmd, args, runOptions);
          } finally {
            running--;
          }
        },
      };
      try {
        await expect(importPlan(bundleA, options, { runner, log: silentLogger })).rejects.toBeInstanceOf(
          NixPlanError,
        );
        const atEnd = started.length;
        expect(running).toBe(0);
        await new Promise((resolve) => setTimeout(resolve, 300));
        expect(started.slice(atEnd)).toEqual([]);
        expect(running).toBe(0);
      } finally {
        target.wipe();
      }
    }
  });
});
