// NAR writer and streaming reader: golden vectors, round-trips of random trees, hostile inputs.
import { describe, expect, test } from '@jest/globals';
import fc from 'fast-check';
import { LimitError, MalformedError } from '../../src/core/errors.js';
import { sha256, toHex } from '../../src/core/hash.js';
import {
  DEFAULT_NAR_LIMITS,
  readNar,
  summariseNar,
  tryReadFileNar,
  type NarLimits,
  type NarSummary,
} from '../../src/core/nar.js';
import {
  regularFile,
  regularFileNar,
  regularFileNarSize,
  writeNar,
  type FileTree,
} from '../../src/core/nar-write.js';
import { ByteReader } from '../../src/core/wire.js';
import { concatBytes, u64, wireString } from '../../src/core/bytes.js';
import { collect } from '../support/streams.js';

const enc = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'utf8'));

/** Feeds `bytes` in pieces of the given sizes (cycled), so chunk boundaries fall everywhere. */
// eslint-disable-next-line @typescript-eslint/require-await
async function* chunked(
  bytes: Uint8Array,
  sizes: readonly number[] = [bytes.length || 1],
): AsyncGenerator<Uint8Array> {
  let at = 0;
  for (let i = 0; at < bytes.length; i++) {
    const n = Math.max(1, sizes[i % sizes.length] ?? 1);
    yield bytes.slice(at, at + n);
    at += n;
  }
}

function dir(entries: [string | Uint8Array, FileTree][]): FileTree {
  return {
    type: 'directory',
    // eslint-disable-next-line @typescript-eslint/require-await
    entries: async function* () {
      for (const [n, t] of entries) yield [typeof n === 'string' ? enc(n) : n, t];
    },
  };
}

/** Raw NAR tokens, for inputs no honest writer would produce. */
function raw(...parts: (string | Uint8Array | bigint)[]): Uint8Array {
  return concatBytes(parts.flatMap((p) => (typeof p === 'bigint' ? [u64(p)] : wireString(p))));
}

const HEAD = ['nix-archive-1', '(', 'type'];
const fileNar = (contents: string): (string | Uint8Array | bigint)[] => [
  ...HEAD,
  'regular',
  'contents',
  contents,
  ')',
];
function dirNar(...names: (string | Uint8Array)[]): Uint8Array {
  return raw(
    ...HEAD,
    'directory',
    ...names.flatMap((n) => [
      'entry',
      '(',
      'name',
      n,
      'node',
      '(',
      'type',
      'symlink',
      'target',
      'x',
      ')',
      ')',
    ]),
    ')',
  );
}

/** Every field of a summary, the NAR hash too (a one-file NAR read whole computes it when asked). */
function fields(s: NarSummary): Record<string, unknown> {
  return { narHash: s.narHash, narSize: s.narSize, file: s.file, fileHash: s.fileHash };
}

/** One of `nars` with one byte set to any value. */
function mutationOf(nars: readonly Uint8Array[]): fc.Arbitrary<Uint8Array> {
  return fc
    .tuple(fc.integer({ min: 0, max: nars.length - 1 }), fc.nat(), fc.integer({ min: 0, max: 255 }))
    .map(([which, pos, value]) => {
      const bad = nars[which]!.slice();
      bad[pos % bad.length] = value;
      return bad;
    });
}

async function expectRefused(bytes: Uint8Array, limits: NarLimits = DEFAULT_NAR_LIMITS): Promise<unknown> {
  const error = await summariseNar(chunked(bytes, [3, 7, 64]), limits).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error instanceof MalformedError || error instanceof LimitError).toBe(true);
  return error;
}

