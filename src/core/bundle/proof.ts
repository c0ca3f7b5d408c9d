// Proof before trust: every path of a plan must prove itself, or be covered by a trusted signature.
//
// A `.drv`, a `toFile` text and a source name themselves by their content (the verifier recomputes
// their paths), and so does the output of a fixed-output derivation whose content hashes to the
// path its `.drv` declares. Anything else a plan carries is a build output: an input-addressed path
// whose name says how it was built, not what it holds, so only a signature by a key the user
// trusts (over the manifest, which covers the stream's sha256 and so every byte) proves it. Without
// one it is refused, naming the first such path, unless the user explicitly opted out
// (`--no-check-sigs`, counted in the trust report). Also: an output's deriver, when the plan holds
// it, must declare the output; and a `sources` bundle carries no build output but outputs of the
// plan's own derivations (fixed outputs, and outputs its evaluation read: import from derivation).
import { NixPlanError } from '../errors.js';
import { optionName, proofAdvice, type OptionNames } from '../option-names.js';
import type { DeclaredOutput } from './drv-outputs.js';
import type { Include, ObjectKind } from './manifest.js';

/** How a path of a plan is proven. */
export type ProofKind =
  /** Its path is the hash of its content (a .drv, text, source or fixed output). */
  | 'content-address'
  /** A build output covered by a verified signature of a trusted key. */
  | 'signature'
  /** A build output accepted without proof (`--no-check-sigs`). */
  | 'unproven';

/** What proofs the bundle as a whole has. */
export interface ProofOptions {
  readonly include: Include;
  /** A trusted key's signature over the manifest verified. */
  readonly signed: boolean;
  /** The user opted out of proof (`--no-check-sigs`): unproven paths are counted, not refused. */
  readonly noCheckSigs: boolean;
  /** How refusals name the options (default: the command line's flags; an action: its inputs). */
  readonly optionNames?: OptionNames | undefined;
}

/**
 * The proof of each path of a plan, fed in stream order (`entry`), and the checks that need every
 * .drv first (`finish`). Memory: the paths that carry a deriver, and the build outputs of a
 * `sources` bundle.
 */
export class PathProofs {
  private unprovenCount = 0;
  private firstUnproven: string | undefined;
  /** Paths with a deriver, checked against the plan's derivations at the end. */
  private readonly derived: { path: string; deriver: string }[] = [];
  /** Build outputs of a `sources` bundle: each must be an output some .drv of the plan declares. */
  private readonly sourceOutputs: string[] = [];

  constructor(private readonly options: ProofOptions) {}

  /** Paths accepted without proof (with `--no-check-sigs`; otherwise refused before counting). */
  get unproven(): number {
    return this.unprovenCount;
  }

  /** The first of them. */
  get firstUnprovenPath(): string | undefined {
    return this.firstUnproven;
  }

  /**
   * The proof of one entry, given the kind the verifier found (`output`: not content-addressed).
   * Refuses (exit 4) a build output no signature covers, unless the user opted out.
   */
  entry(path: string, kind: ObjectKind, deriver: string): ProofKind {
    if (deriver !== '') this.derived.push({ path, deriver });
    if (kind !== 'output') return 'content-address';
    if (this.options.include === 'drvs')
      throw new NixPlanError(
        'bundle',
        `'${path}' is not the hash of its contents, but a 'drvs' bundle holds only content-addressed paths: the bundle was altered`,
      );
    // A `sources` bundle's outputs are judged at the end, once every .drv declared its outputs.
    if (this.options.include === 'sources') this.sourceOutputs.push(path);
    return this.unprovenOrSigned(path, this.options.include === 'sources');
  }

  private unprovenOrSigned(path: string, deferRefusal: boolean): ProofKind {
    if (this.options.signed) return 'signature';
    this.unprovenCount++;
    this.firstUnproven ??= path;
    if (!this.options.noCheckSigs && !deferRefusal) throw unprovenError(path, this.options.optionNames);
    return 'unproven';
  }

  /**
   * The checks that need every .drv of the plan: each deriver the plan holds declares what names
   * it as its deriver, and each build output of a `sources` bundle is an output of a .drv of the
   * plan: a fixed output whose content did not hash to its path (an algorithm the verifier does not
   * compute; `entry` counted it as unproven), or an output the plan's evaluation read (import from
   * derivation), which only a trusted signature admits, whatever `--no-check-sigs` says. `declarations` answers which .drv of the plan
   * declares a path; `inPlan` whether a .drv is in the plan.
   */
  finish(
    declarations: (path: string) => readonly DeclaredOutput[],
    inPlan: (drvPath: string) => boolean,
  ): void {
    for (const { path, deriver } of this.derived)
      if (inPlan(deriver) && !declarations(path).some((d) => d.drvPath === deriver))
        throw new NixPlanError(
          'bundle',
          `'${path}' names '${deriver}' as its deriver, but that derivation of the plan has no such output: the bundle was altered`,
        );
    const names = this.options.optionNames;
    for (const path of this.sourceOutputs) {
      const declared = declarations(path);
      if (declared.length === 0)
        throw new NixPlanError(
          'bundle',
          `'${path}' is a build output, but a 'sources' bundle may carry only outputs of the plan's own derivations: the bundle was altered`,
        );
      // An input-addressed output the plan's evaluation read: a signature is its only proof, and
      // --no-check-sigs does not stand in for one here (a `sources` plan otherwise proves itself).
      if (!declared.some((d) => d.fixed !== undefined) && !this.options.signed)
        throw new NixPlanError(
          'signature',
          `'${path}' is a build output of '${declared[0]!.drvPath}' that the plan's evaluation read (import from derivation); a 'sources' bundle carries one only when a trusted key signed the plan, and no trusted key did (${optionName(names, 'noCheckSigs')} does not cover it): ${signedAdvice(names)}`,
        );
    }
    if (this.firstUnproven !== undefined && !this.options.noCheckSigs && !this.options.signed)
      throw unprovenError(this.firstUnproven, this.options.optionNames);
  }
}

/** The refusal of a path nothing proves, naming the options as `names` spells them. */
export function unprovenError(path: string, names?: OptionNames): NixPlanError {
  return new NixPlanError(
    'signature',
    `'${path}' is a build output, whose content only a signature by a trusted key can vouch for, and no trusted key signed this plan: ${proofAdvice(names)}`,
  );
}

/** Where the key that signed the plan is given (only a signature admits what is refused). */
function signedAdvice(names: OptionNames | undefined): string {
  if (names?.style !== 'input')
    return 'give the public key that signed the plan with --trusted-key (the actions: trusted-keys)';
  return `give the public key that signed the plan in ${optionName(names, 'trustedKey')}`;
}
