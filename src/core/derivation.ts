// Derivations (.drv files) in Nix's ATerm text: a byte-exact parser and serialiser working on bytes.
//
// Nix writes two kinds of string fields. Store paths, output names, hash fields, the system and
// the output-name lists are written verbatim between quotes ("unquoted" in Nix's source); the
// builder, the arguments and the environment are escaped (`"` `\` LF CR TAB, nothing else). The
// parser keeps verbatim fields verbatim and only accepts the canonical form of escaped ones, so
// whenever `parseDerivation(b)` succeeds, `serialiseDerivation` gives back exactly `b`.
import { MalformedError, NixPlanError } from './errors.js';
import { nameOf } from './store-path.js';
import { allocBytes, compareBytes } from './wire.js';

export { compareBytes } from './wire.js';

/** One output: `("name","path","hashAlgo","hash")`. */
export interface DerivationOutput {
  readonly name: string; // "out", "dev", …
  path: string; // "" when masked or deferred (floating CA)
  hashAlgo: string; // as written: "", "sha256", "r:sha256", "text:sha256", …
  hash: string; // as written: hex for fixed outputs, "" otherwise
}

/** One input derivation: `("path",["out",…])`, or the dynamic-derivation form. */
export interface DerivationInput {
  readonly path: string; // a .drv store path
  outputs: string[]; // sorted output names
  /**
   * DrvWithVersion only: the raw ATerm of dynamic outputs, kept verbatim. When present the input
   * is written `("path",([outputs],<dynamicOutputs>))`; the bytes are the `[("out",[…]),…]` list.
   */
  dynamicOutputs?: Uint8Array;
}

/** One environment variable; keys and values are arbitrary bytes. */
export interface EnvEntry {
  key: Uint8Array;
  value: Uint8Array;
}

/**
 * A parsed derivation. Byte fields returned by `parseDerivation` may be views into the parsed
 * buffer (no copy), so treat them as read-only and do not reuse that buffer while they live.
 */
