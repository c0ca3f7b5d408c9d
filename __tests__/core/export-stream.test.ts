// The export stream writer and reader: round-trips, raw NAR pass-through, hostile streams.
import { describe, expect, test } from '@jest/globals';
import fc from 'fast-check';
import { LimitError, MalformedError } from '../../src/core/errors.js';
import { sha256 } from '../../src/core/hash.js';
import {
  DEFAULT_EXPORT_LIMITS,
  EXPORT_MAGIC,
  readExport,
  writeExport,
  type ExportEntry,
  type ExportedPath,
  type ExportLimits,
  type ReadExportOptions,
} from '../../src/core/export-stream.js';
import { regularFile, writeNar, type FileTree } from '../../src/core/nar-write.js';
import { concatBytes, u64, wireString } from '../../src/core/bytes.js';
import { collect } from '../support/streams.js';

const enc = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'utf8'));
const NIX32 = '0123456789abcdfghijklmnpqrsvwxyz';

// eslint-disable-next-line @typescript-eslint/require-await
async function* chunked(bytes: Uint8Array, size = 13): AsyncGenerator<Uint8Array> {
  for (let at = 0; at < bytes.length; at += size) yield bytes.slice(at, at + size);
}

async function readAll(
  bytes: Uint8Array,
  limits?: Partial<ExportLimits>,
  options?: ReadExportOptions,
): Promise<ExportedPath[]> {
  const out: ExportedPath[] = [];
  for await (const e of readExport(chunked(bytes), limits, options)) out.push(e);
  return out;
}

async function refusal(bytes: Uint8Array, limits?: Partial<ExportLimits>): Promise<unknown> {
  const e = await readAll(bytes, limits).then(
    () => undefined,
    (x: unknown) => x,
  );
  expect(e instanceof MalformedError || e instanceof LimitError).toBe(true);
  return e;
}

const storePath = (seed: number, name: string, dir = '/nix/store'): string => {
  let h = '';
  for (let i = 0; i < 32; i++) h += NIX32[(seed * 7 + i * 13 + ((seed >> (i % 8)) & 31)) % 32];
  return `${dir}/${h}-${name}`;
};

const A = storePath(1, 'a.drv');
const B = storePath(2, 'b-1.0');
const C = storePath(3, 'c.txt');

async function narOf(tree: FileTree): Promise<Uint8Array> {
  return collect(writeNar(tree));
}

/** An export stream assembled by hand, for shapes the writer never produces. */
function rawEntry(o: {
  nar: Uint8Array;
  path: string;
  refs?: string[];
  deriver?: string;
  magic?: number;
  sig?: number;
}): Uint8Array {
  const refs = o.refs ?? [];
  return concatBytes([
    u64(1),
    o.nar,
    u64(o.magic ?? EXPORT_MAGIC),
    ...wireString(o.path),
    u64(refs.length),
    ...refs.flatMap((r) => wireString(r)),
    ...wireString(o.deriver ?? ''),
    u64(o.sig ?? 0),
  ]);
}
const END = u64(0);

