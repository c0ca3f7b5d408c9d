// The output paths of a plan's .drv files, checked as Nix checks them when it registers each one.
//
// `nix-store --import` (and a daemon adding a .drv for an untrusted user) recomputes every
// derivation's output paths when it registers the .drv: Nix 2.8's `checkDerivationOutputs` and
// 2.34's `Derivation::checkInvariants`. A wrong one fails the import after the paths before it were
// added, so the verifier checks the union of what both versions check, before anything reaches
// the store:
//   - input-addressed outputs: the path is `makeOutputPath(hashDerivationModulo)`, and the
//     environment variable named after the output holds it (2.8; 2.34 checks the path only);
//   - a derivation whose inputs defer it (floating content-addressed inputs): no output paths;
//   - fixed outputs: the path the declared hash gives, also in the variable named after it;
//   - floating and impure outputs: no path (Nix 2.8 asserts it);
//   - one kind of output per derivation, and one fixed output named `out` (`Derivation::type()`).
//   - every output's path name (`<drv name>-<output>`) is a store path name Nix accepts.
// Input derivations come from the plan (checked before their dependents: the plan is in
// dependency order) or, when the plan does not hold them, from the target store, as Nix reads
// them from there (store-derivations.ts). The checker also indexes which derivation declares
// which output path, for the proof of build outputs (proof.ts).
import { NixPlanError } from '../errors.js';
import { DerivationHasher, derivationKind, outputKind, type FilledDerivation } from '../derivation/index.js';
import {
  drvName,
  envGet,
  outputNamed,
  outputNamedAt,
  parseDerivation,
  type Derivation,
  type DerivationHead,
  type DerivationHeadLayout,
  type DerivationSpans,
  type DerivationTail,
} from '../derivation/index.js';
import { nameProblem, outputPathName } from '../store-path.js';
import { StoreDerivations, type DrvOutputLimits, type StoreDerivationReader } from './store-derivations.js';

/** What a derivation of the plan declares about one of its output paths. */
export interface DeclaredOutput {
  /** The .drv that declares it. */
  readonly drvPath: string;
  readonly output: string;
  /** Its `hashAlgo` field when it is a fixed output ("r:sha256", "sha1", …); undefined otherwise. */
  readonly fixed?: { readonly hashAlgo: string; readonly hash: string } | undefined;
}

function wrong(drvPath: string, detail: string): NixPlanError {
  return new NixPlanError(
    'bundle',
    `derivation '${drvPath}' ${detail}; Nix would refuse it on import (after importing the paths before it)`,
  );
}

/**
 * Refuses an output whose path could not be a store path: Nix names it `<drv name>-<output>`
 * (`outputPathName`) and refuses a name outside Nix's characters or length, for an input-addressed
 * or fixed output when it registers the .drv, and for any other when it is built.
 */
function checkOutputNames(drvPath: string, outputs: readonly { readonly name: string }[]): void {
  const base = drvName(drvPath);
  for (const o of outputs) {
    const name = outputPathName(base, o.name);
    const problem = nameProblem(name);
    if (problem !== undefined)
      throw wrong(
        drvPath,
        `has output name '${o.name.slice(0, 80)}', which no store path can have ('${name.slice(0, 120)}': ${problem})`,
      );
  }
}

/** The env variable named after `output`, as a string (Nix compares it to the path as text). */
function envOf(drv: Derivation, output: string): string | undefined {
  const v = envGet(drv, output);
  return v === undefined ? undefined : Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('latin1');
}

/** Whether two byte strings are equal. */
function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0;
}

/**
 * Checks the output paths of a plan's derivations, fed in the plan's (dependency) order with
 * `check`, and, with `finish`, those whose input derivations are only in the target store.
 * Memory: a modulo hash per derivation (and, with `indexOutputs`, a declaration per output path).
 */
export class DerivationOutputChecks {
  private readonly hasher: DerivationHasher;
  /** The derivation being checked, for the hasher's lookup. */
  private current: { path: string; drv: Derivation } | undefined;
  /** Input derivations the plan does not hold, read from the store. */
  private readonly fromStore: StoreDerivations;
  /** Output path → the derivations declaring it (usually one: an array only for the others). */
  private readonly declared = new Map<string, DeclaredOutput | DeclaredOutput[]>();