describe('writeNar', () => {
  test('golden: the NAR of a file holding "hello" is what `nix-store --dump` writes', async () => {
    // printf hello > f; nix-store --dump f | sha256sum  (Nix 2.8): 120 bytes
    const bytes = await collect(writeNar(regularFile(enc('hello'))));
    expect(bytes.length).toBe(120);
    expect(toHex(sha256(bytes))).toBe('0a430879c266f8b57f4092a0f935cf3facd48bbccde5760d4748ca405171e969');
  });

  test('golden: a directory with a subdirectory and a symlink', async () => {
    // mkdir -p d/sub; printf x > d/sub/f; ln -s ../x d/l; nix-store --dump d | sha256sum: 648 bytes
    const tree = dir([
      ['l', { type: 'symlink', target: enc('../x') }],
      ['sub', dir([['f', regularFile(enc('x'))]])],
    ]);
    const bytes = await collect(writeNar(tree));
    expect(bytes.length).toBe(648);
    expect(toHex(sha256(bytes))).toBe('01b4e79a901f995e911b330da1a12888970e9516ae0b7d5a840e24d8872fcdaf');
  });

  test('refuses unsorted, repeated or illegal entry names and files that lie about their size', async () => {
    const f = regularFile(enc('x'));
    for (const names of [['b', 'a'], ['a', 'a'], ['..'], ['a/b'], [''], ['a\0']]) {
      const tree = dir(names.map((n) => [n, f]));
      await expect(collect(writeNar(tree))).rejects.toBeInstanceOf(MalformedError);
    }
    const liar: FileTree = { ...(regularFile(enc('abc')) as FileTree & { type: 'regular' }), size: 2 };
    await expect(collect(writeNar(liar))).rejects.toBeInstanceOf(MalformedError);
    const short: FileTree = { ...(regularFile(enc('abc')) as FileTree & { type: 'regular' }), size: 4 };
    await expect(collect(writeNar(short))).rejects.toBeInstanceOf(MalformedError);
  });
});

// Random trees: names are arbitrary legal byte strings (including non-UTF-8), sorted by bytes.
const nameArb = fc
  .uint8Array({ minLength: 1, maxLength: 12 })
  .filter((b) => !b.includes(0x2f) && !b.includes(0) && !(b.every((x) => x === 0x2e) && b.length <= 2));
const leafArb: fc.Arbitrary<FileTree> = fc.oneof(
  fc.tuple(fc.uint8Array({ maxLength: 40 }), fc.boolean()).map(([b, x]) => regularFile(b, x)),
  // Targets as a file system has them: not empty, no NUL byte.
  fc
    .uint8Array({ minLength: 1, maxLength: 30 })
    .filter((t) => !t.includes(0))
    .map((t): FileTree => ({ type: 'symlink', target: t })),
);
const treeArb: fc.Arbitrary<FileTree> = fc.letrec<{ tree: FileTree }>((tie) => ({
  tree: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    leafArb,
    fc
      .uniqueArray(fc.tuple(nameArb, tie('tree')), {
        maxLength: 5,
        selector: ([n]) => Buffer.from(n).toString('hex'),
      })
      .map((es) => dir([...es].sort(([a], [b]) => Buffer.compare(a, b)))),
  ),
})).tree;

describe('regularFileNar', () => {
  test('is the NAR writeNar gives for the same file, and its size is computed without writing it', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 300 }), fc.boolean(), async (bytes, executable) => {
        const expected = await collect(writeNar(regularFile(bytes, executable)));
        expect(concatBytes(regularFileNar(bytes, executable))).toEqual(expected);
        expect(regularFileNarSize(bytes.length, executable)).toBe(expected.length);
      }),
    );
  });
});

