// `nix-plan diff` and `inspect --contents` on a terminal: nvd's layout (version changes, added,
// removed, rebuilt, with counts), per root and in total, then nix-diff's layout for a `--drv`
// drill-down; the same layout for what `deploy` and `apply` change on a host. Every string that
// came from a plan or a host goes through showText, so neither can write escapes to the terminal.
import type { PlanContents } from '../app/contents.js';
import { asPackageChange, changesHeadline, generationText, type HostChanges } from '../app/deploy/changes.js';
import {
  CHANGE_TAGS,
  NO_VERSION,
  countsText,
  outputsText,
  signatureText,
  versionsText,
} from '../core/diff/describe.js';
import type { DrvDiff, OutputDesc } from '../core/diff/derivation-diff.js';
import type { PackageChange } from '../core/diff/packages.js';
import type { PlanDiff, PlanSide } from '../core/diff/plan-diff.js';
import type { Edit } from '../core/diff/sequence.js';
import { showText } from '../core/diff/text.js';
import { groupDigits } from '../core/text.js';

const t = (s: string): string => showText(s);
const n = (x: number): string => groupDigits(x);

/** Rebuilt packages listed by name at most; the rest are counted (`--json` has all). */
export const REBUILT_SHOWN = 40;

function sideLine(mark: string, s: PlanSide): string {
  const what = s.kind === 'bundle' ? 'plan' : s.kind === 'drv' ? 'derivation' : 'profile';
  const parts = [`${what} for ${t(s.storeDir)}`, `${n(s.derivations)} derivations`];
  if (s.bundle !== undefined) {
    parts.push(signatureText(s.bundle.signatures, s.bundle));
    if (s.bundle.createdAt !== undefined) parts.push(`evaluated ${t(s.bundle.createdAt)}`);
  }
  return `${mark} ${t(s.source)} (${parts.join('; ')})`;
}

/**
 * One row of a table after `indent`: each cell starts where its column does, the columns `widths`
 * wide and two spaces apart (the last cell is not padded). The widths are capped, so that one long
 * name does not push every row right: a cell wider than its column ends its line, and the row goes
 * on below at the next column's place, so every cell still starts in its column. The text is
 * measured in UTF-16 units, one terminal column each, which holds for what the tables show: names
 * and versions come from store path names (ASCII), output names are read as Latin-1, systems are
 * last (not padded), and the escapes of unsafe characters are ASCII.
 */
export function tableRow(indent: string, cells: readonly string[], widths: readonly number[]): string {
  const lines: string[] = [];
  let line = indent;
  let start = indent.length;
  cells.forEach((cell, i) => {
    if (i > 0) {
      if (line.length + 2 > start) {
        lines.push(line);
        line = ' '.repeat(start);
      } else line = line.padEnd(start);
    }
    line += cell;
    start += (widths[i] ?? 0) + 2;
  });
  lines.push(line);
  return lines.join('\n');
}

function packageLines(packages: readonly PackageChange[]): string[] {
  const width = Math.min(40, Math.max(0, ...packages.map((p) => t(p.name).length)));
  return packages.map((p) => {
    const extra = outputsText(p);
    const versions = `${t(versionsText(p))}${extra === undefined ? '' : `  (${t(extra)})`}`;
    return tableRow(`  [${CHANGE_TAGS[p.change]}] `, [t(p.name), versions], [width]);
  });
}

/**
 * nvd's sections of a package diff: version changes, added and removed packages, then the
 * packages rebuilt at the same version (the first REBUILT_SHOWN of them; `--json` has all).
 */
export function packageSections(packages: readonly PackageChange[]): string[] {
  const lines: string[] = [];
  const by = (kinds: readonly PackageChange['change'][]): PackageChange[] =>
    packages.filter((p) => kinds.includes(p.change));
  const sections: [string, PackageChange[]][] = [
    ['Version changes:', by(['upgrade', 'downgrade', 'changed'])],
    ['Added packages:', by(['added'])],
    ['Removed packages:', by(['removed'])],
  ];
  for (const [title, list] of sections) if (list.length > 0) lines.push(title, ...packageLines(list));
  const rebuilt = by(['rebuilt']);
  if (rebuilt.length > 0) {
    lines.push(`Rebuilt at the same version (inputs changed): ${n(rebuilt.length)}`);
    lines.push(...packageLines(rebuilt.slice(0, REBUILT_SHOWN)));
    if (rebuilt.length > REBUILT_SHOWN)
      lines.push(`  …and ${n(rebuilt.length - REBUILT_SHOWN)} more (--json lists all)`);
  }
  return lines;
}

