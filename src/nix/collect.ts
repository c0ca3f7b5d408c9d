// Collects what a plan carries for each `--include` kind: the .drv closure, plus realised outputs
// of fixed-output derivations (sources), or the roots' built output closure (outputs).
import {
  isFixedOutput,
  outputsOf,
  parseDerivationOutputs,
  scanDerivation,
} from '../core/derivation/index.js';
import { NixPlanError } from '../core/errors.js';
import { regularFileNarSize } from '../core/nar-write.js';
import type { Include } from '../core/bundle/manifest.js';
import { findBuiltInputs, type BuiltInput } from './built-inputs.js';
import { classifySync } from './classify.js';
import { dependencyOrder } from '../core/closure.js';
import type { ClosureObject, NixStore, PathInfo } from './store.js';

/** .drv files read between two turns of the event loop while Nix's --dump-db output streams in. */
const YIELD_EVERY = 512;

/** The collected closure: objects in dependency order and each root's output paths. */
export interface CollectedClosure {
  readonly objects: ClosureObject[];
  /** root drv path → output name → output path ("" when not known before building). */
  readonly rootOutputs: Map<string, Record<string, string>>;
  /** The `system` of every derivation, sorted. */
  readonly systems: string[];
}

/** Hooks for long phases (the CLI shows them; builds print Nix's own output). */
export interface CollectHooks {
  /** Called before realising paths for `sources`/`outputs`. */
  onRealise?: (what: string, count: number) => void;
}

/** Options of streamClosure. */
export interface StreamOptions {
  /**
   * For `drvs`: describe each .drv from its own file (no deriver, its input derivations and
   * sources as references, its NAR size from its size; `narHash` is then "") instead of asking
   * Nix's database, which is then asked only about the other paths. A .drv's path is the hash of
   * its bytes and those references, so they are what Nix registered for it; the bundle verifier
   * recomputes every .drv path from them on import.
   */
  readonly drvsFromFiles?: boolean | undefined;
}

/** A closure member as streamed: with its bytes when they were read whole to classify it. */
export interface StreamedObject extends ClosureObject {
  /** The object's bytes and mode when it is one regular file that was read (every .drv). */
  readonly file?: { readonly bytes: Uint8Array; readonly executable: boolean } | undefined;
}

/** The closure as it is read: the objects as Nix describes them, and what the .drv files say. */
export interface ClosureStream {
  /** How many objects `objects` yields. */
  readonly count: number;
  /**
   * The objects in dependency order, each as soon as Nix has described it (iterate once). For
   * `drvs` that is `nix-store --query --requisites`' order, which Nix sorts topologically; it is
   * checked as it goes (a reference to a path not yet yielded is an 'internal' error).
   */
  readonly objects: AsyncIterable<StreamedObject> | Iterable<StreamedObject>;
  /**
   * Each root's outputs and the sorted systems of the derivations; complete once `objects` has
   * been iterated to its end (for `drvs` the .drv files are read as they are streamed).
   */
  summary(): Pick<CollectedClosure, 'rootOutputs' | 'systems'>;
  /**
   * The build outputs evaluation read, when known at once (`sources`, `outputs`); for `drvs`
   * the caller finds them from the streamed objects (`findBuiltInputs`).
   */
  readonly builtInputs?: BuiltInput[] | undefined;
}

/**
 * Reads the closure of `rootDrvs` for `include`: one `nix-store -q --requisites` for the .drv
 * closure, at most one `nix-store --realise` and one more query for added outputs, one
 * `--dump-db` per batch, and the .drv files read directly from the store.
 */
export async function collectClosure(
  store: NixStore,
  storeDir: string,
  rootDrvs: readonly string[],
  include: Include,
  hooks: CollectHooks = {},
): Promise<CollectedClosure> {
  const stream = await streamClosure(store, storeDir, rootDrvs, include, hooks);
  const objects: ClosureObject[] = [];
  for await (const o of stream.objects) {
    const { file: _bytes, ...object } = o;
    objects.push(object);
  }
  return { objects, ...stream.summary() };
}

