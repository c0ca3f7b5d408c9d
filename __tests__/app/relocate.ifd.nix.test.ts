// Import from derivation: evaluation built a derivation and read its output back (here as a path
// copied with builtins.path). The plan then depends on that build output; export must say so by
// name, `--include sources` must carry what relocation needs, and relocation must either name the
// copies exactly as native evaluation in the target does (real Nix 2.8 and 2.34) or refuse.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ExitCode } from '../../src/cli/exit-codes.js';
import { nixVersions, type ScratchStore } from '../support/nix.js';
import { OracleStores, cli, runBundleOracle } from '../support/oracle.js';

const FIXTURE = fileURLToPath(new URL('../fixtures/fidelity/default.nix', import.meta.url));
const IFD = ['ifdCopy', 'ifdNamed', 'ifdAlso'];

describe.each(nixVersions())('import from derivation, on Nix $label', (version) => {
  let root: string;
  let stores: OracleStores;
  let a: ScratchStore;
  const attrs = (names: readonly string[]): string[] => ['-f', FIXTURE, ...names.flatMap((n) => ['-A', n])];

  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'nix-plan-ifd-'));
    stores = new OracleStores(version, root);
    a = stores.store('a', 'a/store');
  });
  afterAll(() => {
    stores.dispose();
    rmSync(root, { recursive: true, force: true });
  });

  test('export names the output evaluation copied; without it relocation refuses, saying how to carry it', async () => {
    const bundle = join(root, 'drvs.nixplan');
    const exported = await cli(a, ['export', '-o', bundle, ...attrs(['ifdCopy'])]);
    expect(exported.code).toBe(0);
    expect(exported.err).toMatch(/import from derivation/);
    expect(exported.err).toMatch(/-ifd-out\.drv/);
    expect(exported.err).toContain('--include sources');
    const moved = await cli(a, [
      'relocate',
      bundle,
      '--to',
      join(root, 'b', 's'),
      '-o',
      join(root, 'x.nixplan'),
    ]);
    expect(moved.code).toBe(ExitCode.relocate);
    expect(moved.err).toMatch(
      /cannot relocate .*-[0-9a-z]{32}-ifd-out: its name starts with the hash of .*-ifd-out/,
    );
    expect(moved.err).toContain('--include sources');
    // Refused before anything is written.
    expect(existsSync(join(root, 'x.nixplan'))).toBe(false);
  });

  test('with --include sources, copies of built outputs are named as native evaluation names them, and build the same', async () => {
    const run = await runBundleOracle(
      stores,
      a,
      {
        exportArgs: [...attrs(IFD), '--include', 'sources'],
        native: { file: FIXTURE, attrs: IFD },
        build: true,
      },
      'b/s',
    );
    expect(run.rootsB.length).toBe(IFD.length);
  });

  test('a copied output whose bytes mention the store dir is refused: native evaluation would build other bytes', async () => {
    const bundle = join(root, 'mentions.nixplan');
    expect(
      (await cli(a, ['export', '-o', bundle, ...attrs(['ifdMentions']), '--include', 'sources'])).code,
    ).toBe(0);
    const moved = await cli(a, [
      'relocate',
      bundle,
      '--to',
      join(root, 'b', 's'),
      '-o',
      join(root, 'y.nixplan'),
    ]);
    expect(moved.code).toBe(ExitCode.relocate);
    expect(moved.err).toMatch(
      /cannot relocate .*-ifd-self: .*-ifd-self, an output of .*-ifd-self\.drv built while evaluating/,
    );
    expect(moved.err).toMatch(/mention .*a\/store/);
    expect(existsSync(join(root, 'y.nixplan'))).toBe(false);
  });

  test('a build output in the closure: export names it and its derivation; relocation refuses it by name', async () => {
    const drvs = await cli(a, ['export', '-o', join(root, 'ref.nixplan'), ...attrs(['ifdRef'])]);
    expect(drvs.code).toBe(ExitCode.closure);
    expect(drvs.err).toMatch(/-ifd-leaf is a build output of .*-ifd-leaf\.drv/);
    expect(drvs.err).toContain('--include sources');

    // Nothing but a signature proves what a build output holds: unsigned, export refuses to write
    // a `sources` plan its readers would refuse.
    const bundle = join(root, 'ref-sources.nixplan');
    const unsigned = await cli(a, ['export', '-o', bundle, ...attrs(['ifdRef']), '--include', 'sources']);
    expect(unsigned.code).toBe(ExitCode.closure);
    expect(unsigned.err).toMatch(/-ifd-leaf is a build output of .*-ifd-leaf\.drv.*--sign-key/);
    expect(existsSync(bundle)).toBe(false);

    const sec = join(root, 'ifd.sec');
    const pub = join(root, 'ifd.pub');
    expect((await cli(a, ['keygen', 'ifd-1', '--secret', sec, '--public', pub])).code).toBe(0);
    const signed = await cli(a, [
      'export',
      '-o',
      bundle,
      ...attrs(['ifdRef']),
      '--include',
      'sources',
      '--sign-key',
      sec,
    ]);
    expect(signed.code).toBe(0);
    expect((await cli(a, ['verify', bundle, '--trusted-key', pub])).code).toBe(0);
    // Without the key, or with the opt-out, the build output is refused by name.
    for (const without of [[], ['--no-check-sigs']]) {
      const v = await cli(a, ['verify', bundle, ...without]);
      expect(v.code).toBe(ExitCode.signature);
      expect(v.err).toMatch(
        /-ifd-leaf' is a build output of .*-ifd-leaf\.drv' that the plan's evaluation read/,
      );
    }
    const moved = await cli(a, [
      'relocate',
      bundle,
      '--trusted-key',
      pub,
      '--to',
      join(root, 'b', 's'),
      '-o',
      join(root, 'z.nixplan'),
    ]);
    expect(moved.code).toBe(ExitCode.relocate);
    expect(moved.err).toMatch(/cannot relocate .*-ifd-leaf: it is a build output of .*-ifd-leaf\.drv/);
    expect(moved.err).toMatch(/native evaluation in .*b\/s would build it again/);
  });
});