describe('writeExport / readExport', () => {
  test('an empty export is one end marker', async () => {
    expect(await collect(writeExport([]))).toEqual(END);
    expect(await readAll(END)).toEqual([]);
    await refusal(new Uint8Array(0));
  });

  test('random entries round-trip; NAR bytes are handed over per entry', async () => {
    const entryArb = fc.record({
      contents: fc.uint8Array({ maxLength: 60 }),
      executable: fc.boolean(),
      refs: fc.uniqueArray(fc.integer({ min: 0, max: 40 }), { maxLength: 5 }),
      deriver: fc.option(fc.integer({ min: 0, max: 40 }), { nil: undefined }),
    });
    await fc.assert(
      fc.asyncProperty(
        fc.array(entryArb, { maxLength: 6 }),
        fc.integer({ min: 1, max: 40 }),
        async (specs, size) => {
          const entries = await Promise.all(
            specs.map(async (s, i) => ({
              path: storePath(100 + i, `p${i}`),
              references: s.refs.map((r) => storePath(r, `r${r}`)),
              deriver: s.deriver === undefined ? '' : storePath(s.deriver, `d${s.deriver}.drv`),
              narBytes: await narOf(regularFile(s.contents, s.executable)),
              contents: s.contents,
              executable: s.executable,
            })),
          );
          const stream = await collect(
            writeExport(entries.map((e): ExportEntry => ({ ...e, nar: chunked(e.narBytes, 5) }))),
          );
          const handed: Uint8Array[][] = entries.map(() => []);
          const read: ExportedPath[] = [];
          const whole: Uint8Array[] = [];
          for await (const e of readExport(
            chunked(stream, size),
            {},
            { onNarBytes: (c, i) => handed[i]?.push(c.slice()), onStreamBytes: (c) => whole.push(c.slice()) },
          ))
            read.push(e);
          expect(read.map((r) => r.path)).toEqual(entries.map((e) => e.path));
          expect(concatBytes(whole)).toEqual(stream);
          read.forEach((r, i) => {
            const e = entries[i];
            if (e === undefined) throw new Error('missing entry');
            expect(r.references).toEqual([...e.references].sort());
            expect(r.deriver).toBe(e.deriver);
            expect(r.nar.narHash).toEqual(sha256(e.narBytes));
            expect(r.nar.narSize).toBe(e.narBytes.length);
            expect(r.nar.file).toEqual({ executable: e.executable, contents: e.contents });
            expect(concatBytes(handed[i] ?? [])).toEqual(e.narBytes);
          });
        },
      ),
      { numRuns: 100 },
    );
  });

  test('the writer sorts and de-duplicates references, as Nix stores them', async () => {
    const nar = await narOf(regularFile(enc('x')));
    const stream = await collect(
      writeExport([{ path: A, references: [C, B, C, A], deriver: '', nar: chunked(nar) }]),
    );
    expect(stream).toEqual(concatBytes([rawEntry({ nar, path: A, refs: [A, B, C].sort() }), END]));
  });

  test('references to earlier paths read as those paths, and look-alikes as themselves', async () => {
    const nar = await narOf(regularFile(enc('x')));
    // Same store dir, same start of the hash part, other rest or other name: found by the same
    // key as the earlier path, they must still come out as the paths they are.
    const hash = A.slice('/nix/store/'.length, '/nix/store/'.length + 32);
    const sameStart = `/nix/store/${hash.slice(0, 8)}${hash.slice(8).split('').reverse().join('')}-a.drv`;
    const sameHash = `/nix/store/${hash}-b.drv`;
    const stream = concatBytes([
      rawEntry({ nar, path: A }),
      rawEntry({ nar, path: B, refs: [A, sameStart, sameHash].sort() }),
      rawEntry({ nar, path: C, refs: [A, B] }),
      END,
    ]);
    const entries = await readAll(stream);
    expect(entries.map((e) => e.references)).toEqual([[], [A, sameStart, sameHash].sort(), [A, B]]);
  });

  test('a stream truncated at any offset is refused', async () => {
    const nar = await narOf(regularFile(enc('hello')));
    const stream = concatBytes([
      rawEntry({ nar, path: B, refs: [B] }),
      rawEntry({ nar, path: A, refs: [B], deriver: storePath(9, 'x.drv') }),
      END,
    ]);
    await expect(readAll(stream)).resolves.toHaveLength(2);
    for (let cut = 0; cut < stream.length; cut++) {
      const e = await refusal(stream.subarray(0, cut));
      expect(e).toBeInstanceOf(MalformedError);
    }
  });

  test('refuses trailing bytes, a missing end marker, bad markers and magic, legacy signatures', async () => {
    const nar = await narOf(regularFile(enc('x')));
    const one = rawEntry({ nar, path: A });
    expect(String(await refusal(concatBytes([one, END, enc('x')])))).toMatch(/trailing/);
    expect(String(await refusal(concatBytes([one, END, END])))).toMatch(/trailing/);
    expect(String(await refusal(one))).toMatch(/end of input/);
    expect(String(await refusal(concatBytes([u64(2), END])))).toMatch(/expected 0 or 1/);
    expect(String(await refusal(concatBytes([u64(2n ** 63n), END])))).toMatch(/expected 0 or 1/);
    expect(String(await refusal(concatBytes([rawEntry({ nar, path: A, magic: 0x4558494f }), END])))).toMatch(
      /magic/,
    );
    expect(String(await refusal(concatBytes([rawEntry({ nar, path: A, sig: 1 }), END])))).toMatch(
      /signature/,
    );
    const notNar = concatBytes([u64(1), ...wireString('nix-archive-2')]);
    expect(await refusal(concatBytes([notNar, END]))).toBeInstanceOf(MalformedError);
  });

  test('refuses bad store paths, mixed store dirs, unsorted references, repeated paths and odd derivers', async () => {
    const nar = await narOf(regularFile(enc('x')));
    const cases: Parameters<typeof rawEntry>[0][][] = [
      [{ nar, path: '/nix/store/short-a' }],
      [{ nar, path: 'relative/path' }],
      [{ nar, path: A.replace('/nix/store', '/nix//store') }],
      [{ nar, path: A, refs: [storePath(5, 'x', '/other/store')] }],
      [
        { nar, path: A },
        { nar, path: storePath(5, 'x', '/other/store') },
      ],
      [{ nar, path: A, refs: [C, B].sort().reverse() }],
      [{ nar, path: A, refs: [B, B] }],
      [
        { nar, path: A },
        { nar, path: A },
      ],
      [{ nar, path: A, deriver: B }],
      [{ nar, path: A, deriver: 'x.drv' }],
    ];
    for (const entries of cases) {
      const e = await refusal(concatBytes([...entries.map(rawEntry), END]));
      expect(e).toBeInstanceOf(MalformedError);
    }
    await expect(
      readAll(concatBytes([rawEntry({ nar, path: A }), END]), {}, { storeDir: '/beta/store' }),
    ).rejects.toThrow(/not in the store directory/);
    const beta = storePath(1, 'a', '/beta/store');
    await expect(
      readAll(concatBytes([rawEntry({ nar, path: beta }), END]), {}, { storeDir: '/beta/store' }),
    ).resolves.toHaveLength(1);
  });

  test('limits: paths, references, path length, total bytes and 2^60 counts', async () => {
    const nar = await narOf(regularFile(enc('x')));
    const two = concatBytes([
      rawEntry({ nar, path: A, refs: [B, C].sort() }),
      rawEntry({ nar, path: B }),
      END,
    ]);
    await expect(readAll(two, { maxPaths: 2 })).resolves.toHaveLength(2);
    expect(await refusal(two, { maxPaths: 1 })).toBeInstanceOf(LimitError);
    expect(await refusal(two, { maxReferences: 1 })).toBeInstanceOf(LimitError);
    expect(await refusal(two, { maxPathLength: A.length - 1 })).toBeInstanceOf(LimitError);
    expect(await refusal(two, { maxTotalBytes: two.length - 1 })).toBeInstanceOf(LimitError);
    await expect(readAll(two, { maxTotalBytes: two.length })).resolves.toHaveLength(2);
    expect(await refusal(two, { nar: { ...DEFAULT_EXPORT_LIMITS.nar, maxFileSize: 0 } })).toBeInstanceOf(
      LimitError,
    );
    const hugeRefs = concatBytes([u64(1), nar, u64(EXPORT_MAGIC), ...wireString(A), u64(2n ** 60n)]);
    expect(await refusal(hugeRefs)).toBeInstanceOf(LimitError);
    const hugePath = concatBytes([u64(1), nar, u64(EXPORT_MAGIC), u64(2n ** 60n)]);
    expect(await refusal(hugePath)).toBeInstanceOf(LimitError);
  });

  test('keeps single-file NARs up to keepFileUpTo, and never directory contents', async () => {
    const small = await narOf(regularFile(enc('12345')));
    const tree: FileTree = {
      type: 'directory',
      // eslint-disable-next-line @typescript-eslint/require-await
      entries: async function* () {
        yield [enc('f'), regularFile(enc('12345'))];
      },
    };
    const stream = concatBytes([
      rawEntry({ nar: small, path: A }),
      rawEntry({ nar: await narOf(tree), path: B }),
      END,
    ]);
    const [a, b] = await readAll(stream, { keepFileUpTo: 5 });
    expect(a?.nar.file?.contents).toEqual(enc('12345'));
    expect(b?.nar.file).toBeUndefined();
    const [a2] = await readAll(stream, { keepFileUpTo: 4 });
    expect(a2?.nar.file).toBeUndefined();
    expect(a2?.nar.fileHash).toEqual(sha256(enc('12345')));
  });

  test("kept files are copies by default, and views of the reader's bytes with keptFiles: 'view'", async () => {
    const stream = concatBytes([
      rawEntry({ nar: await narOf(regularFile(enc('first'))), path: A }),
      rawEntry({ nar: await narOf(regularFile(enc('second'))), path: B }),
      END,
    ]);
    const read = async (options: ReadExportOptions): Promise<ExportedPath[]> => {
      const out: ExportedPath[] = [];
      for await (const e of readExport([stream], {}, options)) out.push(e);
      return out;
    };
    const views = await read({ keptFiles: 'view' });
    const copies = await read({});
    for (const [i, text] of ['first', 'second'].entries()) {
      expect(views[i]?.nar.file?.contents).toEqual(enc(text));
      expect(views[i]?.nar.file?.contents.buffer).toBe(stream.buffer);
      expect(copies[i]?.nar.file?.contents).toEqual(enc(text));
      expect(copies[i]?.nar.file?.contents.buffer).not.toBe(stream.buffer);
    }
    stream.fill(0);
    expect(copies.map((e) => e.nar.file?.contents)).toEqual([enc('first'), enc('second')]);
  });

  test('random damage to a stream is either read or refused with a typed error', async () => {
    const nar = await narOf(regularFile(enc('some contents')));
    const stream = concatBytes([
      rawEntry({ nar, path: B, refs: [B] }),
      rawEntry({ nar, path: A, refs: [B] }),
      END,
    ]);
    await fc.assert(
      fc.asyncProperty(fc.nat(stream.length - 1), fc.integer({ min: 0, max: 255 }), async (pos, value) => {
        const bad = stream.slice();
        bad[pos] = value;
        const result: unknown = await readAll(bad).catch((e: unknown) => e);
        if (result instanceof MalformedError || result instanceof LimitError) return;
        expect(Array.isArray(result)).toBe(true);
      }),
      { numRuns: 300 },
    );
  });
});

