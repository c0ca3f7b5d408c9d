// Nix's hashDerivationModulo: the hash that names a derivation's outputs, and the drv's own path.
//
// Output paths of an input-addressed derivation come from a hash of its ATerm in which each input
// derivation is replaced by *that input's* modulo hash, so a fixed-output input (a fetcher) counts
// only by what it produces, not by how. The derivation itself is masked first (its output paths
// and the environment variables named after its outputs set to ""), since those are what is being
// computed. Floating content-addressed derivations, and everything depending on one, have no
// output paths before they are built ("deferred").
import { makeContentAddressedPath } from '../content-address.js';
import { NixPlanError } from '../errors.js';
import { sha256, toHex } from '../hash.js';
import { compareStrings, isStrictlySorted, makeOutputPath, outputPathName } from '../store-path.js';
import { drvName as nameOfDrvPath, outputNamed } from './fields.js';
import { derivationKind, fixedOutputAddress, fixedOutputPath } from './kind.js';
import type {
  Derivation,
  DerivationHeadLayout,
  DerivationLayout,
  DerivationOutput,
  EnvEntry,
} from './types.js';
import { serialiseDerivation, serialiseInputDrvs } from './write.js';

/** The modulo hash of one derivation, as its dependents see it. */
export type DrvHash =
  | { kind: 'regular'; hash: Uint8Array } // sha256 of the (masked) ATerm with inputs replaced
  | { kind: 'fixed'; hash: Uint8Array } // sha256("fixed:out:algo:hash:outPath")
  | { kind: 'deferred' }; // floating CA, or depends on one

/** A memoised modulo hash (`DerivationHasher`). */
interface Memo {
  readonly hash: DrvHash;
  /** Hex of the hash; "" when deferred. */
  readonly hex: string;
  readonly outputs: readonly string[];
}

/** An input-addressed derivation serialised masked, and where its output paths go (`fillMasked`). */
export interface MaskedDerivation {
  /** Its bytes with every output path, and every env value named after an output, empty. */
  readonly bytes: Uint8Array;
  /** Where its input derivations list and (in `outputPaths`) its output paths are. */
  readonly layout: DerivationLayout;
  /** The env values named after an output, in byte order: where each goes, and whose path it is. */
  readonly envHoles: readonly { at: number; output: string }[];
}

/** A derivation with its output paths filled in (`fillOutputs`). */
export interface FilledDerivation {
  /** Each output's path ("" when deferred), in the order of the derivation's outputs. */
  readonly paths: readonly string[];
  /** The .drv as Nix writes it (still masked when deferred). */
  readonly bytes: Uint8Array;
  /** Its modulo hash as its dependents see it. */
  readonly hash: DrvHash;
}

function fail(drvLabel: string, detail: string): never {
  throw new NixPlanError('malformed', `derivation ${drvLabel}: ${detail}`);
}

/** A derivation whose output paths, and the env variables named after its outputs, are "". */
function masked(drv: Derivation): Derivation {
  const empty = new Uint8Array(0);
  return {
    ...drv,
    outputs: drv.outputs.map((o) => ({ ...o, path: '' })),
    env: drv.env.map((e): EnvEntry => (isOutputName(drv, e.key) ? { key: e.key, value: empty } : e)),
  };
}

/** A new empty layout for `serialiseDerivation` to fill. */
function newLayout(): DerivationLayout {
  return { inputDrvsStart: 0, inputDrvsEnd: 0, outputPaths: [], envValues: [] };
}

/** sha256 of a serialised derivation with its input derivations list replaced by `inputs`. */
function hashWithInputs(
  bytes: Uint8Array,
  layout: Pick<DerivationLayout, 'inputDrvsStart' | 'inputDrvsEnd'>,
  inputs: Uint8Array,
): Uint8Array {
  return sha256(bytes.subarray(0, layout.inputDrvsStart), inputs, bytes.subarray(layout.inputDrvsEnd));
}

function isOutputName(drv: Derivation, key: Uint8Array): boolean {
  return outputNamed(drv.outputs, key) !== undefined;
}

/**
 * Memoised hashDerivationModulo over a lookup of parsed derivations in one store dir. The lookup
 * is called at most once per derivation during a walk; it should throw (a NixPlanError) for a
 * path it does not have.
 */
export class DerivationHasher {
  /**
   * Every hashed derivation: its hash, the hex of it (written into many dependents; "" when
   * deferred) and its output names (to check what dependents ask for). One map, as each input of
   * each derivation is looked up in it.
   */
  private readonly memo = new Map<string, Memo>();

  constructor(
    readonly storeDir: string,
    private readonly lookup: (drvPath: string) => Derivation,
  ) {}

