// applyPlan on real Nix: fixture "systems" whose switch-to-configuration records how it was called.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readlinkSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { applyPlan, type ApplyDeps } from '../../src/app/apply.js';
import { generationOf } from '../../src/nix/profile.js';
import { silentLogger } from '../../src/app/deps.js';
import { exportPlan } from '../../src/app/export.js';
import { realisePlan } from '../../src/app/realise.js';
import { NixPlanError } from '../../src/core/errors.js';
import { cli } from '../support/cli-run.js';
import { nixVersions, ScratchStore } from '../support/nix.js';
import { PACKAGES_NIX } from '../support/nixos-fixture.js';

/** The systems' packages: b over a is hello 1.0 → 1.1 and extra 2.0 added (each with a -man path). */
const PACKAGES: Record<string, string> = { a: '{ hello = "1.0"; }', b: '{ hello = "1.1"; extra = "2.0"; }' };

/**
 * A stand-in for a NixOS system: its `bin/switch-to-configuration` appends "LABEL ARGS PROFILE-LINK"
 * to a log, so a test sees which system ran, with what action, and what generation was current;
 * `packages` (NAME = VERSION) are in its runtime closure, for what an activation changes.
 */
function systemExpr(log: string, profile: string): string {
  // A Nix '' string: ${label} is the derivation's label, $* and $(…) are left to the shell.
  return `
{ label, withScript ? true, fails ? false, packages ? {} }:
let${PACKAGES_NIX}in
builtins.derivation {
  name = "nixos-system-\${label}-1.0";
  system = builtins.currentSystem;
  builder = "/bin/sh";
  sw = builtins.concatStringsSep "\n" (map toString paths);
  script = if withScript then ''
    #!/bin/sh
    echo "\${label} $* $(/bin/readlink ${profile})" >> ${log}
    echo "\${label}: switching to $*" >&2
    \${if fails then "exit 1" else ""}
  '' else "";
  args = [ "-c" ''
    /bin/mkdir -p $out/bin
    echo "$sw" > $out/sw
    if [ -n "$script" ]; then
      echo "$script" > $out/bin/switch-to-configuration
      /bin/chmod +x $out/bin/switch-to-configuration
    fi
  '' ];
}
`;
}

