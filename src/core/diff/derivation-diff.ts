// Why two derivations differ, the way nix-diff explains it: outputs, system, builder, arguments,
// environment, input sources and input derivations, following changed inputs of the same name
// down to the change that caused them. Every byte a plan supplies is shown through `showBytes`.
// Environment values that differ only by the store paths of changed inputs (and the derivation's
// own outputs) are not shown one by one: they are what any change to an input does.
import type { Derivation, DerivationInput } from '../derivation/index.js';
import { HASH_PART_LENGTH, nameOf } from '../store-path.js';
import { parseDrvName } from './drv-name.js';
import { outputKind, type OutputKind } from './graph.js';
import { diffSequences, type Edit } from './sequence.js';
import { showBytes, showText } from './text.js';

/** Where the diff reads whole derivations and small files of each side. */
export interface DrvLookup {
  /** The parsed derivation at `path`, or undefined when it is not available. */
  derivation(path: string): Derivation | undefined;
  /** The bytes of a store object that is one small file (a text file, a one-file source), or undefined. */
  file(path: string): Uint8Array | undefined;
}

/** An output as a drill-down shows it. */
export interface OutputDesc {
  readonly name: string;
  readonly kind: OutputKind;
  readonly hashAlgo: string;
  readonly hash: string;
}

/** Two values of one field, as safe text. */
export interface TextChange {
  readonly old: string;
  readonly new: string;
}

/** A changed environment variable: both values, and their lines' edits when either has several. */
export interface EnvChange {
  readonly key: string;
  readonly old: string;
  readonly new: string;
  readonly lines?: readonly Edit<string>[];
}

/** An input derivation and the outputs used. */
export interface InputRef {
  readonly path: string;
  readonly outputs: readonly string[];
}

/** An input derivation found on both sides under one name with other paths or outputs. */
export interface InputChange {
  /** The derivation name, or the package name when the versions differ. */
  readonly name: string;
  readonly old: InputRef;
  readonly new: InputRef;
  /**
   * Why the pair differs (when it was compared): undefined when the paths are equal (only the
   * outputs used changed) or when it was not compared (see `note`).
   */
  readonly diff?: DrvDiff;
  /** `already-compared` (shown elsewhere in this diff), `limit` (too many), `unavailable`. */
  readonly note?: 'already-compared' | 'limit' | 'unavailable';
}

/** An input source found on both sides under one name with other paths. */
export interface SourceChange {
  readonly name: string;
  readonly old: string;
  readonly new: string;
  /** The contents' line edits, when both are small files the plans hold. */
  readonly lines?: readonly Edit<string>[];
}

/** The difference of two derivations (fields that did not change are empty or absent). */
export interface DrvDiff {
  readonly old: string;
  readonly new: string;
  readonly outputs: {
    readonly removed: readonly OutputDesc[];
    readonly added: readonly OutputDesc[];
    /** Outputs of both whose kind, hash algorithm or declared hash changed. */
    readonly changed: readonly { name: string; old: OutputDesc; new: OutputDesc }[];
  };
  readonly system?: TextChange;
  readonly builder?: TextChange;
  readonly args?: readonly Edit<string>[];
  readonly env: {
    readonly removed: readonly { key: string; value: string }[];
    readonly added: readonly { key: string; value: string }[];
    readonly changed: readonly EnvChange[];
    /** Variables whose values differ only by the new store paths of changed inputs and outputs. */
    readonly pathsOnly: readonly string[];
  };
  readonly inputSrcs: {
    readonly removed: readonly string[];
    readonly added: readonly string[];
    readonly changed: readonly SourceChange[];
  };
  readonly inputDrvs: {
    readonly removed: readonly InputRef[];
    readonly added: readonly InputRef[];
    readonly changed: readonly InputChange[];
  };
}

/** Options of `diffDerivations`. */
export interface DrvDiffOptions {
  /** Store dir of both sides' paths (a relocated side is compared in the other's realm). */
  readonly storeDir: string;
  /** Derivation pairs compared at most (each once): the rest are noted `limit`. Default 100. */
  readonly maxCompared?: number;
  /** Longest value shown, in bytes; longer ones are cut with a note. Default 64 KiB. */
  readonly maxValueBytes?: number;
}

