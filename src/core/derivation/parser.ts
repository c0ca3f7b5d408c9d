// The cursor a .drv is parsed with: reads ATerm's strings (verbatim or escaped), lists and
// dynamic-output trees from the bytes, checks order and canonical escapes, and names the byte
// offset in every error. What is read in which order is parse.ts.
import { MalformedError } from '../errors.js';
import { allocBytes } from '../bytes.js';
import {
  BACKSLASH,
  COMMA,
  LBRACKET,
  LPAREN,
  MAX_DYNAMIC_DEPTH,
  QUOTE,
  RBRACKET,
  RPAREN,
  SPECIAL,
  UNESCAPE,
} from './aterm.js';

/**
 * Verbatim fields up to this long are made once and shared: output names (`out`, `dev`, `lib`…,
 * one per input derivation of every .drv) and empty hash fields. Made anew, each was a string of
 * its own to allocate, and every comparison of two (sorting and matching output names) compared
 * their characters instead of finding them the same string.
 */
const SHORT_UP_TO = 3;
const SHORT = new Map<number, string>();
/** At most this many are kept: a hostile .drv could name thousands of different outputs. */
const SHORT_KEPT = 4096;

function shortString(bytes: Uint8Array, start: number, end: number): string {
  let key = end - start; // the length first: the keys of each length are a range of their own
  for (let i = start; i < end; i++) key = (key << 8) | bytes[i]!;
  let s = SHORT.get(key);
  if (s === undefined) {
    s = String.fromCharCode(...bytes.subarray(start, end));
    if (SHORT.size < SHORT_KEPT) SHORT.set(key, s);
  }
  return s;
}

/** Cursor over the bytes of one .drv; every error names the offset where it happened. */
export class Parser {
  pos = 0;
  /** Start of the verbatim field `rawEnd` last read. */
  private rawStart = 0;
  /** A plain Uint8Array view (not a Buffer), so field views are plain too and access stays monomorphic. */
  private readonly bytes: Uint8Array;
  private readonly text: Buffer;

  constructor(input: Uint8Array) {
    this.bytes = new Uint8Array(input.buffer, input.byteOffset, input.byteLength);
    this.text = Buffer.from(input.buffer, input.byteOffset, input.byteLength);
  }

  fail(detail: string, at = this.pos): never {
    throw new MalformedError('derivation', at, detail);
  }

  private describe(at: number): string {
    const b = this.bytes[at];
    if (b === undefined) return 'the end of the input';
    return b >= 0x20 && b < 0x7f
      ? `'${String.fromCharCode(b)}'`
      : `byte 0x${b.toString(16).padStart(2, '0')}`;
  }

  expect(byte: number): void {
    if (this.bytes[this.pos] !== byte)
      this.fail(`expected '${String.fromCharCode(byte)}' but found ${this.describe(this.pos)}`);
    this.pos++;
  }

  peek(): number | undefined {
    return this.bytes[this.pos];
  }

  /** The bytes parsed (a plain Uint8Array over the input's bytes: the same offsets). */
  get input(): Uint8Array {
    return this.bytes;
  }

  get length(): number {
    return this.bytes.length;
  }

  startsWith(lit: Uint8Array): boolean {
    if (this.pos + lit.length > this.bytes.length) return false;
    for (let i = 0; i < lit.length; i++) if (this.bytes[this.pos + i] !== lit[i]) return false;
    return true;
  }

  /** A verbatim field: the bytes up to the next quote, unchanged (Nix never escapes these). Returns its end. */
  private rawEnd(): number {
    this.expect(QUOTE);
    const start = this.pos;
    const end = this.bytes.indexOf(QUOTE, start);
    if (end < 0) this.fail('unterminated string', this.bytes.length);
    this.rawStart = start;
    this.pos = end + 1;
    return end;
  }

  /** A verbatim field as a string; latin-1 so that every byte maps to one code unit and back. */
  rawString(): string {
    const end = this.rawEnd();
    const start = this.rawStart;
    if (end - start <= SHORT_UP_TO) return shortString(this.bytes, start, end);
    return this.text.toString('latin1', start, end);
  }

