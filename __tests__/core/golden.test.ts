// The core against files real Nix wrote (__tests__/fixtures/golden, made by scripts/golden.mjs),
// without running Nix: .drv files parse and write back byte for byte and give Nix's drv paths,
// output paths and fixed-output modulo hashes; NARs and an export stream read and write back
// byte for byte.
import { describe, expect, test } from '@jest/globals';
import { readFileSync } from 'node:fs';
import {
  computeDrvPath,
  DerivationHasher,
  derivationKind,
  derivationReferences,
  drvName,
  parseDerivation,
  serialiseDerivation,
  type Derivation,
} from '../../src/core/derivation/index.js';
import { readExport, writeExport, type ExportEntry } from '../../src/core/export-stream.js';
import { sha256, toHex } from '../../src/core/hash.js';
import { summariseNar } from '../../src/core/nar.js';
import { regularFileNar, writeNar, type FileTree } from '../../src/core/nar-write.js';
import { dynamicPlaceholders, parseDynamicOutputs } from '../../src/core/relocate/dynamic.js';
import { collect } from '../support/streams.js';

const GOLDEN = new URL('../fixtures/golden/', import.meta.url);
const read = (name: string): Uint8Array => new Uint8Array(readFileSync(new URL(name, GOLDEN)));

interface Golden {
  storeDir: string;
  drvs: Record<
    string,
    { drvPath: string; references: string[]; outputs: Record<string, string>; hashModulo?: string }
  >;
  nars: Record<string, { narHash: string; narSize: number }>;
  export: { paths: string[]; sha256: string; size: number };
}
const golden = JSON.parse(new TextDecoder().decode(read('golden.json'))) as Golden;
const attrs = Object.keys(golden.drvs);

const drvBytes = (attr: string): Uint8Array => read(`drv/${attr}.drv`);
const byPath = new Map<string, Derivation>(
  attrs.map((a) => [golden.drvs[a]!.drvPath, parseDerivation(drvBytes(a))]),
);

/** Bytes as the NAR writer takes a file's contents. */
// eslint-disable-next-line @typescript-eslint/require-await
async function* contentsOf(bytes: Uint8Array): AsyncGenerator<Uint8Array> {
  yield bytes;
}

/** Entries as the NAR writer takes a directory's. */
// eslint-disable-next-line @typescript-eslint/require-await
async function* entriesOf(
  entries: readonly [Uint8Array, FileTree][],
): AsyncGenerator<[Uint8Array, FileTree]> {
  for (const entry of entries) yield entry;
}

test('the fixtures cover each kind of derivation', () => {
  const kinds = attrs.map((a) => derivationKind(byPath.get(golden.drvs[a]!.drvPath)!, a));
  expect(new Set(kinds)).toEqual(new Set(['fixed', 'input-addressed']));
  expect(attrs.some((a) => Object.keys(golden.drvs[a]!.outputs).length > 1)).toBe(true);
  const algos = attrs.flatMap((a) => byPath.get(golden.drvs[a]!.drvPath)!.outputs.map((o) => o.hashAlgo));
  expect(algos).toEqual(expect.arrayContaining(['sha256', 'r:sha256']));
});

describe.each(attrs)('%s.drv', (attr) => {
  const expected = golden.drvs[attr]!;
  const bytes = drvBytes(attr);
  const drv = byPath.get(expected.drvPath)!;

  test('parses and writes back byte for byte', () => {
    expect(Buffer.from(serialiseDerivation(drv)).equals(Buffer.from(bytes))).toBe(true);
  });

  test('has the references and drv path Nix gave it', () => {
    expect(derivationReferences(drv).sort()).toEqual(expected.references);
    expect(computeDrvPath(golden.storeDir, drvName(expected.drvPath), bytes, expected.references)).toBe(
      expected.drvPath,
    );
  });

  test('has the output paths Nix gave it, and the modulo hash of a fixed output', () => {
    const hasher = new DerivationHasher(golden.storeDir, (p) => {
      const d = byPath.get(p);
      if (d === undefined) throw new Error(`no golden ${p}`);
      return d;
    });
    const name = drvName(expected.drvPath);
    expect(Object.fromEntries(hasher.outputPaths(drv, name))).toEqual(expected.outputs);
    const modulo = hasher.hashModulo(expected.drvPath);
    if (expected.hashModulo !== undefined) {
      expect(modulo.kind).toBe('fixed');
      expect(modulo.kind === 'deferred' ? '' : toHex(modulo.hash)).toBe(expected.hashModulo);
    } else expect(modulo.kind).toBe('regular');
  });
});

describe('NARs from nix-store --dump', () => {
  test.each(Object.keys(golden.nars))('%s has the hash and size Nix gave it', async (name) => {
    const summary = await summariseNar([read(name)]);
    expect(toHex(summary.narHash)).toBe(golden.nars[name]!.narHash);
    expect(summary.narSize).toBe(golden.nars[name]!.narSize);
  });

  test('the writer makes the NAR of a file and of a tree byte for byte', async () => {
    const source = read('source.txt');
    expect(Buffer.concat(regularFileNar(source)).equals(Buffer.from(read('source.nar')))).toBe(true);

    const enc = new TextEncoder();
    const file = (text: string, executable = false): FileTree => ({
      type: 'regular',
      executable,
      size: enc.encode(text).length,
      contents: () => contentsOf(enc.encode(text)),
    });
    const dir = (entries: [string, FileTree][]): FileTree => ({
      type: 'directory',
      entries: () => entriesOf(entries.map(([n, t]): [Uint8Array, FileTree] => [enc.encode(n), t])),
    });
    const fixture = (p: string): string =>
      readFileSync(new URL(`../fixtures/nar/tree/${p}`, import.meta.url), 'utf8');
    const tree = dir([
      ['data.txt', file(fixture('data.txt'))],
      ['link', { type: 'symlink', target: enc.encode('data.txt') }],
      ['run.sh', file(fixture('run.sh'), true)],
      [
        'sub',
        dir([
          ['nested.txt', file(fixture('sub/nested.txt'))],
          ['up', { type: 'symlink', target: enc.encode('../run.sh') }],
        ]),
      ],
    ]);
    expect(Buffer.from(await collect(writeNar(tree))).equals(Buffer.from(read('tree.nar')))).toBe(true);
  });
});