/** What the .drv files of a closure say for the manifest, gathered one file at a time. */
class DrvFacts {
  readonly rootOutputs = new Map<string, Record<string, string>>();
  readonly systems = new Set<string>();
  readonly fods: string[] = [];
  readonly fodOutputs: string[] = [];
  private readonly rootSet: Set<string>;

  constructor(private readonly roots: readonly string[]) {
    this.rootSet = new Set(roots);
  }

  /** Adds one .drv; returns its references (scanDerivation's). */
  add(path: string, bytes: Uint8Array): string[] {
    // Only the head (outputs) is parsed, and the rest skipped through: a full parse of every
    // .drv (env values, escapes) cost more than reading the files.
    const drv = parseDerivationOutputs(bytes);
    const { system, references } = scanDerivation(bytes, drv.version !== undefined);
    this.systems.add(system);
    if (this.rootSet.has(path)) this.rootOutputs.set(path, outputsOf(drv));
    if (isFixedOutput(drv)) {
      this.fods.push(path);
      this.fodOutputs.push(...Object.values(outputsOf(drv)));
    }
    return references;
  }

  summary(): Pick<CollectedClosure, 'rootOutputs' | 'systems'> {
    for (const root of this.roots)
      if (!this.rootOutputs.has(root)) throw new NixPlanError('nix', `'${root}' is not in its own closure`);
    return { rootOutputs: this.rootOutputs, systems: [...this.systems].sort() };
  }
}

/**
 * `collectClosure` as a stream. For `drvs` it returns once Nix has listed the closure, and each
 * .drv is read once, when its turn comes, while Nix describes the next paths: a writer starts at
 * once. The other kinds need every .drv read and the whole graph first (to realise fixed
 * outputs or roots, and to order what that adds).
 */
