// The product end to end on real Nix 2.8 and 2.34: export (file, flake, .drv paths) → import into
// a fresh store with the same store dir → realise, relocate → realise in the new realm, stock
// `zstd -dc | nix-store --import`, and refusals that leave the store untouched. The CLI runs
// in-process through `main` with the scratch store's runner, and once as a real built process.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ExitCode } from '../../src/cli/exit-codes.js';
import { nameOf } from '../../src/core/store-path.js';
import { main } from '../../src/cli/main.js';
import { relocatePlan } from '../../src/app/relocate.js';
import { silentLogger } from '../../src/app/deps.js';
import type { CliIo } from '../../src/cli/terminal.js';
import { childEnv } from '../../src/nix/runner.js';
import { nixVersions, ScratchStore, SYSTEM } from '../support/nix.js';

const REPO = join(import.meta.dirname, '..', '..');
const EXAMPLE = join(REPO, 'examples', 'hello');

/** Runs the CLI in-process against `store`; returns exit code, stdout and stderr. */
async function cli(store: ScratchStore, argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const io: CliIo = {
    stdout: { write: (s: string) => (out += s) },
    stderr: { write: (s: string) => (err += s) },
  };
  const code = await main(argv, { io, runner: store.runner });
  return { code, out, err };
}

/** Removes a store's files (read-only like a real store's), so a new store can reuse its dir. */
describe.each(nixVersions())('nix-plan with Nix $label', (version) => {
  let work: string;
  /** The store dir every store of this suite uses, outside any store's root. */
  let storeDir: string;
  const stores: ScratchStore[] = [];
  const newStore = (dir = storeDir): ScratchStore => {
    const s = new ScratchStore(version, { storeDir: dir });
    stores.push(s);
    return s;
  };

  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'nix-plan-it-'));
    storeDir = join(work, 'store');
  });
  afterAll(() => {
    for (const s of stores) s.wipe();
    execFileSync('chmod', ['-R', 'u+w', work]);
    rmSync(work, { recursive: true, force: true });
  });

  /** Exports with `argv` in a fresh evaluating store, then wipes that store entirely. */
  async function exportThenWipe(argv: (s: ScratchStore) => string[] | Promise<string[]>, name: string) {
    const evaluator = newStore();
    const bundle = join(work, `${name}.nixplan`);
    const r = await cli(evaluator, ['export', ...(await argv(evaluator)), '-o', bundle, '--json']);
    expect(r.err).not.toContain('error');
    expect(r.code).toBe(0);
    const result = JSON.parse(r.out) as {
      manifest: { roots: { drvPath: string; outputs: Record<string, string> }[] };
    };
    const direct = await evaluator.instantiate(EXAMPLE, ['hello', 'banner']);
    evaluator.wipe();
    return { bundle, manifest: result.manifest, direct };
  }

  test('export from a .nix file → fresh store → realise builds exactly what evaluating gives', async () => {
    const { bundle, manifest, direct } = await exportThenWipe(
      () => ['-f', EXAMPLE, '-A', 'hello', '-A', 'banner'],
      'file',
    );
    expect(manifest.roots.map((r) => r.drvPath)).toEqual(direct);

    const builder = newStore();
    const before = await builder.validPaths();
    expect(before).toEqual([]);
    const link = join(work, 'file-result');
    const r = await cli(builder, ['realise', bundle, '--out-link', link]);
    expect(r.err).not.toContain('error');
    expect(r.code).toBe(0);
    const outputs = await builder.run('nix-store', ['-q', '--outputs', ...direct]);
    expect(r.out.trim().split('\n').sort()).toEqual(outputs.stdout.toString().trim().split('\n').sort());
    expect(readlinkSync(link)).toBe(manifest.roots[0]?.outputs['out']);
    // The builder's log reaches the user while it builds (it is not swallowed by the runner).
    expect(r.err).toContain(`nix-plan example: building hello into ${manifest.roots[0]?.outputs['out']}`);
    const hello = execFileSync(join(link, 'bin', 'hello')).toString();
    expect(hello).toContain('Hello from a nix-plan bundle');
    // The evaluation inputs never reached the builder: only the plan's paths and the outputs.
    const valid = await builder.validPaths();
    expect(valid.filter((p) => p.endsWith('.nix'))).toEqual([]);
    // Running again is a no-op that still succeeds (idempotent).
    const again = await cli(builder, ['import', bundle, '--json']);
    expect(again.code).toBe(0);
    expect(JSON.parse(again.out)).toMatchObject({ imported: 0, alreadyValid: 4, method: 'none' });
  });

  test('export from a local flake without inputs, offline, gives the derivation of the file', async () => {
    const flake = join(work, 'flake');
    cpSync(EXAMPLE, flake, { recursive: true });
    const { bundle, manifest } = await exportThenWipe(() => [`path:${flake}#hello`], 'flake');
    const checker = newStore();
    const [expected] = await checker.instantiate(join(flake, 'default.nix'), ['hello']);
    expect(manifest.roots).toEqual([
      { installable: `path:${flake}#hello`, drvPath: expected, outputs: manifest.roots[0]?.outputs },
    ]);
    checker.wipe();
    const builder = newStore();
    const r = await cli(builder, ['realise', bundle, '--json']);
    expect(r.code).toBe(0);
    const { outPaths } = JSON.parse(r.out) as { outPaths: Record<string, Record<string, string>> };
    expect(Object.keys(outPaths)).toEqual([expected]);
    expect(readFileSync(join(outPaths[expected ?? '']?.['out'] ?? '', 'bin', 'hello'), 'utf8')).toContain(
      '/bin/cat',
    );
  });

  test('export from .drv paths; stock zstd -dc | nix-store --import accepts the bundle', async () => {
    const { bundle, direct } = await exportThenWipe(
      async (s) => ['--drv', ...(await s.instantiate(EXAMPLE, ['banner']))],
      'drv',
    );
    const plain = newStore();
    const imported = spawnSync('sh', ['-c', 'zstd -dc "$1" | nix-store --import', 'sh', bundle], {
      env: childEnv({ binDir: version.binDir, env: plain.env }),
    });
    expect(imported.stderr.toString()).toBe('');
    expect(imported.status).toBe(0);
    expect(await plain.validPaths()).toEqual((await plain.requisites([direct[1] ?? ''])).sort());
    const r = await cli(plain, ['realise', bundle, '--roots', 'hello-banner']);
    expect(r.code).toBe(0);
    expect(readFileSync(r.out.trim(), 'utf8')).toMatch(/^built on .* from a plan\n$/);
  });

  test('--include sources carries fetched fixed outputs; --include outputs needs no build at all', async () => {
    const file = join(work, 'fod.nix');
    writeFileSync(
      file,
      `let fod = builtins.derivation { name = "fetched"; system = "${SYSTEM}"; builder = "/bin/sh"; args = ["-c" "echo -n data > $out"]; outputHashMode = "flat"; outputHashAlgo = "sha256"; outputHash = "3a6eb0790f39ac87c94f3856b2dd2c5d110e6811602261a9a923d3bb23adc8b7"; };
       in { uses = builtins.derivation { name = "uses"; system = "${SYSTEM}"; builder = "/bin/sh"; args = ["-c" "/bin/cat \${fod} > $out"]; }; }`,
    );
    for (const include of ['sources', 'outputs'] as const) {
      const { bundle } = await exportThenWipe(
        () => ['-f', file, '-A', 'uses', '--include', include],
        include,
      );
      const info = await cli(newStore(), ['inspect', bundle, '--json']);
      const { manifest } = JSON.parse(info.out) as { manifest: { counts: Record<string, number> } };
      expect(manifest.counts).toEqual(
        include === 'sources'
          ? { drv: 2, text: 0, source: 1, output: 0 }
          : { drv: 2, text: 0, source: 0, output: 1 },
      );
      const builder = newStore();
      // An unsigned build output proves nothing: refused until the user opts out (or gives a key).
      const proof = include === 'outputs' ? ['--no-check-sigs'] : [];
      if (include === 'outputs') {
        const refused = await cli(builder, ['import', bundle]);
        expect([refused.code, refused.err]).toEqual([4, expect.stringContaining('-uses')]);
      }
      expect((await cli(builder, ['import', bundle, ...proof])).code).toBe(0);
      // After the import alone, the fixed output (sources) or the root's output (outputs) is valid.
      const carried = (await builder.validPaths()).map((p) => nameOf(p)).filter((n) => !n.endsWith('.drv'));
      expect(carried).toEqual(include === 'sources' ? ['fetched'] : ['uses']);
      // --max-jobs 0: with outputs, Nix may not build anything at all.
      const r = await cli(builder, [
        'realise',
        bundle,
        ...proof,
        '--',
        '--max-jobs',
        include === 'outputs' ? '0' : '1',
      ]);
      expect(r.err).not.toContain('error');
      expect(r.code).toBe(0);
      expect(readFileSync(r.out.trim(), 'utf8')).toBe('data');
      builder.wipe();
    }
  });

  test('a corrupted bundle is refused with exit code 3 and the store is unchanged', async () => {
    const { bundle } = await exportThenWipe(() => ['-f', EXAMPLE, '-A', 'hello'], 'corrupt');
    const bytes = readFileSync(bundle);
    const builder = newStore();
    for (const at of [bytes.length - 3, Math.floor(bytes.length / 2), 20]) {
      const bad = Buffer.from(bytes);
      bad[at] = (bad[at] ?? 0) ^ 0x10;
      const file = join(work, 'bad.nixplan');
      writeFileSync(file, bad);
      const r = await cli(builder, ['import', file]);
      expect([ExitCode.bundle, ExitCode.closure, ExitCode.limit]).toContain(r.code);
      expect(await builder.validPaths()).toEqual([]);
    }
    const truncated = join(work, 'short.nixplan');
    writeFileSync(truncated, bytes.subarray(0, bytes.length - 100));
    const r = await cli(builder, ['realise', truncated]);
    expect(r.code).toBe(ExitCode.bundle);
    expect(r.err).toMatch(/truncated/);
    expect(await builder.validPaths()).toEqual([]);
  });

  test('a bundle for another store dir is refused naming both; relocated, it realises there', async () => {
    const { bundle } = await exportThenWipe(() => ['-f', EXAMPLE, '-A', 'hello'], 'realm');
    const otherDir = join(work, 'other', 'store');
    const other = newStore(otherDir);
    const refused = await cli(other, ['import', bundle]);
    expect(refused.code).toBe(ExitCode.realm);
    expect(refused.err).toContain(storeDir);
    expect(refused.err).toContain(otherDir);

    const moved = join(work, 'realm-other.nixplan');
    const rel = await cli(other, ['relocate', bundle, '--to', otherDir, '-o', moved, '--json']);
    expect(rel.err).not.toContain('error');
    expect(rel.code).toBe(0);
    const r = await cli(other, ['realise', moved, '--json']);
    expect(r.err).not.toContain('error');
    expect(r.code).toBe(0);
    const { outPaths } = JSON.parse(r.out) as { outPaths: Record<string, Record<string, string>> };
    // The relocated plan is what native evaluation in the other store dir gives.
    const native = await other.instantiate(EXAMPLE, ['hello']);
    expect(Object.keys(outPaths)).toEqual(native);
    const out = outPaths[native[0] ?? '']?.['out'] ?? '';
    expect(out.startsWith(otherDir + '/')).toBe(true);
    expect(readFileSync(join(out, 'bin', 'hello'), 'utf8')).toContain(otherDir);

    // With no room to keep source NARs from the verifying pass, relocate reads the bundle a second
    // time for them, and writes the very same export stream.
    const twoPass = join(work, 'realm-other-two-pass.nixplan');
    await relocatePlan(
      bundle,
      { to: otherDir, output: twoPass, keepSourceNarsUpTo: 0 },
      { runner: other.runner, log: silentLogger },
    );
    const stream = (file: string): Buffer => execFileSync('zstd', ['-dc', file], { maxBuffer: 1 << 28 });
    expect(stream(twoPass).equals(stream(moved))).toBe(true);
    // With the .drv and text bytes in a scratch file instead of memory: the same stream as well.
    const scratch = join(work, 'realm-other-scratch.nixplan');
    await relocatePlan(
      bundle,
      { to: otherDir, output: scratch, keepContentsUpTo: 0 },
      { runner: other.runner, log: silentLogger },
    );
    expect(stream(scratch).equals(stream(moved))).toBe(true);
  });
});

