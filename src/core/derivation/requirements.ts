// What a Nix must have to read a .drv: the shapes Nix parses only with an experimental feature on
// (and only from the version that knows it), and whether a target store's Nix has what a plan needs.
//
// Nix parses every .drv it registers (`nix-store --import`, a daemon adding one) and refuses, at
// that .drv, one whose shape needs a feature it lacks: 2.34's `parseDerivation` and
// `parseDerivationOutput` call `experimentalFeatureSettings.require(…)`; 2.8 knows fewer shapes
// and refuses the others as unknown hash algorithms. Through a daemon the daemon parses, with its
// own features (the client does not send `experimental-features`).
import { compareVersions } from '../diff/drv-name.js';
import type { DerivationOutput } from './types.js';

/** A shape of .drv that Nix reads only with an experimental feature. */
export type DerivationShape = 'dyn-drv' | 'git' | 'text' | 'blake3' | 'impure' | 'floating';

/** What Nix needs to read one shape. */
export interface ShapeRequirement {
  /** The experimental feature Nix requires for it. */
  readonly feature: string;
  /** The first Nix version that reads it (with the feature on). */
  readonly since: string;
  /** The shape, in words. */
  readonly what: string;
}

/**
 * Each shape's requirement, in the order Nix checks them while parsing one .drv (the format
 * version first, then per output the method prefix, the hash algorithm, then the kind). Read from
 * Nix's sources: `ca-derivations` since 2.4 (floating outputs), `impure-derivations` since 2.8,
 * `dynamic-derivations` since 2.16 (`text:` outputs, `DrvWithVersion("xp-dyn-drv",…)`), `git:`
 * outputs since 2.21 (`git-hashing`; 2.19 and 2.20 know the feature but not the prefix), BLAKE3
 * hashes since 2.27 (`blake3-hashes`; asked for even where a Nix read them without it).
 */
export const SHAPE_REQUIREMENTS: Readonly<Record<DerivationShape, ShapeRequirement>> = {
  'dyn-drv': {
    feature: 'dynamic-derivations',
    since: '2.16',
    what: "the dynamic-derivation format (DrvWithVersion 'xp-dyn-drv')",
  },
  git: { feature: 'git-hashing', since: '2.21', what: "a git-hashed output ('git:')" },
  text: { feature: 'dynamic-derivations', since: '2.16', what: "a text-hashed output ('text:')" },
  blake3: { feature: 'blake3-hashes', since: '2.27', what: 'an output hashed with BLAKE3' },
  impure: { feature: 'impure-derivations', since: '2.8', what: 'an impure output' },
  floating: {
    feature: 'ca-derivations',
    since: '2.4',
    what: 'a floating content-addressed output',
  },
};

/** One shape one .drv has (`output` undefined for the format of the whole .drv). */
export interface ShapeNeed {
  readonly drvPath: string;
  readonly output?: string | undefined;
  readonly shape: DerivationShape;
}

/**
 * The shapes of a .drv that need an experimental feature, in the order Nix meets them: its
 * format version, then each output's method prefix, hash algorithm and kind.
 */
export function derivationShapes(
  drvPath: string,
  drv: {
    readonly version: string | undefined;
    readonly outputs: readonly Pick<DerivationOutput, 'name' | 'hashAlgo' | 'hash'>[];
  },
): ShapeNeed[] {
  const out: ShapeNeed[] = [];
  if (drv.version !== undefined) out.push({ drvPath, shape: 'dyn-drv' });
  for (const o of drv.outputs) {
    if (o.hashAlgo === '') continue; // input-addressed or deferred: every Nix reads it
    let algo = o.hashAlgo;
    const need = (shape: DerivationShape): void => void out.push({ drvPath, output: o.name, shape });
    if (algo.startsWith('git:')) {
      need('git');
      algo = algo.slice(4);
    } else if (algo.startsWith('text:')) {
      need('text');
      algo = algo.slice(5);
    } else if (algo.startsWith('r:')) algo = algo.slice(2);
    if (algo === 'blake3') need('blake3');
    if (o.hash === 'impure') need('impure');
    else if (o.hash === '') need('floating');
  }
  return out;
}

/**
 * The shapes of a plan's .drv files that need an experimental feature: the first .drv (in plan
 * order) with each shape, and how many have it. Memory: one record per shape.
 */
export class PlanShapes {
  private readonly first = new Map<DerivationShape, ShapeNeed>();
  private readonly counts = new Map<DerivationShape, number>();

