// The relocated export stream a relocated bundle is written from: in relocation order from the
// NARs kept while verifying, or in the bundle's order by reading the verified copy again when its
// sources were too large to keep.
import { exportStream, type BundleSource } from '../core/bundle/index.js';
import { NixPlanError } from '../core/errors.js';
import { readExport, type ExportEntry } from '../core/export-stream.js';
import { regularFileNar } from '../core/nar-write.js';
import type { RelocatedObject, Relocation } from '../core/relocate/index.js';

/**
 * The relocated export in relocation (dependency) order, made while it is written, from the NARs
 * kept in the first pass; `seen` is called with each relocated object first. An entry whose
 * deriver (a .drv of the closure) is not relocated yet waits, with everything after it, until
 * the deriver is, so the order stays a dependency order.
 */
export function* keptEntries(
  steps: Iterable<RelocatedObject>,
  relocation: Relocation,
  sources: {
    derivers: ReadonlyMap<string, string>;
    nars: ReadonlyMap<string, Uint8Array>;
    paths: Set<string>;
  },
  seen: (o: RelocatedObject) => void,
): Generator<ExportEntry> {
  const { pathMap } = relocation;
  const ready = (o: RelocatedObject): boolean => {
    const d = sources.derivers.get(o.oldPath);
    return d === undefined || pathMap.has(d) || !sources.paths.has(d);
  };
  const entry = (o: RelocatedObject): ExportEntry => {
    const nar = o.contents !== undefined ? regularFileNar(o.contents) : sources.nars.get(o.oldPath);
    if (nar === undefined) throw new NixPlanError('internal', `the NAR of '${o.oldPath}' was not kept`);
    const deriver = sources.derivers.get(o.oldPath);
    return {
      path: o.path,
      references: o.references,
      deriver: deriver === undefined ? '' : (pathMap.get(deriver) ?? ''),
      nar: nar instanceof Uint8Array ? [nar] : nar,
    };
  };
  const waiting: RelocatedObject[] = [];
  for (const o of steps) {
    seen(o);
    waiting.push(o);
    while (waiting.length > 0 && ready(waiting[0]!)) yield entry(waiting.shift()!);
  }
  for (const o of waiting) yield entry(o);
}

/**
 * The relocated export in the bundle's order, for sources too large to keep: the verified copy
 * is read again and each source's NAR copied through as it streams by.
 */
export async function* rereadEntries(
  bundle: BundleSource,
  steps: Iterable<RelocatedObject>,
  relocation: Relocation,
  seen: (o: RelocatedObject) => void,
): AsyncGenerator<ExportEntry> {
  const byOld = new Map<string, RelocatedObject>();
  for (const o of steps) {
    seen(o);
    byOld.set(o.oldPath, o);
  }
  let pending: Uint8Array[] = [];
  const stream = readExport(exportStream(bundle), {}, { onNarBytes: (c) => pending.push(c) });
  for await (const e of stream) {
    const chunks = pending;
    pending = [];
    const moved = byOld.get(e.path);
    if (moved === undefined) throw new NixPlanError('internal', `'${e.path}' was not relocated`);
    yield {
      path: moved.path,
      references: moved.references,
      deriver: e.deriver === '' ? '' : (relocation.pathMap.get(e.deriver) ?? ''),
      nar: moved.contents !== undefined ? regularFileNar(moved.contents) : chunks,
    };
  }
}
