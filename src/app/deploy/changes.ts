// What activating a system changes on a host, for the person who approves it (deploy on each host,
// apply on this machine): the generation it replaces and the package-level difference of the two
// systems' runtime closures in that host's store, the way nvd and `nix store diff-closures` show
// them (names read as `builtins.parseDrvName` reads them, grouped and compared by core/diff, the
// same code `nix-plan diff` uses for plans).
import { countsText } from '../../core/diff/describe.js';
import { parseDrvName } from '../../core/diff/drv-name.js';
import type { DrvNode } from '../../core/diff/graph.js';
import {
  diffClosures,
  type PackageChange,
  type PackageChangeKind,
  type PackageCounts,
} from '../../core/diff/packages.js';
import { nameOf } from '../../core/store-path.js';
import { groupDigits } from '../../core/text.js';
import type { ClosurePath, HostClosures } from '../../nix/host-markers.js';
import type { HostProgram } from '../../nix/host-program.js';
import type { Logger } from '../deps.js';
import { formatBytes } from '../display.js';
import { generationNumber } from './activation.js';

/** How many paths a closure has and the sum of their NAR sizes. */
export interface ClosureSize {
  readonly paths: number;
  readonly bytes: number;
}

/** One side of a package change in a runtime closure. */
export interface RuntimePackageSide {
  /** Every version of the package on this side, ordered as `builtins.compareVersions` orders them. */
  readonly versions: readonly string[];
  /** Its store paths on this side that the other side does not have. */
  readonly paths: readonly string[];
}

/** One package whose store paths differ between the two systems. */
export interface RuntimePackageChange {
  readonly name: string;
  readonly change: PackageChangeKind;
  readonly old: RuntimePackageSide;
  readonly new: RuntimePackageSide;
}

/**
 * How the new system compares with the host's current one: `first` (the profile has no
 * generation), `unchanged` (it already holds this system), `changed`, or `unknown` (the current
 * generation's system is not in the host's store, so there is nothing to compare with).
 */
export type ChangeStatus = 'first' | 'unchanged' | 'changed' | 'unknown';

/** What activating the new system changes on one host. */
export interface HostChanges {
  readonly status: ChangeStatus;
  /** The profile's current generation before the deploy, and its system (absent on a first deploy). */
  readonly previous?: { readonly generation?: number | undefined; readonly system: string } | undefined;
  /** The system deployed. */
  readonly system: string;
  readonly closure: {
    /** The current system's closure (absent when there is none to compare with). */
    readonly old?: ClosureSize | undefined;
    readonly new: ClosureSize;
    /** Paths only the new closure has, and only the old one has. */
    readonly added: number;
    readonly removed: number;
  };
  /** Packages per kind of change (on a first deploy every package is `added`). */
  readonly counts: PackageCounts;
  /** Sorted by name, then kind. */
  readonly packages: readonly RuntimePackageChange[];
}

/**
 * An output path's name without its output suffix, as `nix store diff-closures` strips it
 * (`openssl-3.0.13-dev` → `openssl-3.0.13`, `dev`); the rule is Nix's, ambiguity included
 * (`foo-unstable` reads as output `unstable` of `foo`).
 */
export function splitOutputName(name: string): { name: string; output: string } {
  const m = /^(.*)-([a-z]+|lib32|lib64)$/s.exec(name);
  return m?.[1] === undefined || m[2] === undefined ? { name, output: 'out' } : { name: m[1], output: m[2] };
}

/** A runtime closure as the nodes the package diff groups (no inputs, system or output kinds). */
function nodesOf(paths: readonly ClosurePath[]): DrvNode[] {
  return paths.map((p, id) => {
    const split = splitOutputName(nameOf(p.path));
    const { name, version } = parseDrvName(split.name);
    return {
      id,
      path: p.path,
      name: split.name,
      pname: name,
      version,
      system: '',
      outputs: [{ name: split.output, path: p.path, kind: 'input-addressed', hashAlgo: '', hash: '' }],
      firstInput: 0,
      inputCount: 0,
    };
  });
}

function sizeOf(paths: readonly ClosurePath[]): ClosureSize {
  let bytes = 0;
  for (const p of paths) bytes += p.narSize;
  return { paths: paths.length, bytes };
}

