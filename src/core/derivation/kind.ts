// How a derivation names its outputs, decided once (Nix's `Derivation::type()`): input-addressed,
// fixed (its one output's content address is declared), floating (content-addressed, known only
// once built) or impure; and the path a fixed output must have.
import { makeContentAddressedPath, parseOutputHashAlgo, type ContentAddress } from '../content-address.js';
import { NixPlanError } from '../errors.js';
import { outputPathName } from '../store-path.js';
import type { Derivation, DerivationOutput } from './types.js';

/** How a derivation's outputs are named. */
export type DerivationKind = 'input-addressed' | 'fixed' | 'floating' | 'impure';

/**
 * Why a derivation has no kind: no outputs, outputs of different kinds, a fixed one not alone, or
 * floating ones of different hash algorithms.
 */
export type DerivationKindProblem = 'no-outputs' | 'mixed' | 'fixed-not-one-out' | 'floating-algos';

const PROBLEMS: Record<DerivationKindProblem, string> = {
  'no-outputs': 'it has no outputs',
  mixed: 'it mixes output types (input-addressed, fixed, floating, impure)',
  'fixed-not-one-out': 'a fixed-output derivation must have exactly one output, named "out"',
  'floating-algos': 'its floating outputs use different hash algorithms (Nix requires one for all)',
};

/** The hash algorithm of an output's `hashAlgo`, without its method prefix (`r:sha256` → `sha256`). */
const algorithmOf = (hashAlgo: string): string => hashAlgo.replace(/^(?:r:|text:|git:)/, '');

/** The kind one output declares, from its `hashAlgo` and `hash` fields as written. */
export function outputKind(o: Pick<DerivationOutput, 'hashAlgo' | 'hash'>): DerivationKind {
  if (o.hashAlgo === '') return 'input-addressed';
  if (o.hash === 'impure') return 'impure';
  return o.hash === '' ? 'floating' : 'fixed';
}

/** The kind of a derivation, or the problem that leaves it without one. */
export function classifyDerivation(
  drv: Pick<Derivation, 'outputs'>,
): { kind: DerivationKind; problem?: undefined } | { kind?: undefined; problem: DerivationKindProblem } {
  const first = drv.outputs[0];
  if (first === undefined) return { problem: 'no-outputs' };
  const kind = outputKind(first);
  for (const o of drv.outputs) if (outputKind(o) !== kind) return { problem: 'mixed' };
  if (kind === 'fixed' && (drv.outputs.length !== 1 || first.name !== 'out'))
    return { problem: 'fixed-not-one-out' };
  // Nix's `Derivation::type()` (2.8 and 2.34), on import: "all floating outputs must use the same
  // hash algorithm" (the method may differ).
  if (kind === 'floating' && drv.outputs.some((o) => algorithmOf(o.hashAlgo) !== algorithmOf(first.hashAlgo)))
    return { problem: 'floating-algos' };
  return { kind };
}

/** The kind of a derivation; a 'malformed' error naming `label` when it has none. */
export function derivationKind(drv: Pick<Derivation, 'outputs'>, label: string): DerivationKind {
  const c = classifyDerivation(drv);
  if (c.problem !== undefined)
    throw new NixPlanError('malformed', `derivation ${label}: ${PROBLEMS[c.problem]}`);
  return c.kind;
}

/** True for a fixed-output derivation: its one output, `out`, declares its content address. */
export function isFixedOutput(drv: Pick<Derivation, 'outputs'>): boolean {
  return classifyDerivation(drv).kind === 'fixed';
}

/** The content address a fixed output declares; a 'malformed' error naming `label` when it is not one. */
export function fixedOutputAddress(o: DerivationOutput, label: string): ContentAddress {
  try {
    return parseOutputHashAlgo(o.hashAlgo, o.hash);
  } catch (e) {
    throw new NixPlanError('malformed', `derivation ${label}: output ${o.name}: ${(e as Error).message}`);
  }
}

/** The path fixed output `o` of the derivation named `drvName` must have in `storeDir`. */
export function fixedOutputPath(
  o: DerivationOutput,
  drvName: string,
  storeDir: string,
  label = drvName,
): string {
  return makeContentAddressedPath(outputPathName(drvName, o.name), fixedOutputAddress(o, label), storeDir);
}
