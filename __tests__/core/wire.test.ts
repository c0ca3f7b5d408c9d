// Wire primitives: u64 encoding and the streaming ByteReader (views, taps, limits) under any chunking.
import { describe, expect, test } from '@jest/globals';
import fc from 'fast-check';
import { LimitError, MalformedError } from '../../src/core/errors.js';
import { ByteReader } from '../../src/core/wire.js';
import { ByteArena, ChunkBatcher, allocBytes, concatBytes, u64, wireString } from '../../src/core/bytes.js';

// eslint-disable-next-line @typescript-eslint/require-await
async function* pieces(chunks: readonly Uint8Array[]): AsyncGenerator<Uint8Array> {
  for (const c of chunks) yield c;
}

function split(bytes: Uint8Array, sizes: readonly number[]): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let at = 0, i = 0; at < bytes.length; i++) {
    const n = sizes[i % sizes.length] ?? 1;
    out.push(bytes.slice(at, at + n));
    at += n;
  }
  return out;
}

describe('u64', () => {
  test('matches the little-endian BigInt encoding for every safe integer and for bigints', () => {
    fc.assert(
      fc.property(fc.oneof(fc.maxSafeNat(), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n })), (n) => {
        const expected = new Uint8Array(8);
        new DataView(expected.buffer).setBigUint64(0, BigInt(n), true);
        expect(u64(n)).toEqual(expected);
      }),
    );
  });
});

describe('ByteReader', () => {
  test('reads, streams and taps the same bytes whatever the chunk boundaries', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uint8Array({ minLength: 1, maxLength: 300 }),
        fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 5 }),
        fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 30 })), { maxLength: 30 }),
        async (bytes, sizes, ops) => {
          const reader = ByteReader.from(pieces(split(bytes, sizes)), 'test');
          const tapped: Uint8Array[] = [];
          const untap = reader.tap((c) => tapped.push(c.slice()));
          const got: Uint8Array[] = [];
          for (const [streamIt, n] of ops) {
            const take = Math.min(n, bytes.length - reader.offset);
            if (streamIt) await reader.stream(take, (c) => got.push(c.slice()));
            else got.push((await reader.readExact(take)).slice());
          }
          const at = reader.offset;
          untap();
          got.push((await reader.readExact(bytes.length - at)).slice());
          expect(concatBytes(got)).toEqual(bytes);
          expect(concatBytes(tapped)).toEqual(bytes.subarray(0, at));
          expect(await reader.atEnd()).toBe(true);
        },
      ),
    );
  });

  test('a nested tap detached without flushing leaves the enclosing tap complete', async () => {
    const bytes = new Uint8Array(100).map((_, i) => i);
    const reader = ByteReader.from(pieces(split(bytes, [30])), 'test');
    const outer: Uint8Array[] = [];
    const inner: Uint8Array[] = [];
    const untapOuter = reader.tap((c) => outer.push(c.slice()));
    await reader.readExact(10);
    const untapInner = reader.tap((c) => inner.push(c.slice()));
    await reader.readExact(15);
    untapInner(false);
    await reader.readExact(50);
    untapOuter();
    expect(concatBytes(outer)).toEqual(bytes.subarray(0, 75));
    expect(concatBytes(inner)).toEqual(bytes.subarray(10, 10 + concatBytes(inner).length));
  });

  test('reading past the end names the offset; a too-long source is a LimitError', async () => {
    const reader = ByteReader.from(pieces([new Uint8Array(5)]), 'test');
    await reader.readExact(3);
    await expect(reader.readExact(3)).rejects.toThrow(
      new MalformedError('test', 3, 'unexpected end of input (wanted 3 more bytes)'),
    );
    const limited = ByteReader.from(pieces([new Uint8Array(4), new Uint8Array(4)]), 'test', 7);
    await limited.readExact(4);
    await expect(limited.readExact(4)).rejects.toBeInstanceOf(LimitError);
  });

  test('u64 values above 2^53 are refused by readU64 and reported as Infinity unbounded', async () => {
    const bytes = concatBytes([u64(2n ** 53n), u64(2n ** 53n - 1n), u64(2n ** 60n)]);
    const reader = ByteReader.from(pieces([bytes]), 'test');
    await expect(reader.readU64()).rejects.toBeInstanceOf(LimitError);
    expect(await reader.readU64Unbounded()).toBe(2 ** 53 - 1);
    expect(await reader.readU64Unbounded()).toBe(Infinity);
  });
});

