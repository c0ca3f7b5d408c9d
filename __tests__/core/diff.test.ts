// The pure parts of a diff without Nix: edit scripts, safe text, and the package-level grouping
// on hand-made graphs (the real-Nix cases are in app/diff.nix.test.ts).
import { describe, expect, test } from '@jest/globals';
import fc from 'fast-check';
import { diffSequences, type Edit } from '../../src/core/diff/sequence.js';
import { showBytes } from '../../src/core/diff/text.js';
import { outputKind, PlanGraph } from '../../src/core/diff/graph.js';
import { diffClosures } from '../../src/core/diff/packages.js';
import type { DerivationOutput } from '../../src/core/derivation/index.js';

function lcs(a: readonly string[], b: readonly string[]): number {
  const t = Array.from({ length: a.length + 1 }, () => new Array<number>(b.length + 1).fill(0));
  for (let i = 1; i <= a.length; i++)
    for (let j = 1; j <= b.length; j++)
      t[i]![j] = a[i - 1] === b[j - 1] ? t[i - 1]![j - 1]! + 1 : Math.max(t[i - 1]![j]!, t[i]![j - 1]!);
  return t[a.length]![b.length]!;
}

const side = (edits: readonly Edit<string>[], op: 'old' | 'new'): string[] =>
  edits.filter((e) => e.op === 'same' || e.op === op).flatMap((e) => e.items);

describe('diffSequences', () => {
  test('rebuilds both sides with a shortest script', () => {
    fc.assert(
      fc.property(
        fc.array(fc.constantFrom('a', 'b', 'c', 'd'), { maxLength: 30 }),
        fc.array(fc.constantFrom('a', 'b', 'c', 'd'), { maxLength: 30 }),
        (a, b) => {
          const edits = diffSequences(a, b);
          expect(side(edits, 'old')).toEqual(a);
          expect(side(edits, 'new')).toEqual(b);
          const changed = edits.filter((e) => e.op !== 'same').reduce((n, e) => n + e.items.length, 0);
          expect(changed).toBe(a.length + b.length - 2 * lcs(a, b));
          // Runs never repeat an op, and an old run never follows a new run directly.
          edits.forEach((e, i) => {
            expect(e.op).not.toBe(edits[i - 1]?.op);
            if (e.op === 'old') expect(edits[i - 1]?.op).not.toBe('new');
          });
        },
      ),
      { seed: 7, numRuns: 400 },
    );
  });

  test('past the edit bound both sides are reported replaced whole', () => {
    const a = Array.from({ length: 50 }, (_, i) => `a${i}`);
    const b = Array.from({ length: 50 }, (_, i) => `b${i}`);
    expect(diffSequences(a, b, 10)).toEqual([
      { op: 'old', items: a },
      { op: 'new', items: b },
    ]);
  });
});

describe('showBytes', () => {
  const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
  test.each([
    ['plain text', enc('hello world'), 'hello world'],
    ['a backslash is doubled', enc('a\\b'), 'a\\\\b'],
    ['a terminal escape', enc('\x1b[2J'), '\\x1b[2J'],
    ['CR and NUL', enc('a\rb\0'), 'a\\rb\\x00'],
    ['invalid UTF-8', new Uint8Array([0x61, 0xff, 0xc3]), 'a\\xff\\xc3'],
    ['an overlong encoding', new Uint8Array([0xc0, 0xaf]), '\\xc0\\xaf'],
    ['a bidi override', enc('a\u202eb'), 'a\\u{202e}b'],
    ['a C1 CSI', enc('\u009b31m'), '\\u{9b}31m'],
    ['a zero-width space', enc('a\u200bb'), 'a\\u{200b}b'],
    ['valid non-ASCII', enc('grüße → ✓'), 'grüße → ✓'],
    ['newlines and tabs kept', enc('a\n\tb'), 'a\n\tb'],
  ])('%s', (_, bytes, shown) => {
    expect(showBytes(bytes)).toBe(shown);
  });

  test('layout escaped on request', () => {
    expect(showBytes(new TextEncoder().encode('a\n\tb'), true)).toBe('a\\n\\tb');
  });

  test('distinct bytes stay distinct and nothing unsafe gets through', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 40 }), fc.uint8Array({ maxLength: 40 }), (a, b) => {
        const [x, y] = [showBytes(a, true), showBytes(b, true)];
        if (Buffer.compare(a, b) !== 0) expect(x).not.toBe(y);
        // eslint-disable-next-line no-control-regex
        expect(x).not.toMatch(/[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069]/);
      }),
      { seed: 3, numRuns: 2000 },
    );
  });
});

const STORE = '/nix/store';
let counter = 0;
/** A fake .drv path with a name (the hash part is a counter: only distinctness matters here). */
function path(name: string): string {
  const hash = String(counter++)
    .padStart(32, '0')
    .replace(/[eotu]/g, 'a');
  return `${STORE}/${hash}-${name}.drv`;
}

function drv(
  g: PlanGraph,
  p: string,
  inputs: string[] = [],
  outputs: Partial<DerivationOutput>[] = [{ name: 'out' }],
): string {
  g.add(p, {
    outputs: outputs.map((o) => ({
      name: o.name ?? 'out',
      path: o.path ?? `${p}-out`,
      hashAlgo: o.hashAlgo ?? '',
      hash: o.hash ?? '',
    })),
    inputDrvs: inputs.map((i) => ({ path: i, outputs: ['out'] })),
    system: new TextEncoder().encode('x86_64-linux'),
  });
  return p;
}

