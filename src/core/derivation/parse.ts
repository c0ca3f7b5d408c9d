// Parsing a .drv: byte-exact, on bytes. Verbatim fields stay verbatim and only the canonical form
// of escaped ones is accepted, so whenever `parseDerivation(b)` succeeds, `serialiseDerivation`
// (write.ts) gives back exactly `b`.
import { compareBytes } from '../bytes.js';
import { isHashAlgo } from '../hash.js';
import { BACKSLASH, COMMA, DERIVE, DRV_WITH_VERSION, LPAREN, RPAREN, UNESCAPE } from './aterm.js';
import type {
  Derivation,
  DerivationHead,
  DerivationInput,
  DerivationHeadLayout,
  DerivationLayout,
  DerivationOutput,
  DerivationTail,
  EnvEntry,
} from './types.js';
import { Parser } from './parser.js';

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
    (value, key) => {
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
  layout?: DerivationHeadLayout,
): { head: DerivationHead; tail: DerivationTail } {
  const p = new Parser(bytes);
  const head = parseUpToSystem(p, layout);
  const start = p.pos;
  // Keys are left in place too (where each is, and its escapes): they are compared there, and
  // views of them are made only for a caller that asks (`SpansTail.keys`).
  const keySpans: number[] = [];
  const values: number[] = [];
  parseTail(
    p,
    () => {
      const at = p.pos + 1;
      p.skipEscaped();
      return at;
    },
    (valueAt) => {
      values.push(valueAt, p.pos - 1); // the value's closing quote: entry() runs right after it
    },
    keySpans,
  );
  return { head, tail: new SpansTail(p.input, start, keySpans, values) };
}

/** A `DerivationTail` whose keys are made (as `Parser.escaped` makes them) when first asked for. */
class SpansTail implements DerivationTail {
  private made: Uint8Array[] | undefined;

  constructor(
    private readonly bytes: Uint8Array,
    readonly start: number,
    readonly keySpans: readonly number[],
    readonly values: readonly number[],
  ) {}

  get keys(): readonly Uint8Array[] {
    if (this.made === undefined) {
      const s = this.keySpans;
      const keys: Uint8Array[] = [];
      for (let i = 0; i < s.length; i += 3) keys.push(unescapeSpan(this.bytes, s[i]!, s[i + 1]!, s[i + 2]!));
      this.made = keys;
    }
    return this.made;
  }
}

/** The unescaped contents of an escaped field written at [start, end) with `escapes` escapes (a view when none). */
function unescapeSpan(bytes: Uint8Array, start: number, end: number, escapes: number): Uint8Array {
  if (escapes === 0) return bytes.subarray(start, end);
  const out = new Uint8Array(end - start - escapes);
  let o = 0;
  for (let j = start; j < end; j++) {
    let b = bytes[j]!;
    if (b === BACKSLASH) b = UNESCAPE[bytes[++j]!]!;
    out[o++] = b;
  }
  return out;
}

/**
 * Byte order of the unescaped keys whose spans start at `a` and `b` in `spans` (start, end,
 * escapes): compared where they are written when neither holds an escape.
 */
function compareKeySpans(bytes: Uint8Array, spans: readonly number[], a: number, b: number): number {
  const aStart = spans[a]!;
  const aEnd = spans[a + 1]!;
  const bStart = spans[b]!;
  const bEnd = spans[b + 1]!;
  if (spans[a + 2]! !== 0 || spans[b + 2]! !== 0)
    return compareBytes(
      unescapeSpan(bytes, aStart, aEnd, spans[a + 2]!),
      unescapeSpan(bytes, bStart, bEnd, spans[b + 2]!),
    );
  const n = Math.min(aEnd - aStart, bEnd - bStart);
  for (let i = 0; i < n; i++) {
    const d = bytes[aStart + i]! - bytes[bStart + i]!;
    if (d !== 0) return d < 0 ? -1 : 1;
  }
  const la = aEnd - aStart;
  const lb = bEnd - bStart;
  return la === lb ? 0 : la < lb ? -1 : 1;
}

/**
 * Parses and validates a .drv exactly as `parseDerivation` does (throwing the same errors), and
 * returns only its head: the builder, arguments and environment are checked and left where they
 * are, nothing made of them (for readers that need names, outputs and inputs of many .drv files).
 */