  /**
   * `readStore` reads an input derivation the plan does not hold from the target store (none:
   * every input must be in the plan). With `indexOutputs`, `declaredOutput` answers which
   * derivation of the plan declares an output path.
   */
  constructor(
    readonly storeDir: string,
    private readonly options: {
      readStore?: StoreDerivationReader | undefined;
      indexOutputs?: boolean | undefined;
      limits?: Partial<DrvOutputLimits> | undefined;
    } = {},
  ) {
    this.fromStore = new StoreDerivations(options.readStore, options.limits);
    this.hasher = new DerivationHasher(storeDir, (p) => this.lookup(p));
  }

  private lookup(drvPath: string): Derivation {
    if (this.current?.path === drvPath) return this.current.drv;
    const d = this.fromStore.get(drvPath);
    if (d !== undefined) return d;
    throw new NixPlanError(
      'closure',
      `input derivation '${drvPath}' is neither in the plan before its dependents nor in the store`,
    );
  }

  /**
   * Checks one .drv of the plan, parsed (`bytes` are the file, for the common case: its outputs
   * filled in must give back exactly these bytes; `spans`, where the parser found its parts, let
   * that be checked on the bytes themselves). Its input derivations must have been checked
   * already, or be in the store (then this returns a promise: they are read first).
   */
  check(drvPath: string, drv: Derivation, bytes: Uint8Array, spans?: DerivationSpans): void | Promise<void> {
    const missing = drv.inputDrvs.filter((i) => !this.hasher.has(i.path)).map((i) => i.path);
    if (missing.length === 0) return this.checkNow(drvPath, drv, bytes, spans);
    return this.readFromStore(missing, drvPath).then(() => this.checkNow(drvPath, drv, bytes, spans));
  }

  /**
   * `check` for a .drv parsed for its head and where the rest is (`parseDerivationSpans`, which
   * validates it as `parseDerivation` does; `layout` as it filled it): the usual kind, an
   * input-addressed .drv with a variable named after each output, is checked on its bytes without
   * making its environment; any other kind, and one whose check fails, is parsed whole and checked
   * as `check` does (with its errors).
   */
  checkSpans(
    drvPath: string,
    head: DerivationHead,
    tail: DerivationTail,
    bytes: Uint8Array,
    layout: DerivationHeadLayout,
  ): void | Promise<void> {
    const missing = head.inputDrvs.filter((i) => !this.hasher.has(i.path)).map((i) => i.path);
    if (missing.length === 0) return this.checkSpansNow(drvPath, head, tail, bytes, layout);
    return this.readFromStore(missing, drvPath).then(() =>
      this.checkSpansNow(drvPath, head, tail, bytes, layout),
    );
  }

  private checkSpansNow(
    drvPath: string,
    head: DerivationHead,
    tail: DerivationTail,
    bytes: Uint8Array,
    layout: DerivationHeadLayout,
  ): void {
    checkOutputNames(drvPath, head.outputs);
    if (this.filledInPlace(drvPath, head, tail, bytes, layout)) return;
    const spans: DerivationSpans = { outputPaths: [], inputDrvsStart: 0, inputDrvsEnd: 0, envValues: [] };
    // Its output names were checked above, on the head: the same bytes the whole parse reads.
    this.checkParsed(drvPath, parseDerivation(bytes, spans), bytes, spans);
  }

  /**
   * Whether the .drv is input-addressed, holds a variable named after each output, and is
   * exactly its outputs filled in as Nix fills them (`hasher.checkFilled`): then it is recorded and
   * its outputs declared, as `checkInputAddressed` does when it passes. Anything else is left to
   * `checkNow`, which says what is wrong.
   */
  private filledInPlace(
    drvPath: string,
    head: DerivationHead,
    tail: DerivationTail,
    bytes: Uint8Array,
    layout: DerivationHeadLayout,
  ): boolean {
    if (head.version !== undefined || head.outputs.some((o) => outputKind(o) !== 'input-addressed'))
      return false;
    const holes: { start: number; end: number; output: string }[] = [];
    const { keySpans, values } = tail;
    for (let i = 0, k = 0; k < keySpans.length; i++, k += 3) {
      // A key without escapes is its bytes as written: matched there, without a view of it.
      const o =
        keySpans[k + 2] === 0
          ? outputNamedAt(head.outputs, bytes, keySpans[k]!, keySpans[k + 1]!)
          : outputNamed(head.outputs, tail.keys[i]!);
      if (o !== undefined) holes.push({ start: values[2 * i]!, end: values[2 * i + 1]!, output: o.name });
    }
    if (holes.length !== head.outputs.length) return false; // keys are unique: one lacks its variable
    let filled: FilledDerivation | undefined;
    try {
      filled = this.hasher.checkFilled(bytes, layout, holes, head, drvName(drvPath));
    } catch {
      return false; // checkNow throws it again, naming the .drv
    }
    if (filled === undefined) return false;
    for (const o of head.outputs) this.declare(o.path, { drvPath, output: o.name });
    this.hasher.record(drvPath, head, filled.hash);
    this.fromStore.release((p) => this.hasher.has(p));
    return true;
  }

