// Entrypoint of the deploy action (dist/deploy/index.js): run it, with one setFailed for any error.
import { defaultDeployDeps, run } from '../action/deploy.js';
import { runAction } from '../action/run.js';

await runAction('nix-plan deploy', (io) => run(defaultDeployDeps(io)));
