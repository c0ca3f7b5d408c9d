// The one line splitter (an evaluator's stderr, a host's output): whole lines whatever the
// chunking, and a bound on what it holds, without cutting a character or a "\r\n" in two.
import { describe, expect, test } from '@jest/globals';
import fc from 'fast-check';
import { LINE_PIECE_MAX, lineSplitter } from '../../src/core/lines.js';

const utf8 = new TextEncoder();
const strict = new TextDecoder('utf-8', { fatal: true });

/** What the splitter passes on for `bytes` written in chunks of `size`, and when (`at`: bytes written by then). */
function split(
  bytes: Uint8Array,
  size: number,
  max?: number,
): { pieces: string[]; continued: boolean[]; raw: Uint8Array[]; at: number[] } {
  const raw: Uint8Array[] = [];
  const continued: boolean[] = [];
  const at: number[] = [];
  let written = 0;
  const s = lineSplitter((b, c) => {
    raw.push(b);
    continued.push(c);
    at.push(written);
  }, max);
  for (let i = 0; i < bytes.length; i += size) {
    s.write(bytes.subarray(i, i + size));
    written = Math.min(bytes.length, i + size);
  }
  s.end();
  return { pieces: raw.map((b) => Buffer.from(b).toString('utf8')), continued, raw, at };
}

describe('lineSplitter', () => {
  test('whole lines with their ends, whatever the chunking; the unfinished last one at the end', () => {
    const text = 'one\ntwo\r\n\nthree é € 😀\r\nlast without end';
    const bytes = utf8.encode(text);
    for (let size = 1; size <= bytes.length; size++) {
      const { pieces, continued } = split(bytes, size);
      expect(pieces).toEqual(['one\n', 'two\r\n', '\n', 'three é € 😀\r\n', 'last without end']);
      expect(continued.every((c) => !c)).toBe(true);
    }
  });

  test('a chunk that ends inside a UTF-8 sequence or between "\\r" and "\\n" changes nothing', () => {
    const bytes = utf8.encode('a😀b\r\nc\n');
    // Every cut into two chunks: inside the 4-byte sequence (after 2, 3, 4 bytes), between \r and \n.
    for (let cut = 1; cut < bytes.length; cut++) {
      const pieces: string[] = [];
      const s = lineSplitter((b) => pieces.push(strict.decode(b)));
      s.write(bytes.subarray(0, cut));
      s.write(bytes.subarray(cut));
      s.end();
      expect(pieces).toEqual(['a😀b\r\n', 'c\n']);
    }
  });

  test('a line longer than the bound is passed on in pieces of at most 64 KiB as it comes', () => {
    expect(LINE_PIECE_MAX).toBe(64 * 1024);
    const line = new Uint8Array(300 * 1024).fill(0x61);
    for (const size of [300 * 1024, 4096, 1000]) {
      const { raw, continued, at } = split(line, size);
      expect(raw.map((b) => b.length)).toEqual([65536, 65536, 65536, 65536, 45056]);
      expect(continued).toEqual([false, true, true, true, true]);
      // Each full piece went on before more than one piece's worth (and a chunk) was held.
      raw.slice(0, 4).forEach((_, i) => expect(at[i]).toBeLessThanOrEqual((i + 1) * 65536 + size));
    }
    // The line's end ends its last piece; the next line starts afresh.
    const ended = split(new Uint8Array([...line.subarray(0, 70_000), 0x0a, 0x62, 0x0a]), 8192);
    expect(ended.raw.map((b) => b.length)).toEqual([65536, 70_001 - 65536, 2]);
    expect(ended.continued).toEqual([false, true, false]);
  });

  test('a piece is not cut inside a UTF-8 sequence or between "\\r" and "\\n"', () => {
    // With pieces of 8 bytes: "aaaaaaa" + 😀 would cut the emoji after its first byte.
    const emoji = split(utf8.encode('aaaaaaa😀bbbbbbb\n'), 3, 8);
    expect(emoji.pieces).toEqual(['aaaaaaa', '😀bbbb', 'bbb\n']);
    const crlf = split(utf8.encode('aaaaaaa\r\nb\n'), 1, 8);
    expect(crlf.pieces).toEqual(['aaaaaaa', '\r\n', 'b\n']);
  });

  test('any text, any chunking, any bound: nothing lost or added, no piece over the bound or mid-character', () => {
    const token = fc.constantFrom('a', 'é', '€', '😀', '\r', '\n', '\r\n', 'xyz');
    fc.assert(
      fc.property(
        fc.array(token, { maxLength: 60 }),
        fc.integer({ min: 1, max: 9 }),
        fc.integer({ min: 4, max: 12 }),
        (tokens, size, max) => {
          const bytes = utf8.encode(tokens.join(''));
          const { raw, continued } = split(bytes, size, max);
          expect(Buffer.concat(raw).equals(Buffer.from(bytes))).toBe(true);
          for (const [i, b] of raw.entries()) {
            expect(b.length).toBeGreaterThan(0);
            expect(b.length).toBeLessThanOrEqual(max);
            expect(() => strict.decode(b)).not.toThrow();
            const next = raw[i + 1];
            // A piece that does not end its line is followed by the rest of it.
            if (b[b.length - 1] !== 0x0a && next !== undefined) {
              expect(continued[i + 1]).toBe(true);
              expect(b[b.length - 1] === 0x0d && next[0] === 0x0a).toBe(false);
            }
            if (b[b.length - 1] === 0x0a && next !== undefined) expect(continued[i + 1]).toBe(false);
          }
        },
      ),
    );
  });

  test('a bound below one byte is refused', () => {
    expect(() => lineSplitter(() => undefined, 0)).toThrow(RangeError);
  });
});