  /**
   * The modulo hash of a derivation in the store (unmasked: as its dependents use it), memoised.
   * Walks the inputs with an explicit stack, so deep graphs cannot overflow the call stack.
   */
  hashModulo(drvPath: string): DrvHash {
    const known = this.memo.get(drvPath);
    if (known !== undefined) return known.hash;
    const pending = new Map<string, Derivation>();
    const stack = [drvPath];
    while (stack.length > 0) {
      const path = stack[stack.length - 1] as string;
      if (this.memo.has(path)) {
        stack.pop();
        continue;
      }
      let drv = pending.get(path);
      if (drv === undefined) {
        drv = this.lookup(path);
        pending.set(path, drv);
        // A fixed-output hash does not depend on inputs, so they need not be visited.
        if (derivationKind(drv, path) !== 'fixed') {
          for (const input of drv.inputDrvs) {
            if (this.memo.has(input.path)) continue;
            if (pending.has(input.path))
              throw new NixPlanError('closure', `derivation ${input.path} depends on itself (via ${path})`);
            stack.push(input.path);
          }
          if (stack[stack.length - 1] !== path) continue;
        }
      }
      stack.pop();
      pending.delete(path);
      this.remember(path, drv, this.compute(drv, path, nameOfDrvPath(path), false));
    }
    return (this.memo.get(drvPath) as Memo).hash;
  }

  /** Whether the modulo hash of `drvPath` is known (hashed or recorded). */
  has(drvPath: string): boolean {
    return this.memo.has(drvPath);
  }

  /**
   * Takes the modulo hash of `drvPath` from `other`, a hasher of the same store dir that hashed a
   * .drv at that path (a .drv path is the hash of its bytes and references, and its inputs are
   * named by their paths, so the hash is the same); false when `other` has none.
   */
  adopt(drvPath: string, other: DerivationHasher): boolean {
    const memo = other.storeDir === this.storeDir ? other.memo.get(drvPath) : undefined;
    if (memo === undefined) return false;
    this.memo.set(drvPath, memo);
    return true;
  }

  /** Output paths the derivation must have: masks it, hashes it, fills outputs. */
  outputPaths(drv: Derivation, drvName: string): Map<string, string> {
    const fixed = this.fixedOutputPaths(drv, drvName);
    if (fixed !== undefined) return fixed;
    const paths = new Map<string, string>();
    const h = this.compute(drv, drvName, drvName, true);
    for (const o of drv.outputs)
      paths.set(
        o.name,
        h.kind === 'deferred' ? '' : makeOutputPath(drvName, o.name, toHex(h.hash), this.storeDir),
      );
    return paths;
  }

  /** The output path of a fixed-output derivation, which follows from its outputs alone; undefined for other kinds. */
  fixedOutputPaths(drv: Pick<Derivation, 'outputs'>, drvName: string): Map<string, string> | undefined {
    if (derivationKind(drv, drvName) !== 'fixed') return undefined;
    const out = drv.outputs[0] as DerivationOutput;
    return new Map([[out.name, fixedOutputPath(out, drvName, this.storeDir)]]);
  }

  /**
   * Records the modulo hash of a derivation computed elsewhere (`fillOutputs`), so it is never
   * looked up. `hash` may be left out for a fixed-output or floating derivation, whose hash needs
   * only its outputs.
   */
  record(drvPath: string, drv: Pick<Derivation, 'outputs'>, hash?: DrvHash): void {
    const h = hash ?? this.outputsOnlyHash(drv, drvPath, nameOfDrvPath(drvPath));
    if (h === undefined)
      throw new NixPlanError('internal', `the modulo hash of input-addressed ${drvPath} was not given`);
    this.remember(drvPath, drv, h);
  }

  private remember(drvPath: string, drv: Pick<Derivation, 'outputs'>, hash: DrvHash): void {
    this.memo.set(drvPath, {
      hash,
      hex: hash.kind === 'deferred' ? '' : toHex(hash.hash),
      outputs: drv.outputs.map((o) => o.name),
    });
  }

  /**
   * An input-addressed derivation completed as Nix writes it: its output paths (as `outputPaths`
   * gives them) filled into its outputs and into the env variables named after them, its bytes,
   * and its modulo hash as its dependents see it (for `record`). The derivation is serialised
   * once, masked; the masked hash, the bytes and the modulo hash are all made from that by
   * splicing in the input hashes or the output paths (which need no escaping).
   */
  fillOutputs(drv: Derivation, drvName: string): FilledDerivation {
    const layout = newLayout();
    const bytes = serialiseDerivation(masked(drv), layout);
    const envHoles: { at: number; output: string }[] = [];
    drv.env.forEach((e, i) => {
      const o = outputNamed(drv.outputs, e.key);
      if (o !== undefined) envHoles.push({ at: layout.envValues[i] as number, output: o.name });
    });
    return this.fillMasked({ bytes, layout, envHoles }, drv, drvName);
  }