describe('ByteReader fast paths', () => {
  // A field of the wire format, and what a waiting read gives for it (or that it throws).
  type Field =
    | { kind: 'u64'; value: bigint }
    | { kind: 'string'; bytes: Uint8Array; max: number; badPad: boolean }
    | { kind: 'exact'; bytes: Uint8Array }
    | { kind: 'padding'; len: number; bad: boolean };
  const encode = (f: Field): Uint8Array => {
    switch (f.kind) {
      case 'u64':
        return u64(f.value);
      case 'string': {
        const enc = concatBytes(wireString(f.bytes));
        if (f.badPad && enc.length > 8 + f.bytes.length) enc[enc.length - 1] = 1;
        return enc;
      }
      case 'exact':
        return f.bytes;
      case 'padding': {
        const pad = new Uint8Array((8 - (f.len % 8)) % 8);
        if (f.bad && pad.length > 0) pad[0] = 7;
        return pad;
      }
    }
  };
  const fieldArb: fc.Arbitrary<Field> = fc.oneof(
    fc.record({
      kind: fc.constant('u64' as const),
      value: fc.oneof(
        fc.bigInt({ min: 0n, max: 2n ** 32n + 5n }),
        fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
      ),
    }),
    fc.record({
      kind: fc.constant('string' as const),
      bytes: fc.uint8Array({ maxLength: 20 }),
      max: fc.integer({ min: 0, max: 24 }),
      badPad: fc.boolean(),
    }),
    fc.record({ kind: fc.constant('exact' as const), bytes: fc.uint8Array({ maxLength: 20 }) }),
    fc.record({
      kind: fc.constant('padding' as const),
      len: fc.integer({ min: 0, max: 20 }),
      bad: fc.boolean(),
    }),
  );

  test('read buffered fields without waiting, and nothing that is not all there or not well formed', async () => {
    const field = concatBytes([...wireString('hello'), u64(7)]);
    const reader = ByteReader.from(pieces([field.subarray(0, 14), field.subarray(14)]), 'test');
    expect(reader.tryReadWireBytes(16)).toBeUndefined(); // nothing buffered yet
    await reader.atEnd();
    expect(reader.tryReadWireBytes(4)).toBeUndefined(); // longer than allowed
    expect(reader.tryReadWireBytes(16)).toBeUndefined(); // its padding is in the next chunk
    expect(reader.offset).toBe(0);
    expect(Buffer.from((await reader.readBytes(16)).slice()).toString()).toBe('hello');
    expect(reader.tryReadSmallU64()).toBe(7);
    const badPad = concatBytes(wireString('hi'));
    badPad[badPad.length - 1] = 1;
    const bad = ByteReader.from(pieces([badPad]), 'test');
    await bad.atEnd();
    expect(bad.tryReadWireBytes(16)).toBeUndefined();
    await expect(bad.readBytes(16)).rejects.toThrow('non-zero padding');
  });

  test('read what the waiting reads read, or consume nothing and leave the reading to them', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fieldArb, { minLength: 1, maxLength: 12 }),
        fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 5 }),
        async (fields, sizes) => {
          const bytes = concatBytes(fields.map(encode));
          const fast = ByteReader.from(pieces(split(bytes, sizes)), 'test');
          const slow = ByteReader.from(pieces(split(bytes, sizes)), 'test');
          // Fill the first chunk, so the fast paths have something to work on.
          if (bytes.length > 0) {
            await fast.readExact(0);
            await fast.atEnd();
          }
          for (const f of fields) {
            const at = fast.offset;
            const outcome = async <T>(read: () => Promise<T>): Promise<{ value?: T; error?: unknown }> =>
              read().then(
                (value) => ({ value }),
                (error: unknown) => ({ error }),
              );
            if (f.kind === 'u64') {
              const expected = await outcome(() => slow.readU64Unbounded());
              const got = fast.tryReadSmallU64();
              if (got === undefined) {
                expect(fast.offset).toBe(at);
                expect(await outcome(() => fast.readU64Unbounded())).toEqual(expected);
              } else {
                expect(f.value).toBeLessThan(2n ** 32n);
                expect(got).toBe(expected.value);
              }
            } else if (f.kind === 'string') {
              const expected = await outcome(async () => {
                const b = await slow.readBytes(f.max);
                return b.slice();
              });
              const got = fast.tryReadWireBytes(f.max);
              if (got === undefined) {
                expect(fast.offset).toBe(at);
                const again = await outcome(async () => (await fast.readBytes(f.max)).slice());
                expect(again.error === undefined).toBe(expected.error === undefined);
                if (expected.error !== undefined) return; // both refuse: the stream is broken here
                expect(again.value).toEqual(expected.value);
              } else {
                expect(got.slice()).toEqual(expected.value);
              }
            } else if (f.kind === 'exact') {
              const expected = (await slow.readExact(f.bytes.length)).slice();
              const got = fast.tryReadExact(f.bytes.length);
              expect((got ?? (await fast.readExact(f.bytes.length))).slice()).toEqual(expected);
            } else {
              const expected = await outcome(() => slow.readPadding(f.len));
              if (!fast.tryReadPadding(f.len)) {
                expect(fast.offset).toBe(at);
                const again = await outcome(() => fast.readPadding(f.len));
                expect(again.error === undefined).toBe(expected.error === undefined);
                if (expected.error !== undefined) return;
              } else expect(expected.error).toBeUndefined();
            }
            expect(fast.offset).toBe(slow.offset);
          }
          expect(fast.offset).toBe(bytes.length);
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe('ChunkBatcher', () => {
  // A piece is bytes to add, or a reservation of that many bytes, filled by hand.
  const piece = fc.oneof(
    fc.uint8Array({ maxLength: 150 }).map((b) => ({ add: b })),
    fc.uint8Array({ maxLength: 150 }).map((b) => ({ reserve: b })),
  );
  test('emits the bytes it was given, in order, in chunks of its size but for large pieces and the last', () => {
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 40 }), fc.integer({ min: 1, max: 100 }), (pieces, target) => {
        const b = new ChunkBatcher(target);
        const out: Uint8Array[] = [];
        const passed = new Set<Uint8Array>();
        for (const p of pieces) {
          if ('add' in p) {
            const given = p.add.slice();
            b.add(given);
            given.fill(0xee); // the caller may reuse what it passed
            if (p.add.length >= target) {
              given.set(p.add); // passed through: not copied, so it must stay as it was
              passed.add(given);
            }
          } else {
            const { bytes, at } = b.reserve(p.reserve.length);
            bytes.set(p.reserve, at);
          }
          if (b.hasReady) out.push(...b.take());
        }
        b.flush();
        out.push(...b.take());
        expect(b.hasReady).toBe(false);
        expect(concatBytes(out)).toEqual(concatBytes(pieces.map((p) => ('add' in p ? p.add : p.reserve))));
        for (const c of out) {
          expect(c.length).toBeGreaterThan(0);
          // larger than the target only when passed through, or reserved whole
          if (!passed.has(c) && c.length > target)
            expect(pieces.some((p) => 'reserve' in p && p.reserve.length === c.length)).toBe(true);
        }
      }),
    );
  });
  test('small pieces alone make chunks of exactly its size but the last', () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ maxLength: 20 }), { maxLength: 40 }),
        fc.integer({ min: 21, max: 64 }),
        (parts, target) => {
          const b = new ChunkBatcher(target);
          for (const p of parts) b.add(p);
          b.flush();
          const out = b.take();
          expect(concatBytes(out)).toEqual(concatBytes(parts));
          out.slice(0, -1).forEach((c) => expect(c.length).toBe(target));
        },
      ),
    );
  });
});