describe('PlanGraph.addFrom', () => {
  test("takes another plan's head of the same .drv, its inputs found by path", () => {
    const lib = path('lib-1.0');
    const app = path('app-2.0');
    const a = new PlanGraph(STORE, []);
    drv(a, path('other-1.0'));
    drv(a, lib);
    drv(a, app, [lib], [{ name: 'out' }, { name: 'doc' }]);
    const b = new PlanGraph(STORE, []);
    // Its input not added yet: refused as `add` refuses it.
    expect(() => b.addFrom(a, a.get(app)!)).toThrow(
      /needs '.*-lib-1\.0\.drv', which the plan does not hold before it/,
    );
    b.addFrom(a, a.get(lib)!);
    const shared = b.addFrom(a, a.get(app)!);
    expect(shared).toMatchObject({
      id: 1,
      name: 'app-2.0',
      pname: 'app',
      version: '2.0',
      system: 'x86_64-linux',
    });
    expect(shared.outputs).toBe(a.get(app)!.outputs);
    expect(b.closure(app).map((n) => n.path)).toEqual([app, lib]);
    // The graph it came from is unchanged.
    expect(a.closure(app).map((n) => n.id)).toEqual([2, 1]);
    expect(() => new PlanGraph('/other/store', []).addFrom(a, a.get(lib)!)).toThrow(/different store dirs/);
  });
});

describe('diffClosures', () => {
  test('version changes, additions, removals, rebuilds and output changes', () => {
    const common = path('glibc-2.39');
    const oldSsl = path('openssl-3.0.12');
    const newSsl = path('openssl-3.0.13');
    const oldCurl = path('curl-8.6.0');
    const newCurl = path('curl-8.6.0');
    const gone = path('libfoo-1.0');
    const came = path('libbar-2.0');
    const oldPy = path('python-3.12');
    const newPy = path('python-3.11');
    const oldTool = path('tool-1.0');
    const newTool = path('tool-1.0');
    const a = new PlanGraph(STORE, []);
    const b = new PlanGraph(STORE, []);
    drv(a, common);
    drv(b, common);
    drv(a, oldSsl, [common]);
    drv(b, newSsl, [common]);
    drv(a, oldCurl, [oldSsl]);
    drv(b, newCurl, [newSsl]);
    drv(a, gone);
    drv(b, came);
    drv(a, oldPy);
    drv(b, newPy);
    drv(a, oldTool, [], [{ name: 'out' }, { name: 'dev' }]);
    drv(b, newTool, [], [{ name: 'out' }, { name: 'lib' }]);
    const d = diffClosures(a.nodes(), b.nodes());
    expect(d.derivations).toEqual({ old: 6, new: 6, added: 5, removed: 5 });
    expect(d.counts).toEqual({ upgrade: 1, downgrade: 1, changed: 0, added: 1, removed: 1, rebuilt: 2 });
    const byName = Object.fromEntries(d.packages.map((p) => [p.name, p]));
    expect(byName['openssl']?.change).toBe('upgrade');
    expect(byName['openssl']?.old.versions).toEqual(['3.0.12']);
    expect(byName['openssl']?.new.drvs).toEqual([newSsl]);
    expect(byName['python']?.change).toBe('downgrade');
    expect(byName['curl']?.change).toBe('rebuilt');
    expect(byName['libfoo']?.change).toBe('removed');
    expect(byName['libbar']?.change).toBe('added');
    expect(byName['tool']?.old.outputs).toEqual(['dev', 'out']);
    expect(byName['tool']?.new.outputs).toEqual(['lib', 'out']);
    expect(byName['glibc']).toBeUndefined();
    expect(d.packages.map((p) => p.name)).toEqual(['curl', 'libbar', 'libfoo', 'openssl', 'python', 'tool']);
  });

  test('a closure against itself is empty, and a second version beside the first is a change', () => {
    const a = new PlanGraph(STORE, []);
    const b = new PlanGraph(STORE, []);
    const v1 = path('zlib-1.3');
    drv(a, v1);
    drv(b, v1);
    drv(b, path('zlib-1.2'));
    expect(diffClosures(a.nodes(), a.nodes()).packages).toEqual([]);
    const d = diffClosures(a.nodes(), b.nodes());
    expect(d.packages).toHaveLength(1);
    expect(d.packages[0]).toMatchObject({ name: 'zlib', change: 'changed' });
    expect(d.packages[0]?.new.versions).toEqual(['1.2', '1.3']);
  });

  test('floating content-addressed outputs are told apart', () => {
    const a = new PlanGraph(STORE, []);
    const b = new PlanGraph(STORE, []);
    drv(a, path('ca-1'));
    drv(b, path('ca-1'), [], [{ name: 'out', path: '', hashAlgo: 'r:sha256' }]);
    const [p] = diffClosures(a.nodes(), b.nodes()).packages;
    expect(p?.change).toBe('rebuilt');
    expect(p?.old.outputKinds).toEqual(['input-addressed']);
    expect(p?.new.outputKinds).toEqual(['floating']);
  });
});

describe('output kinds', () => {
  test('read from the fields as Nix reads them: a hash without an algorithm is not a content address', () => {
    const kind = (path: string, hashAlgo: string, hash: string): string =>
      outputKind({ path, hashAlgo, hash });
    expect(kind('/s/x', '', '')).toBe('input-addressed');
    expect(kind('', '', '')).toBe('deferred');
    expect(kind('/s/x', 'r:sha256', 'abc')).toBe('fixed');
    expect(kind('', 'r:sha256', '')).toBe('floating');
    expect(kind('', 'r:sha256', 'impure')).toBe('impure');
    // Nix's parser ignores the hash field when the algorithm is empty.
    expect(kind('/s/x', '', 'abc')).toBe('input-addressed');
  });
});
