// The command line's manners on real Nix (2.8 and 2.34): -v echoes each Nix command (quoted),
// -vv gives Nix -v, --nix-arg is split as a shell would, --log-format reaches the build, a failed
// build's log is shown once, realise --dry-run changes nothing, and the documented exit codes
// (a missing file is 2, a wrong realm 5 naming the user's file) with the store unchanged.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ExitCode } from '../../src/cli/exit-codes.js';
import { main } from '../../src/cli/main.js';
import type { CliIo } from '../../src/cli/terminal.js';
import { nixVersions, ScratchStore, SYSTEM } from '../support/nix.js';

/** Runs the CLI in-process against `store`; returns exit code, stdout and stderr. */
async function cli(store: ScratchStore, argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const io: CliIo = {
    stdout: { write: (s: string | Uint8Array) => (out += s.toString()) },
    stderr: { write: (s: string | Uint8Array) => (err += s.toString()) },
  };
  const code = await main(argv, { io, runner: store.runner });
  return { code, out, err };
}

// `msg` reaches the build's environment; `fail` makes the build print a marker and fail.
const PLAN_NIX = `{ msg ? "", fail ? false }:
let
  base = derivation { name = "base"; system = "${SYSTEM}"; builder = "/bin/sh"; args = [ "-c" "echo base > $out" ]; };
in {
  echo = derivation {
    name = "echo"; system = "${SYSTEM}"; builder = "/bin/sh"; inherit msg base;
    args = [ "-c" "echo \\"$msg\\" > $out" ];
  };
  broken = derivation {
    name = "broken"; system = "${SYSTEM}"; builder = "/bin/sh";
    args = [ "-c" "echo MARKER-OF-A-FAILED-BUILD >&2; exit 3" ];
  };
}
`;