  rawBytes(): Uint8Array {
    const end = this.rawEnd();
    return this.bytes.subarray(this.rawStart, end);
  }

  /** An escaped field. Only Nix's canonical escapes are accepted, so the result re-serialises exactly. */
  escaped(): Uint8Array {
    const start = this.pos + 1;
    const escapes = this.skipEscaped();
    const end = this.pos - 1;
    const bytes = this.bytes;
    if (escapes === 0) return bytes.subarray(start, end);
    const out = allocBytes(end - start - escapes); // every byte is written below
    let o = 0;
    for (let j = start; j < end; j++) {
      let b = bytes[j] as number;
      if (b === BACKSLASH) b = UNESCAPE[bytes[++j] as number] as number;
      out[o++] = b;
    }
    return out;
  }

  /**
   * Reads past an escaped field, validating it as `escaped` does, without unescaping it; returns
   * how many escapes it holds. Its contents as written are the bytes before the closing quote
   * (`this.pos - 1`), from just after the opening one.
   */
  skipEscaped(): number {
    this.expect(QUOTE);
    const bytes = this.bytes;
    const n = bytes.length;
    let escapes = 0;
    let i = this.pos;
    for (;;) {
      while (i < n && SPECIAL[bytes[i] as number] === 0) i++;
      const b = bytes[i];
      if (b === undefined) this.fail('unterminated string', i);
      if (b === QUOTE) break;
      if (b === BACKSLASH) {
        const next = bytes[i + 1];
        if (next === undefined) this.fail('unterminated string', i + 1);
        if (UNESCAPE[next] === 0)
          this.fail(
            `unknown escape '\\${String.fromCharCode(next)}' (Nix writes only \\" \\\\ \\n \\r \\t)`,
            i,
          );
        escapes++;
        i += 2;
        continue;
      }
      this.fail(`raw control byte 0x${b.toString(16)} that Nix would have escaped`, i);
    }
    this.pos = i + 1;
    return escapes;
  }

  /** `[` item (`,` item)* `]`, calling `item` for each. */
  list(item: () => void): void {
    this.expect(LBRACKET);
    if (this.peek() === RBRACKET) {
      this.pos++;
      return;
    }
    for (;;) {
      item();
      const b = this.peek();
      if (b === RBRACKET) {
        this.pos++;
        return;
      }
      if (b !== COMMA) this.fail(`expected ',' or ']' but found ${this.describe(this.pos)}`);
      this.pos++;
    }
  }

  /** A sorted list of verbatim strings (output names). */
  sortedRawStrings(what: string): string[] {
    const out: string[] = [];
    this.list(() => {
      const at = this.pos;
      const s = this.rawString();
      this.checkOrder(out[out.length - 1], s, what, at);
      out.push(s);
    });
    return out;
  }

  checkOrder(prev: string | undefined, next: string, what: string, at: number): void {
    if (prev !== undefined && !(prev < next))
      this.fail(prev === next ? `duplicate ${what} '${next}'` : `${what} '${next}' is out of order`, at);
  }

  /** Skips over a dynamic-outputs child map, validating its shape, and returns its bytes. */
  dynamicOutputs(depth: number): Uint8Array {
    if (depth > MAX_DYNAMIC_DEPTH) this.fail(`dynamic outputs nested deeper than ${MAX_DYNAMIC_DEPTH}`);
    const start = this.pos;
    this.list(() => {
      this.expect(LPAREN);
      this.rawString();
      this.expect(COMMA);
      this.dynamicNode(depth + 1);
      this.expect(RPAREN);
    });
    return this.bytes.slice(start, this.pos);
  }

  /** `[names]` or `([names],childMap)`. */
  dynamicNode(depth: number): void {
    if (this.peek() === LPAREN) {
      this.pos++;
      this.sortedRawStrings('output name');
      this.expect(COMMA);
      this.dynamicOutputs(depth);
      this.expect(RPAREN);
    } else {
      this.sortedRawStrings('output name');
    }
  }
}