describe('ByteArena', () => {
  test('copies are equal to what was given, independent of it and of each other', () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ maxLength: 40 }), { maxLength: 30 }),
        fc.integer({ min: 16, max: 64 }),
        (parts, block) => {
          const arena = new ByteArena(block);
          const expected = parts.map((p) => Uint8Array.from(p));
          const copies = parts.map((p) => arena.copy(p));
          for (const p of parts) p.fill(0xee); // the originals change: the copies do not
          copies.forEach((c, i) => expect(c).toEqual(expected[i]));
          // Writing each copy in turn reaches no other: no two overlap.
          copies.forEach((c, i) => c.fill(i + 1));
          copies.forEach((c, i) => expect(c.every((b) => b === i + 1)).toBe(true));
        },
      ),
    );
  });
  test('shares blocks between small copies and gives larger ones an array of their own', () => {
    const arena = new ByteArena(64);
    const a = arena.copy(new Uint8Array(10).fill(1));
    const b = arena.copy(new Uint8Array(10).fill(2));
    expect(a.buffer).toBe(b.buffer);
    expect(a.buffer.byteLength).toBe(64);
    const big = arena.copy(new Uint8Array(17).fill(3));
    expect(big.byteLength).toBe(big.buffer.byteLength);
    expect(arena.copy(new Uint8Array(0))).toEqual(new Uint8Array(0));
  });
});

describe('allocBytes', () => {
  test('arrays of the size asked for that never overlap, small and large', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 20_000 }), { maxLength: 40 }), (sizes) => {
        const arrays = sizes.map((n, i) => allocBytes(n).fill(i % 256));
        arrays.forEach((a, i) => {
          expect(a.length).toBe(sizes[i]);
          expect(a.every((b) => b === i % 256)).toBe(true);
        });
      }),
    );
  });
});