  /**
   * `fillOutputs` for a derivation the caller serialised masked: `drv` gives its version, outputs
   * and input derivations (which must be hashed or recorded already).
   */
  fillMasked(
    maskedDrv: MaskedDerivation,
    drv: Pick<Derivation, 'version' | 'outputs' | 'inputDrvs'>,
    drvName: string,
  ): FilledDerivation {
    if (derivationKind(drv, drvName) !== 'input-addressed')
      throw new NixPlanError('internal', `fillOutputs is for input-addressed derivations, not ${drvName}`);
    const { bytes, layout } = maskedDrv;
    const inputs = this.moduloInputs(drv, drvName);
    if (inputs === undefined) return { paths: drv.outputs.map(() => ''), bytes, hash: { kind: 'deferred' } };
    const hex = toHex(hashWithInputs(bytes, layout, inputs));
    const paths = drv.outputs.map((o) => makeOutputPath(drvName, o.name, hex, this.storeDir));

    // Holes, in byte order: each output's path, then the value of each env variable named after one.
    const holes: { at: number; text: string }[] = paths.map((text, i) => ({
      at: layout.outputPaths[i] as number,
      text,
    }));
    for (const h of maskedDrv.envHoles)
      holes.push({ at: h.at, text: paths[drv.outputs.findIndex((o) => o.name === h.output)] as string });
    let size = bytes.length;
    for (const h of holes) size += h.text.length;
    const out = new Uint8Array(size); // kept by the caller: not a slice of a shared pool
    let r = 0;
    let w = 0;
    let shift = 0; // bytes inserted before the input derivations list (output paths only)
    for (const h of holes) {
      out.set(bytes.subarray(r, h.at), w);
      w += h.at - r;
      r = h.at;
      for (let k = 0; k < h.text.length; k++) out[w++] = h.text.charCodeAt(k);
      if (h.at < layout.inputDrvsStart) shift += h.text.length;
    }
    out.set(bytes.subarray(r), w);
    const filled: DerivationLayout = {
      ...layout,
      inputDrvsStart: layout.inputDrvsStart + shift,
      inputDrvsEnd: layout.inputDrvsEnd + shift,
    };
    return { paths, bytes: out, hash: { kind: 'regular', hash: hashWithInputs(out, filled, inputs) } };
  }

  /**
   * Whether `fillMasked` would give back exactly `original`, a .drv's own bytes, checked without
   * writing any: `original` with its output paths and the values of `envHoles` (the variables
   * named after its outputs) cut out is the masked form (the head of a .drv that parses is
   * written as `serialiseDerivation` writes it), hashed as Nix hashes it; the paths that gives
   * must be the ones it holds. `spans` says where its output paths and input derivations are
   * (`parseDerivationSpans`). The filled derivation (`original` itself) when they are; undefined
   * when they are not, or when its outputs are deferred (`fillMasked` says how).
   */
  checkFilled(
    original: Uint8Array,
    spans: DerivationHeadLayout,
    envHoles: readonly { start: number; end: number; output: string }[],
    drv: Pick<Derivation, 'version' | 'outputs' | 'inputDrvs'>,
    drvName: string,
  ): FilledDerivation | undefined {
    if (derivationKind(drv, drvName) !== 'input-addressed')
      throw new NixPlanError('internal', `checkFilled is for input-addressed derivations, not ${drvName}`);
    const inputs = this.moduloInputs(drv, drvName);
    if (inputs === undefined) return undefined;
    const { outputs } = drv;
    const pieces: Uint8Array[] = [];
    let r = 0;
    outputs.forEach((o, i) => {
      const at = spans.outputPaths[i] as number;
      pieces.push(original.subarray(r, at));
      r = at + o.path.length;
    });
    pieces.push(original.subarray(r, spans.inputDrvsStart), inputs);
    r = spans.inputDrvsEnd;
    for (const h of envHoles) {
      pieces.push(original.subarray(r, h.start));
      r = h.end;
    }
    pieces.push(original.subarray(r));
    const hex = toHex(sha256(...pieces));
    const paths = outputs.map((o) => makeOutputPath(drvName, o.name, hex, this.storeDir));
    for (let i = 0; i < outputs.length; i++) if (outputs[i]!.path !== paths[i]) return undefined;
    for (const h of envHoles) {
      const path = paths[outputs.findIndex((o) => o.name === h.output)] as string;
      if (h.end - h.start !== path.length) return undefined;
      for (let k = 0; k < path.length; k++)
        if (original[h.start + k] !== path.charCodeAt(k)) return undefined;
    }
    return {
      paths,
      bytes: original,
      hash: { kind: 'regular', hash: hashWithInputs(original, spans, inputs) },
    };
  }

