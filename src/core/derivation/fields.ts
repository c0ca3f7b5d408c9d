// What a parsed derivation says, read without writing it: its references, an env value, its name.
import { compareBytes } from '../bytes.js';
import type { Derivation, DerivationOutput } from './types.js';

const encoder = new TextEncoder();

/** The output named by environment key `key`, if any (output names are ASCII: compared without decoding the key). */
export function outputNamed(
  outputs: readonly DerivationOutput[],
  key: Uint8Array,
): DerivationOutput | undefined {
  outer: for (const o of outputs) {
    if (o.name.length !== key.length) continue;
    for (let i = 0; i < key.length; i++) if (o.name.charCodeAt(i) !== key[i]) continue outer;
    return o;
  }
  return undefined;
}

/** `outputNamed` of the key written at [start, end) of `bytes` (a key without escapes). */
export function outputNamedAt(
  outputs: readonly DerivationOutput[],
  bytes: Uint8Array,
  start: number,
  end: number,
): DerivationOutput | undefined {
  const n = end - start;
  outer: for (const o of outputs) {
    if (o.name.length !== n) continue;
    for (let i = 0; i < n; i++) if (o.name.charCodeAt(i) !== bytes[start + i]) continue outer;
    return o;
  }
  return undefined;
}

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

export { drvName } from '../store-path.js';

/**
 * Output name → path of a parsed derivation ("" for a deferred output). Every name is an own key,
 * `__proto__` included (Nix allows it; assigning it would set the prototype and lose the output).
 */
export function outputsOf(drv: Pick<Derivation, 'outputs'>): Record<string, string> {
  return Object.fromEntries(drv.outputs.map((o) => [o.name, o.path]));
}
