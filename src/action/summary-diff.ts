// The part of a job summary a reviewer decides on: what changes against the plan compared with
// (a short table of version changes, counts of additions, removals and rebuilds, the rest in
// collapsed blocks), and where each plan came from and who signed it. Everything from a plan is
// untrusted and goes through markdown.ts; every list is bounded, so a 30,000-derivation diff stays
// far below GitHub's 1 MiB summary limit and says how much it left out.
import type { BundleManifest, TrustReport } from '../core/bundle/index.js';
import { countsText, versionsText, outputsText } from '../core/diff/describe.js';
import type { PackageChange } from '../core/diff/packages.js';
import type { PlanDiff } from '../core/diff/plan-diff.js';
import { originRows, segmentsMarkdown } from '../core/provenance-view.js';
import { groupDigits } from '../core/text.js';
import { boundedTable, codeSpan, details, plainText } from './markdown.js';

/** Bytes the diff section may take (the rest of a summary is small and bounded too). */
export const DIFF_BUDGET = 384 * 1024;
/** Version changes shown before the collapsed blocks. */
export const HEAD_ROWS = 25;

/** The plan a diff compared with, as the summary names it. */
export interface Baseline {
  /** What it is, in our words (e.g. "artifact plan.nixplan from run 123"): untrusted parts escaped by the caller. */
  readonly description: string;
  /** Build outputs of this plan no key proves, which this job realised itself (see Comparison). */
  readonly ownUnproven?: number | undefined;
}

const n = (x: number): string => groupDigits(x);

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

/**
 * What realising this plan costs a host that already realised the compared one: it has every
 * derivation the two share, so it builds (or substitutes, where a binary cache has them) only the
 * outputs of the derivations new here.
 */
export function buildText(d: PlanDiff): string {
  const dv = d.total.derivations;
  const shared = dv.new - dv.added;
  if (dv.added === 0)
    return `**To build**: nothing on a host that realised the compared plan (it has all ${n(dv.new)} derivations).`;
  return (
    `**To build**: on a host that realised the compared plan, the outputs of the ${n(dv.added)} new derivation${dv.added === 1 ? '' : 's'} ` +
    `(built, or substituted where a binary cache has them); the other ${n(shared)} it has already.`
  );
}

/**
 * What a reviewer is told of this job's own build outputs that no key proves: they are compared
 * all the same (this job realised them), and later jobs take them only unproven on purpose.
 */
export function ownUnprovenText(count: number): string {
  const outputs = `build output${count === 1 ? '' : 's'}`;
  return (
    `**NOT CHECKED: ${n(count)} unproven (built by this job)**: this plan carries ${n(count)} ${outputs} ` +
    'this job realised (built, or substituted) and no key signed, as it has no `signing-key`; ' +
    'nothing but this job vouches for their contents. A later job takes them only with `no-check-sigs: true`; give this job a `signing-key` to prove them.'
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
  parts.push(`${buildText(d)}\n\n`);
  if ((baseline.ownUnproven ?? 0) > 0) parts.push(`${ownUnprovenText(baseline.ownUnproven ?? 0)}\n\n`);
  let left = budget;
  const take = (text: string): string => {
    left -= Buffer.byteLength(text);
    return text;
  };
  const head = versionChangesTable(d.total.packages, left / 4);
  if (head !== '') parts.push(take(head), '\n');
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
  parts.push(
    take(
      packageDetails(
        d.total.packages,
        left,
        'not shown: run `nix-plan diff` on the two plans for all of them',
      ),
    ),
  );
  return parts.join('');
}

const PACKAGE_HEADERS = ['package', 'change', 'versions', 'outputs'];
const isVersionChange = (p: PackageChange): boolean =>
  p.change === 'upgrade' || p.change === 'downgrade' || p.change === 'changed';

/** The first HEAD_ROWS version changes as a table within `budget` bytes ('' when there are none). */
export function versionChangesTable(packages: readonly PackageChange[], budget: number): string {
  const versions = packages.filter(isVersionChange);
  if (versions.length === 0) return '';
  return boundedTable(PACKAGE_HEADERS, versions.map(packageRow), {
    limit: HEAD_ROWS,
    budget,
    more: 'version changes (all are listed below)',
  });
}

/**
 * The packages in collapsed blocks within `budget` bytes: the version changes (when more than
 * the head table showed), the added and removed packages, the rebuilt ones; `more` says where
 * to read the rows left out.
 */
export function packageDetails(packages: readonly PackageChange[], budget: number, more: string): string {
  const versions = packages.filter(isVersionChange);
  const groups: [string, PackageChange[]][] = [
    ['Version changes', versions],
    ['Added and removed packages', packages.filter((p) => p.change === 'added' || p.change === 'removed')],
    ['Rebuilt at the same version (an input changed)', packages.filter((p) => p.change === 'rebuilt')],
  ];
  let left = budget;
  const parts: string[] = [];
  for (const [title, list] of groups) {
    // Version changes all shown in the head table need no second list.
    if (list.length === 0 || (list === versions && versions.length <= HEAD_ROWS)) continue;
    const block = details(
      `${title} (${n(list.length)})`,
      boundedTable(PACKAGE_HEADERS, list.map(packageRow), { budget: Math.max(0, left / 2), more }),
    );
    left -= Buffer.byteLength(block);
    parts.push(block);
  }
  return parts.join('');
}

/** A plan as the provenance table shows it: its manifest and what was proven of it. */
export interface OriginColumn {
  readonly manifest: BundleManifest;
  readonly trust?: TrustReport | undefined;
  /** Signed in this job (export, promote): its signatures are ours. */
  readonly signedHere?: boolean;
  /** Build outputs of this job's own plan that no key proves (shown NOT CHECKED in its trust row). */
  readonly ownUnproven?: number | undefined;
}

/**
 * Where this plan and the one it was compared with came from, side by side: the rows of the
 * shared origin view (created, repository, commit, ref, run, flake, promotions, trust), each
 * value from a bundle in a code span.
 */
export function provenanceSection(current: OriginColumn, compared: OriginColumn, now: Date): string {
  const columns = [current, compared].map(
    (c) =>
      new Map(
        originRows(c.manifest, c.trust, { now, signedHere: c.signedHere === true }).map((r) => [
          r.label.trim(),
          r.label.trim() === 'trust' && (c.ownUnproven ?? 0) > 0
            ? [
                ...r.value,
                { text: `; **NOT CHECKED: ${n(c.ownUnproven ?? 0)} unproven (built by this job)**` },
              ]
            : r.value,
        ]),
      ),
  );
  const labels = [...new Set(columns.flatMap((c) => [...c.keys()]))];
  return boundedTable(
    ['origin', 'this plan', 'compared plan'],
    labels.map((label) => [
      plainText(label),
      ...columns.map((c) => {
        const value = c.get(label);
        return value === undefined ? '—' : segmentsMarkdown(value).replace(/\|/g, '\\|');
      }),
    ]),
    { limit: 60 },
  );
}
