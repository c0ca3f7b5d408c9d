// Writing a .drv as Nix does, and splicing one from a new head and a tail kept as written.
import { NixPlanError } from '../errors.js';
import { allocBytes } from '../wire.js';
import {
  BACKSLASH,
  COMMA,
  DERIVE,
  DRV_WITH_VERSION,
  ESCAPE,
  LBRACKET,
  LPAREN,
  QUOTE,
  RBRACKET,
  RPAREN,
  SPECIAL,
} from './aterm.js';
import type { Derivation, DerivationHead, DerivationInput, DerivationLayout } from './types.js';

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
  /** `[` item `,` item … `]`: ATerm's list, each item written by `item`. */
  list<T>(items: readonly T[], item: (value: T) => void): void {
    this.byte(LBRACKET);
    for (let n = 0; n < items.length; n++) {
      if (n > 0) this.byte(COMMA);
      item(items[n] as T);
    }
    this.byte(RBRACKET);
  }
  /** A list of verbatim strings (written per input derivation: no closure per call). */
  rawList(items: readonly string[], field: string): void {
    this.byte(LBRACKET);
    for (let n = 0; n < items.length; n++) {
      if (n > 0) this.byte(COMMA);
      this.raw(items[n] as string, field);
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

function inputDrvsBound(inputDrvs: readonly DerivationInput[]): number {
  let size = 2 + inputDrvs.length;
  for (const i of inputDrvs) {
    size += 5 + i.path.length + rawListBound(i.outputs);
    if (i.dynamicOutputs !== undefined) size += 3 + i.dynamicOutputs.length;
  }
  return size;
}

function writeInputDrvs(w: Writer, inputDrvs: readonly DerivationInput[]): void {
  w.list(inputDrvs, (i) => {
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
  });
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
  w.list(drv.args, (a) => w.escaped(a));
  w.byte(COMMA);
  w.list(drv.env, (e) => {
    w.byte(LPAREN);
    w.escaped(e.key);
    w.byte(COMMA);
    layout?.envValues.push(w.pos + 1);
    w.escaped(e.value);
    w.byte(RPAREN);
  });
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
  head: DerivationHead,
  tail: readonly Uint8Array[],
  layout?: DerivationLayout,
): Uint8Array {
  const written = head;
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
  w.list(drv.outputs, (o) => {
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
  });
  w.byte(COMMA);
  if (layout !== undefined) layout.inputDrvsStart = w.pos;
  writeInputDrvs(w, drv.inputDrvs);
  if (layout !== undefined) layout.inputDrvsEnd = w.pos;
  w.byte(COMMA);
  w.rawList(drv.inputSrcs, 'input source');
  w.byte(COMMA);
  w.rawBytes(drv.system, 'system');
}