export async function streamClosure(
  store: NixStore,
  storeDir: string,
  rootDrvs: readonly string[],
  include: Include,
  hooks: CollectHooks = {},
  options: StreamOptions = {},
): Promise<ClosureStream> {
  store.setStoreDir(storeDir);
  const drvClosure = await store.requisites(rootDrvs);
  const drvsFromFiles = include === 'drvs' && options.drvsFromFiles === true;
  // Nix answers --dump-db (child processes, on the other core) while this thread reads files.
  const drvBatches = store.pathInfoBatches(
    drvsFromFiles ? drvClosure.filter((p) => !p.endsWith('.drv')) : drvClosure,
  );
  const facts = new DrvFacts(rootDrvs);
  const readDrv = (p: string): { bytes: Uint8Array; executable: boolean; references: string[] } => {
    const file = store.readRegularFileSync(p);
    if (file === undefined) throw new NixPlanError('nix', `'${p}' is not a regular file`);
    return { ...file, references: facts.add(p, file.bytes) };
  };
  const readRegularFile = (q: string, maxSize: number): ReturnType<NixStore['readRegularFileSync']> =>
    store.readRegularFileSync(q, maxSize);
  const withKind = (info: PathInfo): ClosureObject => ({
    ...info,
    kind: classifySync(info, storeDir, readRegularFile),
  });

  if (include === 'drvs') {
    const objects = async function* (): AsyncGenerator<StreamedObject> {
      const done = new Set<string>();
      const described = drvBatches[Symbol.asyncIterator]();
      let batch: PathInfo[] = [];
      let next = 0;
      for (const p of drvClosure) {
        let object: StreamedObject;
        if (drvsFromFiles && p.endsWith('.drv')) {
          // What Nix registers for a .drv it writes: no deriver, its inputs as references.
          const { references, ...file } = readDrv(p);
          const narSize = regularFileNarSize(file.bytes.length, file.executable);
          object = { path: p, narHash: '', narSize, deriver: '', references, kind: 'drv', file };
        } else {
          while (next === batch.length) {
            const r = await described.next();
            if (r.done === true) throw new NixPlanError('internal', `nix-store --dump-db skipped '${p}'`);
            batch = r.value;
            next = 0;
          }
          const info = batch[next++];
          if (info?.path !== p)
            throw new NixPlanError('internal', `nix-store --dump-db answered out of order at '${p}'`);
          object = p.endsWith('.drv') ? { ...withKind(info), file: readDrv(p) } : withKind(info);
        }
        for (const r of object.references)
          if (r !== p && !done.has(r))
            throw new NixPlanError(
              'internal',
              `nix-store --query --requisites listed '${p}' before its reference '${r}'`,
            );
        done.add(p);
        yield object;
      }
    };
    return { count: drvClosure.length, objects: objects(), summary: () => facts.summary() };
  }

  let sinceYield = 0;
  for (const p of drvClosure) {
    if (!p.endsWith('.drv')) continue;
    readDrv(p);
    // Let the event loop drain Nix's output now and then, so the child never waits on a full pipe.
    if (++sinceYield === YIELD_EVERY) {
      sinceYield = 0;
      await new Promise((resolve) => setImmediate(resolve));
    }
  }
  facts.summary(); // the roots are in their closure
  let extra: string[] = [];
  if (include === 'sources') {
    if (facts.fods.length > 0) {
      hooks.onRealise?.('fixed-output derivations', facts.fods.length);
      await store.realise(facts.fods);
      extra = await store.requisites(facts.fodOutputs);
    }
  } else {
    hooks.onRealise?.('roots', rootDrvs.length);
    const built = await store.realise(rootDrvs);
    const outs = new Set(built);
    for (const o of facts.rootOutputs.values()) for (const p of Object.values(o)) if (p !== '') outs.add(p);
    extra = await store.requisites([...outs]);
  }

  const inClosure = new Set(drvClosure);
  let added = extra.filter((p) => !inClosure.has(p));
  const all = [...drvClosure, ...added];
  const infos = new Map<string, PathInfo>();
  for await (const batch of drvBatches) for (const info of batch) infos.set(info.path, info);
  if (added.length > 0) for (const [p, info] of await store.pathInfos(added)) infos.set(p, info);
  const kinds = new Map<string, ClosureObject>();
  const classify = (p: string): ClosureObject => {
    let o = kinds.get(p);
    if (o === undefined) {
      const info = infos.get(p);
      if (info === undefined) throw new NixPlanError('internal', `no registration for '${p}'`);
      o = withKind(info);
      kinds.set(p, o);
    }
    return o;
  };
  // Build outputs evaluation read: `sources` carries the derivations that built them (with their
  // closures), which relocation needs to name copies of them in another store dir.
  // (A fixed output the plan builds itself is not one: its .drv's hash proves it.)
  const fixedOutputs = new Set(facts.fodOutputs);
  const builtInputs =
    include === 'sources'
      ? (await findBuiltInputs(store, storeDir, all.map(classify))).filter((b) => !fixedOutputs.has(b.output))
      : undefined;
  const inAll = new Set(all);
  const derivers = [...new Set((builtInputs ?? []).map((b) => b.deriver))].filter(
    (d) => d !== '' && !inAll.has(d),
  );
  if (derivers.length > 0) {
    const invalid = await store.invalidPaths(derivers);
    added = (await store.requisites(derivers.filter((d) => !invalid.has(d)))).filter((p) => !inAll.has(p));
    for (const [p, info] of await store.pathInfos(added)) infos.set(p, info);
    for (const p of added) {
      all.push(p);
      if (p.endsWith('.drv')) readDrv(p);
    }
  }
  const refsOf = (p: string): readonly string[] => infos.get(p)?.references ?? [];
  const order = dependencyOrder(all, refsOf);
  const objects = order.map(classify);
  return { count: objects.length, objects, summary: () => facts.summary(), builtInputs };
}