export interface Derivation {
  /** undefined: `Derive(…)`; otherwise the version of `DrvWithVersion("<v>", …)`. */
  version: string | undefined;
  outputs: DerivationOutput[]; // sorted by name
  inputDrvs: DerivationInput[]; // sorted by path
  inputSrcs: string[]; // sorted
  system: Uint8Array;
  builder: Uint8Array;
  args: Uint8Array[];
  env: EnvEntry[]; // sorted by key bytes
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const LBRACKET = 0x5b;
const RBRACKET = 0x5d;
const LPAREN = 0x28;
const RPAREN = 0x29;

/** Byte a character stands for after a backslash; 0 for "not an escape Nix writes". */
const UNESCAPE = new Uint8Array(256);
UNESCAPE[0x6e] = 0x0a; // \n
UNESCAPE[0x72] = 0x0d; // \r
UNESCAPE[0x74] = 0x09; // \t
UNESCAPE[QUOTE] = QUOTE;
UNESCAPE[BACKSLASH] = BACKSLASH;

/** Character written after a backslash for a byte that must be escaped; 0 for "write as is". */
const ESCAPE = new Uint8Array(256);
ESCAPE[0x0a] = 0x6e;
ESCAPE[0x0d] = 0x72;
ESCAPE[0x09] = 0x74;
ESCAPE[QUOTE] = QUOTE;
ESCAPE[BACKSLASH] = BACKSLASH;

/** 1 for the bytes that end a run of plain bytes in an escaped string (the escapable ones). */
const SPECIAL = new Uint8Array(256).map((_, i) => (ESCAPE[i] === 0 ? 0 : 1));

const DERIVE = ascii('Derive(');
const DRV_WITH_VERSION = ascii('DrvWithVersion(');
/** Nesting allowed in dynamic outputs (`drv^out^out^…`); bounds recursion on hostile input. */
const MAX_DYNAMIC_DEPTH = 64;

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

function ascii(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
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
export function parseDerivation(bytes: Uint8Array): Derivation {
  const p = new Parser(bytes);
  const { version, outputs, inputDrvs, inputSrcs, system } = parseUpToSystem(p);
  const env: EnvEntry[] = [];
  const { builder, args } = parseTail(
    p,
    () => p.escaped(),
    (key, value) => env.push({ key, value }),
  );
  return { version, outputs, inputDrvs, inputSrcs, system, builder, args, env };
}

/**
 * Where the escaped fields after a .drv's system are, as written: for callers that rewrite them
 * in place and splice them into a new head (relocation), instead of unescaping and escaping again.
 */
export interface DerivationTail {
  /** Offset of the comma after the system: bytes [start, length) are `,"builder",[args],[env])`. */
  readonly start: number;
  /** The environment's keys, unescaped (views into the input when they hold no escapes). */
  readonly keys: Uint8Array[];
  /** For each key, the offsets where its value's contents begin and end (between its quotes). */
  readonly values: number[];
}

/**
 * Parses and validates a .drv exactly as `parseDerivation` does (throwing the same errors), but
 * leaves the builder, arguments and environment values escaped in place and says where they are.
 */
export function parseDerivationSpans(bytes: Uint8Array): { head: DerivationHead; tail: DerivationTail } {
  const p = new Parser(bytes);
  const head = parseUpToSystem(p);
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

/** The fields of a .drv before its builder. */
export type DerivationHead = Pick<Derivation, 'version' | 'outputs' | 'inputDrvs' | 'inputSrcs' | 'system'>;

function parseUpToSystem(p: Parser): DerivationHead {
  const { version, outputs } = parseHead(p);
  p.expect(COMMA);

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

/** `Derive(` or `DrvWithVersion("v",`, then the outputs list. */
function parseHead(p: Parser): Pick<Derivation, 'version' | 'outputs'> {
  let version: string | undefined;
  if (p.startsWith(DERIVE)) {
    p.pos += DERIVE.length;
  } else if (p.startsWith(DRV_WITH_VERSION)) {
    p.pos += DRV_WITH_VERSION.length;
    version = p.rawString();
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

/**
 * Serialises into a reused scratch buffer that is at least as big as the result can be (every
 * escaped byte at most doubles), in one pass that also validates the verbatim fields; the result
 * is then copied out at its exact size. (An exact size pass first cost as much as the writing.)
 */
const MAX_SCRATCH = 1024 * 1024;

class Writer {
  /** Reused by every call (serialisation is synchronous); up to MAX_SCRATCH bytes. */
  private static scratch = new Uint8Array(64 * 1024);
  readonly out: Uint8Array;
  pos = 0;
  constructor(bound: number) {
    // A huge drv gets a buffer of its own, so the scratch buffer kept between calls stays small.
    if (bound > MAX_SCRATCH) this.out = new Uint8Array(bound);
    else {
      if (Writer.scratch.length < bound) Writer.scratch = new Uint8Array(MAX_SCRATCH);
      this.out = Writer.scratch;
    }
  }
  /**
   * The bytes written, copied out of the scratch buffer: into Node's pool when `shortLived` (a
   * slice of the pool keeps all of it alive), otherwise into a buffer of their own.
   */
  result(shortLived: boolean): Uint8Array {
    const out = shortLived ? allocBytes(this.pos) : new Uint8Array(this.pos);
    out.set(this.out.subarray(0, this.pos));
    return out;
  }
  byte(b: number): void {
    this.out[this.pos++] = b;
  }
  bytes(b: Uint8Array): void {
    this.out.set(b, this.pos);
    this.pos += b.length;
  }
  raw(s: string, field: string): void {
    const out = this.out;
    let w = this.pos;
    out[w++] = QUOTE;
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (c > 0xff || c === QUOTE)
        throw new NixPlanError(
          'malformed',
          `derivation field ${field} '${s}' has a character Nix cannot write there (a quote or non-latin-1)`,
        );
      out[w++] = c;
    }
    out[w++] = QUOTE;
    this.pos = w;
  }
  rawBytes(b: Uint8Array, field: string): void {
    if (b.includes(QUOTE))
      throw new NixPlanError(
        'malformed',
        `derivation field ${field} contains a quote, which Nix cannot write there`,
      );
    this.out[this.pos++] = QUOTE;
    this.bytes(b);
    this.out[this.pos++] = QUOTE;
  }
  escaped(b: Uint8Array): void {
    const out = this.out;
    const n = b.length;
    let w = this.pos;
    out[w++] = QUOTE;
    let i = 0;
    for (;;) {
      // Copy each run of plain bytes at once (by hand when short: cheaper than a subarray),
      // then write the escape that ends it.
      const run = i;
      while (i < n && SPECIAL[b[i] as number] === 0) i++;
      if (i - run > 16) out.set(b.subarray(run, i), w);
      else for (let k = run; k < i; k++) out[w + k - run] = b[k] as number;
      w += i - run;
      if (i >= n) break;
      out[w++] = BACKSLASH;
      out[w++] = ESCAPE[b[i++] as number] as number;
    }
    out[w++] = QUOTE;
    this.pos = w;
  }
  rawList(items: readonly string[], field: string): void {
    this.byte(LBRACKET);
    for (let i = 0; i < items.length; i++) {
      if (i > 0) this.byte(COMMA);
      this.raw(items[i] as string, field);
    }
    this.byte(RBRACKET);
  }
}

/** Most bytes a verbatim list of `items` can take (exact: verbatim fields are not escaped). */
function rawListBound(items: readonly string[]): number {
  let n = 2 + items.length;
  for (const s of items) n += s.length + 2;
  return n;
}

/**
 * Where the parts of a serialised derivation are, recorded by `serialiseDerivation` when asked:
 * enough to hash or write variants of it (inputs replaced by modulo hashes, output paths filled
 * in) by splicing instead of serialising it again.
 */
export interface DerivationLayout {
  /** Offset of the `[` opening the input derivations, and of the byte after their `]`. */
  inputDrvsStart: number;
  inputDrvsEnd: number;
  /** For each output, in order: the offset just after the opening quote of its path. */
  outputPaths: number[];
  /** For each environment entry, in order: the offset just after the opening quote of its value. */
  envValues: number[];
}

function inputDrvsBound(inputDrvs: readonly DerivationInput[]): number {
  let size = 2 + inputDrvs.length;
  for (const i of inputDrvs) {
    size += 5 + i.path.length + rawListBound(i.outputs);
    if (i.dynamicOutputs !== undefined) size += 3 + i.dynamicOutputs.length;
  }
  return size;
}

function writeInputDrvs(w: Writer, inputDrvs: readonly DerivationInput[]): void {
  w.byte(LBRACKET);
  for (let n = 0; n < inputDrvs.length; n++) {
    const i = inputDrvs[n] as DerivationInput;
    if (n > 0) w.byte(COMMA);
    w.byte(LPAREN);
    w.raw(i.path, 'input derivation');
    w.byte(COMMA);
    if (i.dynamicOutputs !== undefined) {
      w.byte(LPAREN);
      w.rawList(i.outputs, 'output name');
      w.byte(COMMA);
      w.bytes(i.dynamicOutputs);
      w.byte(RPAREN);
    } else w.rawList(i.outputs, 'output name');
    w.byte(RPAREN);
  }
  w.byte(RBRACKET);
}

/**
 * The input derivations list alone, `[("path",["out"]),…]`, exactly as `serialiseDerivation`
 * writes it (hashDerivationModulo writes modulo hashes there instead of paths).
 */
export function serialiseInputDrvs(inputDrvs: readonly DerivationInput[]): Uint8Array {
  const w = new Writer(inputDrvsBound(inputDrvs));
  writeInputDrvs(w, inputDrvs);
  return w.result(true);
}

/**
 * Writes a derivation as Nix does. The inverse of `parseDerivation`: for any bytes that parse,
 * `serialiseDerivation(parseDerivation(b))` equals `b`. Lists are written in the order given;
 * callers that build or edit a derivation must keep them sorted (see the field comments). When
 * `layout` is given, the offsets of the parts are recorded in it.
 */
export function serialiseDerivation(drv: Derivation, layout?: DerivationLayout): Uint8Array {
  // An upper bound of the size, part by part with the comma after it; escaped strings count
  // twice (every byte could need escaping).
  let bound = headBound(drv);
  bound += 2 * drv.builder.length + 3;
  bound += 3;
  for (const a of drv.args) bound += 2 * a.length + 3;
  bound += 3;
  for (const e of drv.env) bound += 2 * (e.key.length + e.value.length) + 8;

  const w = new Writer(bound);
  writeHead(w, drv, layout);
  w.byte(COMMA);
  w.escaped(drv.builder);
  w.byte(COMMA);
  w.byte(LBRACKET);
  for (let n = 0; n < drv.args.length; n++) {
    if (n > 0) w.byte(COMMA);
    w.escaped(drv.args[n] as Uint8Array);
  }
  w.byte(RBRACKET);
  w.byte(COMMA);
  w.byte(LBRACKET);
  for (let n = 0; n < drv.env.length; n++) {
    const e = drv.env[n] as EnvEntry;
    if (n > 0) w.byte(COMMA);
    w.byte(LPAREN);
    w.escaped(e.key);
    w.byte(COMMA);
    layout?.envValues.push(w.pos + 1);
    w.escaped(e.value);
    w.byte(RPAREN);
  }
  w.byte(RBRACKET);
  w.byte(RPAREN);
  if (w.pos > bound)
    throw new NixPlanError('internal', `derivation size bound exceeded: ${w.pos} > ${bound}`);
  return w.result(false);
}

/**
 * A derivation written from its head (outputs, inputs and system, serialised as
 * `serialiseDerivation` does) followed by `tail`, the bytes after the system exactly as they are to
 * be written (`,"builder",[args],[env])`, escaped), given in pieces. `layout` gets the head's
 * offsets, and in `envValues` the offset where each piece but the last ends. The caller vouches
 * for the tail: it comes from `parseDerivationSpans`, with only store hashes replaced.
 */
export function spliceDerivation(
  head: Omit<DerivationHead, 'version'>,
  tail: readonly Uint8Array[],
  layout?: DerivationLayout,
): Uint8Array {
  const written: DerivationHead = { ...head, version: undefined };
  let bound = headBound(written);
  for (const piece of tail) bound += piece.length;
  const w = new Writer(bound);
  writeHead(w, written, layout);
  for (let n = 0; n < tail.length; n++) {
    if (n > 0) layout?.envValues.push(w.pos);
    w.bytes(tail[n] as Uint8Array);
  }
  return w.result(false);
}

/** Most bytes the head of `drv` takes (up to its system's closing quote), and the comma after it. */
function headBound(drv: DerivationHead): number {
  let bound = DRV_WITH_VERSION.length + (drv.version?.length ?? 0) + 3;
  bound += 3;
  for (const o of drv.outputs)
    bound += 14 + o.name.length + o.path.length + o.hashAlgo.length + o.hash.length;
  bound += inputDrvsBound(drv.inputDrvs) + 1;
  bound += rawListBound(drv.inputSrcs) + 1;
  return bound + drv.system.length + 3;
}

/** `Derive(` (or `DrvWithVersion("v",`), the outputs, inputs and the system. */
function writeHead(w: Writer, drv: DerivationHead, layout: DerivationLayout | undefined): void {
  if (drv.version === undefined) w.bytes(DERIVE);
  else {
    w.bytes(DRV_WITH_VERSION);
    w.raw(drv.version, 'version');
    w.byte(COMMA);
  }
  w.byte(LBRACKET);
  for (let n = 0; n < drv.outputs.length; n++) {
    const o = drv.outputs[n] as DerivationOutput;
    if (n > 0) w.byte(COMMA);
    w.byte(LPAREN);
    w.raw(o.name, 'output name');
    w.byte(COMMA);
    layout?.outputPaths.push(w.pos + 1);
    w.raw(o.path, 'output path');
    w.byte(COMMA);
    w.raw(o.hashAlgo, 'hashAlgo');
    w.byte(COMMA);
    w.raw(o.hash, 'hash');
    w.byte(RPAREN);
  }
  w.byte(RBRACKET);
  w.byte(COMMA);
  if (layout !== undefined) layout.inputDrvsStart = w.pos;
  writeInputDrvs(w, drv.inputDrvs);
  if (layout !== undefined) layout.inputDrvsEnd = w.pos;
  w.byte(COMMA);
  w.rawList(drv.inputSrcs, 'input source');
  w.byte(COMMA);
  w.rawBytes(drv.system, 'system');
}

const encoder = new TextEncoder();

/** The value of environment variable `key` (UTF-8 encoded for the comparison), if set. */
export function envGet(drv: Derivation, key: string): Uint8Array | undefined {
  const k = encoder.encode(key);
  for (const e of drv.env) if (compareBytes(e.key, k) === 0) return e.value;
  return undefined;
}

/** What a .drv file references: its input sources and input derivations, sorted, without duplicates. */
export function derivationReferences(drv: Pick<Derivation, 'inputSrcs' | 'inputDrvs'>): string[] {
  const srcs = drv.inputSrcs;
  const drvs = drv.inputDrvs;
  let sorted = true;
  for (let i = 1; sorted && i < srcs.length; i++) sorted = srcs[i - 1]! < srcs[i]!;
  for (let i = 1; sorted && i < drvs.length; i++) sorted = drvs[i - 1]!.path < drvs[i]!.path;
  if (!sorted) {
    const refs = new Set<string>(srcs);
    for (const i of drvs) refs.add(i.path);
    return [...refs].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  }
  // Both lists are sorted (as in every parsed .drv): merge them, dropping a path in both.
  const out: string[] = [];
  let i = 0;
  let j = 0;
  while (i < srcs.length || j < drvs.length) {
    const a = srcs[i];
    const b = drvs[j]?.path;
    const next = b === undefined || (a !== undefined && a <= b) ? a! : b;
    if (next === a) i++;
    if (next === b) j++;
    out.push(next);
  }
  return out;
}

/** The derivation name of a .drv store path: its name without the `.drv` extension. */
export function drvName(drvPath: string): string {
  const name = nameOf(drvPath);
  if (!name.endsWith('.drv') || name.length <= 4)
    throw new NixPlanError(
      'malformed',
      `'${drvPath}' is not a derivation path (its name does not end in .drv)`,
    );
  return name.slice(0, -4);
}
