// Entrypoint of the promote action (dist/promote/index.js): run it, with one setFailed for any error.
import { defaultPromoteDeps, run } from '../action/promote.js';
import { runAction } from '../action/run.js';

await runAction('nix-plan promote', (io) => run(defaultPromoteDeps(io)));
