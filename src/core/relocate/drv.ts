// The .drv path of relocation: a derivation whose dependencies are relocated gets its inputs
// mapped, its strings rewritten, its fixed outputs recomputed and (input-addressed) its output
// paths filled in under the new store dir; then its own path follows from its bytes.
import { compareBytes } from '../bytes.js';
import {
  computeDrvPath,
  derivationReferences,
  drvName,
  parseDerivationSpans,
  serialiseDerivation,
  spliceDerivation,
  type Derivation,
  type DerivationHasher,
  type DerivationHead,
  type DerivationHeadLayout,
  type DerivationLayout,
  type DerivationOutput,
  type DerivationTail,
  type EnvEntry,
  type FilledDerivation,
  type MaskedDerivation,
  outputNamed,
} from '../derivation/index.js';
import { HASH_PART_LENGTH, compareStrings } from '../store-path.js';
import { bytesOf, checkReferences, refuse, refuseImpureEnv, type DrvType } from './checks.js';
import type { RelocatedObject, RelocObject } from './types.js';

/** What relocating a .drv needs of the relocation it is part of. */
export interface DrvContext {
  readonly from: string;
  readonly to: string;
  readonly hasher: DerivationHasher;
  readonly mapPath: (p: string) => string;
  readonly setHash: (oldPath: string, newPath: string) => void;
  /** Rewrites a string (as written in a .drv when `escaped`), counting what it rewrote. */
  readonly rewrite: (bytes: Uint8Array, escaped?: boolean) => Uint8Array;
  /** True when a rewrite of `bytes` would find anything. */
  readonly mentionsAny: (bytes: Uint8Array) => boolean;
  readonly onDerivation: ((obj: RelocObject, drv: DerivationHead) => void) | undefined;
  /**
   * The hasher of the original derivations in A, when relocation checks that each one's output
   * paths follow from its contents (undefined: the caller checked them).
   */
  readonly hasherA: DerivationHasher | undefined;
}

/** Relocates one derivation whose dependencies are all relocated: parsed whole, serialised again. */
export function relocateDrv(
  obj: RelocObject,
  drv: Derivation,
  type: DrvType,
  cx: DrvContext,
): RelocatedObject {
  cx.onDerivation?.(obj, drv);
  const name = drvName(obj.path);
  checkReferences(obj, drv);
  refuseImpureEnv(
    obj.path,
    drv.env.map((e) => e.key),
  );
  if (cx.hasherA !== undefined) {
    if (type !== 'input-addressed') cx.hasherA.record(obj.path, drv);
    else checkFilledInA(obj, drv, cx.hasherA.fillOutputs(drv, name), cx.hasherA);
  }
  const outputs = fixOutputs(drv.outputs, type, name, cx);
  // Input-addressed: the own output paths in env are what is being computed: mask them first.
  const masked = type === 'input-addressed';
  const env: EnvEntry[] = drv.env
    .map((e) => ({
      key: cx.rewrite(e.key),
      value:
        masked && outputNamed(drv.outputs, e.key) !== undefined ? new Uint8Array(0) : cx.rewrite(e.value),
    }))
    .sort((a, b) => compareBytes(a.key, b.key));
  const relocated: Derivation = {
    ...relocatedHead(drv, outputs, masked, cx),
    builder: cx.rewrite(drv.builder),
    args: drv.args.map((a) => cx.rewrite(a)),
    env,
  };
  return completeDrv(
    obj,
    drv.outputs,
    relocated,
    // Output paths, the bytes with them filled in and the modulo hash, from one serialisation.
    masked ? cx.hasher.fillOutputs(relocated, name) : serialiseDerivation(relocated),
    cx,
  );
}

/**
 * `relocateDrv` without unescaping the strings after the system and escaping them again: the
 * builder, arguments and environment are rewritten as written and spliced after the new head
 * (what `rewrite` finds in escaped strings is what it finds in their text). Undefined, having
 * done nothing, when an environment key mentions a store path, as rewriting it could change the
 * order of the environment: relocateDrv sorts it again.
 */
