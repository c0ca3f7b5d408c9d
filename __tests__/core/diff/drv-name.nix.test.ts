// Package names and versions against Nix itself: builtins.parseDrvName and builtins.compareVersions
// on hand-picked edge cases and on seeded random names, on every Nix version under test.
import { describe, expect, test } from '@jest/globals';
import fc from 'fast-check';
import { compareVersions, parseDrvName } from '../../../src/core/diff/drv-name.js';
import { nixVersions, ScratchStore, type NixVersion } from '../../support/nix.js';

const NAMES = [
  'apache-httpd-2.0.48',
  'hello-2.12.1',
  'python3.12-requests-2.31.0',
  'foo',
  'foo-',
  '-1.0',
  'foo-bar',
  'foo-bar-baz-1',
  'foo--1',
  'foo-_1',
  'foo-.1',
  'openssl-3.0.13.tar.gz',
  'glibc-2.39-52',
  'bash-5.2p26',
  'source',
  'unstable-2024-01-02',
  'nixos-system-host-24.05.20240101.abcdef',
  'x-Y-z-9',
  'a-',
  '',
];

const VERSION_PAIRS: [string, string][] = [
  ['1.0', '1.0'],
  ['1.0', '1.0.1'],
  ['1.0pre1', '1.0'],
  ['1.0pre1', '1.0pre2'],
  ['2.3a', '2.3.1'],
  ['2.3a', '2.3b'],
  ['2.3', '2.3a'],
  ['1.01', '1.1'],
  ['1.0-rc1', '1.0'],
  ['', '1'],
  ['a', '1'],
  ['pre', 'a'],
  ['99999999999999999999', '1'],
  ['2147483647', '2147483648'],
  ['2147483646', '2147483647'],
  ['1..2', '1.2'],
  ['1.2.', '1.2'],
  ['unstable-2024-01-02', '0.1'],
  ['5.2p26', '5.2p9'],
  ['3.0.12', '3.0.13'],
  ['10', '9'],
];

/** Names over the characters that matter to the parsers (no quoting needed in a Nix string). */
const randomNames = fc.sample(
  fc.string({
    unit: fc.constantFrom(...'ab-.1209prexyzA_+-..--'.split('')),
    maxLength: 14,
  }),
  { seed: 20, numRuns: 300 },
);

const nixString = (s: string): string => `"${s}"`;

async function evalJson(store: ScratchStore, expr: string): Promise<unknown> {
  const { stdout } = await store.run('nix-instantiate', ['--eval', '--strict', '--json', '-E', expr]);
  return JSON.parse(stdout.toString('utf8'));
}

describe.each(nixVersions())('names and versions as Nix $label reads them', (version: NixVersion) => {
  test('parseDrvName agrees with builtins.parseDrvName', async () => {
    const store = new ScratchStore(version);
    try {
      const names = [...NAMES, ...randomNames];
      const got = (await evalJson(
        store,
        `map (n: let p = builtins.parseDrvName n; in [ p.name p.version ]) [ ${names.map(nixString).join(' ')} ]`,
      )) as [string, string][];
      expect(names.map((n) => [parseDrvName(n).name, parseDrvName(n).version])).toEqual(got);
    } finally {
      store.dispose();
    }
  });

  test('compareVersions agrees with builtins.compareVersions', async () => {
    const store = new ScratchStore(version);
    try {
      const randomPairs = randomNames.map((a, i): [string, string] => [
        a,
        randomNames[(i * 7 + 3) % randomNames.length]!,
      ]);
      const versionPairs = [...VERSION_PAIRS, ...randomPairs];
      const pairs = [...versionPairs, ...versionPairs.map(([a, b]): [string, string] => [b, a])];
      const got = (await evalJson(
        store,
        `map (p: builtins.compareVersions (builtins.elemAt p 0) (builtins.elemAt p 1)) [ ${pairs
          .map(([a, b]) => `[ ${nixString(a)} ${nixString(b)} ]`)
          .join(' ')} ]`,
      )) as number[];
      expect(pairs.map(([a, b]) => compareVersions(a, b))).toEqual(got);
    } finally {
      store.dispose();
    }
  });
});

describe('parseDrvName', () => {
  test.each([
    ['apache-httpd-2.0.48', 'apache-httpd', '2.0.48'],
    ['foo-', 'foo-', ''],
    ['openssl-3.0.13.tar.gz', 'openssl', '3.0.13.tar.gz'],
    ['glibc-2.39-52', 'glibc', '2.39-52'],
    ['source', 'source', ''],
  ])('%s → %s, %s', (full, name, version) => {
    expect(parseDrvName(full)).toEqual({ name, version });
  });
});
