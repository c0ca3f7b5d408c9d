// planContents: the packages a plan holds, per root (name, version, outputs, system), read from a
// verified bundle without a store; `nix-plan inspect --contents`.
import type { DrvNode } from '../core/diff/graph.js';
import type { PlanSide } from '../core/diff/plan-diff.js';
import { compareVersions } from '../core/diff/drv-name.js';
import type { Deps } from './deps.js';
import { readPlanSide } from './plan-reader.js';
import { pinLocation } from './plan-side.js';

/** One derivation of a root's closure, as a person reads it. */
export interface PackageEntry {
  /** `builtins.parseDrvName` of the derivation name. */
  readonly name: string;
  readonly version: string;
  readonly outputs: readonly string[];
  readonly system: string;
  /** True for a fixed-output derivation (a fetch: its output's content is declared). */
  readonly fixed: boolean;
  readonly drvPath: string;
}

/** A root and every derivation it needs. */
export interface RootContents {
  readonly label: string;
  readonly drvPath: string;
  /** Sorted by name, then version. */
  readonly packages: readonly PackageEntry[];
}

/** What `planContents` returns. */
export interface PlanContents {
  readonly plan: PlanSide;
  readonly roots: readonly RootContents[];
}

function entry(n: DrvNode): PackageEntry {
  return {
    name: n.pname,
    version: n.version,
    outputs: n.outputs.map((o) => o.name),
    system: n.system,
    fixed: n.outputs.some((o) => o.kind === 'fixed'),
    drvPath: n.path,
  };
}

const order = (a: PackageEntry, b: PackageEntry): number =>
  a.name < b.name
    ? -1
    : a.name > b.name
      ? 1
      : compareVersions(a.version, b.version) || (a.drvPath < b.drvPath ? -1 : 1);

/** Verifies a bundle as it reads it and lists each root's packages. */
export async function planContents(
  bundlePath: string,
  options: { trustedKeys?: readonly string[] | undefined; noCheckSigs?: boolean | undefined },
  deps: Deps,
): Promise<PlanContents> {
  const pinned = await pinLocation({ kind: 'bundle', path: bundlePath });
  let read;
  try {
    read = await readPlanSide(pinned.location, options, deps);
  } finally {
    await pinned.dispose();
  }
  const { side, graph } = read;
  return {
    plan: side,
    roots: graph.roots.map((r) => ({
      label: r.label,
      drvPath: r.drvPath,
      packages: graph.closure(r.drvPath).map(entry).sort(order),
    })),
  };
}