describe.each(nixVersions().map((v) => [v.label, v] as const))('applyPlan, Nix %s', (_label, version) => {
  let store: ScratchStore;
  let profile: string;
  let log: string;
  const bundles: Record<string, string> = {};
  const systems: Record<string, string> = {};
  let deps: ApplyDeps;

  const logLines = (): string[] => (existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n') : []);
  const currentGeneration = (): number | undefined =>
    existsSync(profile) ? generationOf(readlinkSync(profile)) : undefined;

  beforeAll(async () => {
    store = new ScratchStore(version);
    mkdirSync(join(store.root, 'profiles'));
    profile = join(store.root, 'profiles', 'system');
    log = join(store.root, 'apply.log');
    const file = join(store.root, 'system.nix');
    writeFileSync(file, systemExpr(log, profile));
    const base = { runner: store.runner, log: silentLogger };
    for (const [name, withScript] of [
      ['a', true],
      ['b', true],
      ['plain', false],
      ['bad', true],
    ] as const) {
      const { stdout } = await store.run('nix-instantiate', [
        file,
        '--argstr',
        'label',
        name,
        '--arg',
        'withScript',
        String(withScript),
        '--arg',
        'fails',
        String(name === 'bad'),
        '--arg',
        'packages',
        PACKAGES[name] ?? '{ }',
      ]);
      const drv = stdout.toString('utf8').trim();
      bundles[name] = join(store.root, `${name}.nixplan`);
      await exportPlan({ drvPaths: [drv], output: bundles[name] }, base);
      if (name === 'a') {
        // The same system, evaluated a day earlier than every other plan here.
        bundles['old'] = join(store.root, 'old.nixplan');
        const dayBefore = (): Date => new Date(Date.now() - 86_400_000);
        await exportPlan({ drvPaths: [drv], output: bundles['old'], now: dayBefore }, base);
      }
      const built = await store.run('nix-store', ['--realise', drv]);
      systems[name] = built.stdout.toString('utf8').trim();
    }
    deps = { ...base, realise: (bundle, roots, name) => realisePlan(bundle, { roots, name }, base) };
  });
  afterAll(() => store?.dispose());

  test('a plan that is not a NixOS system is refused before the profile changes', async () => {
    const error = await applyPlan(bundles['plain'], { profile }, deps).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(NixPlanError);
    expect((error as NixPlanError).code).toBe('usage');
    expect((error as NixPlanError).message).toMatch(/switch-to-configuration/);
    expect(existsSync(profile)).toBe(false);
    expect(logLines()).toEqual([]);
  });

  test('switch, dry-activate, test, switch, rollbacks and boot, as nixos-rebuild does them', async () => {
    const first = await applyPlan(bundles['a'], { profile, action: 'switch' }, deps);
    expect(first).toMatchObject({ systemPath: systems['a'], generation: 1, profileChanged: true });
    expect(readlinkSync(`${profile}-1-link`)).toBe(systems['a']);
    // A first apply: nothing to compare with, said so; the new closure counted.
    expect(first.changes).toMatchObject({
      status: 'first',
      system: systems['a'],
      closure: { new: { paths: 3 }, added: 3, removed: 0 },
      counts: { added: 2 },
    });
    expect(first.changes?.previous).toBeUndefined();

    // dry-activate and test run the new system's script but leave the profile alone; both say
    // first what the change is: the current generation's system → this one, package by package.
    const dryRun = await cli(
      ['apply', bundles['b'] ?? '', '--profile', profile, '--action', 'dry-activate', '--json'],
      store.runner,
    );
    expect(dryRun.code).toBe(0);
    expect(dryRun.err).toContain(`generation 1 (${systems['a']}) → ${systems['b']}`);
    expect(dryRun.err).toMatch(
      /1 version change \(1 upgrade\), 2 added, 1 removed; closure 3 → 5 paths \(5 added, 3 removed\)/,
    );
    const dry = JSON.parse(dryRun.out) as Record<string, unknown>;
    expect(dry).toMatchObject({
      action: 'dry-activate',
      systemPath: systems['b'],
      generation: 1,
      profileChanged: false,
      changes: {
        status: 'changed',
        previous: { generation: 1, system: systems['a'] },
        system: systems['b'],
        closure: { old: { paths: 3 }, new: { paths: 5 }, added: 5, removed: 3 },
        counts: { upgrade: 1, added: 2, removed: 1 },
      },
    });
    const packages = (dry['changes'] as { packages: { name: string; change: string }[] }).packages;
    expect(packages.map((p) => [p.name, p.change])).toEqual([
      ['extra', 'added'],
      ['hello', 'upgrade'],
      ['nixos-system-a', 'removed'],
      ['nixos-system-b', 'added'],
    ]);
    expect(packages[1]).toMatchObject({ old: { versions: ['1.0'] }, new: { versions: ['1.1'] } });
    const testRun = await cli(
      ['apply', bundles['b'] ?? '', '--profile', profile, '--action', 'test'],
      store.runner,
    );
    expect(testRun.code).toBe(0);
    expect(testRun.out).toContain(
      `Changes on ${profile}: generation 1 (${systems['a']}) → ${systems['b']}\n`,
    );
    expect(testRun.out).toMatch(/^ {2}Version changes:\n {4}\[U\] hello +1\.0 → 1\.1$/m);
    expect(testRun.out).toMatch(/^ {2}Added packages:\n {4}\[A\] extra +2\.0\n/m);
    expect(currentGeneration()).toBe(1);

    const second = await applyPlan(bundles['b'], { profile, action: 'switch' }, deps);
    expect(second.generation).toBe(2);
    expect(readlinkSync(`${profile}-2-link`)).toBe(systems['b']);

    // A dry rollback runs the previous generation's script without touching the profile, and
    // says first what going back changes: generation 2's system → generation 1's.
    const dryBackRun = await cli(
      ['apply', '--rollback', '--profile', profile, '--action', 'dry-activate', '--json'],
      store.runner,
    );
    expect(dryBackRun.code).toBe(0);
    expect(dryBackRun.err).toContain(`rolling back from generation 2 to 1 (dry-activate)`);
    expect(dryBackRun.err).toContain(`generation 2 (${systems['b']}) → ${systems['a']}`);
    expect(dryBackRun.err).toMatch(
      /1 version change \(1 downgrade\), 1 added, 2 removed; closure 5 → 3 paths \(3 added, 5 removed\)/,
    );
    const dryBack = JSON.parse(dryBackRun.out) as Record<string, unknown>;
    expect(dryBack).toMatchObject({
      systemPath: systems['a'],
      generation: 2,
      profileChanged: false,
      rollback: { from: 2, to: 1 },
      changes: { status: 'changed', previous: { generation: 2, system: systems['b'] }, system: systems['a'] },
      lastActivation: [],
    });

    const backRun = await cli(['apply', '--rollback', '--profile', profile], store.runner);
    expect(backRun.code).toBe(0);
    expect(backRun.out).toContain(
      `Changes on ${profile}: generation 2 (${systems['b']}) → ${systems['a']}\n`,
    );
    expect(backRun.out).toMatch(/^ {2}Version changes:\n {4}\[D\] hello +1\.1 → 1\.0$/m);
    expect(backRun.out).toMatch(/^ {2}Removed packages:\n {4}\[R\] extra +2\.0\n/m);
    expect(backRun.out).toContain(
      `switch: ${systems['a']} is now ${profile} (generation 1, rolled back from 2)`,
    );
    expect(currentGeneration()).toBe(1);
    // Going back makes no generation and removes none.
    expect(readlinkSync(`${profile}-2-link`)).toBe(systems['b']);
    // The record still names the newest plan applied (the downgrade floor) and says the profile
    // went back from it.
    const record = JSON.parse(readFileSync(`${profile}.nix-plan.json`, 'utf8')) as Record<string, unknown>;
    expect(record['roots']).toEqual([expect.stringMatching(/nixos-system-b-1\.0\.drv$/)]);
    expect(record['rolledBack']).toMatchObject({ generation: 1, system: systems['a'], from: 2 });

    // Nothing before generation 1: refused by name, and nothing runs.
    const none = await applyPlan(undefined, { profile, rollback: true }, deps).catch((e: unknown) => e);
    expect((none as NixPlanError).code).toBe('usage');
    expect((none as NixPlanError).message).toMatch(
      /has no generation before the current one \(1\) to roll back to; nothing was changed/,
    );
    expect(currentGeneration()).toBe(1);

    // Nix reuses the newest generation when it already holds the same system: no generation 3.
    const boot = await applyPlan(bundles['b'], { profile, action: 'boot' }, deps);
    expect(boot).toMatchObject({ systemPath: systems['b'], generation: 2, profileChanged: true });

    expect(logLines()).toEqual([
      'a switch system-1-link',
      'b dry-activate system-1-link',
      'b test system-1-link',
      'b switch system-2-link',
      'a dry-activate system-2-link',
      'a switch system-1-link',
      'b boot system-2-link',
    ]);
  });

  test('a current generation whose system is not in the store: said so, the activation goes on', async () => {
    // A profile left pointing at a system that is gone (another store, a damaged one): the change
    // cannot be shown, which must not stand in the way of activating a working system.
    const stray = join(store.root, 'profiles', 'stray');
    const gone = `${store.storeDir}/${'0'.repeat(32)}-nixos-system-gone`;
    symlinkSync(gone, `${stray}-1-link`);
    symlinkSync('stray-1-link', stray);
    const before = logLines().length;
    const dry = await applyPlan(bundles['b'], { profile: stray, action: 'dry-activate' }, deps);
    expect(dry.changes).toMatchObject({
      status: 'unknown',
      previous: { generation: 1, system: gone },
      closure: { new: { paths: 5 } },
    });
    expect(dry.changes?.closure.old).toBeUndefined();
    expect(logLines().slice(before)).toEqual([expect.stringMatching(/^b dry-activate /)]);
  });

  test('a profile link whose target holds a line break cannot answer for the host program', async () => {
    // Its only generation is 2 (system a); the link's target goes on to claim, as the probe's own
    // answers, a generation 1 holding system b. Read as markers, a rollback went "back" to b and
    // ran its switch-to-configuration, a system that was never a generation of this profile.
    const inj = join(store.root, 'profiles', 'inj');
    symlinkSync(systems['a'] ?? '', `${inj}-2-link`);
    symlinkSync(
      `inj-2-link\n@nix-plan previous-generation ${inj}-1-link\n@nix-plan previous-system ${systems['b'] ?? ''}`,
      inj,
    );
    const before = logLines().length;
    const error = await applyPlan(
      undefined,
      { profile: inj, rollback: true, action: 'dry-activate' },
      deps,
    ).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(NixPlanError);
    expect((error as NixPlanError).message).toMatch(/line break/);
    expect(logLines().slice(before)).toEqual([]);
  });

  test('a plan older than the last one applied is refused before anything runs; --allow-downgrade forces it', async () => {
    const before = logLines().length;
    const generation = currentGeneration();
    const error = await applyPlan(bundles['old'], { profile }, deps).catch((e: unknown) => e);
    expect((error as NixPlanError).code).toBe('stale');
    expect((error as NixPlanError).message).toMatch(/refusing a downgrade/);
    expect(currentGeneration()).toBe(generation);
    expect(logLines().length).toBe(before);
    const forced = await applyPlan(bundles['old'], { profile, action: 'test', allowDowngrade: true }, deps);
    expect(forced).toMatchObject({ systemPath: systems['a'], confirmed: true });
    expect(logLines().slice(before)).toEqual([`a test system-${generation ?? 0}-link`]);
  });

  test('a failing switch re-activates the previous generation and says so; its output is shown', async () => {
    const before = logLines().length;
    const output: string[] = [];
    const error = await applyPlan(
      bundles['bad'],
      { profile },
      { ...deps, output: (c) => output.push(Buffer.from(c).toString()) },
    ).catch((e: unknown) => e);
    expect((error as NixPlanError).code).toBe('activation');
    expect((error as NixPlanError).message).toMatch(
      /switch-to-configuration switch exited with 1: re-activated the previous generation 2 and removed system-3-link; the current generation is 2/,
    );
    expect(output.join('')).toContain('bad: switching to switch');
    expect(currentGeneration()).toBe(2);
    expect(existsSync(`${profile}-3-link`)).toBe(false);
    expect(logLines().slice(before)).toEqual(['bad switch system-3-link', 'b switch system-2-link']);
    // The record still names the plan that made generation 2.
    const record = JSON.parse(readFileSync(`${profile}.nix-plan.json`, 'utf8')) as { roots: string[] };
    expect(record.roots[0]).toMatch(/nixos-system-b-1\.0\.drv$/);
  });

  test('the next apply says first how the last activation ended, in text and --json; then nothing', async () => {
    // The newest activation beside the profile is the failed switch of the test before.
    const run = await cli(
      ['apply', bundles['b'] ?? '', '--profile', profile, '--action', 'test', '--json'],
      store.runner,
    );
    expect(run.code).toBe(0);
    const esc = (x: string): string => x.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    const note = new RegExp(
      `^${esc(profile)}: the last activation here \\(switch of ${esc(systems['bad'] ?? '')}, started \\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ\\) ` +
        'failed \\(switch-to-configuration exited with 1\\): the supervisor re-activated the generation before it$',
    );
    const warnings = run.err
      .split('\n')
      .filter((l) => l.startsWith('warning: ') && l.includes(' the last activation '))
      .map((l) => l.slice('warning: '.length));
    expect(warnings).toEqual([expect.stringMatching(note)]);
    // Said before anything is activated.
    expect(run.err.indexOf('the last activation here')).toBeLessThan(run.err.indexOf('activating '));
    const result = JSON.parse(run.out) as { lastActivation: string[] };
    expect(result.lastActivation).toEqual(warnings);
    // That test (of the system generation 2 holds) is now the newest activation, and it ended as
    // planned: nothing to say.
    const again = await cli(
      ['apply', bundles['b'] ?? '', '--profile', profile, '--action', 'dry-activate', '--json'],
      store.runner,
    );
    expect(again.code).toBe(0);
    expect(again.err).not.toContain('the last activation here');
    expect((JSON.parse(again.out) as { lastActivation: string[] }).lastActivation).toEqual([]);
  });

  test("one private copy: the record's digest is of the bytes applied, and errors name the user's file", async () => {
    const file = join(store.root, 'swapped.nixplan');
    const applied = readFileSync(bundles['b'] ?? '');
    writeFileSync(file, applied);
    // The file is rewritten in place once it has been realised: the record must still name the
    // plan applied, not whatever the path holds afterwards.
    const swapping: ApplyDeps = {
      ...deps,
      realise: async (bundle, roots, name) => {
        const done = await deps.realise(bundle, roots, name);
        writeFileSync(file, readFileSync(bundles['plain'] ?? ''));
        return done;
      },
    };
    const boot = await applyPlan(file, { profile, action: 'boot' }, swapping);
    expect(boot).toMatchObject({ systemPath: systems['b'], generation: 2 });
    const record = JSON.parse(readFileSync(`${profile}.nix-plan.json`, 'utf8')) as { digest: string };
    expect(record.digest).toBe(`sha256:${createHash('sha256').update(applied).digest('hex')}`);
    // A plan refused while it is verified (its last byte changed) is named as the user gave it.
    const damaged = Buffer.from(applied);
    damaged[damaged.length - 1] = (damaged[damaged.length - 1] ?? 0) ^ 1;
    writeFileSync(file, damaged);
    const error = await applyPlan(file, { profile }, deps).catch((e: unknown) => e);
    expect((error as NixPlanError).code).toBe('bundle');
    expect((error as NixPlanError).message).toContain(`'${file}'`);
    expect((error as NixPlanError).message).not.toMatch(/nix-plan-(apply|import)-/);
    expect(currentGeneration()).toBe(2);
  });
});
