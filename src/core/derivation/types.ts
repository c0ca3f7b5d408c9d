// The parts of a derivation (.drv) as nix-plan holds them: bytes where Nix's are bytes, strings
// where they are ASCII (store paths, output names, hash fields).
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

/** The fields of a .drv before its builder. */
export type DerivationHead = Pick<Derivation, 'version' | 'outputs' | 'inputDrvs' | 'inputSrcs' | 'system'>;

/**
 * Where the escaped fields after a .drv's system are, as written: for callers that rewrite them
 * in place and splice them into a new head (relocation), instead of unescaping and escaping again.
 */
export interface DerivationTail {
  /** Offset of the comma after the system: bytes [start, length) are `,"builder",[args],[env])`. */
  readonly start: number;
  /** The environment's keys, unescaped (views into the input when they hold no escapes). */
  readonly keys: readonly Uint8Array[];
  /**
   * For each key, where it is as written: the offsets where its contents begin and end (between
   * its quotes) and how many escapes it holds (0: its bytes are the key).
   */
  readonly keySpans: readonly number[];
  /** For each key, the offsets where its value's contents begin and end (between its quotes). */
  readonly values: readonly number[];
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

/** Where a .drv's output paths and input derivations are in its bytes (`parseDerivationSpans`). */
export type DerivationHeadLayout = Pick<DerivationLayout, 'outputPaths' | 'inputDrvsStart' | 'inputDrvsEnd'>;