const latin1 = (b: Uint8Array): string =>
  Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('latin1');

function describeOutput(o: Derivation['outputs'][number]): OutputDesc {
  return { name: o.name, kind: outputKind(o), hashAlgo: o.hashAlgo, hash: o.hash };
}

const sameOutput = (a: OutputDesc, b: OutputDesc): boolean =>
  a.kind === b.kind && a.hashAlgo === b.hashAlgo && a.hash === b.hash;

/** `drvName` without throwing: a derivation path's name without `.drv`. */
const drvNameOf = (path: string): string => nameOf(path).replace(/\.drv$/, '');

/** Replaces old store paths by new ones in latin1 text: each known path where it occurs whole. */
class PathRewriter {
  private readonly byHash = new Map<string, [string, string][]>();

  constructor(private readonly storeDir: string) {}

  add(oldPath: string, newPath: string): void {
    if (oldPath === '' || newPath === '' || oldPath === newPath) return;
    const hash = oldPath.slice(this.storeDir.length + 1, this.storeDir.length + 1 + HASH_PART_LENGTH);
    let list = this.byHash.get(hash);
    if (list === undefined) this.byHash.set(hash, (list = []));
    list.push([oldPath, newPath]);
  }

  rewrite(text: string): string {
    const prefix = `${this.storeDir}/`;
    let out = '';
    let from = 0;
    for (let at = text.indexOf(prefix); at >= 0; at = text.indexOf(prefix, at + 1)) {
      const hash = text.slice(at + prefix.length, at + prefix.length + HASH_PART_LENGTH);
      const candidates = this.byHash.get(hash);
      if (candidates === undefined) continue;
      // The longest old path that occurs here (a name may extend another's).
      let best: [string, string] | undefined;
      for (const c of candidates)
        if (text.startsWith(c[0], at) && (best === undefined || c[0].length > best[0].length)) best = c;
      if (best === undefined) continue;
      out += text.slice(from, at) + best[1];
      from = at + best[0].length;
      at = from - 1;
    }
    return out + text.slice(from);
  }
}

function splitLines(text: string): string[] {
  const lines = text.split('\n');
  if (lines.length > 1 && lines[lines.length - 1] === '') lines.pop();
  return lines;
}

/** Compares derivation pairs, each once, up to a limit. */
class Comparer {
  private readonly compared = new Set<string>();
  private readonly maxCompared: number;
  private readonly maxValueBytes: number;

  constructor(
    private readonly old: DrvLookup,
    private readonly now: DrvLookup,
    private readonly options: DrvDiffOptions,
  ) {
    this.maxCompared = options.maxCompared ?? 100;
    this.maxValueBytes = options.maxValueBytes ?? 64 * 1024;
  }

  private show(bytes: Uint8Array): string {
    if (bytes.length <= this.maxValueBytes) return showBytes(bytes);
    return `${showBytes(bytes.subarray(0, this.maxValueBytes))}… (${bytes.length - this.maxValueBytes} more bytes not shown)`;
  }

  /** The diff of one pair, or a note saying why it is not compared. */
  pair(oldPath: string, newPath: string): { diff: DrvDiff } | { note: NonNullable<InputChange['note']> } {
    const key = `${oldPath}\0${newPath}`;
    if (this.compared.has(key)) return { note: 'already-compared' };
    if (this.compared.size >= this.maxCompared) return { note: 'limit' };
    const a = this.old.derivation(oldPath);
    const b = this.now.derivation(newPath);
    if (a === undefined || b === undefined) return { note: 'unavailable' };
    this.compared.add(key);
    return { diff: this.diff(oldPath, a, newPath, b) };
  }

