// The relocation rewriter against a naive position-by-position model, and its edge cases.
import { describe, expect, test } from '@jest/globals';
import fc from 'fast-check';
import { StoreRewriter, rewriteStoreHashes } from '../../../src/core/relocate/rewrite.js';
import { NIX32_ALPHABET, nix32Encode } from '../../../src/core/nix32.js';
import { sha256 } from '../../../src/core/hash.js';

const enc = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'latin1'));
const dec = (b: Uint8Array): string => Buffer.from(b).toString('latin1');
const hashOf = (seed: string): string => nix32Encode(sha256(seed).subarray(0, 20));
const isDigit = (c: string | undefined): boolean => c !== undefined && NIX32_ALPHABET.includes(c);
const isDirChar = (c: string | undefined): boolean => c !== undefined && /[A-Za-z0-9._+-]/.test(c);

/** The specification, one position at a time: obviously right, quadratic, no tables. */
function naive(
  input: string,
  map: ReadonlyMap<string, string>,
  a: string,
  b: string,
): { out: string; paths: number; bare: number; unknown: string[]; bareDirs: number } {
  let out = '';
  let paths = 0;
  let bare = 0;
  const unknown: string[] = [];
  let bareDirs = 0;
  const allDigits = (s: string): boolean => s.length === 32 && [...s].every(isDigit);
  // Where the last replaced path (or hash in a path's name) ended: a known hash right after it
  // and a dash is part of that path's name (`A/<hash>-<hash>-name`), not a bare hash.
  let pathEnd = -2;
  // bare store dirs are counted on the input
  for (let q = input.indexOf(a); q >= 0; q = input.indexOf(a, q + 1)) {
    const next = input[q + a.length];
    if (isDirChar(next)) continue;
    if (next === '/' && allDigits(input.slice(q + a.length + 1, q + a.length + 33))) continue;
    bareDirs++;
  }
  for (let i = 0; i < input.length;) {
    if (input.startsWith(a + '/', i)) {
      const h = input.slice(i + a.length + 1, i + a.length + 33);
      const prev = input[i + a.length];
      if (allDigits(h) && prev === '/') {
        const n = map.get(h);
        if (n !== undefined) {
          out += `${b}/${n}`;
          paths++;
          i += a.length + 33;
          pathEnd = i;
          continue;
        }
        unknown.push(`${a}/${h}`);
      }
    }
    const w = input.slice(i, i + 32);
    const n = map.get(w);
    if (n !== undefined) {
      out += n;
      if (pathEnd === i - 1 && input[i - 1] === '-') pathEnd = i + 32;
      else bare++;
      i += 32;
      continue;
    }
    out += input[i];
    i++;
  }
  return { out, paths, bare, unknown, bareDirs };
}

const DIRS: [string, string][] = [
  ['/tmp/x/a/store', '/tmp/x/b/s'],
  ['/tmp/x/b/s', '/tmp/x/a/much/longer/realm/store'],
  ['/s', '/s/store'], // A is a prefix of B
  ['/s/store', '/s'], // B is a prefix of A
  ['/tmp/x/abc', '/tmp/x/abd'], // A ends in nix32 digits
  ['/x/x', '/y/store'], // A overlaps itself: '/x/x/x' holds it twice
  ['/nix/store', '/nix/store'],
];

