// The use cases the command line calls, as one injectable table (tests replace entries with fakes).
import { applyPlan } from '../app/apply.js';
import { binaryCacheCopyImport } from '../app/binary-cache.js';
import { dryRunRealise } from '../app/dry-run.js';
import { deployPlan } from '../app/deploy/index.js';
import { deployRollback } from '../app/deploy/rollback-hosts.js';
import { planContents } from '../app/contents.js';
import { diffPlanSources } from '../app/diff.js';
import { exportPlan } from '../app/export.js';
import { withFreshness } from '../app/freshness.js';
import { importPlan } from '../app/import.js';
import { inspectPlan } from '../app/inspect.js';
import { keygen, writeKeyPair } from '../app/keygen.js';
import { realisePlan } from '../app/realise.js';
import { relocatePlan } from '../app/relocate.js';
import { verifyPlan } from '../app/verify.js';

/** Every use case the CLI runs. */
export interface UseCases {
  exportPlan: typeof exportPlan;
  inspectPlan: typeof inspectPlan;
  verifyPlan: typeof verifyPlan;
  importPlan: typeof importPlan;
  realisePlan: typeof realisePlan;
  /** What realise would import, build and fetch, changing nothing. */
  dryRunRealise: typeof dryRunRealise;
  relocatePlan: typeof relocatePlan;
  applyPlan: typeof applyPlan;
  deployPlan: typeof deployPlan;
  /** `deploy --rollback`: each host back one generation. */
  deployRollback: typeof deployRollback;
  keygen: typeof keygen;
  diffPlanSources: typeof diffPlanSources;
  planContents: typeof planContents;
  writeKeyPair: typeof writeKeyPair;
  /** The untrusted import route (a temporary binary cache), given the secret key text, if any. */
  copyImport: typeof binaryCacheCopyImport;
  /** The --max-age and last-applied checks around a use case that takes a bundle. */
  withFreshness: typeof withFreshness;
}

/** The real use cases. */
export const defaultUseCases: UseCases = {
  exportPlan,
  inspectPlan,
  verifyPlan,
  importPlan,
  realisePlan,
  dryRunRealise,
  relocatePlan,
  applyPlan,
  deployPlan,
  deployRollback,
  keygen,
  diffPlanSources,
  planContents,
  writeKeyPair,
  copyImport: binaryCacheCopyImport,
  withFreshness,
};