export function parseDerivationHead(bytes: Uint8Array): DerivationHead {
  const p = new Parser(bytes);
  const head = parseUpToSystem(p);
  parseTail(
    p,
    () => p.skipEscaped(),
    () => undefined,
    [],
  );
  return head;
}

/**
 * The part of a .drv after its system: `,"builder",[args],[env])` and the end of the input.
 * `field` reads each escaped field but the keys; `entry` gets each environment entry, called right
 * after its value is read, with the key unescaped, or, given `keySpans`, with the key left where
 * it is: its start, end and number of escapes are pushed there (the key passed is then empty).
 * Keys are checked to be strictly sorted.
 */
function parseTail<T>(
  p: Parser,
  field: () => T,
  entry: (value: T, key: Uint8Array) => void,
  keySpans?: number[],
): { builder: T; args: T[] } {
  p.expect(COMMA);
  const builder = field();
  p.expect(COMMA);

  const args: T[] = [];
  p.list(() => args.push(field()));
  p.expect(COMMA);

  let prev: Uint8Array | undefined;
  const none: Uint8Array = new Uint8Array(0);
  p.list(() => {
    p.expect(LPAREN);
    const at = p.pos;
    let key = none;
    let c = -1;
    if (keySpans === undefined) {
      key = p.escaped();
      if (prev !== undefined) c = compareBytes(prev, key);
      prev = key;
    } else {
      const escapes = p.skipEscaped();
      keySpans.push(at + 1, p.pos - 1, escapes);
      const n = keySpans.length;
      if (n > 3) c = compareKeySpans(p.input, keySpans, n - 6, n - 3);
    }
    if (c >= 0) p.fail(c === 0 ? 'duplicate environment variable' : 'environment variable out of order', at);
    p.expect(COMMA);
    entry(field(), key);
    p.expect(RPAREN);
  });
  p.expect(RPAREN);
  if (p.pos !== p.length) p.fail('unexpected bytes after the end of the derivation');
  return { builder, args };
}

/** The fields up to the system; `layout` (when given) gets where the outputs' paths and the input derivations are. */
function parseUpToSystem(p: Parser, layout?: DerivationHeadLayout): DerivationHead {
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

/** The method prefixes of an output's `hashAlgo` (Nix's `ContentAddressMethod::renderPrefix`). */
const OUTPUT_METHOD_PREFIX = /^(?:r:|text:|git:)?/;

/**
 * An output's `hashAlgo` and `hash` as Nix reads them (`parseDerivationOutput`, 2.8 and 2.34): a
 * `hashAlgo` is a method prefix and an algorithm Nix knows, or Nix refuses the .drv ("unknown hash
 * algorithm"), after the paths imported before it; without one, Nix reads the output as
 * input-addressed (or deferred) and drops its `hash`, so it hashes the .drv without that hash and
 * computes other output paths than the bytes give. Nix never writes either: both are refused.
 */
function checkOutputHashFields(
  p: Parser,
  name: string,
  hashAlgo: string,
  algoAt: number,
  hash: string,
  hashAt: number,
): void {
  if (hashAlgo === '') {
    if (hash !== '')
      p.fail(
        `output '${name}' has the hash '${hash.slice(0, 80)}' but no hash algorithm (Nix never writes one: it reads the output as input-addressed and drops the hash)`,
        hashAt,
      );
    return;
  }
  const algo = hashAlgo.slice(OUTPUT_METHOD_PREFIX.exec(hashAlgo)?.[0].length ?? 0);
  if (!isHashAlgo(algo))
    p.fail(
      `output '${name}' has the hash algorithm '${hashAlgo.slice(0, 80)}', which Nix does not know (it refuses the .drv)`,
      algoAt,
    );
}

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
    const algoAt = p.pos;
    const hashAlgo = p.rawString();
    p.expect(COMMA);
    const hashAt = p.pos;
    const hash = p.rawString();
    checkOutputHashFields(p, name, hashAlgo, algoAt, hash, hashAt);
    p.expect(RPAREN);
    outputs.push({ name, path, hashAlgo, hash });
  });
  return { version, outputs };
}