export function spliceDrv(
  obj: RelocObject,
  bytes: Uint8Array,
  type: DrvType,
  cx: DrvContext,
): RelocatedObject | undefined {
  const spans: DerivationHeadLayout = { outputPaths: [], inputDrvsStart: 0, inputDrvsEnd: 0 };
  const { head, tail } = parseDerivationSpans(bytes, spans);
  cx.onDerivation?.(obj, head);
  refuseImpureEnv(obj.path, tail.keys);
  for (const key of tail.keys) if (key.length >= HASH_PART_LENGTH && cx.mentionsAny(key)) return undefined;
  const name = drvName(obj.path);
  checkReferences(obj, head);
  const outputs = fixOutputs(head.outputs, type, name, cx);
  const masked = type === 'input-addressed';
  // The tail as written, rewritten; masked, it is cut around the values of the env variables
  // named after outputs, which are left empty (their paths are filled in later).
  const pieces: Uint8Array[] = [];
  const holeOutputs: string[] = [];
  let r = tail.start;
  // Plain loops: a closure per environment variable added up to tens of MB of garbage.
  if (masked)
    for (let i = 0; i < tail.keys.length; i++) {
      const o = outputNamed(head.outputs, tail.keys[i]!);
      if (o === undefined) continue;
      pieces.push(cx.rewrite(bytes.subarray(r, tail.values[2 * i]), true));
      holeOutputs.push(o.name);
      r = tail.values[2 * i + 1]!;
    }
  pieces.push(cx.rewrite(bytes.subarray(r), true));
  if (cx.hasherA !== undefined) checkSplicedInA(obj, bytes, head, tail, spans, masked, cx.hasherA);
  const relocated = relocatedHead(head, outputs, masked, cx);
  if (!masked) return completeDrv(obj, head.outputs, relocated, spliceDerivation(relocated, pieces), cx);
  const layout: DerivationLayout = { inputDrvsStart: 0, inputDrvsEnd: 0, outputPaths: [], envValues: [] };
  const maskedBytes = spliceDerivation(relocated, pieces, layout);
  const maskedDrv: MaskedDerivation = {
    bytes: maskedBytes,
    layout,
    envHoles: holeOutputs.map((output, i) => ({ at: layout.envValues[i]!, output })),
  };
  return completeDrv(obj, head.outputs, relocated, cx.hasher.fillMasked(maskedDrv, relocated, name), cx);
}

/**
 * The check of `relocateDrv`'s, from the spans `spliceDrv` has: the original masked around its
 * output paths and the variables named after its outputs, its outputs filled in as the hasher in
 * A gives them, must be the original bytes. Records its modulo hash in A for its dependents.
 */
function checkSplicedInA(
  obj: RelocObject,
  bytes: Uint8Array,
  head: DerivationHead,
  tail: DerivationTail,
  spans: DerivationHeadLayout,
  masked: boolean,
  hasherA: DerivationHasher,
): void {
  if (!masked) {
    hasherA.record(obj.path, head);
    return;
  }
  const holes: { start: number; end: number; output: string }[] = [];
  for (let i = 0; i < tail.keys.length; i++) {
    const o = outputNamed(head.outputs, tail.keys[i]!);
    if (o !== undefined)
      holes.push({ start: tail.values[2 * i]!, end: tail.values[2 * i + 1]!, output: o.name });
  }
  // Checked on the .drv's own bytes; written out masked and filled in only to say what is wrong.
  const name = drvName(obj.path);
  const checked = hasherA.checkFilled(bytes, spans, holes, head, name);
  if (checked !== undefined) {
    hasherA.record(obj.path, head, checked.hash);
    return;
  }
  const pieces: Uint8Array[] = [];
  let r = tail.start;
  for (const h of holes) {
    pieces.push(bytes.subarray(r, h.start));
    r = h.end;
  }
  pieces.push(bytes.subarray(r));
  const layout: DerivationLayout = { inputDrvsStart: 0, inputDrvsEnd: 0, outputPaths: [], envValues: [] };
  const maskedHead = { ...head, outputs: head.outputs.map((o) => ({ ...o, path: '' })) };
  const maskedBytes = spliceDerivation(maskedHead, pieces, layout);
  const maskedDrv: MaskedDerivation = {
    bytes: maskedBytes,
    layout,
    envHoles: holes.map((h, i) => ({ at: layout.envValues[i]!, output: h.output })),
  };
  checkFilledInA(obj, head, hasherA.fillMasked(maskedDrv, head, name), hasherA, bytes);
}

