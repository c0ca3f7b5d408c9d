// The part of a job summary a reviewer decides on: what changes against the plan compared with
// (a short table of version changes, counts of additions, removals and rebuilds, the rest in
// collapsed blocks), and where each plan came from and who signed it. Everything from a plan is
// untrusted and goes through markdown.ts; every list is bounded, so a 30,000-derivation diff stays
// far below GitHub's 1 MiB summary limit and says how much it left out.
import { countsText, signatureText, versionsText, outputsText } from '../core/diff/describe.js';
import type { PackageChange } from '../core/diff/packages.js';
import type { PlanDiff, PlanSide } from '../core/diff/plan-diff.js';
import { boundedTable, codeSpan, details, plainText, trustedLink } from './markdown.js';

/** Bytes the diff section may take (the rest of a summary is small and bounded too). */
export const DIFF_BUDGET = 384 * 1024;
/** Version changes shown before the collapsed blocks. */
export const HEAD_ROWS = 25;

/** The plan a diff compared with, as the summary names it. */
export interface Baseline {
  /** What it is, in our words (e.g. "artifact plan.nixplan from run 123"): untrusted parts escaped by the caller. */
  readonly description: string;
}

const n = (x: number): string => x.toLocaleString('en-US');

const CHANGE_WORDS: Readonly<Record<PackageChange['change'], string>> = {
  upgrade: '⬆ upgrade',
  downgrade: '⬇ downgrade',
  changed: 'changed',
  added: '➕ added',
  removed: '➖ removed',
  rebuilt: 'rebuilt',
};

function packageRow(p: PackageChange): string[] {
  const extra = outputsText(p);
  return [
    codeSpan(p.name),
    CHANGE_WORDS[p.change],
    codeSpan(versionsText(p)),
    extra === undefined ? '' : codeSpan(extra),
  ];
}

/** Where one side came from and who signed it, as rows of a provenance table. */
function provenanceRows(side: PlanSide, ownSignatures = false): Map<string, string> {
  const rows = new Map<string, string>();
  const b = side.bundle;
  rows.set('store dir', codeSpan(side.storeDir));
  rows.set('derivations', n(side.derivations));
  if (b === undefined) {
    rows.set('signatures', 'not a bundle');
    return rows;
  }
  rows.set(
    'signatures',
    ownSignatures
      ? b.signatures.length === 0
        ? 'unsigned'
        : `signed in this job by ${b.signatures.map((x) => codeSpan(x.key)).join(', ')}`
      : plainText(signatureText(b.signatures)),
  );
  if (!ownSignatures && b.signatures.length > 0)
    rows.set('signed by', b.signatures.map((x) => codeSpan(x.key)).join(', '));
  rows.set('evaluated at', b.createdAt === undefined ? 'unknown (manifest v1)' : codeSpan(b.createdAt));
  for (const [k, v] of Object.entries(b.provenance ?? {})) rows.set(k, codeSpan(v));
  rows.set('written by', `${codeSpan(b.tool)}, Nix ${codeSpan(b.nixVersion)}`);
  if (b.relocatedFrom !== undefined) rows.set('relocated from', codeSpan(b.relocatedFrom));
  rows.set('digest', codeSpan(b.digest));
  return rows;
}

/** A table of where each plan came from, side by side (`own`: its signatures were made in this job). */
export function provenanceTable(
  columns: readonly { title: string; side: PlanSide; own?: boolean }[],
): string {
  const byColumn = columns.map((c) => provenanceRows(c.side, c.own === true));
  const keys = [...new Set(byColumn.flatMap((m) => [...m.keys()]))];
  return boundedTable(
    ['', ...columns.map((c) => c.title)],
    keys.map((k) => [plainText(k), ...byColumn.map((m) => m.get(k) ?? '—')]),
    { limit: 60 },
  );
}

