// The command line without Nix: argument parsing, help, JSON output and exit codes, with the use
// cases replaced by recorders (our own interfaces, never Nix's behaviour).
import { describe, expect, test } from '@jest/globals';
import fc from 'fast-check';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BundleRoot } from '../../src/core/bundle/manifest.js';
import { NixPlanError, type ErrorCode } from '../../src/core/errors.js';
import {
  formatSecretKey,
  generateKeyPair,
  parsePublicKey,
  parseSecretKey,
  secretKeyFromSeed,
} from '../../src/core/signing.js';
import { selectRoots } from '../../src/app/realise.js';
import { NODE_REQUIRED, VERSION } from '../../src/app/version.js';
import { COMMANDS } from '../../src/cli/commands.js';
import { ExitCode, exitCodeFor } from '../../src/cli/exit-codes.js';
import { main } from '../../src/cli/main.js';
import { renderBar, terminalProgress, type CliIo } from '../../src/cli/terminal.js';
import type { UseCases } from '../../src/cli/use-cases.js';

/** Captures what the CLI writes. */
function capture(tty = false): CliIo & { out: () => string; err: () => string } {
  let out = '';
  let err = '';
  return {
    stdout: { write: (s: string) => (out += s), isTTY: tty },
    stderr: { write: (s: string) => (err += s), isTTY: tty, columns: 80 },
    now: () => 0,
    env: () => undefined,
    out: () => out,
    err: () => err,
  };
}

/** Use cases that record their arguments and return `result` (or throw `error`). */
function recorder(
  result: unknown = { ok: true },
  error?: Error,
): { calls: [string, unknown[]][]; fresh: unknown[][]; useCases: Partial<UseCases> } {
  const calls: [string, unknown[]][] = [];
  // The freshness checks run around a use case: recorded apart, and passed straight through.
  const fresh: unknown[][] = [];
  const make =
    (name: string) =>
    (...args: unknown[]): Promise<never> => {
      calls.push([name, args]);
      return error === undefined ? Promise.resolve(result as never) : Promise.reject(error);
    };
  const names = [
    'exportPlan',
    'inspectPlan',
    'verifyPlan',
    'importPlan',
    'realisePlan',
    'relocatePlan',
    'applyPlan',
    'deployPlan',
    'diffPlanSources',
  ];
  const useCases: Partial<UseCases> = {
    ...Object.fromEntries(names.map((n) => [n, make(n)])),
    withFreshness: (bundle, options, _log, run) => {
      fresh.push([bundle, options]);
      return run(bundle, bundle);
    },
  };
  return { calls, fresh, useCases };
}

const ERROR_CODES: ErrorCode[] = [
  'usage',
  'malformed',
  'bundle',
  'signature',
  'realm',
  'relocate',
  'closure',
  'limit',
  'nix',
  'transport',
  'stale',
  'host',
  'activation',
  'attention',
  'internal',
];