  private diff(oldPath: string, a: Derivation, newPath: string, b: Derivation): DrvDiff {
    const rewriter = new PathRewriter(this.options.storeDir);
    rewriter.add(oldPath, newPath);

    // Outputs, by name.
    const oldOuts = new Map(a.outputs.map((o) => [o.name, o]));
    const newOuts = new Map(b.outputs.map((o) => [o.name, o]));
    const outputs: DrvDiff['outputs'] = {
      removed: a.outputs.filter((o) => !newOuts.has(o.name)).map(describeOutput),
      added: b.outputs.filter((o) => !oldOuts.has(o.name)).map(describeOutput),
      changed: a.outputs.flatMap((o) => {
        const n = newOuts.get(o.name);
        if (n === undefined) return [];
        rewriter.add(o.path, n.path);
        const [x, y] = [describeOutput(o), describeOutput(n)];
        return sameOutput(x, y) ? [] : [{ name: o.name, old: x, new: y }];
      }),
    };

    const inputDrvs = this.inputs(a.inputDrvs, b.inputDrvs, rewriter);
    const inputSrcs = this.sources(a.inputSrcs, b.inputSrcs, rewriter);

    // Environment, by key (keys are sorted by bytes in both).
    const env = {
      removed: [] as { key: string; value: string }[],
      added: [] as { key: string; value: string }[],
      changed: [] as EnvChange[],
      pathsOnly: [] as string[],
    };
    const oldEnv = new Map(a.env.map((e) => [latin1(e.key), e.value]));
    const newEnv = new Map(b.env.map((e) => [latin1(e.key), e.value]));
    const keyText = (k: string): string => showBytes(Buffer.from(k, 'latin1'), true);
    for (const [k, v] of oldEnv)
      if (!newEnv.has(k)) env.removed.push({ key: keyText(k), value: this.show(v) });
    for (const [k, v] of newEnv) if (!oldEnv.has(k)) env.added.push({ key: keyText(k), value: this.show(v) });
    for (const [k, v] of oldEnv) {
      const w = newEnv.get(k);
      if (w === undefined || Buffer.compare(v, w) === 0) continue;
      if (rewriter.rewrite(latin1(v)) === latin1(w)) {
        env.pathsOnly.push(keyText(k));
        continue;
      }
      const [x, y] = [this.show(v), this.show(w)];
      const [xl, yl] = [splitLines(x), splitLines(y)];
      env.changed.push({
        key: keyText(k),
        old: x,
        new: y,
        ...((xl.length > 1 || yl.length > 1) && { lines: diffSequences(xl, yl) }),
      });
    }

    const text = (bytes: Uint8Array): string => this.show(bytes);
    const field = (x: Uint8Array, y: Uint8Array): TextChange | undefined =>
      Buffer.compare(x, y) === 0 ? undefined : { old: text(x), new: text(y) };
    const system = field(a.system, b.system);
    const builder =
      rewriter.rewrite(latin1(a.builder)) === latin1(b.builder) ? undefined : field(a.builder, b.builder);
    const oldArgs = a.args.map((x) => latin1(x));
    const newArgs = b.args.map((x) => latin1(x));
    const argsSame =
      oldArgs.length === newArgs.length && oldArgs.every((x, i) => rewriter.rewrite(x) === newArgs[i]);
    return {
      old: oldPath,
      new: newPath,
      outputs,
      ...(system !== undefined && { system }),
      ...(builder !== undefined && { builder }),
      ...(!argsSame && {
        args: diffSequences(a.args.map(text), b.args.map(text)),
      }),
      env,
      inputSrcs,
      inputDrvs,
    };
  }

