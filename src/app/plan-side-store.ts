// Reading a store side of a comparison: a .drv in a store, or the current generation of a profile
// through its deriver, with the closure's .drv heads read from the store and its small files
// fetched for a drill-down.
import { readlink } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import { NixPlanError } from '../core/errors.js';
import { parseDerivationHead, type DerivationHead } from '../core/derivation/index.js';
import { baseName, HASH_PART_LENGTH, nameOf } from '../core/store-path.js';
import { PlanGraph } from '../core/diff/graph.js';
import { NixStore } from '../nix/store.js';
import { progressOf, type Deps } from './deps.js';
import {
  FILE_BUDGET,
  drillDownLimit,
  MAX_FILE,
  MAX_HELD_BYTES,
  type PlanLocation,
  type ReadOptions,
  type ReadSide,
} from './plan-side.js';

/** The store path a profile's current generation is: its symlinks followed into the store dir. */
async function profileTarget(profile: string, storeDir: string): Promise<string> {
  let at = isAbsolute(profile) ? profile : resolve(profile);
  for (let hops = 0; hops < 40; hops++) {
    if (at.startsWith(`${storeDir}/`)) {
      const rest = at.slice(storeDir.length + 1);
      return `${storeDir}/${rest.split('/')[0] ?? ''}`;
    }
    let target: string;
    try {
      target = await readlink(at);
    } catch (e) {
      throw new NixPlanError(
        'usage',
        `cannot read the profile '${profile}': ${(e as NodeJS.ErrnoException).code === 'EINVAL' ? `'${at}' is not a symlink into ${storeDir}` : (e as Error).message}`,
      );
    }
    at = isAbsolute(target) ? target : resolve(dirname(at), target);
  }
  throw new NixPlanError('usage', `the profile '${profile}' is a chain of more than 40 symlinks`);
}

/**
 * Refuses a deriver that does not build the profile's system. The store records whatever deriver
 * a path came with (a substituter's narinfo, an import's export stream), unchecked: a .drv that
 * declares none of its outputs at `out` would be compared as the profile's plan. A deriver whose
 * outputs are all known only once built (content-addressed) cannot be checked, and is taken.
 */
function checkDeriver(
  profile: string,
  out: string,
  drvPath: string,
  head: Pick<DerivationHead, 'outputs'>,
): void {
  if (head.outputs.some((o) => o.path === out) || head.outputs.every((o) => o.path === '')) return;
  throw new NixPlanError(
    'usage',
    `the store names ${drvPath} as the deriver of the current generation of '${profile}' (${out}), but that .drv does not build it ` +
      '(a deriver is whatever the path came with, unchecked), so its plan cannot be read; compare against a plan bundle or a .drv path instead',
  );
}

/** Reads a .drv or profile side (`readPlanSide` of those locations). */
export async function readStoreSide(
  location: PlanLocation,
  options: ReadOptions,
  deps: Deps,
): Promise<ReadSide> {
  const store = new NixStore(deps.runner, { store: options.store });
  const storeDir = await store.storeDir();
  let drvPath = location.path;
  let label: string;
  let profileOutput: string | undefined;
  if (location.kind === 'profile') {
    const out = await profileTarget(location.path, storeDir);
    profileOutput = out;
    const deriver = await store.deriver(out);
    if (deriver === undefined)
      throw new NixPlanError(
        'usage',
        `the current generation of '${location.path}' (${out}) has no known deriver, so its plan cannot be read; compare against a plan bundle or a .drv path instead`,
      );
    drvPath = deriver;
    label = nameOf(out);
  } else {
    if (
      !drvPath.startsWith(`${storeDir}/`) ||
      !drvPath.endsWith('.drv') ||
      baseName(drvPath).length <= HASH_PART_LENGTH + 5
    )
      throw new NixPlanError('usage', `'${drvPath}' is not a .drv path in the store ${storeDir}`);
    label = nameOf(drvPath).replace(/\.drv$/, '');
  }
  let closure: string[];
  try {
    closure = await store.requisites([drvPath]);
  } catch (e) {
    throw new NixPlanError(
      'usage',
      location.kind === 'profile'
        ? `the deriver ${drvPath} of the current generation of '${location.path}' is not in the store (garbage-collected?), so its plan cannot be read; compare against a plan bundle instead`
        : `'${drvPath}' is not a valid path in the store: ${(e as Error).message.split('\n')[0] ?? ''}`,
      { cause: e },
    );
  }
  store.setStoreDir(storeDir);
  if (profileOutput !== undefined) {
    // Before anything of it is compared (the other plan may hold the same .drv).
    const file = store.readRegularFileSync(drvPath);
    if (file === undefined) throw new NixPlanError('nix', `'${drvPath}' is not a regular file`);
    checkDeriver(location.path, profileOutput, drvPath, parseDerivationHead(file.bytes));
  }
  const graph = new PlanGraph(storeDir, [{ label, drvPath }]);
  const known = options.known?.graph.storeDir === storeDir ? options.known.graph : undefined;
  const systems = new Set<string>();
  const task = progressOf(deps).start(`reading ${drvPath}`, closure.length);
  try {
    for (const p of closure) {
      task.tick(1);
      if (!p.endsWith('.drv')) continue;
      const same = known?.get(p);
      if (same !== undefined) {
        systems.add(graph.addFrom(known!, same).system);
        continue;
      }
      const file = store.readRegularFileSync(p);
      if (file === undefined) throw new NixPlanError('nix', `'${p}' is not a regular file`);
      const node = graph.add(p, parseDerivationHead(file.bytes));
      systems.add(node.system);
    }
  } finally {
    task.done();
  }
  return {
    side: {
      kind: location.kind,
      source: location.path,
      storeDir,
      derivations: graph.size,
      systems: [...systems].sort(),
      roots: graph.roots,
    },
    graph,
    files: (paths, maxHeld = MAX_HELD_BYTES) => {
      const out = new Map<string, Uint8Array>();
      let budget = FILE_BUDGET;
      let held = 0;
      const read = (p: string): Uint8Array | undefined => {
        try {
          return store.readRegularFileSync(p, MAX_FILE)?.bytes;
        } catch {
          return undefined;
        }
      };
      for (const p of paths) {
        const bytes = read(p);
        if (bytes === undefined) continue;
        held += bytes.length;
        if (held > maxHeld) throw drillDownLimit(location.path, maxHeld);
        out.set(p, bytes);
      }
      for (const p of closure)
        if (!p.endsWith('.drv') && !out.has(p) && budget > 0) {
          const bytes = read(p);
          if (bytes !== undefined && bytes.length <= budget) {
            budget -= bytes.length;
            out.set(p, bytes);
          }
        }
      return Promise.resolve(out);
    },
  };
}
