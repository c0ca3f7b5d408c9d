// Dynamic derivations (RFC 92): a derivation can depend on an output of a derivation that another
// derivation builds (`builtins.outputOf`). Its .drv is written DrvWithVersion("xp-dyn-drv", …),
// with the outputs used of each such input as a child map in its input list, and it mentions
// those outputs by placeholders: Nix's DownstreamPlaceholder, made from the producing
// derivation's path and the chain of output names. Relocation recomputes every placeholder from
// the producer's new path.
import { MalformedError } from '../errors.js';
import { foldHash, sha256 } from '../hash.js';
import { nix32Encode } from '../nix32.js';
import { drvName, hashPartOf, outputPathName } from '../store-path.js';

/** One output of a dynamic input: the outputs used of the derivation it is, and deeper ones. */
export interface DynamicOutput {
  /** The output (of the parent) that is itself a derivation. */
  readonly name: string;
  /** Outputs of that derivation used directly. */
  readonly outputs: readonly string[];
  /** Outputs of that derivation that are derivations in turn. */
  readonly children: readonly DynamicOutput[];
}

const enum C {
  Quote = 0x22,
  LParen = 0x28,
  RParen = 0x29,
  Comma = 0x2c,
  LBracket = 0x5b,
  RBracket = 0x5d,
}

/** A reader of the child-map syntax, which holds only quoted output names (never escaped). */
class Reader {
  at = 0;
  constructor(private readonly b: Uint8Array) {}

  fail(what: string): never {
    throw new MalformedError('derivation', this.at, `dynamic outputs: ${what}`);
  }

  expect(c: number): void {
    if (this.b[this.at] !== c) this.fail(`expected '${String.fromCharCode(c)}'`);
    this.at++;
  }

  peek(): number | undefined {
    return this.b[this.at];
  }

  string(): string {
    this.expect(C.Quote);
    const end = this.b.indexOf(C.Quote, this.at);
    if (end < 0) this.fail('an unterminated string');
    const s = Buffer.from(this.b.buffer, this.b.byteOffset + this.at, end - this.at).toString('latin1');
    this.at = end + 1;
    return s;
  }

  /** `[` item (`,` item)* `]`, or `[]`. */
  list<T>(item: () => T): T[] {
    this.expect(C.LBracket);
    const out: T[] = [];
    if (this.peek() === C.RBracket) {
      this.at++;
      return out;
    }
    for (;;) {
      out.push(item());
      if (this.peek() === C.Comma) this.at++;
      else break;
    }
    this.expect(C.RBracket);
    return out;
  }

  /** A node: `["o",…]`, or `(["o",…],[child,…])`. */
  node(name: string, depth: number): DynamicOutput {
    if (depth > 64) this.fail('nested too deep');
    if (this.peek() === C.LBracket) return { name, outputs: this.list(() => this.string()), children: [] };
    this.expect(C.LParen);
    const outputs = this.list(() => this.string());
    this.expect(C.Comma);
    const children = this.children(depth + 1);
    this.expect(C.RParen);
    return { name, outputs, children };
  }

  /** `[("name",node),…]`. */
  children(depth: number): DynamicOutput[] {
    return this.list(() => {
      this.expect(C.LParen);
      const name = this.string();
      this.expect(C.Comma);
      const n = this.node(name, depth);
      this.expect(C.RParen);
      return n;
    });
  }
}

/** Parses the child map of a dynamic input as a .drv writes it (`[("out",["out"]),…]`). */
export function parseDynamicOutputs(bytes: Uint8Array): DynamicOutput[] {
  const r = new Reader(bytes);
  const out = r.children(1);
  if (r.at !== bytes.length) r.fail('bytes after the child map');
  return out;
}

/**
 * The hash of the placeholder Nix renders for output `output` of a derivation whose outputs are
 * not known before it is built (`DownstreamPlaceholder::unknownCaOutput`).
 */
export function unknownOutputHash(drvPath: string, output: string): Uint8Array {
  return sha256(`nix-upstream-output:${hashPartOf(drvPath)}:${outputPathName(drvName(drvPath), output)}`);
}

/**
 * The hash of the placeholder for output `output` of the derivation a placeholder stands for
 * (`DownstreamPlaceholder::unknownDerivation`).
 */
export function unknownDerivationOutputHash(placeholder: Uint8Array, output: string): Uint8Array {
  return sha256(`nix-computed-output:${nix32Encode(foldHash(placeholder))}:${output}`);
}

/**
 * Every placeholder a derivation may mention for the dynamic outputs it uses of input `drvPath`
 * (the chains of output names in `children`), as their 52 nix32 characters (rendered with a
 * leading slash).
 */
export function dynamicPlaceholders(drvPath: string, children: readonly DynamicOutput[]): string[] {
  const out: string[] = [];
  const walk = (parent: Uint8Array, nodes: readonly DynamicOutput[]): void => {
    for (const n of nodes) {
      const self = unknownDerivationOutputHash(parent, n.name);
      for (const o of n.outputs) out.push(nix32Encode(unknownDerivationOutputHash(self, o)));
      walk(self, n.children);
    }
  };
  for (const n of children) {
    const self = unknownOutputHash(drvPath, n.name);
    for (const o of n.outputs) out.push(nix32Encode(unknownDerivationOutputHash(self, o)));
    walk(self, n.children);
  }
  return out;
}
