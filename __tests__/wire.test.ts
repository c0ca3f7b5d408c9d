// Wire primitives: u64 encoding and the streaming ByteReader (views, taps, limits) under any chunking.
import { describe, expect, test } from '@jest/globals';
import fc from 'fast-check';
import { LimitError, MalformedError } from '../src/core/errors.js';
import { ByteReader, ChunkBatcher, concatBytes, u64 } from '../src/core/wire.js';

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

describe('ChunkBatcher', () => {
  test('emits the same bytes it was given, in order, never as an empty chunk', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 50 }), { maxLength: 40 }), (parts) => {
        const b = new ChunkBatcher(64);
        const out: Uint8Array[] = [];
        for (const p of parts) out.push(...b.add(p));
        const body = out.length;
        out.push(...b.flush());
        expect(concatBytes(out)).toEqual(concatBytes(parts));
        for (const c of out.slice(0, body)) expect(c.length).toBeGreaterThan(0);
      }),
    );
  });
});