/**
 * Refuses an input-addressed .drv whose output paths (or the variables named after them) are not
 * what its contents give in A, as Nix refuses it on import: relocation recomputes them in B, so
 * relocating it there and back would not give it back. Records its modulo hash in A.
 */
function checkFilledInA(
  obj: RelocObject,
  drv: Pick<Derivation, 'outputs'>,
  filled: FilledDerivation,
  hasherA: DerivationHasher,
  original: Uint8Array = bytesOf(obj)!,
): void {
  if (compareBytes(filled.bytes, original) !== 0) {
    const i = drv.outputs.findIndex((o, k) => o.path !== filled.paths[k]);
    const wrong = drv.outputs[i];
    refuse(
      `cannot relocate ${obj.path}: ` +
        (wrong !== undefined
          ? `its output ${wrong.name} is ${wrong.path === '' ? 'empty' : wrong.path}, but its contents give ${filled.paths[i] || 'none before it is built'}`
          : 'the variables named after its outputs do not hold their paths') +
        ' (Nix refuses it on import), so relocating it there and back would not give it back',
    );
  }
  hasherA.record(obj.path, drv, filled.hash);
}

/**
 * The outputs of a relocated .drv before its strings are rewritten: a fixed output's path
 * follows from its hash alone, so it is known (and recorded) now; other paths are kept.
 */
function fixOutputs(
  outputs: readonly DerivationOutput[],
  type: DrvType,
  name: string,
  cx: DrvContext,
): DerivationOutput[] {
  const copy = outputs.map((o) => ({ ...o }));
  if (type !== 'fixed') return copy;
  const paths = cx.hasher.fixedOutputPaths({ outputs: copy }, name)!;
  for (const o of copy) {
    const p = paths.get(o.name)!;
    cx.setHash(o.path, p);
    o.path = p;
  }
  return copy;
}

/** Outputs (masked: with empty paths), inputs mapped and sorted, and the system rewritten. */
function relocatedHead(
  drv: Pick<Derivation, 'version' | 'inputDrvs' | 'inputSrcs' | 'system'>,
  outputs: DerivationOutput[],
  masked: boolean,
  cx: DrvContext,
): Pick<Derivation, 'version' | 'outputs' | 'inputDrvs' | 'inputSrcs' | 'system'> {
  return {
    version: drv.version,
    outputs: masked ? outputs.map((o) => ({ ...o, path: '' })) : outputs,
    inputDrvs: drv.inputDrvs
      // Output names (and a dynamic input's child map of them) are read, never changed.
      .map((i) => ({ ...i, path: cx.mapPath(i.path) }))
      .sort((a, b) => compareStrings(a.path, b.path)),
    inputSrcs: drv.inputSrcs.map(cx.mapPath).sort(compareStrings),
    system: cx.rewrite(drv.system),
  };
}

/**
 * The relocated .drv from its written form: the final bytes, or (input-addressed) the masked
 * form with its outputs filled in, whose paths are recorded against the original ones.
 */
function completeDrv(
  obj: RelocObject,
  original: readonly DerivationOutput[],
  relocated: Pick<Derivation, 'outputs' | 'inputDrvs' | 'inputSrcs'>,
  written: Uint8Array | FilledDerivation,
  cx: DrvContext,
): RelocatedObject {
  const name = drvName(obj.path);
  let contents: Uint8Array;
  let hash: FilledDerivation['hash'] | undefined;
  if (written instanceof Uint8Array) contents = written;
  else {
    contents = written.bytes;
    hash = written.hash;
    for (let i = 0; i < original.length; i++) {
      const o = original[i]!;
      const p = written.paths[i] ?? '';
      if ((o.path === '') !== (p === ''))
        refuse(
          `cannot relocate ${obj.path}: output ${o.name} is deferred in one store dir and not the other`,
        );
      if (o.path !== '') cx.setHash(o.path, p);
    }
  }
  const references = derivationReferences(relocated);
  const path = computeDrvPath(cx.to, name, contents, references);
  cx.hasher.record(path, relocated, hash);
  return { oldPath: obj.path, path, kind: 'drv', references, contents };
}