describe('file paths an entry unpacks to', () => {
  /** An entry whose NAR is directories named `name` nested `depth` deep around one file. */
  async function nested(path: string, name: string, depth: number): Promise<Uint8Array> {
    let t: FileTree = regularFile(enc('x'));
    for (let i = 0; i < depth; i++) {
      const child = t;
      t = {
        type: 'directory',
        entries: async function* () {
          yield await Promise.resolve([enc(name), child] as [Uint8Array, FileTree]);
        },
      };
    }
    const inner = t;
    return collect(writeExport([{ path, references: [], deriver: '', nar: writeNar(inner) }]));
  }

  test('are refused beyond PATH_MAX (4,095 bytes) with the store path in front, counting the real store dir', async () => {
    const path = storePath(4, 'deep');
    // 20 levels of a 200-byte name: 20 × 201 = 4,020 bytes inside, plus '/nix/store/<hash>-deep' (43).
    const fits = await nested(path, 'n'.repeat(200), 20);
    expect((await readAll(fits)).map((e) => e.nar.longestPath)).toEqual([4020]);
    // The same entry in a chroot store whose files live under a longer directory does not fit.
    const e = await readAll(fits, undefined, {
      storeDir: '/nix/store',
      realStoreDir: '/srv/chroots/a-rather-long-chroot-name/nix/store',
    }).then(
      () => undefined,
      (x: unknown) => x,
    );
    expect(e).toBeInstanceOf(LimitError);
    expect(String(e)).toContain(path);
    const over = await nested(path, 'n'.repeat(200), 21); // 4,221 bytes inside alone
    expect(String(await refusal(over))).toContain('PATH_MAX');
  });
});
