// Nix's hashDerivationModulo: the hash that names a derivation's outputs, and the drv's own path.
//
// Output paths of an input-addressed derivation come from a hash of its ATerm in which each input
// derivation is replaced by *that input's* modulo hash, so a fixed-output input (a fetcher) counts
// only by what it produces, not by how. The derivation itself is masked first (its output paths
// and the environment variables named after its outputs set to ""), since those are what is being
// computed. Floating content-addressed derivations, and everything depending on one, have no
// output paths before they are built ("deferred").
import { NixPlanError } from './errors.js';
import { isHashAlgo, parseHash, sha256, toHex, type Hash } from './hash.js';
import {
  compareStrings,
  makeFixedOutputPath,
  makeOutputPath,
  makeTextPath,
  outputPathName,
} from './store-path.js';
import {
  drvName as nameOfDrvPath,
  serialiseDerivation,
  type Derivation,
  type DerivationOutput,
} from './derivation.js';

/** The modulo hash of one derivation, as its dependents see it. */
export type DrvHash =
  | { kind: 'regular'; hash: Uint8Array } // sha256 of the (masked) ATerm with inputs replaced
  | { kind: 'fixed'; hash: Uint8Array } // sha256("fixed:out:algo:hash:outPath")
  | { kind: 'deferred' }; // floating CA, or depends on one

/** How a fixed output is content-addressed, from its `hashAlgo` field. */
interface FixedOutput {
  method: 'flat' | 'recursive' | 'text';
  hash: Hash;
}

type DrvKind = 'input-addressed' | 'fixed' | 'floating' | 'impure';

function fail(drvLabel: string, detail: string): never {
  throw new NixPlanError('malformed', `derivation ${drvLabel}: ${detail}`);
}

function outputKind(o: DerivationOutput): DrvKind {
  if (o.hashAlgo === '') return 'input-addressed';
  if (o.hash === 'impure') return 'impure';
  return o.hash === '' ? 'floating' : 'fixed';
}

/** Classifies a derivation the way Nix's `Derivation::type()` does, refusing mixtures. */
function derivationKind(drv: Derivation, drvLabel: string): DrvKind {
  const first = drv.outputs[0];
  if (first === undefined) fail(drvLabel, 'it has no outputs');
  const kind = outputKind(first);
  for (const o of drv.outputs)
    if (outputKind(o) !== kind)
      fail(drvLabel, 'it mixes output types (input-addressed, fixed, floating, impure)');
  if (kind === 'fixed' && (drv.outputs.length !== 1 || first.name !== 'out'))
    fail(drvLabel, 'a fixed-output derivation must have exactly one output, named "out"');
  return kind;
}

/** Parses a fixed output's `hashAlgo` ("r:sha256", "text:sha256", "sha1", …) and hex `hash`. */
function fixedOutput(o: DerivationOutput, drvLabel: string): FixedOutput {
  let method: FixedOutput['method'] = 'flat';
  let algo = o.hashAlgo;
  if (algo.startsWith('r:')) {
    method = 'recursive';
    algo = algo.slice(2);
  } else if (algo.startsWith('text:')) {
    method = 'text';
    algo = algo.slice(5);
  }
  if (!isHashAlgo(algo)) fail(drvLabel, `unsupported output hash algorithm '${o.hashAlgo}'`);
  if (o.hash.includes(':') || o.hash.includes('-'))
    fail(drvLabel, `output hash '${o.hash}' is not a bare digest`);
  const hash = parseHash(o.hash, algo);
  if (method === 'text' && algo !== 'sha256') fail(drvLabel, 'a text-hashed output must use sha256');
  return { method, hash };
}

/** The path a fixed output must have in `storeDir`, as Nix's `DerivationOutput::CAFixed::path`. */
function fixedOutputPath(f: FixedOutput, name: string, storeDir: string): string {
  if (f.method === 'text') return makeTextPath(name, f.hash.bytes, [], storeDir);
  return makeFixedOutputPath(name, f.hash, f.method === 'recursive', storeDir);
}

function isOutputName(drv: Derivation, key: Uint8Array): boolean {
  // Output names are ASCII; compare without decoding every key.
  outer: for (const o of drv.outputs) {
    if (o.name.length !== key.length) continue;
    for (let i = 0; i < key.length; i++) if (o.name.charCodeAt(i) !== key[i]) continue outer;
    return true;
  }
  return false;
}

