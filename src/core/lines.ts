// Lines of a byte stream as it comes (an evaluator's stderr, a host's output): whole lines passed
// on as they end, with a bound on what is held, so a program printing one endless line cannot make
// this process hold more than one piece of it.
import { concatBytes } from './bytes.js';

/** The most a line splitter holds: a longer line is passed on in pieces of at most this size. */
export const LINE_PIECE_MAX = 64 * 1024;

/** Receives a line (or a piece of one); `continued` when an earlier piece of its line came first. */
export type LineSink = (bytes: Uint8Array, continued: boolean) => void;

/** A stream of chunks cut into lines (see lineSplitter). */
export interface LineSplitter {
  /** Takes the next chunk; passes on every line it ends. */
  readonly write: (chunk: Uint8Array) => void;
  /** Passes on what is held of an unfinished last line (no `\n`), and starts over. */
  readonly end: () => void;
}

/**
 * Cuts the chunks written into lines, whatever the chunking: each line is passed to `sink` once
 * it ends, with its `\n` (and its `\r`, when `\r\n` ends it). A line longer than `max` bytes is
 * passed on in pieces of at most `max` bytes as it comes, its last piece ending with the `\n`;
 * a piece is not cut inside a UTF-8 sequence or between a `\r` and what follows (so neither is
 * split across two pieces) unless the piece would be empty. Bytes given are copied: the caller
 * may reuse its chunks.
 */
export function lineSplitter(sink: LineSink, max = LINE_PIECE_MAX): LineSplitter {
  if (!Number.isInteger(max) || max < 1)
    throw new RangeError(`a line piece must be at least 1 byte, not ${max}`);
  let held: Uint8Array[] = [];
  let heldBytes = 0;
  let continued = false;
  const pass = (bytes: Uint8Array, next: boolean): void => {
    const was = continued;
    continued = next;
    sink(bytes, was);
  };
  /** `bytes` of the current line; `ends` when its last byte is the line's `\n`. */
  const take = (bytes: Uint8Array, ends: boolean): void => {
    while (heldBytes + bytes.length > max) {
      const room = max - heldBytes;
      const piece = concatBytes([...held, bytes.subarray(0, room)]);
      const cut = pieceEnd(piece);
      pass(piece.subarray(0, cut), true);
      held = cut < piece.length ? [piece.slice(cut)] : [];
      heldBytes = piece.length - cut;
      bytes = bytes.subarray(room);
    }
    if (ends) {
      pass(held.length === 0 ? bytes.slice() : concatBytes([...held, bytes]), false);
      held = [];
      heldBytes = 0;
    } else if (bytes.length > 0) {
      held.push(bytes.slice());
      heldBytes += bytes.length;
    }
  };
  return {
    write(chunk) {
      for (let start = 0; start < chunk.length;) {
        const nl = chunk.indexOf(0x0a, start);
        const stop = nl === -1 ? chunk.length : nl + 1;
        take(chunk.subarray(start, stop), nl !== -1);
        start = stop;
      }
    },
    end() {
      if (heldBytes > 0) pass(concatBytes(held), false);
      held = [];
      heldBytes = 0;
      continued = false;
    },
  };
}

/**
 * Where a full piece is cut: before an unfinished UTF-8 sequence at its end, else before a final
 * `\r` (whose `\n` may follow); its whole length when that would leave nothing.
 */
function pieceEnd(piece: Uint8Array): number {
  const n = piece.length;
  // The last lead byte among the last four, and how many bytes its sequence needs.
  for (let i = n - 1; i >= Math.max(0, n - 4); i--) {
    const b = piece[i] as number;
    if ((b & 0xc0) === 0x80) continue; // a continuation byte: look further back
    const need = b >= 0xf0 && b < 0xf8 ? 4 : b >= 0xe0 && b < 0xf0 ? 3 : b >= 0xc0 && b < 0xe0 ? 2 : 1;
    if (n - i < need && i > 0) return i;
    break;
  }
  return piece[n - 1] === 0x0d && n > 1 ? n - 1 : n;
}
