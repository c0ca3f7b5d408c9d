// The layer rules of docs/architecture.md hold for src/, and the check fails when one is broken.
import { describe, expect, test } from '@jest/globals';
import { importCycles, layerProblems, readModules, SRC_DIR, type ModuleInfo } from '../support/layers.js';

const mod = (path: string, imports: string[] = [], processUses: string[] = []): ModuleInfo => ({
  path,
  imports,
  processUses,
});

describe('layer rules', () => {
  test('src/ keeps every one', () => {
    const modules = readModules(SRC_DIR);
    expect(modules.length).toBeGreaterThan(50);
    expect(layerProblems(modules)).toEqual([]);
  });

  test('the check reads real imports: the core imports the core, the CLI the use cases', () => {
    const modules = new Map(readModules(SRC_DIR).map((m) => [m.path, m]));
    expect(modules.get('core/bundle/reader.ts')?.imports).toContain('core/bundle/policy.ts');
    expect(modules.get('cli/use-cases.ts')?.imports).toContain('app/import.ts');
    expect(modules.get('nix/runner.ts')?.imports).toContain('node:child_process');
    expect(modules.get('cli/main.ts')?.processUses).toContain('stdout');
  });

  // Each of these breaks one rule; the check must say so.
  test.each([
    [
      'the core imports a use case',
      [mod('core/a.ts', ['app/b.ts']), mod('app/b.ts')],
      /core\/a\.ts imports app\/b\.ts: core may import only core/,
    ],
    [
      'the core imports the Nix adapter',
      [mod('core/a.ts', ['nix/b.ts']), mod('nix/b.ts')],
      /core may import only core/,
    ],
    [
      'an adapter imports a front end',
      [mod('nix/a.ts', ['cli/b.ts']), mod('cli/b.ts')],
      /nix may import only core, nix/,
    ],
    [
      'a use case imports the action',
      [mod('app/a.ts', ['action/b.ts']), mod('action/b.ts')],
      /app may import only/,
    ],
    ['the core imports @actions/core', [mod('core/a.ts', ['@actions/core'])], /the package @actions\/core/],
    [
      'the core starts a process',
      [mod('core/a.ts', ['node:child_process'])],
      /only nix\/runner\.ts, nix\/ssh\.ts may start processes/,
    ],
    ['a use case starts a process', [mod('app/a.ts', ['node:child_process'])], /may start processes/],
    ['the core reads a file', [mod('core/a.ts', ['node:fs'])], /in the core only core\/bundle\/source\.ts/],
    ['the core reads the environment', [mod('core/a.ts', [], ['env'])], /uses process\.env/],
    ['a use case writes to stdout', [mod('app/a.ts', [], ['stdout'])], /uses process\.stdout/],
    ['a module imports one that does not exist', [mod('app/a.ts', ['app/gone.ts'])], /not a module of src/],
    ['a module lies outside the layers', [mod('util/a.ts')], /is in no layer/],
    [
      'two modules import each other',
      [mod('app/a.ts', ['app/b.ts']), mod('app/b.ts', ['app/a.ts'])],
      /import cycle: app\/a\.ts → app\/b\.ts → app\/a\.ts/,
    ],
    ['a module imports itself', [mod('core/a.ts', ['core/a.ts'])], /import cycle: core\/a\.ts → core\/a\.ts/],
  ] as const)('fails when %s', (_what, modules, problem) => {
    const problems = layerProblems(modules);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(problem);
  });

  test('finds a longer cycle once, whatever module it starts from', () => {
    const modules = [
      mod('app/a.ts', ['app/b.ts']),
      mod('app/b.ts', ['app/c.ts']),
      mod('app/c.ts', ['app/a.ts', 'core/d.ts']),
      mod('core/d.ts'),
    ];
    expect(importCycles(modules)).toEqual([['app/a.ts', 'app/b.ts', 'app/c.ts', 'app/a.ts']]);
  });
});