/**
 * What activating a system changes on `where` (a deploy's host, apply's profile): the generation
 * replaced, the package counts and closure, then nvd's sections (not on a first activation,
 * where every package is new). Paths and names come from the host: escaped.
 */
export function changesLines(where: string, c: HostChanges | undefined): string[] {
  if (c === undefined) return [];
  const lines = [`Changes on ${t(where)}: ${t(generationText(c))}`, `  ${t(changesHeadline(c))}`];
  if (c.status === 'changed')
    lines.push(...packageSections(c.packages.map(asPackageChange)).map((l) => `  ${l}`));
  lines.push('');
  return lines;
}

/** The human form of a diff. */
export function formatDiff(d: PlanDiff): string {
  const lines = [sideLine('<<<', d.old), sideLine('>>>', d.new)];
  if (d.realm.relocated)
    lines.push(
      `The old plan was relocated from ${t(d.realm.old)} to ${t(d.realm.new)} to be compared; old paths below are the relocated ones.`,
    );
  if (d.identical) {
    lines.push(
      d.realm.relocated
        ? `Same plan, other realm: relocated to ${t(d.realm.new)}, the old plan is exactly the new one (${n(d.total.derivations.new)} derivations).`
        : `No changes: both hold the same ${n(d.total.derivations.new)} derivations and roots.`,
    );
  }
  const fields = d.fields.filter(
    (f) => !(d.realm.relocated && (f.field === 'storeDir' || f.field === 'relocatedFrom')),
  );
  if (fields.length > 0) {
    lines.push('Plan facts that differ:');
    for (const f of fields) lines.push(`  ${t(f.field)}: ${t(f.old ?? '∅')} → ${t(f.new ?? '∅')}`);
  }
  lines.push(...packageSections(d.total.packages));
  if (d.roots.length > 1 || d.roots.some((r) => r.status !== 'changed' && r.status !== 'unchanged')) {
    lines.push('Roots:');
    for (const r of d.roots)
      lines.push(`  ${t(r.label)}: ${r.status}${r.counts === undefined ? '' : ` — ${countsText(r.counts)}`}`);
  }
  const dv = d.total.derivations;
  lines.push(
    `Total: ${countsText(d.total.counts)}; derivations ${n(dv.old)} → ${n(dv.new)} (${n(dv.added)} new, ${n(dv.removed)} gone).`,
  );
  for (const x of d.drv ?? []) lines.push('', ...drvLines(x, ''));
  return `${lines.join('\n')}\n`;
}

function outputText(o: OutputDesc): string {
  return `${t(o.name)} ${o.kind}${o.hashAlgo === '' ? '' : ` ${t(o.hashAlgo)}`}${o.hash === '' ? '' : ` ${t(o.hash)}`}`;
}

function editLines(edits: readonly Edit<string>[], indent: string): string[] {
  const mark = { same: '  ', old: '- ', new: '+ ' } as const;
  const out: string[] = [];
  for (const e of edits) {
    const items =
      e.op === 'same' && e.items.length > 6
        ? [...e.items.slice(0, 2), `… ${e.items.length - 4} unchanged …`, ...e.items.slice(-2)]
        : e.items;
    for (const item of items) for (const line of item.split('\n')) out.push(`${indent}${mark[e.op]}${line}`);
  }
  return out;
}