  /**
   * The input derivations list of `drv`'s modulo form: each input replaced by (hex of its modulo
   * hash, the outputs used), inputs with the same hash (e.g. two fetchers of the same file) merged
   * into one entry; undefined when the derivation is deferred. Every input is hashed if it is not
   * memoised yet.
   */
  private moduloInputs(drv: Pick<Derivation, 'inputDrvs'>, label: string): Uint8Array | undefined {
    const entries: { path: string; outputs: string[] }[] = [];
    let deferred = false;
    for (const input of drv.inputDrvs) {
      // Every input is hashed (or found known) even once the derivation is found deferred.
      const m = this.memo.get(input.path) ?? this.memoised(input.path);
      if (deferred || m.hash.kind === 'deferred') {
        deferred = true;
        continue;
      }
      // Outputs of what this input builds (dynamic derivations) are not in the modulo form: Nix
      // keeps only the outputs used of the input itself, and an input with none is left out.
      if (input.outputs.length === 0) continue;
      const names = m.outputs;
      for (const o of input.outputs)
        if (!names.includes(o)) fail(label, `it uses output '${o}' that ${input.path} does not have`);
      entries.push({ path: m.hex, outputs: input.outputs });
    }
    if (deferred) return undefined;
    entries.sort((a, b) => compareStrings(a.path, b.path));
    const merged: { path: string; outputs: string[] }[] = [];
    for (const e of entries) {
      const last = merged[merged.length - 1];
      if (last !== undefined && last.path === e.path) last.outputs = [...last.outputs, ...e.outputs];
      else merged.push({ path: e.path, outputs: e.outputs });
    }
    // Output lists are sorted already unless built by hand, or merged from several inputs.
    for (const m of merged)
      if (!isStrictlySorted(m.outputs)) m.outputs = [...new Set(m.outputs)].sort(compareStrings);
    return serialiseInputDrvs(merged);
  }

  /** What is memoised of a derivation, hashing it first. */
  private memoised(drvPath: string): Memo {
    this.hashModulo(drvPath);
    return this.memo.get(drvPath) as Memo;
  }

  /**
   * The modulo hash of a fixed-output derivation, or of one deferred by its own kind (floating,
   * impure): they follow from its outputs alone. Undefined for an input-addressed one.
   */
  private outputsOnlyHash(
    drv: Pick<Derivation, 'outputs'>,
    label: string,
    name: string,
  ): DrvHash | undefined {
    const kind = derivationKind(drv, label);
    if (kind === 'fixed') {
      const out = drv.outputs[0] as DerivationOutput;
      const ca = fixedOutputAddress(out, label);
      const path = makeContentAddressedPath(outputPathName(name, out.name), ca, this.storeDir);
      return { kind: 'fixed', hash: sha256(`fixed:out:${out.hashAlgo}:${toHex(ca.hash.bytes)}:${path}`) };
    }
    return kind === 'input-addressed' ? undefined : { kind: 'deferred' };
  }

  /** hashDerivationModulo of one derivation whose inputs are all memoised. */
  private compute(drv: Derivation, label: string, name: string, mask: boolean): DrvHash {
    const early = this.outputsOnlyHash(drv, label, name);
    if (early !== undefined) return early;
    const inputs = this.moduloInputs(drv, label);
    if (inputs === undefined) return { kind: 'deferred' };
    // A DrvWithVersion derivation keeps its version in the modulo form (Nix's `unparse` looks at
    // the derivation's own inputs for it); its inputs list is replaced by the plain one.
    const layout = newLayout();
    const bytes = serialiseDerivation(mask ? masked(drv) : drv, layout);
    return { kind: 'regular', hash: hashWithInputs(bytes, layout, inputs) };
  }
}

/** Path of a .drv file in `storeDir`: a text object named `<drvName>.drv` with its references. */
export function computeDrvPath(
  storeDir: string,
  drvName: string,
  bytes: Uint8Array,
  references: Iterable<string>,
): string {
  // Duplicates count once; an array strictly in order (the usual case) has none and is used as is.
  const refs = Array.isArray(references) && isStrictlySorted(references) ? references : new Set(references);
  const ca = { method: 'text', hash: { algo: 'sha256', bytes: sha256(bytes) } } as const;
  return makeContentAddressedPath(`${drvName}.drv`, ca, storeDir, refs);
}