  /** Whether the .drv at `drvPath` was checked here (or its check adopted). */
  checked(drvPath: string): boolean {
    return this.hasher.has(drvPath);
  }

  /**
   * Takes the check of the .drv at `drvPath` from `other`, the checks of a plan of the same store
   * dir that checked a .drv at that path: a .drv path is the hash of its bytes and references,
   * and its inputs are named by their paths, so the outcome is the same. Its modulo hash and the
   * outputs it declares (`outputs`, from its head) are recorded as if it was checked here, without
   * hashing it again; false when `other` did not check it.
   */
  adopt(
    drvPath: string,
    outputs: readonly { readonly path: string }[],
    other: DerivationOutputChecks,
  ): boolean {
    if (!this.hasher.adopt(drvPath, other.hasher)) return false;
    for (const o of outputs)
      for (const d of other.declarations(o.path)) if (d.drvPath === drvPath) this.declare(o.path, d);
    return true;
  }

  /** Which derivation of the plan declares `path` as an output (with `indexOutputs`; the first one). */
  declaredOutput(path: string): DeclaredOutput | undefined {
    const d = this.declared.get(path);
    return Array.isArray(d) ? d[0] : d;
  }

  /** Every output path the plan's derivations declare (with `indexOutputs`; deferred ones have none). */
  declaredPaths(): string[] {
    return [...this.declared.keys()];
  }

  /**
   * Every derivation of the plan that declares `path` as an output (with `indexOutputs`): two
   * fetchers of one file declare one path, and so do two derivations whose modulo hashes agree.
   */
  declarations(path: string): readonly DeclaredOutput[] {
    const d = this.declared.get(path);
    return d === undefined ? [] : Array.isArray(d) ? d : [d];
  }

  /** Reads `paths` and every input derivation they need that is not hashed yet, from the store. */
  private readFromStore(paths: readonly string[], needer: string): Promise<void> {
    return this.fromStore.readClosure(paths, needer, (p) => this.hasher.has(p));
  }

  private checkNow(drvPath: string, drv: Derivation, bytes: Uint8Array, spans?: DerivationSpans): void {
    checkOutputNames(drvPath, drv.outputs);
    this.checkParsed(drvPath, drv, bytes, spans);
  }

  /** `checkNow` of a .drv whose output names were checked already. */
  private checkParsed(drvPath: string, drv: Derivation, bytes: Uint8Array, spans?: DerivationSpans): void {
    const name = drvName(drvPath);
    this.current = { path: drvPath, drv };
    try {
      const fixed = this.hasher.fixedOutputPaths(drv, name);
      if (fixed !== undefined) this.checkFixed(drvPath, drv, fixed);
      else if (derivationKind(drv, name) !== 'input-addressed') this.checkFloating(drvPath, drv);
      else if (drv.version === undefined) this.checkInputAddressed(drvPath, drv, name, bytes, spans);
      else this.checkOther(drvPath, drv, name);
    } catch (e) {
      if (e instanceof NixPlanError && e.code === 'malformed')
        throw new NixPlanError('bundle', `${e.message} (in '${drvPath}')`);
      throw e;
    } finally {
      this.current = undefined;
    }
    this.fromStore.release((p) => this.hasher.has(p));
  }

  private checkFixed(drvPath: string, drv: Derivation, paths: ReadonlyMap<string, string>): void {
    for (const o of drv.outputs) {
      const want = paths.get(o.name) ?? '';
      if (o.path !== want)
        throw wrong(
          drvPath,
          `declares fixed output '${o.name}' at '${o.path}', but its hash gives '${want}'`,
        );
      this.expectEnv(drvPath, drv, o.name, want);
      this.declare(want, { drvPath, output: o.name, fixed: { hashAlgo: o.hashAlgo, hash: o.hash } });
    }
    this.hasher.record(drvPath, drv);
  }

