// Entrypoint of the root action (`uses: OWNER/nix-plan@v1`) (dist/plan/index.js): run it, with one setFailed for any error.
import { defaultPlanDeps, run } from '../action/plan.js';
import { runAction } from '../action/run.js';

await runAction('nix-plan', (io) => run(defaultPlanDeps(io)));
