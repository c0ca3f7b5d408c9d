// applyPlan on real Nix: fixture "systems" whose switch-to-configuration records how it was called.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { existsSync, mkdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { applyPlan, type ApplyDeps } from '../../src/app/apply.js';
import { generationOf } from '../../src/nix/profile.js';
import { silentLogger } from '../../src/app/deps.js';
import { exportPlan } from '../../src/app/export.js';
import { realisePlan } from '../../src/app/realise.js';
import { NixPlanError } from '../../src/core/errors.js';
import { nixVersions, ScratchStore } from '../support/nix.js';

/**
 * A stand-in for a NixOS system: its `bin/switch-to-configuration` appends "LABEL ARGS PROFILE-LINK"
 * to a log, so a test sees which system ran, with what action, and what generation was current.
 */
function systemExpr(log: string, profile: string): string {
  // A Nix '' string: ${label} is the derivation's label, $* and $(…) are left to the shell.
  return `
{ label, withScript ? true, fails ? false }:
builtins.derivation {
  name = "nixos-system-\${label}";
  system = builtins.currentSystem;
  builder = "/bin/sh";
  script = if withScript then ''
    #!/bin/sh
    echo "\${label} $* $(/bin/readlink ${profile})" >> ${log}
    echo "\${label}: switching to $*" >&2
    \${if fails then "exit 1" else ""}
  '' else "";
  args = [ "-c" ''
    /bin/mkdir -p $out/bin
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
    deps = { ...base, realise: (bundle) => realisePlan(bundle, {}, base) };
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

    // dry-activate and test run the new system's script but leave the profile alone.
    const dry = await applyPlan(bundles['b'], { profile, action: 'dry-activate' }, deps);
    expect(dry).toMatchObject({ systemPath: systems['b'], generation: 1, profileChanged: false });
    await applyPlan(bundles['b'], { profile, action: 'test' }, deps);
    expect(currentGeneration()).toBe(1);

    const second = await applyPlan(bundles['b'], { profile, action: 'switch' }, deps);
    expect(second.generation).toBe(2);
    expect(readlinkSync(`${profile}-2-link`)).toBe(systems['b']);

    // A dry rollback runs the previous generation's script without touching the profile.
    const dryBack = await applyPlan(undefined, { profile, action: 'dry-activate', rollback: true }, deps);
    expect(dryBack).toMatchObject({ systemPath: systems['a'], generation: 2, profileChanged: false });

    const back = await applyPlan(undefined, { profile, rollback: true }, deps);
    expect(back).toMatchObject({ systemPath: systems['a'], generation: 1, profileChanged: true });

    // Nothing before generation 1: refused, and nothing runs.
    await expect(applyPlan(undefined, { profile, rollback: true }, deps)).rejects.toBeInstanceOf(
      NixPlanError,
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
    expect(record.roots[0]).toMatch(/nixos-system-b\.drv$/);
  });
});
