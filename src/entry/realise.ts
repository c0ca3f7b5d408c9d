// Entrypoint of the realise action (dist/realise/index.js): run it, with one setFailed for any error.
import { defaultRealiseDeps, run } from '../action/realise.js';
import { runAction } from '../action/run.js';

await runAction('nix-plan realise', (io) => run(defaultRealiseDeps(io)));