  /** Records the shapes of one .drv. */
  add(
    drvPath: string,
    drv: {
      readonly version: string | undefined;
      readonly outputs: readonly Pick<DerivationOutput, 'name' | 'hashAlgo' | 'hash'>[];
    },
  ): void {
    // The usual .drv, input-addressed: nothing to record, nothing made.
    if (drv.version === undefined && drv.outputs.every((o) => o.hashAlgo === '')) return;
    const seen = new Set<DerivationShape>();
    for (const n of derivationShapes(drvPath, drv)) {
      if (!this.first.has(n.shape)) this.first.set(n.shape, n);
      if (!seen.has(n.shape)) this.counts.set(n.shape, (this.counts.get(n.shape) ?? 0) + 1);
      seen.add(n.shape);
    }
  }

  /** The first .drv with each shape, in plan order, with how many .drv files have that shape. */
  needs(): (ShapeNeed & { readonly count: number })[] {
    return [...this.first.values()].map((n) => ({ ...n, count: this.counts.get(n.shape) ?? 0 }));
  }
}

/** What is known of the Nix that will read a plan's .drv files in the target store. */
export interface TargetNix {
  /**
   * `local`: this process's Nix writes the store itself, with the features it reports;
   * `daemon`: a daemon does, whose features cannot be asked; `other`: not known.
   */
  readonly kind: 'local' | 'daemon' | 'other';
  /** The version of the Nix that parses (`nix store ping`'s `Version:`), when reported. */
  readonly version?: string | undefined;
  /** The experimental features in effect (local stores only), when they could be read. */
  readonly features?: ReadonlySet<string> | undefined;
  /** How messages name the target (e.g. "this store", "the daemon"). */
  readonly label: string;
}

/**
 * Whether Nix version `version` comes before `than`, as `builtins.compareVersions` orders them
 * (`2.8.0` < `2.16`; a pre-release `2.27pre…` before `2.27`).
 */
export function versionBefore(version: string, than: string): boolean {
  return compareVersions(version, than) < 0;
}

/** What checking a plan's shapes against its target found. */
export interface ShapeVerdict {
  /** Why the target's Nix cannot read the plan (the first .drv it would refuse); undefined: it can. */
  readonly refusal?: string | undefined;
  /** Shapes that could not be checked against the target, each said in a sentence. */
  readonly unchecked: readonly string[];
}

function where(n: ShapeNeed & { readonly count?: number }): string {
  const more = n.count !== undefined && n.count > 1 ? ` (and ${n.count - 1} more .drv files)` : '';
  return `derivation '${n.drvPath}'${n.output === undefined ? '' : ` output '${n.output}'`}${more}`;
}

/**
 * Whether `target`'s Nix reads every shape in `needs` (from `PlanShapes.needs`): refused, naming
 * the first .drv, its output, the shape and the feature or Nix version it needs, when the target
 * is known to lack it; left unchecked, and said so, when what the target accepts cannot be known
 * (a daemon's features, a store nix-plan cannot ask).
 */
export function checkShapes(
  needs: readonly (ShapeNeed & { readonly count?: number })[],
  target: TargetNix,
): ShapeVerdict {
  const unchecked: string[] = [];
  for (const n of needs) {
    const req = SHAPE_REQUIREMENTS[n.shape];
    const nix = target.version === undefined ? 'its Nix' : `its Nix ${target.version}`;
    const tooOld = target.version !== undefined && versionBefore(target.version, req.since);
    const needsText = `${where(n)} is ${req.what}, which Nix reads only from ${req.since} on, with the experimental feature '${req.feature}'`;
    if (tooOld)
      return {
        refusal: `${needsText}; ${target.label} runs Nix ${target.version}, which cannot read it: Nix would refuse it on import`,
        unchecked,
      };
    if (target.kind === 'local' && target.features !== undefined) {
      if (!target.features.has(req.feature))
        return {
          refusal: `${needsText}; ${target.label} has it off (${nix}): Nix would refuse it on import. Enable it where Nix reads its settings (e.g. 'extra-experimental-features = ${req.feature}' in nix.conf or NIX_CONFIG)`,
          unchecked,
        };
      continue;
    }
    const why =
      target.kind === 'daemon'
        ? `the daemon's experimental features cannot be asked`
        : `what ${target.label} accepts cannot be asked`;
    unchecked.push(
      `${needsText}: not checked (${why}); if it is off there, Nix refuses the import and nix-plan removes what it added`,
    );
  }
  return { unchecked };
}