  /** Input derivations: equal paths, then pairs by derivation name, then by package name. */
  private inputs(
    a: readonly DerivationInput[],
    b: readonly DerivationInput[],
    rewriter: PathRewriter,
  ): DrvDiff['inputDrvs'] {
    const ref = (i: DerivationInput): InputRef => ({ path: i.path, outputs: i.outputs });
    const changed: InputChange[] = [];
    const newByPath = new Map(b.map((i) => [i.path, i]));
    const oldByPath = new Map(a.map((i) => [i.path, i]));
    for (const i of a) {
      const j = newByPath.get(i.path);
      if (j !== undefined && i.outputs.join(' ') !== j.outputs.join(' '))
        changed.push({ name: drvNameOf(i.path), old: ref(i), new: ref(j) });
    }
    let oldRest = a.filter((i) => !newByPath.has(i.path));
    let newRest = b.filter((i) => !oldByPath.has(i.path));
    const pairs: [DerivationInput, DerivationInput, string][] = [];
    const pairBy = (key: (path: string) => string): void => {
      const byKey = new Map<string, DerivationInput[]>();
      for (const j of newRest) {
        const list = byKey.get(key(j.path));
        if (list === undefined) byKey.set(key(j.path), [j]);
        else list.push(j);
      }
      const oldByKey = new Map<string, number>();
      for (const i of oldRest) oldByKey.set(key(i.path), (oldByKey.get(key(i.path)) ?? 0) + 1);
      const used = new Set<DerivationInput>();
      for (const i of oldRest) {
        const k = key(i.path);
        const list = byKey.get(k);
        // Pair only when the name picks exactly one derivation on each side.
        if (list?.length !== 1 || oldByKey.get(k) !== 1) continue;
        pairs.push([i, list[0]!, k]);
        used.add(i).add(list[0]!);
      }
      oldRest = oldRest.filter((i) => !used.has(i));
      newRest = newRest.filter((j) => !used.has(j));
    };
    pairBy(drvNameOf);
    pairBy((p) => parseDrvName(drvNameOf(p)).name);
    for (const [i, j] of pairs) this.mapOutputs(i.path, j.path, rewriter);
    for (const [i, j, name] of pairs) {
      const compared = this.pair(i.path, j.path);
      changed.push({ name, old: ref(i), new: ref(j), ...compared });
    }
    changed.sort((x, y) => (x.name < y.name ? -1 : x.name > y.name ? 1 : 0));
    return { removed: oldRest.map(ref), added: newRest.map(ref), changed };
  }

  /** Teaches the rewriter a changed input's drv path and output paths, by output name. */
  private mapOutputs(oldPath: string, newPath: string, rewriter: PathRewriter): void {
    rewriter.add(oldPath, newPath);
    const a = this.old.derivation(oldPath);
    const b = this.now.derivation(newPath);
    if (a === undefined || b === undefined) return;
    const newOuts = new Map(b.outputs.map((o) => [o.name, o.path]));
    for (const o of a.outputs) rewriter.add(o.path, newOuts.get(o.name) ?? '');
  }

  /** Input sources: pairs by name, the rest removed or added. */
  private sources(a: readonly string[], b: readonly string[], rewriter: PathRewriter): DrvDiff['inputSrcs'] {
    const inNew = new Set(b);
    const inOld = new Set(a);
    const oldRest = a.filter((p) => !inNew.has(p));
    const newRest = b.filter((p) => !inOld.has(p));
    const count = (xs: string[]): Map<string, number> => {
      const m = new Map<string, number>();
      for (const p of xs) m.set(nameOf(p), (m.get(nameOf(p)) ?? 0) + 1);
      return m;
    };
    const oldNames = count(oldRest);
    const newNames = count(newRest);
    const changed: SourceChange[] = [];
    const paired = new Set<string>();
    for (const p of oldRest) {
      const name = nameOf(p);
      if (oldNames.get(name) !== 1 || newNames.get(name) !== 1) continue;
      const q = newRest.find((x) => nameOf(x) === name)!;
      paired.add(p).add(q);
      rewriter.add(p, q);
      const x = this.old.file(p);
      const y = this.now.file(q);
      changed.push({
        name: showText(name),
        old: p,
        new: q,
        ...(x !== undefined &&
          y !== undefined && { lines: diffSequences(splitLines(this.show(x)), splitLines(this.show(y))) }),
      });
    }
    return {
      removed: oldRest.filter((p) => !paired.has(p)),
      added: newRest.filter((p) => !paired.has(p)),
      changed,
    };
  }
}

/**
 * Why `newPath` differs from `oldPath` (both derivations of the plans `old` and `now` can read),
 * following changed inputs of the same name (each pair once, at most `maxCompared`).
 */
export function diffDerivations(
  oldPath: string,
  newPath: string,
  old: DrvLookup,
  now: DrvLookup,
  options: DrvDiffOptions,
): DrvDiff | undefined {
  const result = new Comparer(old, now, options).pair(oldPath, newPath);
  return 'diff' in result ? result.diff : undefined;
}
