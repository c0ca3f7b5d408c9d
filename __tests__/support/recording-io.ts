// An ActionIO that records what an action read, set and wrote: its inputs and environment are
// given, its outputs, secrets, summaries, log lines and raw job log kept for the test to read.
import type { Logger, Progress } from '../../src/app/deps.js';
import type { ActionIO } from '../../src/action/run.js';

/** What an action did to the runner. */
export interface Recorded {
  outputs: Record<string, string>;
  secrets: string[];
  summary: string[];
  log: string[];
  /** What reached the job log raw (Nix's own output, in groups). */
  raw: string[];
}

/** An ActionIO reading `inputs` and `env`, and what it recorded (its clock ticks 5 ms a reading). */
export function recordingIO(
  inputs: Record<string, string>,
  env: Record<string, string>,
): { io: ActionIO; rec: Recorded } {
  const rec: Recorded = { outputs: {}, secrets: [], summary: [], log: [], raw: [] };
  const log: Logger = {
    info: (m) => rec.log.push(`info: ${m}`),
    warn: (m) => rec.log.push(`warn: ${m}`),
    debug: (m) => rec.log.push(`debug: ${m}`),
  };
  const progress: Progress = { start: () => ({ tick: () => undefined, done: () => undefined }) };
  let clock = 1000;
  const io: ActionIO = {
    input: (name) => inputs[name] ?? '',
    env: (name) => env[name],
    setOutput: (name, value) => {
      rec.outputs[name] = String(value);
    },
    setSecret: (value) => rec.secrets.push(value),
    log,
    progress,
    appendSummary: (markdown) => {
      rec.summary.push(markdown);
      return Promise.resolve();
    },
    now: () => (clock += 5),
    writeLog: (chunk) =>
      rec.raw.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8')),
  };
  return { io, rec };
}