describe('the built command line', () => {
  let dist: string;
  beforeAll(() => {
    dist = mkdtempSync(join(tmpdir(), 'nix-plan-dist-'));
    execFileSync(
      process.execPath,
      [
        join(REPO, 'node_modules/@vercel/ncc/dist/ncc/cli.js'),
        'build',
        join(REPO, 'src/entry/cli.ts'),
        '-o',
        join(dist, 'cli'),
        '--quiet',
      ],
      {
        cwd: REPO,
      },
    );
  }, 300_000);
  afterAll(() => rmSync(dist, { recursive: true, force: true }));

  test('runs as a process: --help, exit codes, and the demo script end to end', () => {
    const bin = join(dist, 'cli', 'index.js');
    expect(readFileSync(bin, 'utf8').startsWith('#!/usr/bin/env node\n')).toBe(true);
    const help = spawnSync(process.execPath, [bin, '--help']);
    expect(help.status).toBe(0);
    expect(help.stdout.toString()).toContain('Usage: nix-plan');
    const bad = spawnSync(process.execPath, [bin, 'inspect', '/nonexistent.nixplan']);
    expect(bad.status).toBe(ExitCode.usage);
    expect(bad.stderr.toString()).toContain("cannot open bundle '/nonexistent.nixplan'");
    const demo = spawnSync('bash', [join(REPO, 'examples', 'demo.sh')], {
      env: { ...process.env, NIX_PLAN_CLI: `${process.execPath} ${bin}` },
    });
    expect(demo.stderr.toString()).not.toMatch(/error/i);
    expect(demo.status).toBe(0);
    expect(demo.stdout.toString()).toContain('Hello from a nix-plan bundle');
  });
});
