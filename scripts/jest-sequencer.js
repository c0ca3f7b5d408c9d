// Runs the slowest test files first, so the last minutes of a run are not one long suite on one
// worker while the other sits idle. Jest already does this from its cache of the last run's
// durations; a fresh clone (CI) has no cache and jest falls back to file size, which put a
// two-minute suite last. scripts/test-durations.json holds the durations of a whole run
// (`node scripts/test-durations.mjs < LOG`, from a `npm test` log); a file jest has timed itself
// keeps jest's own figure, and a file in neither runs after the known ones.
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import Sequencer from '@jest/test-sequencer';

const known = JSON.parse(readFileSync(new URL('./test-durations.json', import.meta.url), 'utf8'));

export default class SlowestFirst extends Sequencer {
  time(test) {
    const cached = super.time(test);
    if (cached != null) return cached;
    const seconds = known[relative(test.context.config.rootDir, test.path).split('\\').join('/')];
    return seconds == null ? 0 : seconds * 1000;
  }
}
