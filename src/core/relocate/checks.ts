// The refusals of relocation, as docs/relocation.md lists them: what cannot be relocated faithfully
// is refused by name, before any work where the index can tell (the self-check, the kinds, the
// closure), and as it is met otherwise (the environment, the references of a .drv).
import {
  contentAddressMethod,
  formatContentAddress,
  identifyContentAddress,
  makeContentAddressedPath,
  parseContentAddress,
  type ContentAddress,
  type ContentAddressed,
} from '../content-address.js';
import {
  classifyDerivation,
  derivationKind,
  derivationReferences,
  type Derivation,
} from '../derivation/index.js';
import { NixPlanError } from '../errors.js';
import { nameOf } from '../store-path.js';
import { compareBytes } from '../wire.js';
import type { RelocObject } from './types.js';

/** Throws the 'relocate' error that says why an object cannot be relocated. */
export function refuse(message: string): never {
  throw new NixPlanError('relocate', message);
}

/** How a relocatable derivation names its outputs (impure ones are refused). */
export type DrvType = 'input-addressed' | 'fixed' | 'floating';

/** Refuses what cannot be relocated faithfully, and says how the derivation names its outputs. */
export function drvType(path: string, drv: Pick<Derivation, 'outputs'>): DrvType {
  if (drv.outputs.some((o) => o.hash === 'impure')) refuseImpure(path);
  const { kind, problem } = classifyDerivation(drv);
  // A floating output has no path yet: one with a path is not what Nix writes.
  if (problem === 'mixed' || (kind === 'floating' && drv.outputs.some((o) => o.path !== '')))
    refuse(`cannot relocate ${path}: its outputs mix input-addressed, fixed and floating kinds`);
  return derivationKind(drv, path) as DrvType; // malformed (no outputs, a fixed one not alone) throws
}

const IMPURE_KEY = new TextEncoder().encode('__impure');

/**
 * Refuses a derivation with an `__impure` variable. Nix writes its outputs as impure, which the
 * index refuses before any work; this catches one written by hand, once its environment is read.
 */
export function refuseImpureEnv(path: string, keys: Iterable<Uint8Array>): void {
  for (const key of keys) if (compareBytes(key, IMPURE_KEY) === 0) refuseImpure(path);
}

/** Refuses an impure derivation by name. */
export function refuseImpure(path: string): never {
  return refuse(
    `cannot relocate ${path}: it is an impure derivation (__impure), which has no fixed plan to relocate`,
  );
}

/**
 * The kind `obj.ca`, verified by the caller, gives it; undefined when it cannot be its content
 * address. A source's path must follow from it (with its references and name) under `from`.
 */
function checkGivenContentAddress(
  obj: RelocObject & { ca: string },
  from: string,
): ContentAddressed | undefined {
  const name = nameOf(obj.path);
  const { ca } = obj;
  const method = contentAddressMethod(ca);
  // A text address plays no part in relocating the file: its digest need not be read.
  if (method === 'text')
    return obj.contents === undefined && obj.readContents === undefined
      ? undefined
      : { kind: name.endsWith('.drv') ? 'drv' : 'text', ca };
  if (method === 'nar') {
    if (obj.narHash === undefined) return undefined;
    const address: ContentAddress = { method, hash: { algo: 'sha256', bytes: obj.narHash } };
    if (ca !== formatContentAddress(address)) return undefined;
    const others = obj.references.filter((r) => r !== obj.path);
    const self = others.length !== obj.references.length;
    return makeContentAddressedPath(name, address, from, others, self) === obj.path
      ? { kind: 'source', ca }
      : undefined;
  }
  // A flat or git-hashed file: its path follows from the address alone (no references).
  if ((method === 'flat' || method === 'git') && obj.contents !== undefined && obj.references.length === 0)
    return makeContentAddressedPath(name, parseContentAddress(ca), from) === obj.path
      ? { kind: 'source', ca }
      : undefined;
  return undefined;
}

/** Checks that `obj` is what its path says under `from`; returns its content address. */
export function selfCheck(obj: RelocObject, from: string): string {
  if (obj.kind !== 'source' && obj.contents === undefined && obj.readContents === undefined)
    refuseWithoutContents(obj);
  const contents = obj.ca === undefined ? bytesOf(obj) : undefined;
  const ca =
    obj.ca !== undefined
      ? checkGivenContentAddress({ ...obj, ca: obj.ca }, from)
      : identifyContentAddress(
          {
            path: obj.path,
            references: obj.references,
            narHash: obj.narHash,
            file: contents === undefined ? undefined : { executable: false, contents },
          },
          from,
        );
  if (ca === undefined && obj.kind === 'source' && obj.narHash === undefined) refuseWithoutNarHash(obj);
  if (ca === undefined)
    refuse(
      `cannot relocate ${obj.path}: it is not content-addressed (its path does not follow from its ` +
        'contents, so it is a build output, e.g. brought in by builtins.storePath or ' +
        'import-from-derivation) or its contents do not match its path',
    );
  if (ca.kind !== obj.kind)
    refuse(`cannot relocate ${obj.path}: it is given as a ${obj.kind} but its path says it is a ${ca.kind}`);
  return ca.ca;
}

/** The object's file bytes, when it has them (read now when the caller reads them). */
export function bytesOf(obj: RelocObject): Uint8Array | undefined {
  return obj.contents ?? obj.readContents?.();
}

/** The file bytes of a drv or text, which it must have. */
export function contentsOf(obj: RelocObject): Uint8Array {
  return bytesOf(obj) ?? refuseWithoutContents(obj);
}

/** Refuses a source given without the NAR hash it is checked and relocated by. */
export function refuseWithoutNarHash(obj: RelocObject): never {
  return refuse(
    `cannot relocate ${obj.path}: it is given as a source without its NAR hash, and its contents ` +
      'do not make it a flat fixed-output path; a recursive source is checked, and relocated, by its NAR hash',
  );
}

/** Refuses a drv or text given without its contents. */
export function refuseWithoutContents(obj: RelocObject): never {
  return refuse(`cannot relocate ${obj.path}: a ${obj.kind} needs its contents`);
}

/** Refuses a source with references: native evaluation never makes one. */
export function refuseSourceWithReferences(obj: RelocObject): void {
  if (obj.kind === 'source' && obj.references.length > 0)
    refuse(
      `cannot relocate ${obj.path}: it is a source with references (${obj.references.join(', ')}); ` +
        'native evaluation could not have produced it',
    );
}

/** Refuses a .drv whose references are not its input derivations and sources. */
export function checkReferences(obj: RelocObject, drv: Pick<Derivation, 'inputDrvs' | 'inputSrcs'>): void {
  if (!sameReferences(drv, obj.references))
    refuse(`cannot relocate ${obj.path}: its references are not its input derivations and sources`);
}

/** True when a .drv's references are exactly its input sources and input derivations. */
function sameReferences(
  drv: Pick<Derivation, 'inputDrvs' | 'inputSrcs'>,
  references: readonly string[],
): boolean {
  const inputs = derivationReferences(drv);
  if (inputs.length === references.length && inputs.every((r, i) => r === references[i])) return true;
  // The caller's references may come in another order.
  const given = new Set(references);
  return given.size === inputs.length && inputs.every((r) => given.has(r));
}