/** What the host's closures say the deploy of `system` changes. */
export function hostChanges(closures: HostClosures, system: string): HostChanges {
  const old = closures.old;
  const status: ChangeStatus =
    closures.currentSystem === undefined
      ? 'first'
      : old === undefined
        ? 'unknown'
        : closures.currentSystem === system
          ? 'unchanged'
          : 'changed';
  const before = old ?? [];
  const diff = diffClosures(nodesOf(before), nodesOf(closures.new));
  const side = (s: PackageChange['old']): RuntimePackageSide => ({ versions: s.versions, paths: s.drvs });
  return {
    status,
    previous:
      closures.currentSystem === undefined
        ? undefined
        : { generation: generationNumber(closures.current), system: closures.currentSystem },
    system,
    closure: {
      old: old === undefined ? undefined : sizeOf(old),
      new: sizeOf(closures.new),
      added: diff.derivations.added,
      removed: diff.derivations.removed,
    },
    counts: diff.counts,
    packages: diff.packages.map((p) => ({
      name: p.name,
      change: p.change,
      old: side(p.old),
      new: side(p.new),
    })),
  };
}

/** A runtime change in the shape core/diff/describe.ts words (no outputs to compare). */
export function asPackageChange(p: RuntimePackageChange): PackageChange {
  const side = (s: RuntimePackageSide): PackageChange['old'] => ({
    versions: s.versions,
    drvs: s.paths,
    outputs: [],
    outputKinds: [],
  });
  return { name: p.name, change: p.change, old: side(p.old), new: side(p.new) };
}

/** `+3.4 MiB`, `−512 B`, `±0 B`. */
function signedBytes(delta: number): string {
  if (delta === 0) return '±0 B';
  return `${delta > 0 ? '+' : '−'}${formatBytes(Math.abs(delta))}`;
}

/**
 * `generation 11 (/nix/store/…-nixos-system-a) → /nix/store/…-nixos-system-b`, or
 * `no generation yet → …`. Plain text of paths the host sent: callers escape it.
 */
export function generationText(c: HostChanges): string {
  const from =
    c.previous === undefined
      ? 'no generation yet'
      : `${c.previous.generation === undefined ? 'the current generation' : `generation ${c.previous.generation}`} (${c.previous.system})`;
  return `${from} → ${c.system}`;
}

/** `812 → 815 paths (4 added, 1 removed), 1.2 GiB → 1.2 GiB (+3.4 MiB)`. */
export function closureText(c: HostChanges): string {
  const { old, new: now, added, removed } = c.closure;
  if (old === undefined) return `${groupDigits(now.paths)} paths, ${formatBytes(now.bytes)}`;
  return (
    `${groupDigits(old.paths)} → ${groupDigits(now.paths)} paths (${groupDigits(added)} added, ${groupDigits(removed)} removed), ` +
    `${formatBytes(old.bytes)} → ${formatBytes(now.bytes)} (${signedBytes(now.bytes - old.bytes)})`
  );
}

/** One line on what changes: the package counts and the closure, or why there is no comparison. */
export function changesHeadline(c: HostChanges): string {
  switch (c.status) {
    case 'first':
      return `first deployment: the profile has no generation to compare with; the new system's closure is ${closureText(c)} (${groupDigits(c.counts.added)} packages)`;
    case 'unknown':
      return `the current generation's system is not in the host's store: nothing to compare with; the new system's closure is ${closureText(c)}`;
    case 'unchanged':
      return 'the host already runs this system: no package changes';
    case 'changed':
      return `${countsText(c.counts)}; closure ${closureText(c)}`;
  }
}

/** What to compare on a host: its profile and the system about to be activated there. */
export interface ChangesQuery {
  readonly profile: string;
  /** The system's derivation, built there first; undefined when the system is already there. */
  readonly drvPath?: string | undefined;
  /** The system about to be activated. */
  readonly out: string;
  /** The host's store dir: every path it reports must be in it. */
  readonly storeDir: string;
  /** The deploy whose roots keep the system alive on the host (HostProgram.release). */
  readonly roots?: string | undefined;
}

/**
 * Asks the host program what activating `query.out` changes (its closure phase, which builds the
 * system when given its derivation), says it on `io.log` — the generation replaced, then the
 * headline — and returns it. Deploy runs this on each host, apply on this machine, both before
 * activating, so the change is known whatever the activation does (dry-activate included).
 */
export async function readChanges(
  program: HostProgram,
  query: ChangesQuery,
  io: {
    readonly log: Logger;
    /** Lead for each line, e.g. the host's name (default none). */
    readonly label?: string | undefined;
    readonly output?: ((chunk: Uint8Array) => void) | undefined;
    readonly signal?: AbortSignal | undefined;
  },
): Promise<HostChanges> {
  const closures = await program.closures(query, { onOutput: io.output, signal: io.signal });
  const changes = hostChanges(closures, query.out);
  const lead = io.label === undefined ? '' : `${io.label}: `;
  io.log.info(`${lead}${generationText(changes)}`);
  io.log.info(`${lead}${changesHeadline(changes)}`);
  return changes;
}
