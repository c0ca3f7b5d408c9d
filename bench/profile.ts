// Summarises a V8 CPU profile (`node --cpu-prof`) into the functions with the most self time, so
// the benchmark can say what dominates a command that misses its target.
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import type { ProfileEntry } from './report.js';

interface CpuProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
interface CpuProfile {
  nodes: CpuProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/**
 * The `limit` functions with the most self time in a `.cpuprofile`, and the total sampled time.
 * Functions are keyed by name, file and line; `(idle)` is time spent waiting, mostly on Nix.
 */
export function summariseCpuProfile(path: string, limit = 12): { totalMs: number; top: ProfileEntry[] } {
  const profile = JSON.parse(readFileSync(path, 'utf8')) as CpuProfile;
  const keyOf = new Map<number, string>();
  for (const n of profile.nodes) {
    const { functionName, url, lineNumber } = n.callFrame;
    const where = url === '' ? '' : ` ${basename(url)}:${lineNumber + 1}`;
    keyOf.set(n.id, `${functionName === '' ? '(anonymous)' : functionName}${where}`);
  }
  const self = new Map<string, number>();
  let totalUs = 0;
  profile.samples.forEach((id, i) => {
    const dt = profile.timeDeltas[i] ?? 0;
    totalUs += dt;
    const key = keyOf.get(id) ?? '(unknown)';
    self.set(key, (self.get(key) ?? 0) + dt);
  });
  const top = [...self]
    .sort((a, b) => b[1] - a[1])
    .slice(0, limit)
    .map(([fn, us]) => ({ fn, selfMs: us / 1000, percent: totalUs === 0 ? 0 : (100 * us) / totalUs }));
  return { totalMs: totalUs / 1000, top };
}