/** The diff section of a summary: headline, version changes, then details collapsed. */
export function diffSection(d: PlanDiff, baseline: Baseline, budget = DIFF_BUDGET): string {
  const parts: string[] = [`### Changes against ${baseline.description}\n\n`];
  if (d.realm.relocated)
    parts.push(
      `The compared plan is for ${codeSpan(d.realm.old)}; it was relocated into ${codeSpan(d.realm.new)} to compare.\n\n`,
    );
  const dv = d.total.derivations;
  if (d.identical) {
    parts.push(
      d.realm.relocated
        ? `**Same plan, other realm**: relocated into ${codeSpan(d.realm.new)}, it is exactly this plan (${n(dv.new)} derivations).\n\n`
        : `**No changes**: the same ${n(dv.new)} derivations and roots.\n\n`,
    );
  } else {
    parts.push(
      `**${countsText(d.total.counts)}**; derivations ${n(dv.old)} → ${n(dv.new)} (${n(dv.added)} new, ${n(dv.removed)} gone).\n\n`,
    );
  }
  const versions = d.total.packages.filter((p) => ['upgrade', 'downgrade', 'changed'].includes(p.change));
  const addedRemoved = d.total.packages.filter((p) => p.change === 'added' || p.change === 'removed');
  const rebuilt = d.total.packages.filter((p) => p.change === 'rebuilt');
  const headers = ['package', 'change', 'versions', 'outputs'];
  let left = budget;
  const take = (text: string): string => {
    left -= Buffer.byteLength(text);
    return text;
  };
  if (versions.length > 0)
    parts.push(
      take(
        boundedTable(headers, versions.map(packageRow), {
          limit: HEAD_ROWS,
          budget: left / 4,
          more: 'version changes (all are listed below)',
        }),
      ),
      '\n',
    );
  const fields = d.fields.filter(
    (f) => !(d.realm.relocated && (f.field === 'storeDir' || f.field === 'relocatedFrom')),
  );
  if (fields.length > 0)
    parts.push(
      take(
        details(
          `Plan facts that differ (${fields.length})`,
          boundedTable(
            ['field', 'compared plan', 'this plan'],
            fields.map((f) => [plainText(f.field), codeSpan(f.old ?? '∅'), codeSpan(f.new ?? '∅')]),
            { limit: 100 },
          ),
        ),
      ),
    );
  if (d.roots.length > 1 || d.roots.some((r) => r.status === 'added' || r.status === 'removed'))
    parts.push(
      take(
        details(
          `Roots (${n(d.roots.filter((r) => r.status !== 'unchanged').length)} of ${n(d.roots.length)} changed)`,
          boundedTable(
            ['root', 'status', 'versions', 'added', 'removed', 'rebuilt'],
            d.roots.map((r) => [
              codeSpan(r.label),
              r.status,
              n((r.counts?.upgrade ?? 0) + (r.counts?.downgrade ?? 0) + (r.counts?.changed ?? 0)),
              n(r.counts?.added ?? 0),
              n(r.counts?.removed ?? 0),
              n(r.counts?.rebuilt ?? 0),
            ]),
            { budget: left / 8, more: 'roots (see `nix-plan diff --json`)' },
          ),
        ),
      ),
    );
  const groups: [string, PackageChange[]][] = [
    ['Version changes', versions],
    ['Added and removed packages', addedRemoved],
    ['Rebuilt at the same version (an input changed)', rebuilt],
  ];
  for (const [title, list] of groups) {
    // Version changes all shown above need no second list.
    if (list.length === 0 || (list === versions && versions.length <= HEAD_ROWS)) continue;
    parts.push(
      take(
        details(
          `${title} (${n(list.length)})`,
          boundedTable(headers, list.map(packageRow), {
            budget: Math.max(0, left / 2),
            more: 'not shown: run `nix-plan diff` on the two plans for all of them',
          }),
        ),
      ),
    );
  }
  return parts.join('');
}

/**
 * The provenance and signature section: this plan beside the one compared with (if any).
 * `ownSignatures`: this plan was signed in this job (its signatures are ours, not checked).
 */
export function provenanceSection(
  current: PlanSide,
  compared?: PlanSide,
  options: { ownSignatures?: boolean } = {},
): string {
  const columns: { title: string; side: PlanSide; own?: boolean }[] = [
    { title: 'this plan', side: current, own: options.ownSignatures === true },
  ];
  if (compared !== undefined) columns.push({ title: 'compared plan', side: compared });
  return `### Provenance and signatures\n\n${provenanceTable(columns)}`;
}

export { trustedLink };
