// Human-readable output of `realise --dry-run`: what realising would do, and what the dry run did.
import type { DryRunResult } from '../app/dry-run.js';
import { plural } from '../core/text.js';

/** `realise --dry-run`: the paths to import, the derivations to build, the paths to fetch. */
export function formatDryRun(r: DryRunResult): string {
  const lines = [
    `import: ${plural(r.import.missing, 'path')} to add, ${r.import.alreadyValid} already in the store`,
  ];
  if (r.build.length === 0) lines.push('build: nothing');
  else {
    lines.push(`build: ${plural(r.build.length, 'derivation')}`);
    for (const d of r.build)
      lines.push(`  ${d}${r.unknownOutputs.includes(d) ? ' (output paths known only after building)' : ''}`);
  }
  if (r.fetch.length === 0) lines.push('fetch: nothing');
  else {
    lines.push(
      `fetch: ${plural(r.fetch.length, 'path')}${r.fetchSize === undefined ? '' : ` (${r.fetchSize})`}`,
    );
    for (const p of r.fetch) lines.push(`  ${p}`);
  }
  if (r.present > 0) lines.push(`already built: ${plural(r.present, 'output')}`);
  lines.push(
    'dry run: the bundle was verified and the store and its substituters were asked; nothing was imported, built or fetched',
    '',
  );
  return lines.join('\n');
}