describe('StoreRewriter', () => {
  const olds = Array.from({ length: 6 }, (_, i) => hashOf(`old${i}`));
  const news = Array.from({ length: 6 }, (_, i) => hashOf(`new${i}`));
  const map = new Map(olds.map((o, i) => [o, news[i]!]));
  const unknownHash = hashOf('unknown');

  test.each(DIRS)('matches the naive model on random mixtures (%s → %s)', (a, b) => {
    const piece = fc.oneof(
      fc.constantFrom(...olds),
      fc.constantFrom(...olds).map((h) => `${a}/${h}`),
      fc.constantFrom(...olds).map((h) => `${a}/${h}-name`),
      fc.constant(`${a}/${unknownHash}-x`),
      fc.constant(a),
      fc.constant(b),
      fc.constant('/'),
      fc.constant('-'),
      fc.constant('\u00e9\u00ff'),
      fc.stringMatching(/^[0-9a-z]{0,40}$/),
      fc.string({ maxLength: 8 }),
    );
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 14 }), (pieces) => {
        const input = pieces.join('');
        const got = rewriteStoreHashes(enc(input), map, a, b);
        const want = naive(input, map, a, b);
        expect(dec(got.bytes)).toBe(want.out);
        expect(got.storePaths).toBe(want.paths);
        expect(got.bareHashes).toBe(want.bare);
        expect(got.unknownPaths).toEqual(want.unknown);
        expect(got.bareStoreDirs).toBe(want.bareDirs);
      }),
      { numRuns: 400 },
    );
  });

  test.each(DIRS)('the inverse map restores the input exactly (%s → %s)', (a, b) => {
    const inverse = new Map([...map].map(([o, n]) => [n, o]));
    const piece = fc.oneof(
      fc.constantFrom(...olds).map((h) => `${a}/${h}-p`),
      fc.constantFrom(...olds),
      fc.string({ maxLength: 6 }).filter((s) => !s.includes('/')),
    );
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 10 }), (pieces) => {
        const input = pieces.join(' ');
        const there = rewriteStoreHashes(enc(input), map, a, b);
        const back = rewriteStoreHashes(there.bytes, inverse, b, a);
        expect(dec(back.bytes)).toBe(input);
        expect(back.storePaths).toBe(there.storePaths);
        expect(back.bareHashes).toBe(there.bareHashes);
      }),
      { numRuns: 200 },
    );
  });

  test('a known hash after a path and a dash is part of its name (a copy of a store path), not bare', () => {
    const [h1, h2, h3] = ['1'.repeat(32), '2'.repeat(32), '3'.repeat(32)];
    const [n1, n2, n3] = ['a'.repeat(32), 'b'.repeat(32), 'c'.repeat(32)];
    const map = new Map([
      [h1, n1],
      [h2, n2],
      [h3, n3],
    ]);
    const r = rewriteStoreHashes(enc(`/a/s/${h1}-${h2}-${h3}-x.txt and ${h2}-${h3}`), map, '/a/s', '/b');
    expect(Buffer.from(r.bytes).toString()).toBe(`/b/${n1}-${n2}-${n3}-x.txt and ${n2}-${n3}`);
    expect(r.storePaths).toBe(1);
    // The second mention has no path before it: both of its hashes are bare.
    expect(r.bareHashes).toBe(2);
  });

  test('replaces paths, counts bare hashes, leaves unknown hashes and reports them', () => {
    const a = '/tmp/r/a/store';
    const b = '/tmp/r/beta/store';
    const input = `PATH=${a}/${olds[0]}-gcc/bin:${a}/${unknownHash}-x; id=${olds[1]}; dir=${a}; ${a}/.links`;
    const r = rewriteStoreHashes(enc(input), map, a, b);
    expect(dec(r.bytes)).toBe(
      `PATH=${b}/${news[0]}-gcc/bin:${a}/${unknownHash}-x; id=${news[1]}; dir=${a}; ${a}/.links`,
    );
    expect(r.storePaths).toBe(1);
    expect(r.bareHashes).toBe(1);
    expect(r.unknownPaths).toEqual([`${a}/${unknownHash}`]);
    expect(r.bareStoreDirs).toBe(2);
  });

  test('a hash inside a longer run of digits is still found; the store dir must end a component', () => {
    const a = '/s';
    const r = rewriteStoreHashes(enc(`xx${olds[2]}yy /store/${olds[3]} /s2/${olds[4]}`), map, a, '/t');
    expect(dec(r.bytes)).toBe(`xx${news[2]}yy /store/${news[3]} /s2/${news[4]}`);
    expect(r.storePaths).toBe(0);
    expect(r.bareHashes).toBe(3);
    expect(r.bareStoreDirs).toBe(0);
  });

  test('returns the same bytes when nothing matches, and works on subarrays', () => {
    const buf = enc(`junk ${olds[0]} /tmp/a/${olds[1]}-x junk`);
    const view = buf.subarray(5, buf.length - 5);
    const rw = new StoreRewriter('/tmp/a', '/tmp/bb');
    rw.set(olds[1]!, news[1]!);
    const r = rw.rewrite(view);
    expect(dec(r.bytes)).toBe(`${olds[0]} /tmp/bb/${news[1]}-x`);
    const none = rw.rewrite(enc('nothing here /tmp/a'));
    expect(none.storePaths + none.bareHashes).toBe(0);
    expect(none.bareStoreDirs).toBe(1);
  });

  test('non-UTF-8 bytes around paths pass through untouched', () => {
    const a = '/a/store';
    const input = new Uint8Array([0xff, 0xfe, ...enc(`${a}/${olds[0]}-x`), 0x80, 0x00, 0xc3]);
    const r = rewriteStoreHashes(input, map, a, '/bee/store');
    expect([...r.bytes]).toEqual([0xff, 0xfe, ...enc(`/bee/store/${news[0]}-x`), 0x80, 0x00, 0xc3]);
  });

  test('mentions reports declared hashes before their new values are known', () => {
    const rw = new StoreRewriter('/a', '/b');
    rw.declare(olds[0]!);
    rw.declare(olds[1]!);
    const m = rw.mentions(enc(`/a/${olds[1]}-x ${olds[0]} /a/${olds[1]}-y /a/${unknownHash}-z /a`));
    expect(m.hashes).toEqual([olds[1], olds[0]]);
    expect(m.unknownPaths).toEqual([`/a/${unknownHash}`]);
    expect(m.bareStoreDirs).toBe(1);
  });

  test('a new value can be set again only as it was', () => {
    const rw = new StoreRewriter('/a', '/b');
    rw.set(olds[0]!, news[0]!);
    rw.set(olds[0]!, news[0]!);
    expect(() => rw.set(olds[0]!, news[1]!)).toThrow(/would be replaced by two different values/);
    expect(() => rw.set(olds[1]!, 'not nix32')).toThrow(/is not 32 nix32 characters/);
    expect(() => rw.declare('e'.repeat(32))).toThrow(/is not 32 nix32 characters/);
    expect(Buffer.from(rw.rewrite(enc(`/a/${olds[0]}`)).bytes).toString()).toBe(`/b/${news[0]}`);
  });

  test('finds each of thousands of hashes again, declared first and set later, across its table growing', () => {
    const rw = new StoreRewriter('/a', '/b');
    const many = Array.from({ length: 3000 }, (_, i) => [hashOf(`old ${i}`), hashOf(`new ${i}`)] as const);
    for (const [o] of many) rw.declare(o);
    for (const [o, n] of many) rw.set(o, n);
    for (const [o] of many) rw.declare(o); // known: nothing changes
    for (const [o, n] of many) rw.set(o, n);
    expect(() => rw.set(many[1234]![0], many[4]![1])).toThrow(/would be replaced by two different values/);
    // One character off (or not in the alphabet) is another token, not a known one.
    expect(() => rw.declare(`${many[7]![0].slice(0, 31)}\u0100`)).toThrow(/is not 32 nix32 characters/);
    const text = many.map(([o], i) => (i % 2 === 0 ? `/a/${o}-x ` : `${o} `)).join('');
    const want = many.map(([, n], i) => (i % 2 === 0 ? `/b/${n}-x ` : `${n} `)).join('');
    const r = rw.rewrite(enc(text));
    expect(dec(r.bytes)).toBe(want);
    expect([r.storePaths, r.bareHashes]).toEqual([1500, 1500]);
  });

  test('rewrite replaces nothing while a hash it finds waits for its new value, and says which', () => {
    const rw = new StoreRewriter('/a', '/b');
    rw.declare(olds[0]!);
    rw.set(olds[1]!, news[1]!);
    const placeholder = '1'.repeat(52);
    rw.declarePlaceholder(placeholder);
    const input = enc(`/a/${olds[1]}-x /a/${olds[0]}-y ${olds[0]} /${placeholder} /a/${unknownHash}-z`);
    const waiting = rw.rewrite(input);
    expect(waiting.bytes).toBe(input);
    expect(waiting.waiting).toEqual({ hashes: [olds[0]], placeholders: [placeholder] });
    expect(waiting.storePaths + waiting.bareHashes + waiting.placeholders).toBe(0);
    expect(waiting.unknownPaths).toEqual([`/a/${unknownHash}`]);
    rw.set(olds[0]!, news[0]!);
    rw.setPlaceholder(placeholder, '2'.repeat(52));
    const done = rw.rewrite(input);
    expect(done.waiting).toBeUndefined();
    expect(Buffer.from(done.bytes).toString()).toBe(
      `/b/${news[1]}-x /b/${news[0]}-y ${news[0]} /${'2'.repeat(52)} /a/${unknownHash}-z`,
    );
    expect([done.storePaths, done.bareHashes, done.placeholders]).toEqual([2, 1, 1]);
  });

  test('placeholders (52 digits after a slash) are swapped when known', () => {
    const oldP = nix32Encode(sha256('nix-upstream-output:old:x'));
    const newP = nix32Encode(sha256('nix-upstream-output:new:x'));
    const rw = new StoreRewriter('/a', '/b');
    rw.setPlaceholder(oldP, newP);
    rw.set(olds[0]!, news[0]!);
    const r = rw.rewrite(enc(`cp /${oldP}/bin /a/${olds[0]}-q /${nix32Encode(sha256('other'))}`));
    expect(dec(r.bytes)).toBe(`cp /${newP}/bin /b/${news[0]}-q /${nix32Encode(sha256('other'))}`);
    expect(r.placeholders).toBe(1);
    expect(rw.mentions(enc(`/${oldP}`)).placeholders).toEqual([oldP]);
  });

  test('rewrites escaped strings (as a .drv writes them) exactly as their text', () => {
    // Nix's escaping of .drv strings: the escape letters n and r are nix32 digits themselves.
    const escape = (t: string): string =>
      t.replace(
        /[\\"\n\r\t]/g,
        (c) => `\\${({ '\n': 'n', '\r': 'r', '\t': 't' } as Record<string, string>)[c] ?? c}`,
      );
    const placeholder = nix32Encode(sha256('p'));
    const piece = fc.oneof(
      fc.constantFrom(...olds),
      fc.constantFrom(...olds).map((h) => `/a/${h}-name`),
      fc.constant(placeholder),
      fc.constant(`/${placeholder}`),
      fc.constantFrom('\n', '\r', '\t', '\\', '"', 'n', 'r', '\\n'),
      fc.stringMatching(/^[0-9a-z]{0,8}$/),
    );
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 12 }), (pieces) => {
        const text = pieces.join('');
        const rw = new StoreRewriter('/a', '/bb');
        for (const [o, n] of map) rw.set(o, n);
        rw.setPlaceholder(placeholder, nix32Encode(sha256('q')));
        const plain = rw.rewrite(enc(text));
        const escaped = rw.rewrite(enc(escape(text)), { escaped: true });
        expect(dec(escaped.bytes)).toBe(escape(dec(plain.bytes)));
        expect([escaped.storePaths, escaped.bareHashes, escaped.placeholders]).toEqual([
          plain.storePaths,
          plain.bareHashes,
          plain.placeholders,
        ]);
        expect(rw.mentions(enc(escape(text)), { escaped: true }).hashes).toEqual(
          rw.mentions(enc(text)).hashes,
        );
      }),
      { numRuns: 500 },
    );
    // The case that needs it: a placeholder right after a newline.
    const rw = new StoreRewriter('/a', '/bb');
    rw.setPlaceholder(placeholder, nix32Encode(sha256('q')));
    expect(rw.rewrite(enc(`x\\n${placeholder}`), { escaped: true }).placeholders).toBe(1);
    expect(rw.rewrite(enc(`x\\n${placeholder}`)).placeholders).toBe(0);
    // An escaped backslash before an n is not an escape.
    expect(rw.rewrite(enc(`x\\\\n${placeholder}`), { escaped: true }).placeholders).toBe(0);
  });

  test('refuses tokens of the wrong shape', () => {
    const rw = new StoreRewriter('/a', '/b');
    expect(() => rw.set('short', news[0]!)).toThrow(/32 nix32/);
    expect(() => rw.set(olds[0]!.replace(/.$/, 'e'), news[0]!)).toThrow(/32 nix32/);
  });

  test('many hashes sharing a six-digit prefix are told apart', () => {
    const tail = (i: number): string => hashOf(`t${i}`).slice(6);
    const many = new Map(Array.from({ length: 50 }, (_, i) => [`000000${tail(i)}`, hashOf(`n${i}`)]));
    const keys = [...many.keys()];
    const input = keys.map((k) => `/a/${k}-v`).join(' ');
    const r = rewriteStoreHashes(enc(input), many, '/a', '/bb');
    expect(dec(r.bytes)).toBe(keys.map((k) => `/bb/${many.get(k)}-v`).join(' '));
    expect(r.storePaths).toBe(50);
  });
});