/**
 * Memoised hashDerivationModulo over a lookup of parsed derivations in one store dir. The lookup
 * is called at most once per derivation during a walk; it should throw (a NixPlanError) for a
 * path it does not have.
 */
export class DerivationHasher {
  private readonly memo = new Map<string, DrvHash>();
  /** Output names of every hashed derivation, to check what dependents ask for. */
  private readonly outputNames = new Map<string, readonly string[]>();

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
    if (known !== undefined) return known;
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
      this.memo.set(path, this.compute(drv, path, nameOfDrvPath(path), false));
      this.outputNames.set(
        path,
        drv.outputs.map((o) => o.name),
      );
    }
    return this.memo.get(drvPath) as DrvHash;
  }

  /** Output paths the derivation must have: masks it, hashes it, fills outputs. */
  outputPaths(drv: Derivation, drvName: string): Map<string, string> {
    const paths = new Map<string, string>();
    const kind = derivationKind(drv, drvName);
    if (kind === 'fixed') {
      const out = drv.outputs[0] as DerivationOutput;
      paths.set(
        out.name,
        fixedOutputPath(fixedOutput(out, drvName), outputPathName(drvName, out.name), this.storeDir),
      );
      return paths;
    }
    for (const input of drv.inputDrvs) this.hashModulo(input.path);
    const h = this.compute(drv, drvName, drvName, true);
    for (const o of drv.outputs)
      paths.set(
        o.name,
        h.kind === 'deferred' ? '' : makeOutputPath(drvName, o.name, toHex(h.hash), this.storeDir),
      );
    return paths;
  }

  /** hashDerivationModulo of one derivation whose inputs are all memoised. */
  private compute(drv: Derivation, label: string, name: string, mask: boolean): DrvHash {
    const kind = derivationKind(drv, label);
    if (kind === 'fixed') {
      const out = drv.outputs[0] as DerivationOutput;
      const f = fixedOutput(out, label);
      const path = fixedOutputPath(f, outputPathName(name, out.name), this.storeDir);
      return { kind: 'fixed', hash: sha256(`fixed:out:${out.hashAlgo}:${toHex(f.hash.bytes)}:${path}`) };
    }
    if (kind !== 'input-addressed') return { kind: 'deferred' };

    // Replace each input derivation by (hex of its modulo hash, the outputs used); inputs with the
    // same hash (e.g. two fetchers of the same file) merge into one entry.
    const replaced = new Map<string, Set<string>>();
    for (const input of drv.inputDrvs) {
      if (input.dynamicOutputs !== undefined) return { kind: 'deferred' };
      const h = this.memo.get(input.path);
      if (h === undefined)
        throw new NixPlanError(
          'internal',
          `input ${input.path} of ${label} was not hashed before its dependent`,
        );
      if (h.kind === 'deferred') return { kind: 'deferred' };
      const names = this.outputNames.get(input.path) ?? [];
      const hex = toHex(h.hash);
      let set = replaced.get(hex);
      if (set === undefined) replaced.set(hex, (set = new Set()));
      for (const o of input.outputs) {
        if (!names.includes(o)) fail(label, `it uses output '${o}' that ${input.path} does not have`);
        set.add(o);
      }
    }
    const modulo: Derivation = {
      ...drv,
      version: undefined,
      inputDrvs: [...replaced.keys()]
        .sort(compareStrings)
        .map((hex) => ({ path: hex, outputs: [...(replaced.get(hex) as Set<string>)].sort(compareStrings) })),
    };
    if (mask) {
      modulo.outputs = drv.outputs.map((o) => ({ ...o, path: '' }));
      modulo.env = drv.env.map((e) =>
        isOutputName(drv, e.key) ? { key: e.key, value: new Uint8Array() } : e,
      );
    }
    return { kind: 'regular', hash: sha256(serialiseDerivation(modulo)) };
  }
}

/** Path of a .drv file in `storeDir`: a text object named `<drvName>.drv` with its references. */
export function computeDrvPath(
  storeDir: string,
  drvName: string,
  bytes: Uint8Array,
  references: Iterable<string>,
): string {
  return makeTextPath(`${drvName}.drv`, sha256(bytes), new Set(references), storeDir);
}