describe('help and usage', () => {
  test('no arguments prints help and exits with the usage code', async () => {
    const io = capture();
    expect(await main([], { io })).toBe(ExitCode.usage);
    expect(io.out()).toMatch(/Usage: nix-plan COMMAND/);
  });

  test('--help lists every command and exits 0', async () => {
    const io = capture();
    expect(await main(['--help'], { io })).toBe(0);
    for (const c of COMMANDS) expect(io.out()).toContain(`  ${c.name} `);
  });

  test.each(COMMANDS.map((c) => c.name))('%s --help documents every option', async (name) => {
    const io = capture();
    const { calls, useCases } = recorder();
    expect(await main([name, '--help'], { io, useCases })).toBe(0);
    expect(calls).toEqual([]);
    const cmd = COMMANDS.find((c) => c.name === name);
    for (const opt of Object.keys(cmd?.options ?? {})) expect(io.out()).toContain(`--${opt}`);
    expect(io.out()).toContain('Examples:');
  });

  test('help COMMAND equals COMMAND --help; help exit-codes lists every code', async () => {
    const a = capture();
    const b = capture();
    await main(['help', 'realise'], { io: a });
    await main(['realise', '-h'], { io: b });
    expect(a.out()).toBe(b.out());
    const c = capture();
    expect(await main(['help', 'exit-codes'], { io: c })).toBe(0);
    for (const code of Object.values(ExitCode)) expect(c.out()).toMatch(new RegExp(`^ +${code}  `, 'm'));
  });

  test('--version prints the package version', async () => {
    const io = capture();
    expect(await main(['--version'], { io })).toBe(0);
    const pkg = JSON.parse(readFileSync(join(import.meta.dirname, '..', '..', 'package.json'), 'utf8')) as {
      version: string;
      engines: { node: string };
    };
    expect(VERSION).toBe(pkg.version);
    // The Node.js the CLI asks for is the one package.json declares.
    expect(pkg.engines.node).toBe(`>=${NODE_REQUIRED}`);
    expect(io.out()).toBe(`nix-plan ${pkg.version}\n`);
  });

  test.each([
    [['frobnicate'], /unknown command 'frobnicate'/],
    [['export', '-f', 'x.nix'], /missing --output/],
    [['export', '-o', 'x', '--include', 'everything'], /--include must be one of drvs, sources, outputs/],
    [['export', '-o', 'x', '--level', '99'], /--level must be an integer from 1 to 19/],
    [['inspect'], /missing BUNDLE/],
    [['inspect', 'a', 'b'], /expected one BUNDLE, got 2/],
    [['verify', 'a', '--bogus'], /Unknown option '--bogus'/],
    [['import', 'a', '--method', 'teleport'], /--method must be one of auto, import, copy/],
    [['relocate', 'a', '-o', 'b'], /missing --to/],
    [['inspect', 'a', '--', 'x'], /takes no arguments after --/],
  ])('%j is a usage error', async (argv, message) => {
    const io = capture();
    const { calls, useCases } = recorder();
    expect(await main(argv, { io, useCases })).toBe(ExitCode.usage);
    expect(io.err()).toMatch(message);
    expect(calls).toEqual([]);
  });
});

