// Human-readable output of each command's result, and the JSON form for --json.
import type { ApplyResult } from '../app/apply.js';
import type { ExportResult } from '../app/export.js';
import type { ImportResult } from '../app/import.js';
import { summarise, type InspectResult, type PlanSummary } from '../app/inspect.js';
import type { RealiseResult } from '../app/realise.js';
import type { RelocateResult } from '../app/relocate.js';
import type { VerifyReport } from '../app/verify.js';
import { OBJECT_KINDS, type BundleManifest } from '../core/bundle/manifest.js';
import { formatBytes } from './terminal.js';

/** One JSON document, pretty-printed, with a trailing newline. */
export function toJson(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

function counts(m: Pick<BundleManifest, 'counts'>): string {
  const parts = OBJECT_KINDS.filter((k) => m.counts[k] > 0).map(
    (k) => `${m.counts[k]} ${k}${m.counts[k] === 1 ? '' : 's'}`,
  );
  return parts.length === 0 ? 'nothing' : parts.join(', ');
}

function summaryLines(s: PlanSummary): string[] {
  const lines = [
    `store dir:  ${s.storeDir}${s.relocatedFrom === undefined ? '' : ` (relocated from ${s.relocatedFrom})`}`,
    `include:    ${s.include}`,
    `systems:    ${s.systems.join(', ') || '-'}`,
    `paths:      ${s.paths} (${counts(s)})`,
    `size:       ${formatBytes(s.bundleBytes)} bundle, ${formatBytes(s.streamBytes)} uncompressed (${s.ratio.toFixed(1)}×)`,
    `signed by:  ${s.signedBy.length === 0 ? 'nobody' : s.signedBy.join(', ')}`,
    `written by: ${s.tool}, evaluated with Nix ${s.nixVersion}`,
    `roots (${s.roots.length}):`,
  ];
  s.roots.forEach((r, i) => {
    lines.push(`  ${i}  ${r.label}`);
    lines.push(`     ${r.drvPath}`);
    for (const [name, path] of Object.entries(r.outputs))
      lines.push(`     ${name} → ${path || '(known after building)'}`);
  });
  return lines;
}

/** `export`: what was written. */
export function formatExport(r: ExportResult): string {
  const s = summarise(r.manifest, r.bundleBytes);
  return [
    `wrote ${r.bundlePath}: ${r.manifest.roots.length} root${r.manifest.roots.length === 1 ? '' : 's'}, ${s.paths} paths (${counts(r.manifest)}), ${formatBytes(r.bundleBytes)}`,
    `  evaluate ${r.timings.evaluateMs} ms, collect ${r.timings.collectMs} ms, write ${r.timings.writeMs} ms`,
    '',
  ].join('\n');
}

/** `inspect`: the summary. */
export function formatInspect(r: InspectResult): string {
  return [...summaryLines(r.summary), ''].join('\n');
}

/** `verify`: the verdict. */
export function formatVerify(r: VerifyReport): string {
  const sig =
    r.trustedSignatures.length > 0 ? `, signed by trusted key ${r.trustedSignatures.join(', ')}` : '';
  return `OK: ${r.bundlePath}: ${r.paths} paths (${counts(r)}) for ${r.manifest.storeDir}${sig}\n`;
}

/** `import`: what was added. */
export function formatImport(r: ImportResult): string {
  const how =
    r.method === 'none'
      ? ''
      : ` with ${r.method === 'import' ? 'nix-store --import' : 'a binary cache (nix copy)'}`;
  return `imported ${r.imported} paths${how}; ${r.alreadyValid} were valid already\n`;
}

/** `realise`: the output paths, one per line (like nix-store --realise). */
export function formatRealise(r: RealiseResult): string {
  const paths = Object.values(r.outPaths).flatMap((o) => Object.values(o));
  return paths.map((p) => `${p}\n`).join('');
}

/** `relocate`: where, and the report. */
export function formatRelocate(r: RelocateResult): string {
  const rep = r.report;
  const lines = [
    `wrote ${r.bundlePath}: ${r.manifest.paths} paths relocated from ${r.manifest.relocatedFrom?.storeDir ?? '?'} to ${r.manifest.storeDir}`,
    `  ${rep.objects.drv} drvs, ${rep.objects.text} texts, ${rep.objects.source} sources; ${rep.hashesRewritten} hashes rewritten in strings`,
    `  verify ${r.timings.verifyMs} ms, relocate and write ${r.timings.relocateMs} ms`,
  ];
  if (rep.bareHashRewrites > 0)
    lines.push(`  ${rep.bareHashRewrites} bare hashes rewritten (computed path strings)`);
  for (const m of rep.bareStoreDirMentions)
    lines.push(`  ${m.path} still mentions the old store dir ${m.count}×`);
  for (const w of rep.warnings) lines.push(`  warning: ${w}`);
  return [...lines, ''].join('\n');
}

/** `apply`: what ran. */
export function formatApply(r: ApplyResult): string {
  const gen = r.generation === undefined ? '' : ` (generation ${r.generation})`;
  return `${r.output}${r.output === '' || r.output.endsWith('\n') ? '' : '\n'}${r.action}: ${r.systemPath}${r.profileChanged ? ` is now ${r.profile}${gen}` : ''}\n`;
}
