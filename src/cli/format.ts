// Human-readable output of each command's result, and the JSON form for --json. Everything that
// came from a bundle (paths, labels, key names, provenance) is escaped for the terminal here, so a
// bundle cannot move the cursor, rewrite a line or print one that looks like ours.
import type { ApplyResult } from '../app/apply.js';
import type { ExportResult } from '../app/export.js';
import type { ImportResult } from '../app/import.js';
import { summarise, type InspectResult, type PlanSummary } from '../app/inspect.js';
import type { RealiseResult } from '../app/realise.js';
import type { RelocateResult } from '../app/relocate.js';
import type { VerifyReport } from '../app/verify.js';
import { OBJECT_KINDS, trustStatus, type BundleManifest, type TrustReport } from '../core/bundle/index.js';
import { originText } from '../core/provenance-view.js';
import { escapeTerminal as t, plural } from '../core/text.js';
import { changesLines } from './diff-format.js';
import { formatBytes } from './terminal.js';

/**
 * One JSON document, pretty-printed, with a trailing newline. JSON escapes C0 controls itself;
 * C1 controls, bidi controls and the line separators are escaped too (`\u009b`), so the document
 * is as safe on a terminal as the text output.
 */
export function toJson(value: unknown): string {
  return `${JSON.stringify(value, null, 2).replace(
    /[\u007f-\u009f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  )}\n`;
}

function counts(m: Pick<BundleManifest, 'counts'>): string {
  const parts = OBJECT_KINDS.filter((k) => m.counts[k] > 0).map((k) => plural(m.counts[k], k));
  return parts.length === 0 ? 'nothing' : parts.join(', ');
}

function summaryLines(s: PlanSummary, manifest: BundleManifest, now: Date): string[] {
  const lines = [
    `store dir:  ${t(s.storeDir)}${s.relocatedFrom === undefined ? '' : ` (relocated from ${t(s.relocatedFrom)})`}`,
    `include:    ${s.include}`,
    `systems:    ${t(s.systems.join(', ')) || '-'}`,
    `paths:      ${s.paths} (${counts(s)})`,
    `size:       ${formatBytes(s.bundleBytes)} bundle, ${formatBytes(s.streamBytes)} uncompressed (${s.ratio.toFixed(1)}×)`,
    `written by: ${t(s.tool)}, evaluated with Nix ${t(s.nixVersion)} (bundle format ${s.formatVersion})`,
    ...originText(manifest, undefined, { now }).trimEnd().split('\n'),
    `roots (${s.roots.length}):`,
  ];
  // The indices right-aligned, so that a root's .drv and outputs start under its label however
  // many digits its index has.
  const digits = String(Math.max(0, s.roots.length - 1)).length;
  const under = ' '.repeat(2 + digits + 2);
  s.roots.forEach((r, i) => {
    lines.push(`  ${String(i).padStart(digits)}  ${t(r.label)}`);
    lines.push(`${under}${t(r.drvPath)}`);
    for (const [name, path] of Object.entries(r.outputs))
      lines.push(`${under}${t(name)} → ${t(path) || '(known after building)'}`);
  });
  return lines;
}

/** `export`: what was written. */
export function formatExport(r: ExportResult): string {
  const s = summarise(r.manifest, r.bundleBytes);
  return [
    `wrote ${t(r.bundlePath)}: ${plural(r.manifest.roots.length, 'root')}, ${plural(s.paths, 'path')} (${counts(r.manifest)}), ${formatBytes(r.bundleBytes)}`,
    `  ${trustStatus(r.manifest) === 'unsigned' ? 'unsigned' : `signed by ${t(r.manifest.signatures.map((g) => g.key).join(', '))}`}`,
    `  evaluate ${r.timings.evaluateMs} ms, collect ${r.timings.collectMs} ms, write ${r.timings.writeMs} ms`,
    '',
  ].join('\n');
}

/** `inspect`: the summary (signatures are listed, never called verified: inspect checks none). */
export function formatInspect(r: InspectResult, now: Date = new Date()): string {
  return [...summaryLines(r.summary, r.manifest, now), ''].join('\n');
}

/**
 * `verify`: the verdict, then where the plan came from and who vouches for it (its origin rows,
 * promotions read against the keys given). With trusted keys, `OK` and who signed; without, it
 * says that only the bundle's integrity was checked, not who made it.
 */
export function formatVerify(r: VerifyReport, now: Date = new Date()): string {
  const what = `${t(r.bundlePath)}: ${plural(r.paths, 'path')} (${counts(r)}) for ${t(r.manifest.storeDir)}`;
  const origin = originText(r.manifest, r.trust, { now });
  if (!r.trust.keysGiven)
    return (
      `integrity OK: ${what}\n${origin}` +
      `integrity only: no --trusted-key given, so who made this plan was not checked (${t(trustStatus(r.manifest, r.trust))})\n`
    );
  return `OK: ${what}\n${origin}`;
}

/** `import`: what was added, and what was proven about who made it. */
export function formatImport(r: ImportResult & { trust?: TrustReport }): string {
  const how =
    r.method === 'none'
      ? ''
      : ` with ${r.method === 'import' ? 'nix-store --import' : 'a binary cache (nix copy)'}`;
  return (
    `imported ${plural(r.imported, 'path')}${how}; ${r.alreadyValid} ${r.alreadyValid === 1 ? 'was' : 'were'} valid already\n` +
    (r.trust === undefined ? '' : `${t(trustStatus(r.manifest, r.trust))}\n`)
  );
}

/** `realise`: the output paths, one per line (like nix-store --realise). */
export function formatRealise(r: RealiseResult): string {
  const paths = Object.values(r.outPaths).flatMap((o) => Object.values(o));
  return paths.map((p) => `${t(p)}\n`).join('');
}

/** `relocate`: where, and the report. */
export function formatRelocate(r: RelocateResult): string {
  const rep = r.report;
  const lines = [
    `input ${t(trustStatus(r.manifest, r.trust))}`,
    `wrote ${t(r.bundlePath)}: ${plural(r.manifest.paths, 'path')} relocated from ${t(r.manifest.relocatedFrom?.storeDir ?? '?')} to ${t(r.manifest.storeDir)}`,
    `  ${plural(rep.objects.drv, 'drv')}, ${plural(rep.objects.text, 'text')}, ${plural(rep.objects.source, 'source')}; ${plural(rep.hashesRewritten, 'hash', 'hashes')} rewritten in strings`,
    `  verify ${r.timings.verifyMs} ms, relocate and write ${r.timings.relocateMs} ms`,
  ];
  if (rep.bareHashRewrites > 0)
    lines.push(`  ${rep.bareHashRewrites} bare hashes rewritten (computed path strings)`);
  for (const m of rep.bareStoreDirMentions)
    lines.push(`  ${t(m.path)} still mentions the old store dir ${m.count}×`);
  for (const w of rep.warnings) lines.push(`  warning: ${t(w)}`);
  return [...lines, ''].join('\n');
}

/** `apply`: what ran, then what it changed (or, for dry-activate, would change) in the profile. */
export function formatApply(r: ApplyResult): string {
  const back = r.rollback === undefined ? '' : `, rolled back from ${r.rollback.from}`;
  const gen = r.generation === undefined ? '' : ` (generation ${r.generation}${back})`;
  const changes = r.changes === undefined ? '' : `\n${changesLines(r.profile, r.changes).join('\n')}`;
  return `${r.output}${r.output === '' || r.output.endsWith('\n') ? '' : '\n'}${r.action}: ${t(r.systemPath)}${r.profileChanged ? ` is now ${t(r.profile)}${gen}` : ''}\n${changes}`;
}