describe.each(nixVersions())('command-line manners on Nix $label', (version) => {
  let work: string;
  let file: string;
  let storeDir: string;
  const stores: ScratchStore[] = [];
  const newStore = (dir = storeDir): ScratchStore => {
    const s = new ScratchStore(version, { storeDir: dir });
    stores.push(s);
    return s;
  };

  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'nix-plan-manners-'));
    storeDir = join(work, 'store');
    file = join(work, 'plan.nix');
    writeFileSync(file, PLAN_NIX);
  });
  afterAll(() => {
    for (const s of stores) s.wipe();
    chmodSync(work, 0o755);
    rmSync(work, { recursive: true, force: true });
  });

  /** Exports `attrs` of the plan with `extra` arguments into a bundle, from a store then wiped. */
  async function exported(name: string, attrs: string[], extra: string[] = []): Promise<string> {
    const evaluator = newStore();
    const bundle = join(work, `${name}.nixplan`);
    const r = await cli(evaluator, [
      'export',
      '-f',
      file,
      ...attrs.flatMap((a) => ['-A', a]),
      '-o',
      bundle,
      ...extra,
    ]);
    expect(r.err).not.toMatch(/error/);
    expect(r.code).toBe(0);
    evaluator.wipe();
    return bundle;
  }

  test('--nix-arg is split as a shell would; -v echoes each Nix command, quoted', async () => {
    const evaluator = newStore();
    const bundle = join(work, 'quoted.nixplan');
    const r = await cli(evaluator, [
      'export',
      '-f',
      file,
      '-A',
      'echo',
      '-o',
      bundle,
      '--nix-arg',
      `--argstr msg "two words, it's"`,
      '-v',
    ]);
    expect(r.code).toBe(0);
    // The echo is a command line a shell reads back as the same argv.
    expect(r.err).toContain(
      `+ nix-instantiate --eval --json --read-write-mode --argstr msg 'two words, it'\\''s' ${file} -A echo.type -A echo.drvPath\n`,
    );
    expect(r.err).toMatch(/^\+ nix-store --version$/m);
    expect(r.err).toMatch(/^\+ nix-store --query --requisites \//m);
    // Without -v nothing is echoed.
    const quiet = await cli(evaluator, ['export', '-f', file, '-A', 'echo', '-o', join(work, 'q.nixplan')]);
    expect(quiet.err).not.toMatch(/^\+ /m);
    evaluator.wipe();

    const builder = newStore();
    const built = await cli(builder, ['realise', bundle]);
    expect(built.code).toBe(0);
    expect(readFileSync(built.out.trim(), 'utf8')).toBe("two words, it's\n");
  });

  test('-vv passes -v to Nix; --log-format reaches the build, so nom --json can read it', async () => {
    const bundle = await exported('vv', ['echo'], ['--nix-arg', '--argstr msg hi']);
    const builder = newStore();
    const vv = await cli(builder, ['import', bundle, '-vv']);
    expect(vv.code).toBe(0);
    expect(vv.err).toMatch(/^\+ nix-store -v --check-validity /m);
    expect(vv.err).toMatch(/^\+ nix-store -v --import$/m);
    const r = await cli(builder, ['realise', bundle, '-v', '--log-format', 'internal-json']);
    expect(r.code).toBe(0);
    expect(r.err).toMatch(/^\+ nix-store --log-format internal-json --realise /m);
    expect(r.err).toMatch(/^@nix \{"action":/m);
    // A query whose output nix-plan does not show keeps Nix's own format.
    expect(r.err).toMatch(/^\+ nix-store --check-validity /m);
    const bad = await cli(builder, ['realise', bundle, '--log-format', 'yaml']);
    expect(bad.code).toBe(ExitCode.usage);
    expect(bad.err).toMatch(/--log-format must be one of raw, internal-json/);
  });

  test("a failed build's log is shown once, and it exits with the Nix code", async () => {
    const bundle = await exported('broken', ['broken']);
    const builder = newStore();
    const r = await cli(builder, ['realise', bundle]);
    expect(r.code).toBe(ExitCode.nix);
    expect(r.err.split('MARKER-OF-A-FAILED-BUILD').length - 1).toBe(1);
    expect(r.err).toMatch(
      /nix-plan realise: error: nix-store .*failed with exit code \d+ \(its output is above\)/,
    );
    // Quiet shows no build log, so the error carries its tail instead.
    const q = await cli(builder, ['realise', bundle, '-q']);
    expect(q.code).toBe(ExitCode.nix);
    expect(q.err.split('MARKER-OF-A-FAILED-BUILD').length - 1).toBe(1);
  });

  test('realise --dry-run lists what would be built and imports nothing', async () => {
    const bundle = await exported('dry', ['echo'], ['--nix-arg', '--argstr msg dry']);
    const builder = newStore();
    const before = await builder.validPaths();
    const r = await cli(builder, ['realise', bundle, '--dry-run', '--json']);
    expect(r.err).not.toMatch(/error/);
    expect(r.code).toBe(0);
    const plan = JSON.parse(r.out) as {
      dryRun: boolean;
      import: { missing: number; alreadyValid: number };
      build: string[];
      fetch: string[];
      manifest: { paths: number; roots: { drvPath: string }[] };
    };
    expect(plan.dryRun).toBe(true);
    expect(plan.import).toEqual({ missing: plan.manifest.paths, alreadyValid: 0 });
    // Both derivations are built (no substituters here), the input first.
    expect(plan.build.map((d) => d.replace(/^.*\/[a-z0-9]{32}-/, ''))).toEqual(['base.drv', 'echo.drv']);
    expect(plan.fetch).toEqual([]);
    expect(await builder.validPaths()).toEqual(before);
    const human = await cli(builder, ['realise', bundle, '--dry-run']);
    expect(human.out).toMatch(/^build: 2 derivations$/m);
    expect(human.out).toMatch(/nothing was imported, built or fetched/);

    // Once realised, a dry run finds nothing to do.
    expect((await cli(builder, ['realise', bundle])).code).toBe(0);
    const again = JSON.parse((await cli(builder, ['realise', bundle, '--dry-run', '--json'])).out) as {
      import: { missing: number };
      build: string[];
    };
    expect(again.import.missing).toBe(0);
    expect(again.build).toEqual([]);
  });

  test('a dry run says what a substituter would give instead of a build', async () => {
    // The input is built elsewhere and put in a binary cache the builder uses.
    const bundle = await exported('subst', ['echo'], ['--nix-arg', '--argstr msg cached']);
    const donor = newStore();
    expect((await cli(donor, ['realise', bundle])).code).toBe(0);
    const base = (await donor.validPaths()).find((p) => p.endsWith('-base'));
    const cache = join(work, 'cache');
    await donor.run('nix', ['copy', '--to', `file://${cache}`, base ?? '']);
    donor.wipe();
    const builder = new ScratchStore(version, {
      storeDir,
      extraConf: `substituters = file://${cache}\nrequire-sigs = false\n`,
    });
    stores.push(builder);
    const plan = JSON.parse((await cli(builder, ['realise', bundle, '--dry-run', '--json'])).out) as {
      build: string[];
      fetch: string[];
    };
    expect(plan.build.map((d) => d.replace(/^.*\/[a-z0-9]{32}-/, ''))).toEqual(['echo.drv']);
    expect(plan.fetch).toEqual([base]);
    expect(await builder.validPaths()).toEqual([]);
  });

  test('exit codes: a missing file is 2; a bundle for another realm is 5, naming the file given', async () => {
    const store = newStore();
    const missing = await cli(store, [
      'export',
      '-f',
      join(work, 'missing.nix'),
      '-o',
      join(work, 'm.nixplan'),
    ]);
    expect(missing.code).toBe(ExitCode.usage);
    expect(missing.err).toMatch(/missing\.nix': no such file/);
    // Refused before the evaluation starts: no line claims it evaluated anything.
    expect(missing.err).not.toContain('evaluating');

    const bundle = await exported('realm', ['echo']);
    const elsewhere = newStore(join(work, 'other', 'store'));
    const r = await cli(elsewhere, ['import', bundle]);
    expect(r.code).toBe(ExitCode.realm);
    expect(r.err).toContain(`'${bundle}' is a plan for the store dir ${storeDir}`);
    expect(r.err).not.toMatch(/nix-plan-import-/);
    expect(await elsewhere.validPaths()).toEqual([]);
  });

  test('realise --roots naming no root: a plan for another realm says so first; one for here names the roots', async () => {
    // No choice of roots makes a plan for another store dir importable: the realm is what the user
    // needs to hear (and its message says what to do); the roots only once the realm is right.
    const bundle = await exported('roots-realm', ['echo']);
    const elsewhere = newStore(join(work, 'other-roots', 'store'));
    await elsewhere.validPaths(); // the database exists before the snapshot
    const before = await elsewhere.run('nix-store', ['--dump-db']);
    const there = await cli(elsewhere, ['realise', bundle, '--roots', 'ecoh']);
    expect(there.code).toBe(ExitCode.realm);
    expect(there.err).toContain(`'${bundle}' is a plan for the store dir ${storeDir}`);
    expect(there.err).not.toContain('ecoh');
    expect((await elsewhere.run('nix-store', ['--dump-db'])).stdout).toEqual(before.stdout);

    const here = newStore();
    await here.validPaths();
    const empty = await here.run('nix-store', ['--dump-db']);
    const typo = await cli(here, ['realise', bundle, '--roots', 'ecoh']);
    expect(typo.code).toBe(ExitCode.usage);
    expect(typo.err).toContain("--roots 'ecoh' matches no root of the bundle; its roots are: 0=echo");
    expect((await here.run('nix-store', ['--dump-db'])).stdout).toEqual(empty.stdout);
    // An empty selector (`--roots "$UNSET"`) is no selector at all: refused, not every root.
    const unset = await cli(here, ['realise', bundle, '--roots', '']);
    expect([unset.code, unset.out]).toEqual([ExitCode.usage, '']);
    expect(unset.err).toContain('--roots names no root');
    expect((await here.run('nix-store', ['--dump-db'])).stdout).toEqual(empty.stdout);
  });
});