describe('an export stream from nix-store --export', () => {
  const stream = read('export.bin');

  test('is the one Nix wrote', () => {
    expect(toHex(sha256(stream))).toBe(golden.export.sha256);
    expect(stream.length).toBe(golden.export.size);
  });

  test('reads as the paths exported, with their references and NARs, and writes back byte for byte', async () => {
    const entries: ExportEntry[] = [];
    for await (const e of readExport([stream])) {
      const drv = byPath.get(e.path);
      const contents = drv === undefined ? read('source.txt') : serialiseDerivation(drv);
      expect(toHex(e.nar.narHash)).toBe(toHex(sha256(...regularFileNar(contents))));
      if (drv !== undefined) expect(e.references).toEqual(derivationReferences(drv).sort());
      entries.push({
        path: e.path,
        references: e.references,
        deriver: e.deriver,
        nar: regularFileNar(contents),
      });
    }
    // Every path asked for, in the order Nix chose: each after the paths it refers to.
    const order = entries.map((e) => e.path);
    expect([...order].sort()).toEqual([...golden.export.paths].sort());
    for (const [i, e] of entries.entries())
      for (const r of e.references) if (order.includes(r)) expect(order.indexOf(r)).toBeLessThan(i);
    expect(Buffer.from(await collect(writeExport(entries))).equals(Buffer.from(stream))).toBe(true);
  });
});

// Dynamic derivations as Nix 2.34 writes them (__tests__/fixtures/golden/dynamic.nix): producers
// of .drv files, their users through `builtins.outputOf` (DrvWithVersion("xp-dyn-drv", …)) and
// what depends on those.
describe('dynamic derivations', () => {
  const dyn = JSON.parse(new TextDecoder().decode(read('dynamic/golden.json'))) as Pick<
    Golden,
    'storeDir' | 'drvs'
  >;
  const dynBytes = (attr: string): Uint8Array => read(`dynamic/${attr}.drv`);
  const dynByPath = new Map<string, Derivation>(
    Object.keys(dyn.drvs).map((a) => [dyn.drvs[a]!.drvPath, parseDerivation(dynBytes(a))]),
  );
  const hasher = new DerivationHasher(dyn.storeDir, (p) => {
    const d = dynByPath.get(p);
    if (d === undefined) throw new Error(`no golden ${p}`);
    return d;
  });
  const dynamicAttrs = Object.keys(dyn.drvs).filter(
    (a) => dynByPath.get(dyn.drvs[a]!.drvPath)!.version !== undefined,
  );

  test('the fixtures hold one and two levels of outputOf, and users of both kinds of producer', () => {
    expect(dynamicAttrs.sort()).toEqual(['dynamic', 'dynamic-fixed', 'mixed', 'nested']);
    const nested = dynByPath.get(dyn.drvs['nested']!.drvPath)!;
    expect(nested.inputDrvs.map((i) => new TextDecoder().decode(i.dynamicOutputs))).toEqual([
      '[("out",([],[("out",["out"])]))]',
    ]);
  });

  describe.each(Object.keys(dyn.drvs))('%s.drv', (attr) => {
    const expected = dyn.drvs[attr]!;
    const bytes = dynBytes(attr);
    const drv = dynByPath.get(expected.drvPath)!;

    test('parses and writes back byte for byte, with the references and drv path Nix gave it', () => {
      expect(Buffer.from(serialiseDerivation(drv)).equals(Buffer.from(bytes))).toBe(true);
      expect(derivationReferences(drv).sort()).toEqual(expected.references);
      expect(computeDrvPath(dyn.storeDir, drvName(expected.drvPath), bytes, expected.references)).toBe(
        expected.drvPath,
      );
    });

    test('has the output paths Nix gave it (none where they are not known before building)', () => {
      expect(Object.fromEntries(hasher.outputPaths(drv, drvName(expected.drvPath)))).toEqual(
        expected.outputs,
      );
      const known = Object.values(expected.outputs).every((p) => p !== '');
      expect(hasher.hashModulo(expected.drvPath).kind).toBe(
        expected.hashModulo !== undefined ? 'fixed' : known ? 'regular' : 'deferred',
      );
    });

    test('mentions the outputs of what its producers make by the placeholders Nix renders', () => {
      const text = new TextDecoder().decode(bytes);
      const placeholders = drv.inputDrvs.flatMap((i) =>
        i.dynamicOutputs === undefined
          ? []
          : dynamicPlaceholders(i.path, parseDynamicOutputs(i.dynamicOutputs)),
      );
      expect(placeholders.length > 0).toBe(dynamicAttrs.includes(attr));
      for (const p of placeholders) expect(text).toContain(`/${p}`);
    });
  });
});
