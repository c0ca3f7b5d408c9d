// The use cases the command line calls, as one injectable table (tests replace entries with fakes).
import { exportPlan } from '../app/export.js';
import { importPlan } from '../app/import.js';
import { inspectPlan } from '../app/inspect.js';
import { realisePlan } from '../app/realise.js';
import { relocatePlan } from '../app/relocate.js';
import { verifyPlan } from '../app/verify.js';
import { generateKeyPair } from '../core/signing.js';
import type { Deps } from '../app/deps.js';
import { NixPlanError } from '../core/errors.js';

/** Options the CLI passes to `apply`. */
export interface ApplyCliOptions {
  readonly profile: string;
  readonly action: 'switch' | 'boot' | 'test' | 'dry-activate';
  readonly rollback: boolean;
  readonly store?: string | undefined;
  readonly trustedKeys: readonly string[];
}

/** Every use case the CLI runs. */
export interface UseCases {
  exportPlan: typeof exportPlan;
  inspectPlan: typeof inspectPlan;
  verifyPlan: typeof verifyPlan;
  importPlan: typeof importPlan;
  realisePlan: typeof realisePlan;
  relocatePlan: typeof relocatePlan;
  keygen: (
    name: string,
  ) => { secretKey: string; publicKey: string } | Promise<{ secretKey: string; publicKey: string }>;
  applyPlan: (bundlePath: string | undefined, options: ApplyCliOptions, deps: Deps) => Promise<unknown>;
}

/** The real use cases. */
export const defaultUseCases: UseCases = {
  exportPlan,
  inspectPlan,
  verifyPlan,
  importPlan,
  realisePlan,
  relocatePlan,
  keygen: generateKeyPair,
  applyPlan: () => Promise.reject(new NixPlanError('internal', 'apply is not available in this build yet')),
};