describe('arguments reach the use cases', () => {
  test('export: installables, file, attributes, drvs, evaluator arguments after --', async () => {
    const { calls, useCases } = recorder({
      bundlePath: 'o',
      manifest: { roots: [], counts: { drv: 0, text: 0, source: 0, output: 0 } },
      bundleBytes: 1,
      timings: {},
    });
    const io = capture();
    const code = await main(
      [
        'export',
        '.#a',
        'path:/x#b',
        '-f',
        'f.nix',
        '-A',
        'x',
        '--attr',
        'y.z',
        '--drv',
        '/s/d.drv',
        '-o',
        'o',
        '--include',
        'sources',
        '--level',
        '3',
        '--store',
        'local?root=/r',
        '--json',
        '--',
        '--arg',
        'n',
        '1',
      ],
      { io, useCases },
    );
    expect(code).toBe(0);
    expect(calls[0]?.[0]).toBe('exportPlan');
    expect(calls[0]?.[1][0]).toEqual({
      installables: ['.#a', 'path:/x#b'],
      file: 'f.nix',
      attributes: ['x', 'y.z'],
      drvPaths: ['/s/d.drv'],
      evalArgs: ['--arg', 'n', '1'],
      output: 'o',
      include: 'sources',
      level: 3,
      signingKeys: [],
      relocateTo: undefined,
      store: 'local?root=/r',
      provenance: { env: expect.any(Function) },
    });
    expect(JSON.parse(io.out())).toMatchObject({ bundlePath: 'o' });
  });

  test('diff: bundles or .drv paths, or --profile as OLD, with --store, --drv and --no-check-sigs', async () => {
    const { calls, useCases } = recorder();
    const io = capture();
    const drv = `/nix/store/${'a'.repeat(32)}-app-1.0.drv`;
    expect(
      await main(['diff', 'old.nixplan', drv, '--drv', 'openssl', '--json', '-q'], { io, useCases }),
    ).toBe(0);
    expect(calls[0]?.[1].slice(0, 3)).toEqual([
      { kind: 'bundle', path: 'old.nixplan' },
      { kind: 'drv', path: drv },
      { store: undefined, trustedKeys: [], noCheckSigs: false, drv: 'openssl' },
    ]);
    const profile = '/nix/var/nix/profiles/system';
    expect(
      await main(
        [
          'diff',
          '--profile',
          profile,
          'new.nixplan',
          '--store',
          'local?root=/r',
          '--no-check-sigs',
          '--json',
          '-q',
        ],
        { io, useCases },
      ),
    ).toBe(0);
    expect(calls[1]?.[1].slice(0, 3)).toEqual([
      { kind: 'profile', path: profile },
      { kind: 'bundle', path: 'new.nixplan' },
      { store: 'local?root=/r', trustedKeys: [], noCheckSigs: true, drv: undefined },
    ]);
    // --profile takes the place of OLD: two plans besides it, or none, is a usage error.
    for (const args of [
      ['diff', '--profile', profile, 'a.nixplan', 'b.nixplan'],
      ['diff', '--profile', profile],
      ['diff', '--profile', '', 'b.nixplan'],
      ['diff', 'a.nixplan'],
    ])
      expect(await main(args, { io: capture(), useCases })).toBe(2);
    expect(calls).toHaveLength(2);
  });

  test('realise: a --roots that names nothing is refused, not read as every root', async () => {
    // An unset variable (`--roots "$SHARD"`) or a stray comma selects nothing: no import, no build.
    for (const value of ['', ',', ' , '.trim(), ',,'])
      for (const extra of [[], ['--dry-run']]) {
        const { calls, fresh, useCases } = recorder({
          outPaths: {},
          manifest: { signatures: [], checksum: '' },
        });
        const io = capture();
        const code = await main(['realise', 'p.nixplan', '--roots', value, ...extra], {
          io,
          useCases: {
            ...useCases,
            dryRunRealise: (...args: unknown[]) => (
              calls.push(['dryRunRealise', args]),
              Promise.reject(new Error('called'))
            ),
          },
        });
        expect([value, extra, code, calls.length, fresh.length]).toEqual([value, extra, 2, 0, 0]);
        expect(io.err()).toContain('--roots names no root');
      }
    // Beside a selector, an empty item is nothing more than a separator.
    const { calls, useCases } = recorder({ outPaths: {}, manifest: { signatures: [], checksum: '' } });
    expect(
      await main(['realise', 'p.nixplan', '--roots', '0,', '--roots', ''], { io: capture(), useCases }),
    ).toBe(0);
    expect((calls[0]?.[1][1] as { roots: string[] }).roots).toEqual(['0']);
  });

  test('realise: roots split on commas, NIX ARGS after --, keys from literals and files', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nix-plan-cli-'));
    try {
      const keyFile = join(dir, 'keys');
      const [a, b, c] = ['a', 'b', 'c'].map((n) => generateKeyPair(n).publicKey);
      writeFileSync(keyFile, `# CI keys\n${a}\n ${b} \n`);
      const { calls, fresh, useCases } = recorder({
        outPaths: { '/s/x.drv': { out: '/s/x' } },
        manifest: { signatures: [], checksum: '' },
      });
      const io = capture();
      const code = await main(
        [
          'realise',
          'p.nixplan',
          '--roots',
          '0,hello',
          '--roots',
          '/s/x.drv',
          '--out-link',
          'res',
          '--trusted-key',
          c ?? '',
          '--trusted-key',
          keyFile,
          '--max-age',
          '1d12h',
          '--',
          '--max-jobs',
          '2',
        ],
        { io, useCases },
      );
      // Who made the plan goes to stderr: stdout holds the output paths only.
      expect(io.err()).toBe('plan unsigned\n');
      expect(code).toBe(0);
      // The out-link's last-applied record and the age limit are checked around the realisation.
      expect(fresh).toEqual([
        [
          'p.nixplan',
          {
            maxAgeMs: 36 * 3600 * 1000,
            maxAgeText: '1d12h',
            target: 'res',
            allowDowngrade: false,
            // Asked only if the plan is refused as stale: a realm refusal then wins.
            storeDir: expect.any(Function),
          },
        ],
      ]);
      expect(calls[0]?.[1].slice(0, 2)).toEqual([
        'p.nixplan',
        {
          store: undefined,
          outLink: 'res',
          roots: ['0', 'hello', '/s/x.drv'],
          trustedKeys: [c, a, b],
          noCheckSigs: false,
          method: undefined,
          maxSize: undefined,
          nixArgs: ['--max-jobs', '2'],
          // withFreshness hands over its private copy: messages name the user's file.
          name: 'p.nixplan',
        },
      ]);
      expect(io.out()).toBe('/s/x\n');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('apply realises through realisePlan with the import options, and --sign-key reaches the untrusted route', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nix-plan-cli-'));
    try {
      const keyFile = join(dir, 'out.sec');
      const outKey = formatSecretKey(secretKeyFromSeed('out-1', new Uint8Array(32).fill(7)));
      writeFileSync(keyFile, `${outKey}\n`);
      const ci = generateKeyPair('ci').publicKey;
      const seen: unknown[] = [];
      const io = capture();
      const code = await main(
        [
          'apply',
          'sys.nixplan',
          '--profile',
          '/p',
          '--action',
          'boot',
          '--method',
          'copy',
          '--sign-key',
          keyFile,
          '--trusted-key',
          ci,
        ],
        {
          io,
          useCases: {
            copyImport: (settings) => {
              seen.push(['copyImport', settings]);
              return () => Promise.resolve();
            },
            realisePlan: (bundle, options) => {
              seen.push(['realisePlan', bundle, options]);
              return Promise.resolve({
                outPaths: { '/s/sys.drv': { out: '/s/sys' } },
                manifest: {},
              } as never);
            },
            applyPlan: async (bundle, options, deps) => {
              seen.push(['applyPlan', bundle, options, typeof deps.realise]);
              await deps.realise(bundle ?? '', ['/s/sys.drv'], bundle ?? '');
              return {
                action: 'boot',
                systemPath: '/s/sys',
                profile: '/p',
                profileChanged: true,
                generation: 3,
                output: '',
                lastActivation: [],
              };
            },
          },
        },
      );
      expect(io.err()).toBe('');
      expect(code).toBe(0);
      expect(seen).toEqual([
        ['copyImport', { signingKey: outKey }],
        [
          'applyPlan',
          'sys.nixplan',
          {
            profile: '/p',
            action: 'boot',
            rollback: false,
            store: undefined,
            confirmTimeout: undefined,
            activationTimeout: undefined,
            allowAnyRoot: false,
            allowDowngrade: false,
            label: 'sys.nixplan',
          },
          'function',
        ],
        [
          'realisePlan',
          'sys.nixplan',
          {
            store: undefined,
            trustedKeys: [ci],
            method: 'copy',
            maxSize: undefined,
            nixArgs: [],
            roots: ['/s/sys.drv'],
            name: 'sys.nixplan',
          },
        ],
      ]);
      expect(io.out()).toBe('boot: /s/sys is now /p (generation 3)\n');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('an output in a missing directory fails before any evaluation', async () => {
    const io = capture();
    const { calls, useCases } = recorder();
    // The real exportPlan and relocatePlan: the runner would fail the test if Nix were called.
    const noNix = { run: () => Promise.reject(new Error('Nix must not run')) };
    const { exportPlan: _e, relocatePlan: _r, ...real } = useCases;
    expect(
      await main(['export', '-f', 'x.nix', '-o', '/nonexistent/dir/p.nixplan'], {
        io,
        useCases: real,
        runner: noNix,
      }),
    ).toBe(ExitCode.usage);
    expect(io.err()).toContain("the directory '/nonexistent/dir' does not exist");
    const io2 = capture();
    expect(
      await main(['relocate', 'b.nixplan', '--to', '/b/s', '-o', '/nonexistent/dir/p.nixplan'], {
        io: io2,
        useCases: real,
        runner: noNix,
      }),
    ).toBe(ExitCode.usage);
    expect(io2.err()).toContain("cannot write '/nonexistent/dir/p.nixplan'");
    expect(calls).toEqual([]);
  });

  test('verify --store-dir that is no store dir is refused as one (exit 5), before verifying', async () => {
    for (const dir of ['rel/store', '/beta/store/']) {
      const io = capture();
      const { calls, useCases } = recorder();
      expect(await main(['verify', 'b', '--store-dir', dir], { io, useCases })).toBe(ExitCode.realm);
      expect(io.err()).toContain(`invalid store directory '${dir}'`);
      expect(calls).toEqual([]);
    }
  });

  test('a missing key file is a usage error naming it', async () => {
    const io = capture();
    const { useCases } = recorder();
    expect(await main(['verify', 'b', '--trusted-key', '/nonexistent/k.pub'], { io, useCases })).toBe(
      ExitCode.usage,
    );
    expect(io.err()).toContain("cannot read trusted key file '/nonexistent/k.pub'");
  });
});

describe('exit codes', () => {
  test('every error code has its own documented exit code (malformed counts as bundle)', () => {
    const seen = new Map<number, ErrorCode>();
    for (const code of ERROR_CODES) {
      const exit = exitCodeFor(new NixPlanError(code, 'x'));
      if (code === 'malformed') expect(exit).toBe(ExitCode.bundle);
      else {
        expect(seen.has(exit)).toBe(false);
        seen.set(exit, code);
        expect(exit).toBe(ExitCode[code]);
      }
    }
    expect(exitCodeFor(new Error('boom'))).toBe(ExitCode.internal);
    expect(exitCodeFor('string')).toBe(ExitCode.internal);
  });

  test('a use case error becomes its exit code and one message without a stack', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...ERROR_CODES),
        // Every command that runs a use case (completions and man only print).
        fc.constantFrom(...COMMANDS.map((c) => c.name).filter((n) => n !== 'completions' && n !== 'man')),
        async (code, name) => {
          const io = capture();
          const { useCases } = recorder(undefined, new NixPlanError(code, `it failed: ${code}`));
          const argv: Record<string, string[]> = {
            export: ['export', '-f', 'f', '-o', 'o'],
            relocate: ['relocate', 'b', '--to', '/b/s', '-o', 'o'],
            keygen: ['keygen', 'k', '--secret', '/nonexistent/dir/s', '--public', '/nonexistent/dir/p'],
            apply: ['apply', 'b', '--profile', '/p'],
            deploy: ['deploy', 'b', '--host', 'h'],
            diff: ['diff', 'a', 'b'],
          };
          const exit = await main(argv[name] ?? [name, 'b'], {
            io,
            useCases: {
              ...useCases,
              keygen: () => {
                throw new NixPlanError(code, `it failed: ${code}`);
              },
            },
          });
          expect(exit).toBe(exitCodeFor(new NixPlanError(code, '')));
          expect(io.err()).toContain(`nix-plan ${name}: error: it failed: ${code}`);
          expect(io.err()).not.toMatch(/\n\s+at /);
          // A refusal of what the arguments ask for (exit 2 included) is not followed by --help.
          expect(io.err()).not.toContain('--help');
        },
      ),
      { numRuns: 60 },
    );
  });

  test('an argument error, in every command, is followed by the hint to its --help', async () => {
    for (const command of COMMANDS) {
      const io = capture();
      const { useCases, calls } = recorder();
      expect(await main([command.name, '--no-such-option'], { io, useCases })).toBe(ExitCode.usage);
      expect(io.err()).toMatch(
        new RegExp(
          `^nix-plan ${command.name}: error: .*'--no-such-option'\\nTry 'nix-plan ${command.name} --help'\\.\\n$`,
        ),
      );
      expect(calls).toEqual([]);
    }
  });

  test('an unexpected exception is internal and says it is a bug', async () => {
    const io = capture();
    const { useCases } = recorder(undefined, new TypeError('undefined is not a function'));
    expect(await main(['inspect', 'b'], { io, useCases })).toBe(ExitCode.internal);
    expect(io.err()).toMatch(/This is a bug in nix-plan/);
  });
});

