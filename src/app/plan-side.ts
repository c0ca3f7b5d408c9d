// One side of a comparison: where it is read from (a bundle, a .drv in a store, a profile), how it
// is read, and what reading it gives. A bundle side is pinned to a private copy first, so every
// read of a comparison sees the same bytes.
import type { DerivationOutputChecks } from '../core/bundle/index.js';
import { openBundle, type BundleSource } from '../core/bundle/index.js';
import type { PlanGraph } from '../core/diff/graph.js';
import type { PlanSide, PlanSideKind } from '../core/diff/plan-diff.js';
import type { OptionNames } from '../core/option-names.js';
import type { RelocObject } from '../core/relocate/index.js';
import { LimitError } from '../core/errors.js';
import { privateBundle } from './private-copy.js';

/** What to read: a bundle file, a .drv in the store, or a profile's current generation. */
export interface PlanLocation {
  readonly kind: PlanSideKind;
  /** What the user named, and what messages name. */
  readonly path: string;
  /** A bundle's private copy (pinLocation), read instead of `path`. */
  readonly copy?: string | undefined;
  /** `sha256:<hex>` of the private copy, taken as it was made. */
  readonly digest?: string | undefined;
}

/**
 * A bundle location as a private copy of the file (other kinds as they are), and how to remove
 * the copy: every read of a comparison (store dir, manifest, digest, verified stream, drill-down
 * files) then sees the same bytes, even if the file is rewritten in place or replaced meanwhile.
 */
export async function pinLocation(
  location: PlanLocation,
  names?: OptionNames,
): Promise<{ readonly location: PlanLocation; dispose(): Promise<void> }> {
  if (location.kind !== 'bundle') return { location, dispose: () => Promise.resolve() };
  const copy = await privateBundle(location.path, { optionNames: names });
  return {
    location: { ...location, copy: copy.path, digest: copy.digest },
    dispose: () => copy.dispose(),
  };
}

/** Opens a bundle location (its private copy when pinned), named as the user named it. */
export async function openLocation(location: PlanLocation): Promise<BundleSource> {
  return { ...(await openBundle(location.copy ?? location.path)), name: location.path };
}

/** How to read a side. */
export interface ReadOptions {
  /** Nix store URI for .drv and profile sides (Nix's --store; default: Nix's default). */
  readonly store?: string | undefined;
  /**
   * Public keys; a bundle's signatures are reported against them (none: `not-checked`), and a
   * verified one proves the bundle's build outputs, as in verify. Unlike verify, a signature is
   * not required: who signed each side is shown instead.
   */
  readonly trustedKeys?: readonly string[] | undefined;
  /** Accept build outputs no trusted signature proves (`--no-check-sigs`), counting them. */
  readonly noCheckSigs?: boolean | undefined;
  /** How refusals name what the user can change (default: the command line's flags). */
  readonly optionNames?: OptionNames | undefined;
  /** Keep every object's bytes (a bundle side that will be relocated). */
  readonly keepObjects?: boolean | undefined;
  /** The store dir a side kept with `keepObjects` is relocated to (named in a refusal). */
  readonly relocateTo?: string | undefined;
  /** Most bytes of .drv and file contents kept with `keepObjects` (default MAX_HELD_BYTES). */
  readonly maxHeldBytes?: number | undefined;
  /**
   * The other side, read already: a .drv at a path it holds is the same .drv (same store dir, and
   * a .drv path is the hash of its bytes and references), so its head, and the outcome of the
   * verifier's checks of it (`checks`, when that side was a bundle), are taken from there instead
   * of parsing and hashing it again. Its bytes are still checked against its path.
   */
  readonly known?:
    { readonly graph: PlanGraph; readonly checks?: DerivationOutputChecks | undefined } | undefined;
}

/** One side, read. */
export interface ReadSide {
  readonly side: PlanSide;
  readonly graph: PlanGraph;
  /** With `keepObjects` on a bundle: the objects, as relocation takes them. */
  readonly objects?: RelocObject[];
  /** A bundle side's output checks, for the other side's `known`. */
  readonly checks?: DerivationOutputChecks | undefined;
  /**
   * The bytes of those of `paths` that are one small file (.drv, text, one-file source), and of
   * the side's other small non-.drv files (texts, one-file sources) up to FILE_BUDGET in total.
   */
  files(paths: ReadonlySet<string>, maxHeldBytes?: number): Promise<Map<string, Uint8Array>>;
}

/** Small files fetched for a drill-down are at most this big. */
export const MAX_FILE = 4 * 1024 * 1024;
/** Bytes of texts and one-file sources a drill-down keeps beyond the paths asked for. */
export const FILE_BUDGET = 16 * 1024 * 1024;
/**
 * Most bytes of .drv and file contents one side of a comparison holds in memory: the objects of a
 * bundle relocated to be compared across store dirs, or the files of the paths a drill-down asks
 * for (every .drv that differs). A plan's size bounds neither (a few MiB of zstd can declare
 * gigabytes of .drv files), so past this the comparison is refused (exit 8) instead of exhausting
 * the machine's memory; a real system's .drv files take a few hundred MiB at most.
 */
export const MAX_HELD_BYTES = 2 ** 30;

/** The refusal of a drill-down whose .drv files that differ hold more than `max` bytes. */
export function drillDownLimit(path: string, max: number): LimitError {
  return new LimitError(
    `${path}: the .drv files that differ between the plans, which --drv reads to explain a difference, ` +
      `hold more than ${max} bytes: refused (compare without --drv, or plans closer to each other)`,
  );
}
