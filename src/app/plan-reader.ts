// Reading one side of a comparison into a PlanGraph: a bundle (verified in one streaming pass,
// keeping only each .drv's head), a .drv in a store, or the current generation of a profile
// (through its deriver). Each side can fetch the whole bytes of chosen paths afterwards, for a
// drill-down, without having held them.
import { readBundleHead } from '../core/bundle/index.js';
import { NixStore } from '../nix/store.js';
import type { Deps } from './deps.js';
import { readBundleSide } from './plan-side-bundle.js';
import { readStoreSide } from './plan-side-store.js';
import { openLocation, type PlanLocation, type ReadOptions, type ReadSide } from './plan-side.js';

// What readPlanSide takes and gives, where its callers have always found them.
export type { PlanLocation, ReadOptions, ReadSide } from './plan-side.js';

/** Reads the store dir of a bundle, a .drv path or a profile without reading the rest. */
export async function storeDirOf(location: PlanLocation, options: ReadOptions, deps: Deps): Promise<string> {
  if (location.kind === 'bundle') {
    const source = await openLocation(location);
    try {
      return (await readBundleHead(source)).manifest.storeDir;
    } finally {
      await source.close();
    }
  }
  return new NixStore(deps.runner, { store: options.store }).storeDir();
}

/** Reads one side of a comparison. */
export async function readPlanSide(
  location: PlanLocation,
  options: ReadOptions,
  deps: Deps,
): Promise<ReadSide> {
  return location.kind === 'bundle'
    ? readBundleSide(location, options, deps)
    : readStoreSide(location, options, deps);
}