describe('readNar', () => {
  test('random trees round-trip: hash and size of the bytes, raw bytes passed through, files kept', async () => {
    await fc.assert(
      fc.asyncProperty(
        treeArb,
        fc.array(fc.integer({ min: 1, max: 50 }), { minLength: 1, maxLength: 4 }),
        async (tree, sizes) => {
          const bytes = await collect(writeNar(tree));
          const seen: Uint8Array[] = [];
          const summary = await summariseNar(chunked(bytes, sizes), DEFAULT_NAR_LIMITS, 1024, (c) =>
            seen.push(c.slice()),
          );
          expect(summary.narSize).toBe(bytes.length);
          expect(summary.narHash).toEqual(sha256(bytes));
          expect(concatBytes(seen)).toEqual(bytes);
          if (tree.type === 'regular') {
            const contents = await collect(tree.contents());
            expect(summary.file).toEqual({ executable: tree.executable, contents });
            expect(summary.fileHash).toEqual(sha256(contents));
          } else {
            expect(summary.file).toBeUndefined();
            expect(summary.fileHash).toBeUndefined();
          }
        },
      ),
      { numRuns: 200 },
    );
  });

  test('reads one NAR out of a longer stream and stops exactly at its end', async () => {
    const nar = await collect(writeNar(dir([['a', regularFile(enc('12345'), true)]])));
    const reader = ByteReader.from(chunked(concatBytes([nar, enc('TAIL')]), [5]), 'test');
    const summary = await readNar(reader, DEFAULT_NAR_LIMITS, 0);
    expect(summary.narSize).toBe(nar.length);
    expect(new TextDecoder().decode(await reader.readExact(4))).toBe('TAIL');
  });

  test('keeps a single file only up to keepFileUpTo, but always hashes it', async () => {
    const contents = enc('x'.repeat(100));
    const nar = await collect(writeNar(regularFile(contents)));
    const small = await summariseNar(chunked(nar, [7]), DEFAULT_NAR_LIMITS, 100);
    expect(small.file?.contents).toEqual(contents);
    const big = await summariseNar(chunked(nar, [7]), DEFAULT_NAR_LIMITS, 99);
    expect(big.file).toBeUndefined();
    expect(big.fileHash).toEqual(sha256(contents));
    expect(big.narHash).toEqual(small.narHash);
  });

  test('a NAR truncated at any offset is refused with a MalformedError naming that offset', async () => {
    const tree = dir([
      ['a', regularFile(enc('hello'), true)],
      ['b', dir([['c', { type: 'symlink', target: enc('../a') }]])],
    ]);
    const nar = await collect(writeNar(tree));
    for (let cut = 0; cut < nar.length; cut++) {
      const e = await summariseNar(chunked(nar.subarray(0, cut), [5])).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(MalformedError);
      expect((e as MalformedError).offset).toBeLessThanOrEqual(cut);
    }
    await expect(summariseNar(chunked(concatBytes([nar, new Uint8Array(8)])))).rejects.toBeInstanceOf(
      MalformedError,
    );
  });

  test('refuses non-zero padding after contents, names and tokens', async () => {
    const good = raw(...fileNar('abc'));
    for (const at of [good.length - 16 - 5, 8 + 13]) {
      // after "abc" (5 padding bytes before the ")" token), and after the magic's 13 bytes
      const bad = good.slice();
      bad[at + 1] = 1;
      const e = await expectRefused(bad);
      expect(String(e)).toMatch(/padding/);
    }
    const named = dirNar('abc');
    const i = Buffer.from(named).indexOf(Buffer.from('abc')) + 3;
    const bad = named.slice();
    bad[i] = 0x20;
    expect(String(await expectRefused(bad))).toMatch(/padding/);
  });

  test('refuses unsorted and repeated entries, and names Nix forbids', async () => {
    await expect(summariseNar(chunked(dirNar('a', 'b', 'c')))).resolves.toBeDefined();
    expect(String(await expectRefused(dirNar('b', 'a')))).toMatch(/sorted/);
    expect(String(await expectRefused(dirNar('a', 'a')))).toMatch(/sorted/);
    // byte order, not UTF-16 order: U+FF21 (EF BC A1) sorts before U+1F600 (F0 9F 98 80)
    await expect(summariseNar(chunked(dirNar('\uff21', '\u{1f600}')))).resolves.toBeDefined();
    await expectRefused(dirNar('\u{1f600}', '\uff21'));
    for (const n of ['', '.', '..', 'a/b', '/', 'a\0b'])
      expect(String(await expectRefused(dirNar(n)))).toMatch(/name/);
  });

  test('refuses tokens out of order, unknown types and a bad magic', async () => {
    await expectRefused(raw('nix-archive-2', '(', 'type', 'symlink', 'target', 'x', ')'));
    await expectRefused(raw(...HEAD, 'fifo', ')'));
    await expectRefused(raw(...HEAD, 'regular', 'contents', 'x', 'executable', '', ')'));
    await expectRefused(raw(...HEAD, 'regular', 'executable', 'yes', 'contents', 'x', ')'));
    await expectRefused(raw(...HEAD, 'symlink', 'target', 'x', 'target', 'y', ')'));
    await expectRefused(
      raw(...HEAD, 'directory', 'entry', '(', 'node', '(', 'type', 'symlink', 'target', 'x', ')', ')', ')'),
    );
    await expectRefused(raw('nix-archive-1', 'type', 'regular', 'contents', '', ')'));
  });

  test('refuses 2^60 length fields before allocating anything', async () => {
    const huge = 2n ** 60n;
    const head = raw(...HEAD, 'regular', 'contents');
    expect(await expectRefused(concatBytes([head, u64(huge)]))).toBeInstanceOf(LimitError);
    const name = raw(...HEAD, 'directory', 'entry', '(', 'name');
    expect(await expectRefused(concatBytes([name, u64(huge)]))).toBeInstanceOf(LimitError);
    const target = raw(...HEAD, 'symlink', 'target');
    expect(await expectRefused(concatBytes([target, u64(huge)]))).toBeInstanceOf(LimitError);
    expect(await expectRefused(u64(huge))).toBeInstanceOf(MalformedError); // the magic's length
    expect(await expectRefused(u64(2n ** 64n - 1n))).toBeInstanceOf(MalformedError);
    // a length under the limit but beyond the data: an early end, not an allocation
    expect(await expectRefused(concatBytes([head, u64(2n ** 39n)]))).toBeInstanceOf(MalformedError);
  });

  test('enforces the depth, entry, name, target and file size limits', async () => {
    let deep: FileTree = regularFile(enc('x'));
    for (let i = 0; i < 12; i++) deep = dir([['d', deep]]);
    const nar = await collect(writeNar(deep));
    const limits = { ...DEFAULT_NAR_LIMITS, maxDepth: 11 };
    expect(await expectRefused(nar, limits)).toBeInstanceOf(LimitError);
    await expect(summariseNar(chunked(nar), { ...limits, maxDepth: 12 })).resolves.toBeDefined();
    expect(await expectRefused(nar, { ...DEFAULT_NAR_LIMITS, maxEntries: 12 })).toBeInstanceOf(LimitError);
    await expect(
      summariseNar(chunked(nar), { ...DEFAULT_NAR_LIMITS, maxEntries: 13 }),
    ).resolves.toBeDefined();
    const wide = dirNar('abcd', 'abcde');
    expect(await expectRefused(wide, { ...DEFAULT_NAR_LIMITS, maxNameLength: 4 })).toBeInstanceOf(LimitError);
    expect(await expectRefused(wide, { ...DEFAULT_NAR_LIMITS, maxTargetLength: 0 })).toBeInstanceOf(
      LimitError,
    );
    const file = raw(...fileNar('abc'));
    expect(await expectRefused(file, { ...DEFAULT_NAR_LIMITS, maxFileSize: 2 })).toBeInstanceOf(LimitError);
  });

  test("the defaults are Nix 2.34's: 63 directories deep, 255-byte names, 1 to 4,095-byte targets without NUL", async () => {
    const nested = async (depth: number): Promise<Uint8Array> => {
      let t: FileTree = regularFile(enc('x'));
      for (let i = 0; i < depth; i++) t = dir([['d', t]]);
      return collect(writeNar(t));
    };
    // The file inside 63 directories is what Nix 2.34.8 still unpacks; one more it refuses.
    const ok = await summariseNar(chunked(await nested(63)));
    expect(ok.longestPath).toBe(2 * 63);
    expect(await expectRefused(await nested(64))).toBeInstanceOf(LimitError);
    const link = (target: string | Uint8Array): Uint8Array => raw(...HEAD, 'symlink', 'target', target, ')');
    await expect(summariseNar(chunked(link('t'.repeat(4095))))).resolves.toBeDefined();
    expect(await expectRefused(link('t'.repeat(4096)))).toBeInstanceOf(LimitError);
    expect(await expectRefused(link(''))).toBeInstanceOf(MalformedError);
    expect(await expectRefused(link(new Uint8Array([0x61, 0, 0x62])))).toBeInstanceOf(MalformedError);
    await expect(summariseNar(chunked(dirNar('n'.repeat(255))))).resolves.toBeDefined();
    expect(await expectRefused(dirNar('n'.repeat(256)))).toBeInstanceOf(LimitError);
  });

  test('longestPath is the longest /name/name… below the top', async () => {
    const tree = dir([
      ['a', dir([['bb', regularFile(enc('x'))]])],
      ['cccccc', regularFile(enc('y'))],
    ]);
    const s = await summariseNar(chunked(await collect(writeNar(tree)), [5]));
    expect(s.longestPath).toBe('/a/bb'.length + 2); // '/cccccc' is 7 bytes, '/a/bb' 5
    expect((await summariseNar(chunked(raw(...fileNar('z'))))).longestPath).toBeUndefined();
  });

  test('deep nesting far past the limit is refused without recursion', async () => {
    const parts: (string | bigint)[] = ['nix-archive-1'];
    for (let i = 0; i < 2100; i++) parts.push('(', 'type', 'directory', 'entry', '(', 'name', 'd', 'node');
    const e = await expectRefused(raw(...parts));
    expect(e).toBeInstanceOf(LimitError);
  });

  test('any mutation of a valid NAR is either read or refused with a typed error', async () => {
    const trees = fc.sample(treeArb, { numRuns: 20, seed: 7 });
    const nars = await Promise.all(trees.map((t) => collect(writeNar(t))));
    await fc.assert(
      fc.asyncProperty(mutationOf(nars), async (bad) => {
        const result: unknown = await summariseNar(chunked(bad, [11])).catch((e: unknown) => e);
        if (result instanceof MalformedError || result instanceof LimitError) return;
        // accepted (e.g. a changed file byte): then it must be summarised faithfully
        expect(result).toHaveProperty('narHash', sha256(bad));
      }),
      { numRuns: 500 },
    );
  });

  test('reads a one-file NAR that is buffered whole at once, exactly as it reads it in pieces', async () => {
    // What the one-look reader (`tryReadFileNar`) gives must be what the token-at-a-time reader
    // gives for the same bytes, and it must leave the reader right after the NAR.
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 300 }), fc.boolean(), async (contents, executable) => {
        const nar = concatBytes(regularFileNar(contents, executable));
        const whole = ByteReader.from([concatBytes([nar, enc('TAIL')])], 'test');
        expect(await whole.atEnd()).toBe(false); // buffers the one chunk
        const seen: Uint8Array[] = [];
        const fast = tryReadFileNar(whole, DEFAULT_NAR_LIMITS, 300, (c) => seen.push(c.slice()));
        expect(fast).toBeDefined();
        expect(concatBytes(seen)).toEqual(nar);
        expect(new TextDecoder().decode(await whole.readExact(4))).toBe('TAIL');
        const pieces = await summariseNar(chunked(nar, [7]), DEFAULT_NAR_LIMITS, 300);
        expect(fields(fast!)).toEqual(fields(pieces));
        expect(fast!.narHash).toEqual(sha256(nar)); // computed when asked for
      }),
    );
  });

  test('leaves to the general reader what it cannot read whole, having read nothing', async () => {
    const file = concatBytes(regularFileNar(enc('x'.repeat(100))));
    const cases: [string, Uint8Array, number][] = [
      ['a directory', await collect(writeNar(dir([['a', regularFile(enc('a'))]]))), 1024],
      ['a symlink', await collect(writeNar({ type: 'symlink', target: enc('a') })), 1024],
      ['a file above keepFileUpTo', file, 99],
      ['a file cut short', file.subarray(0, file.length - 1), 1024],
      ['a file with a bad closing token', concatBytes([file.subarray(0, file.length - 8), u64(0)]), 1024],
    ];
    for (const [what, bytes, keepUpTo] of cases) {
      const reader = ByteReader.from([bytes], 'test');
      await reader.atEnd();
      expect([what, tryReadFileNar(reader, DEFAULT_NAR_LIMITS, keepUpTo)]).toEqual([what, undefined]);
      expect([what, reader.offset]).toEqual([what, 0]);
    }
    // And a file exactly as large as keepFileUpTo is read whole.
    const exact = ByteReader.from([file], 'test');
    await exact.atEnd();
    expect(tryReadFileNar(exact, DEFAULT_NAR_LIMITS, 100)?.file?.contents).toEqual(enc('x'.repeat(100)));
  });

  test('a mutated one-file NAR read whole gives what reading it in pieces gives, or the same error', async () => {
    const nars = fc
      .sample(fc.tuple(fc.uint8Array({ maxLength: 40 }), fc.boolean()), { numRuns: 20, seed: 11 })
      .map(([c, x]) => concatBytes(regularFileNar(c, x)));
    // summariseNar with its one chunk buffered before the NAR is read, as an export stream's is.
    const readWhole = async (bytes: Uint8Array): Promise<unknown> => {
      const reader = ByteReader.from([bytes], 'NAR');
      await reader.atEnd();
      const fast = tryReadFileNar(reader, DEFAULT_NAR_LIMITS, 1024);
      if (fast !== undefined) read++;
      const summary = fast ?? (await readNar(reader, DEFAULT_NAR_LIMITS, 1024));
      if (!(await reader.atEnd())) throw reader.error('trailing bytes after the NAR');
      return summary;
    };
    let read = 0;
    const outcome = (p: Promise<unknown>): Promise<unknown> =>
      p.then(
        (summary) => ({ summary: fields(summary as NarSummary) }),
        (e: unknown) => ({ error: String(e), type: (e as Error).constructor.name }),
      );
    await fc.assert(
      fc.asyncProperty(mutationOf(nars), async (bad) => {
        const whole = await outcome(readWhole(bad));
        const pieces = await outcome(summariseNar(chunked(bad, [11]), DEFAULT_NAR_LIMITS, 1024));
        expect(whole).toEqual(pieces);
      }),
      { numRuns: 500 },
    );
    // Read whole: mutations of the contents, and ones that change nothing (about 30 of the 500).
    expect(read).toBeGreaterThanOrEqual(5);
  });

  test('random bytes are refused with a typed error', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 200 }), async (bytes) => {
        await expectRefused(concatBytes([raw('nix-archive-1'), bytes]));
      }),
      { numRuns: 200 },
    );
  });
});
