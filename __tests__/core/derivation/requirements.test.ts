// The shape → requirement table: which .drv shapes need which experimental feature and Nix
// version, and what a target that lacks one is told.
import { describe, expect, test } from '@jest/globals';
import {
  checkShapes,
  derivationShapes,
  PlanShapes,
  SHAPE_REQUIREMENTS,
  versionBefore,
  type TargetNix,
} from '../../../src/core/derivation/index.js';

const out = (hashAlgo: string, hash: string, name = 'out') => ({ name, hashAlgo, hash });
const drv = (...outputs: ReturnType<typeof out>[]) => ({ version: undefined, outputs });
const D = '/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-x.drv';

describe('derivationShapes', () => {
  test.each([
    ['input-addressed', drv(out('', '')), []],
    ['fixed sha256 flat', drv(out('sha256', 'ab'.repeat(32))), []],
    ['fixed recursive', drv(out('r:sha1', 'ab'.repeat(20))), []],
    ['floating', drv(out('r:sha256', '')), ['floating']],
    ['impure', drv(out('r:sha256', 'impure')), ['impure']],
    ['text floating', drv(out('text:sha256', '')), ['text', 'floating']],
    ['git fixed', drv(out('git:sha1', 'ab'.repeat(20))), ['git']],
    ['blake3 fixed', drv(out('blake3', 'ab'.repeat(32))), ['blake3']],
    ['git blake3 floating', drv(out('git:blake3', '')), ['git', 'blake3', 'floating']],
    ['dynamic format', { version: 'xp-dyn-drv', outputs: [out('', '')] }, ['dyn-drv']],
  ] as const)('%s', (_name, d, shapes) => {
    expect(derivationShapes(D, d).map((n) => n.shape)).toEqual(shapes);
  });

  test('each output is named', () => {
    expect(derivationShapes(D, drv(out('r:sha256', '', 'dev'), out('r:sha256', '', 'out')))).toEqual([
      { drvPath: D, output: 'dev', shape: 'floating' },
      { drvPath: D, output: 'out', shape: 'floating' },
    ]);
  });
});

describe('the requirement table', () => {
  test('each shape names the feature Nix requires and the first Nix that reads it', () => {
    expect(
      Object.fromEntries(Object.entries(SHAPE_REQUIREMENTS).map(([k, r]) => [k, [r.feature, r.since]])),
    ).toEqual({
      'dyn-drv': ['dynamic-derivations', '2.16'],
      git: ['git-hashing', '2.21'],
      text: ['dynamic-derivations', '2.16'],
      blake3: ['blake3-hashes', '2.27'],
      impure: ['impure-derivations', '2.8'],
      floating: ['ca-derivations', '2.4'],
    });
  });

  test('versions compare by number, not as text', () => {
    expect(versionBefore('2.8.0', '2.16')).toBe(true);
    expect(versionBefore('2.16', '2.16')).toBe(false);
    expect(versionBefore('2.34.8', '2.4')).toBe(false);
    expect(versionBefore('2.20.9', '2.21')).toBe(true);
    expect(versionBefore('2.91.1', '2.27')).toBe(false);
  });
});

describe('PlanShapes', () => {
  test('keeps the first .drv of each shape and counts them', () => {
    const s = new PlanShapes();
    s.add('/s/a.drv', drv(out('', '')));
    s.add('/s/b.drv', drv(out('r:sha256', '')));
    s.add('/s/c.drv', drv(out('r:sha256', '', 'dev'), out('r:sha256', '', 'out')));
    s.add('/s/d.drv', drv(out('r:sha256', 'impure')));
    expect(s.needs()).toEqual([
      { drvPath: '/s/b.drv', output: 'out', shape: 'floating', count: 2 },
      { drvPath: '/s/d.drv', output: 'out', shape: 'impure', count: 1 },
    ]);
  });
});

describe('checkShapes', () => {
  const floating = [{ drvPath: D, output: 'out', shape: 'floating' as const, count: 3 }];
  const git = [{ drvPath: D, output: 'out', shape: 'git' as const, count: 1 }];
  const local = (version: string, features: string[]): TargetNix => ({
    kind: 'local',
    version,
    features: new Set(features),
    label: 'the store (local)',
  });

  test('a local Nix with the feature on reads it', () => {
    expect(checkShapes(floating, local('2.34.8', ['nix-command', 'ca-derivations']))).toEqual({
      unchecked: [],
    });
    expect(checkShapes(floating, local('2.8.0', ['ca-derivations']))).toEqual({ unchecked: [] });
  });

  test('a local Nix with the feature off is refused, naming the .drv, output, shape and feature', () => {
    const v = checkShapes(floating, local('2.34.8', ['nix-command']));
    expect(v.refusal).toContain(`derivation '${D}' output 'out' (and 2 more .drv files)`);
    expect(v.refusal).toContain('a floating content-addressed output');
    expect(v.refusal).toContain("'ca-derivations'");
    expect(v.refusal).toContain('has it off (its Nix 2.34.8)');
  });

  test('a Nix older than the shape is refused whatever its features', () => {
    const v = checkShapes(git, local('2.20.0', ['git-hashing']));
    expect(v.refusal).toContain('runs Nix 2.20.0, which cannot read it');
    expect(v.refusal).toContain("from 2.21 on, with the experimental feature 'git-hashing'");
    const daemon: TargetNix = { kind: 'daemon', version: '2.8.0', label: 'the daemon (daemon)' };
    expect(checkShapes(git, daemon).refusal).toContain('the daemon (daemon) runs Nix 2.8.0');
  });

  test("a daemon's features cannot be asked: not checked, and said so", () => {
    const daemon: TargetNix = { kind: 'daemon', version: '2.34.8', label: 'the daemon (daemon)' };
    const v = checkShapes(floating, daemon);
    expect(v.refusal).toBeUndefined();
    expect(v.unchecked).toHaveLength(1);
    expect(v.unchecked[0]).toContain("not checked (the daemon's experimental features cannot be asked)");
    expect(v.unchecked[0]).toContain("'ca-derivations'");
  });

  test('a local store whose features could not be read is not checked either', () => {
    const v = checkShapes(floating, { kind: 'local', version: '2.34.8', label: 'the store (local)' });
    expect(v.refusal).toBeUndefined();
    expect(v.unchecked[0]).toContain('not checked');
  });

  test('the first unmet shape is the one named', () => {
    const both = [...floating, { drvPath: '/s/e.drv', output: 'out', shape: 'impure' as const, count: 1 }];
    expect(checkShapes(both, local('2.34.8', ['ca-derivations'])).refusal).toContain("'/s/e.drv'");
  });
});