/** nix-diff's layout for one pair, nested changed inputs indented below it. */
export function drvLines(d: DrvDiff, indent: string): string[] {
  const i2 = `${indent}    `;
  const out = [`${indent}- ${t(d.old)}`, `${indent}+ ${t(d.new)}`];
  const o = d.outputs;
  if (o.removed.length + o.added.length + o.changed.length > 0) {
    out.push(`${indent}• The outputs differ:`);
    for (const x of o.removed) out.push(`${i2}- ${outputText(x)}`);
    for (const x of o.added) out.push(`${i2}+ ${outputText(x)}`);
    for (const x of o.changed) out.push(`${i2}- ${outputText(x.old)}`, `${i2}+ ${outputText(x.new)}`);
  }
  if (d.system !== undefined)
    out.push(`${indent}• The systems differ:`, `${i2}- ${d.system.old}`, `${i2}+ ${d.system.new}`);
  if (d.builder !== undefined)
    out.push(`${indent}• The builders differ:`, `${i2}- ${d.builder.old}`, `${i2}+ ${d.builder.new}`);
  if (d.args !== undefined) out.push(`${indent}• The arguments differ:`, ...editLines(d.args, i2));
  const s = d.inputSrcs;
  if (s.removed.length + s.added.length + s.changed.length > 0) {
    out.push(`${indent}• The input sources differ:`);
    for (const p of s.removed) out.push(`${i2}- ${t(p)}`);
    for (const p of s.added) out.push(`${i2}+ ${t(p)}`);
    for (const c of s.changed) {
      out.push(`${i2}• ${c.name}: ${t(c.old)} → ${t(c.new)}`);
      if (c.lines !== undefined) out.push(...editLines(c.lines, `${i2}    `));
    }
  }
  const e = d.env;
  if (e.removed.length + e.added.length + e.changed.length > 0) {
    out.push(`${indent}• The environments differ:`);
    for (const x of e.removed) out.push(`${i2}- ${x.key}=${x.value.split('\n').join(`\n${i2}  `)}`);
    for (const x of e.added) out.push(`${i2}+ ${x.key}=${x.value.split('\n').join(`\n${i2}  `)}`);
    for (const x of e.changed) {
      if (x.lines === undefined) out.push(`${i2}• ${x.key}:`, `${i2}    - ${x.old}`, `${i2}    + ${x.new}`);
      else out.push(`${i2}• ${x.key}:`, ...editLines(x.lines, `${i2}    `));
    }
  }
  if (e.pathsOnly.length > 0)
    out.push(
      `${indent}• ${e.pathsOnly.length} environment variable${e.pathsOnly.length === 1 ? '' : 's'} differ only by the new store paths of changed inputs: ${e.pathsOnly.join(', ')}`,
    );
  const i = d.inputDrvs;
  for (const r of i.removed)
    out.push(`${indent}• An input derivation was removed: ${t(r.path)} {${r.outputs.map(t).join(',')}}`);
  for (const r of i.added)
    out.push(`${indent}• An input derivation was added: ${t(r.path)} {${r.outputs.map(t).join(',')}}`);
  for (const c of i.changed) {
    if (c.old.path === c.new.path) {
      out.push(
        `${indent}• The outputs used of input ${t(c.name)} differ: {${c.old.outputs.map(t).join(',')}} → {${c.new.outputs.map(t).join(',')}}`,
      );
      continue;
    }
    out.push(`${indent}• The input derivation ${t(c.name)} differs:`);
    if (c.diff !== undefined) out.push(...drvLines(c.diff, `${indent}  `));
    else
      out.push(
        `${indent}  - ${t(c.old.path)}`,
        `${indent}  + ${t(c.new.path)}`,
        `${indent}  (${c.note === 'already-compared' ? 'compared above' : c.note === 'limit' ? 'not compared: too many derivations differ' : 'not compared: its .drv is not available'})`,
      );
  }
  return out;
}

/** `inspect --contents`: each root's packages in aligned columns. */
export function formatContents(c: PlanContents): string {
  const lines: string[] = [];
  const b = c.plan.bundle;
  if (b?.noCheckSigs === true) lines.push(`trust: ${t(signatureText(b.signatures, b))}`);
  for (const r of c.roots) {
    lines.push(`packages of ${t(r.label)} (${n(r.packages.length)} derivations):`);
    const rows = r.packages.map((p) => [
      t(p.name),
      t(p.version === '' ? NO_VERSION : p.version),
      p.outputs.map(t).join(','),
      `${t(p.system)}${p.fixed ? '  (fixed output)' : ''}`,
    ]);
    const widths = [0, 1, 2].map((i) => Math.min(48, Math.max(0, ...rows.map((row) => row[i]!.length))));
    for (const row of rows) lines.push(tableRow('  ', row, widths));
  }
  return `${lines.join('\n')}\n`;
}