  /** Floating content-addressed or impure outputs (kind.ts): no path until built. */
  private checkFloating(drvPath: string, drv: Derivation): void {
    for (const o of drv.outputs)
      if (o.path !== '')
        throw wrong(
          drvPath,
          `gives its floating output '${o.name}' the path '${o.path}', which is only known once built`,
        );
    this.hasher.record(drvPath, drv); // refuses a mixture of kinds
  }

  /**
   * Input-addressed `Derive(…)`: its outputs filled in as Nix fills them must give back exactly its
   * bytes, which proves every output path and every variable named after an output at once.
   */
  private checkInputAddressed(
    drvPath: string,
    drv: Derivation,
    name: string,
    bytes: Uint8Array,
    spans: DerivationSpans | undefined,
  ): void {
    // On the bytes themselves when the parser said where the parts are: the .drv is written out
    // again with its outputs filled in only when that check fails, to say what is wrong.
    const filled =
      (spans !== undefined && this.checkInPlace(drv, name, bytes, spans)) ||
      this.hasher.fillOutputs(drv, name);
    if (filled.hash.kind === 'deferred') {
      this.checkDeferred(drvPath, drv);
      this.hasher.record(drvPath, drv, filled.hash);
      return;
    }
    if (!sameBytes(filled.bytes, bytes)) {
      drv.outputs.forEach((o, i) => {
        const want = filled.paths[i] ?? '';
        if (o.path !== want)
          throw wrong(drvPath, `has output '${o.name}' at '${o.path}', but Nix computes '${want}'`);
        this.expectEnv(drvPath, drv, o.name, want);
      });
      throw wrong(drvPath, 'does not read back as Nix writes it with its outputs filled in');
    }
    drv.outputs.forEach((o, i) => {
      if (envGet(drv, o.name) === undefined) this.expectEnv(drvPath, drv, o.name, filled.paths[i] ?? '');
      this.declare(o.path, { drvPath, output: o.name });
    });
    this.hasher.record(drvPath, drv, filled.hash);
  }

  /** `hasher.checkFilled` of a parsed .drv: its filled form when that is exactly `bytes`. */
  private checkInPlace(
    drv: Derivation,
    name: string,
    bytes: Uint8Array,
    spans: DerivationSpans,
  ): FilledDerivation | undefined {
    const holes: { start: number; end: number; output: string }[] = [];
    drv.env.forEach((e, i) => {
      const o = outputNamed(drv.outputs, e.key);
      if (o !== undefined)
        holes.push({ start: spans.envValues[2 * i]!, end: spans.envValues[2 * i + 1]!, output: o.name });
    });
    return this.hasher.checkFilled(bytes, spans, holes, drv, name);
  }

  /** Outputs of a derivation deferred by its inputs: no paths yet. */
  private checkDeferred(drvPath: string, drv: Derivation): void {
    for (const o of drv.outputs)
      if (o.path !== '')
        throw wrong(
          drvPath,
          `has output '${o.name}' at '${o.path}', but its inputs defer it (no path before they are built)`,
        );
  }

  /** A `DrvWithVersion` derivation: its outputs compared one by one. */
  private checkOther(drvPath: string, drv: Derivation, name: string): void {
    const hash = this.hasher.hashModulo(drvPath);
    if (hash.kind === 'deferred') {
      this.checkDeferred(drvPath, drv);
      return;
    }
    const paths = this.hasher.outputPaths(drv, name);
    for (const o of drv.outputs) {
      const want = paths.get(o.name) ?? '';
      if (o.path !== want)
        throw wrong(drvPath, `has output '${o.name}' at '${o.path}', but Nix computes '${want}'`);
      this.expectEnv(drvPath, drv, o.name, want);
      this.declare(o.path, { drvPath, output: o.name });
    }
  }

  /** Indexes a declaration. */
  private declare(path: string, declaration: DeclaredOutput): void {
    if (this.options.indexOutputs !== true) return;
    const known = this.declared.get(path);
    if (known === undefined) this.declared.set(path, declaration);
    else if (Array.isArray(known)) known.push(declaration);
    else this.declared.set(path, [known, declaration]);
  }

  private expectEnv(drvPath: string, drv: Derivation, output: string, path: string): void {
    const value = envOf(drv, output);
    if (value === undefined)
      throw wrong(drvPath, `has no environment variable '${output}' (it should be '${path}')`);
    if (value !== path)
      throw wrong(drvPath, `has environment variable '${output}' = '${value}', but it should be '${path}'`);
  }
}
