// Parsing a .drv: byte-exact, on bytes. Verbatim fields stay verbatim and only the canonical form
// of escaped ones is accepted, so whenever `parseDerivation(b)` succeeds, `serialiseDerivation`
// (write.ts) gives back exactly `b`.
import { MalformedError } from '../errors.js';
import { allocBytes, compareBytes } from '../bytes.js';
import {
  BACKSLASH,
  COMMA,
  DERIVE,
  DRV_WITH_VERSION,
  LBRACKET,
  LPAREN,
  MAX_DYNAMIC_DEPTH,
  QUOTE,
  RBRACKET,
  RPAREN,
  SPECIAL,
  UNESCAPE,
} from './aterm.js';
import type {
  Derivation,
  DerivationHead,
  DerivationInput,
  DerivationLayout,
  DerivationOutput,
  DerivationTail,
  EnvEntry,
} from './types.js';

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
class Parser {
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

/**
 * Parses a .drv file. Accepts exactly what Nix writes (`Derive(…)` or `DrvWithVersion("v",…)`,
 * sorted lists, canonical escapes, nothing after the closing parenthesis); anything else throws a
 * MalformedError naming the byte offset.
 */
export function parseDerivation(bytes: Uint8Array, spans?: DerivationSpans): Derivation {
  const p = new Parser(bytes);
  const { version, outputs, inputDrvs, inputSrcs, system } = parseUpToSystem(p, spans);
  const env: EnvEntry[] = [];
  let valueAt = 0;
  const { builder, args } = parseTail(
    p,
    () => {
      valueAt = p.pos + 1;
      return p.escaped();
    },
    (key, value) => {
      env.push({ key, value });
      spans?.envValues.push(valueAt, p.pos - 1);
    },
  );
  return { version, outputs, inputDrvs, inputSrcs, system, builder, args, env };
}

/**
 * Where the parts of a .drv are in its bytes, as `parseDerivation` finds them: each output's path
 * and the input derivations (as in a `DerivationLayout`), and for each environment entry where its
 * value's contents (escaped, between its quotes) begin and end.
 */
export interface DerivationSpans extends Pick<
  DerivationLayout,
  'outputPaths' | 'inputDrvsStart' | 'inputDrvsEnd'
> {
  envValues: number[];
}

/**
 * Parses and validates a .drv exactly as `parseDerivation` does (throwing the same errors), but
 * leaves the builder, arguments and environment values escaped in place and says where they are.
 */
export function parseDerivationSpans(
  bytes: Uint8Array,
  layout?: Pick<DerivationLayout, 'outputPaths' | 'inputDrvsStart' | 'inputDrvsEnd'>,
): { head: DerivationHead; tail: DerivationTail } {
  const p = new Parser(bytes);
  const head = parseUpToSystem(p, layout);
  const start = p.pos;
  const keys: Uint8Array[] = [];
  const values: number[] = [];
  parseTail(
    p,
    () => {
      const at = p.pos + 1;
      p.skipEscaped();
      return at;
    },
    (key, valueAt) => {
      keys.push(key);
      values.push(valueAt, p.pos - 1); // the value's closing quote: entry() runs right after it
    },
  );
  return { head, tail: { start, keys, values } };
}

/**
 * The part of a .drv after its system: `,"builder",[args],[env])` and the end of the input.
 * `field` reads each escaped field but the keys; `entry` gets each environment entry, called right
 * after its value is read. Keys are checked to be strictly sorted.
 */
function parseTail<T>(
  p: Parser,
  field: () => T,
  entry: (key: Uint8Array, value: T) => void,
): { builder: T; args: T[] } {
  p.expect(COMMA);
  const builder = field();
  p.expect(COMMA);

  const args: T[] = [];
  p.list(() => args.push(field()));
  p.expect(COMMA);

  let prev: Uint8Array | undefined;
  p.list(() => {
    p.expect(LPAREN);
    const at = p.pos;
    const key = p.escaped();
    if (prev !== undefined) {
      const c = compareBytes(prev, key);
      if (c >= 0)
        p.fail(c === 0 ? 'duplicate environment variable' : 'environment variable out of order', at);
    }
    prev = key;
    p.expect(COMMA);
    entry(key, field());
    p.expect(RPAREN);
  });
  p.expect(RPAREN);
  if (p.pos !== p.length) p.fail('unexpected bytes after the end of the derivation');
  return { builder, args };
}

/** The fields up to the system; `layout` (when given) gets where the outputs' paths and the input derivations are. */
function parseUpToSystem(
  p: Parser,
  layout?: Pick<DerivationLayout, 'outputPaths' | 'inputDrvsStart' | 'inputDrvsEnd'>,
): DerivationHead {
  const { version, outputs } = parseHead(p, layout?.outputPaths);
  p.expect(COMMA);
  if (layout !== undefined) layout.inputDrvsStart = p.pos;

  const inputDrvs: DerivationInput[] = [];
  p.list(() => {
    p.expect(LPAREN);
    const at = p.pos;
    const path = p.rawString();
    p.checkOrder(inputDrvs[inputDrvs.length - 1]?.path, path, 'input derivation', at);
    p.expect(COMMA);
    if (version !== undefined && p.peek() === LPAREN) {
      p.pos++;
      const outs = p.sortedRawStrings('output name');
      p.expect(COMMA);
      const dynamicOutputs = p.dynamicOutputs(1);
      p.expect(RPAREN);
      inputDrvs.push({ path, outputs: outs, dynamicOutputs });
    } else {
      inputDrvs.push({ path, outputs: p.sortedRawStrings('output name') });
    }
    p.expect(RPAREN);
  });
  if (layout !== undefined) layout.inputDrvsEnd = p.pos;
  p.expect(COMMA);

  const inputSrcs = p.sortedRawStrings('input source');
  p.expect(COMMA);
  const system = p.rawBytes();
  return { version, outputs, inputDrvs, inputSrcs, system };
}

/**
 * Parses only the start of a .drv file: its version and outputs, for callers that need nothing
 * else (the rest is neither read nor validated; `parseDerivation` validates everything).
 */
export function parseDerivationOutputs(bytes: Uint8Array): Pick<Derivation, 'version' | 'outputs'> {
  return parseHead(new Parser(bytes));
}

/** The only `DrvWithVersion` version Nix writes and reads (experimental dynamic derivations). */
export const DYNAMIC_DERIVATIONS_VERSION = 'xp-dyn-drv';

/** `Derive(` or `DrvWithVersion("v",`, then the outputs list (`outputPaths` gets where each path's text starts). */
function parseHead(p: Parser, outputPaths?: number[]): Pick<Derivation, 'version' | 'outputs'> {
  let version: string | undefined;
  if (p.startsWith(DERIVE)) {
    p.pos += DERIVE.length;
  } else if (p.startsWith(DRV_WITH_VERSION)) {
    p.pos += DRV_WITH_VERSION.length;
    const at = p.pos;
    version = p.rawString();
    // As Nix's parseDerivation: every other version is refused ("Unknown derivation ATerm format
    // version"), not read as if it were this one.
    if (version !== DYNAMIC_DERIVATIONS_VERSION)
      p.fail(
        `unknown derivation ATerm format version '${version}' (Nix reads only '${DYNAMIC_DERIVATIONS_VERSION}')`,
        at,
      );
    p.expect(COMMA);
  } else {
    p.fail("expected 'Derive(' or 'DrvWithVersion(' at the start of a derivation");
  }

  const outputs: DerivationOutput[] = [];
  p.list(() => {
    p.expect(LPAREN);
    const at = p.pos;
    const name = p.rawString();
    p.checkOrder(outputs[outputs.length - 1]?.name, name, 'output', at);
    p.expect(COMMA);
    outputPaths?.push(p.pos + 1);
    const path = p.rawString();
    p.expect(COMMA);
    const hashAlgo = p.rawString();
    p.expect(COMMA);
    const hash = p.rawString();
    p.expect(RPAREN);
    outputs.push({ name, path, hashAlgo, hash });
  });
  return { version, outputs };
}