describe('keygen', () => {
  test('writes Nix-format keys, the secret private, and never overwrites', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nix-plan-keygen-'));
    try {
      const sec = join(dir, 'k.sec');
      const pub = join(dir, 'k.pub');
      const io = capture();
      expect(await main(['keygen', 'ci-1', '--secret', sec, '--public', pub], { io })).toBe(0);
      const secret = parseSecretKey(readFileSync(sec, 'utf8'));
      const publicKey = parsePublicKey(readFileSync(pub, 'utf8'));
      expect(secret.name).toBe('ci-1');
      expect(Buffer.from(publicKey.key)).toEqual(Buffer.from(secret.publicKey));
      expect(statSync(sec).mode & 0o777).toBe(0o600);
      expect(io.out()).toBe(readFileSync(pub, 'utf8') + '\n');
      const again = capture();
      expect(
        await main(['keygen', 'ci-2', '--secret', sec, '--public', join(dir, 'other.pub')], { io: again }),
      ).toBe(ExitCode.usage);
      expect(again.err()).toContain('refusing to overwrite');
      expect(parseSecretKey(readFileSync(sec, 'utf8')).name).toBe('ci-1');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('root selection', () => {
  const roots: BundleRoot[] = [
    { installable: '.#a', drvPath: '/s/00000000000000000000000000000000-a.drv', outputs: {} },
    { attribute: 'b', drvPath: '/s/11111111111111111111111111111111-b.drv', outputs: {} },
    { drvPath: '/s/22222222222222222222222222222222-c.drv', outputs: {} },
  ];
  test('by index, label, installable, attribute or drv path, keeping bundle order', () => {
    expect(selectRoots(roots)).toEqual(roots);
    expect(selectRoots(roots, ['c', '0'])).toEqual([roots[0], roots[2]]);
    expect(selectRoots(roots, ['b', '/s/22222222222222222222222222222222-c.drv', '.#a'])).toEqual(roots);
    expect(() => selectRoots(roots, ['3'])).toThrow(/matches no root.*0=\.#a, 1=b, 2=c/);
  });
});

describe('progress output', () => {
  test('a terminal gets a redrawn bar that is cleared; a log gets one line per phase', () => {
    const tty = capture(true);
    const t = terminalProgress(tty, { quiet: false, verbose: false }).start('verifying', 4);
    t.tick(1, 100);
    t.tick(1);
    t.done();
    expect(tty.err()).toContain('\r');
    expect(tty.err()).toContain('verifying [');
    expect(tty.err().endsWith('verifying: 2/4 (100 B)\n')).toBe(true);

    const log = capture(false);
    const p = terminalProgress(log, { quiet: false, verbose: false }).start('importing');
    for (let i = 0; i < 1000; i++) p.tick();
    p.done();
    expect(log.err()).toBe('importing: 1000 in 0.0 s\n');

    const quiet = capture(true);
    const q = terminalProgress(quiet, { quiet: true, verbose: false }).start('x', 1);
    q.tick();
    q.done();
    expect(quiet.err()).toBe('');
  });

  test('bars never exceed the width', () => {
    fc.assert(
      fc.property(
        fc.nat(10_000),
        fc.nat(10_000),
        fc.integer({ min: 20, max: 200 }),
        (count, total, width) => {
          expect(renderBar('label', count, total, count * 1000, width).length).toBeLessThanOrEqual(width);
        },
      ),
    );
  });
});
