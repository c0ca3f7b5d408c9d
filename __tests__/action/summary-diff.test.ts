// The reviewer's part of the job summaries: a diff told as a short table with the rest collapsed,
// provenance side by side, everything from a plan escaped, and every size bounded (30,000
// derivations, all changed, stay far under GitHub's 1 MiB).
import { describe, expect, test } from '@jest/globals';
import { codeSpan, plainText } from '../../src/action/markdown.js';
import { planSummary, SUMMARY_BUDGET } from '../../src/action/summary.js';
import { diffSection, provenanceSection } from '../../src/action/summary-diff.js';
import { trustReportOf, type BundleManifest } from '../../src/core/bundle/index.js';
import { PlanGraph, type PlanRoot } from '../../src/core/diff/graph.js';
import { diffPlans, type PlanDiff, type PlanSide } from '../../src/core/diff/plan-diff.js';

const STORE = '/nix/store';
const HOSTILE = 'evil`|<img src=x onerror=alert(1)>@admin [x](javascript:alert(1)) #1 \u202e\nnext **bold**';

let counter = 0;
function drvPath(name: string): string {
  const hash = (counter++)
    .toString(36)
    .padStart(32, '0')
    .replace(/[eotu]/g, 'a');
  return `${STORE}/${hash}-${name}.drv`;
}

function add(g: PlanGraph, path: string, inputs: string[] = []): string {
  g.add(path, {
    outputs: [{ name: 'out', path: path.replace(/\.drv$/, ''), hashAlgo: '', hash: '' }],
    inputDrvs: inputs.map((p) => ({ path: p, outputs: ['out'] })),
    system: new TextEncoder().encode('x86_64-linux'),
  });
  return path;
}

function side(g: PlanGraph, source: string, extra: Partial<PlanSide['bundle']> = {}): PlanSide {
  return {
    kind: 'bundle',
    source,
    storeDir: g.storeDir,
    derivations: g.size,
    systems: ['x86_64-linux'],
    roots: g.roots,
    bundle: {
      digest: `sha256:${'a'.repeat(64)}`,
      checksum: 'b'.repeat(64),
      formatVersion: 2,
      tool: 'nix-plan 0.1.0',
      nixVersion: '2.34.8',
      include: 'drvs',
      signatures: [{ key: 'ci-1', status: 'verified' }],
      ...extra,
    },
  };
}

/** Two plans of `n` packages each under one root; `changed` of them differ (versions, then rebuilds). */
function plans(n: number, changed: number, label = 'system'): PlanDiff {
  const roots = (p: string): PlanRoot[] => [{ label, drvPath: p }];
  const oldLeaves: string[] = [];
  const newLeaves: string[] = [];
  const a0: [string, string[]][] = [];
  const b0: [string, string[]][] = [];
  for (let i = 0; i < n; i++) {
    const same = drvPath(`pkg${i}-1.${i}`);
    if (i < changed) {
      a0.push([same, []]);
      b0.push([drvPath(i % 2 === 0 ? `pkg${i}-1.${i + 1}` : `pkg${i}-1.${i}`), []]);
    } else {
      a0.push([same, []]);
      b0.push([same, []]);
    }
  }
  const rootA = drvPath('system-1');
  const rootB = changed === 0 ? rootA : drvPath('system-1');
  const a = new PlanGraph(STORE, roots(rootA));
  const b = new PlanGraph(STORE, roots(rootB));
  for (const [p] of a0) oldLeaves.push(add(a, p));
  for (const [p] of b0) newLeaves.push(add(b, p));
  add(a, rootA, oldLeaves);
  add(b, rootB, newLeaves);
  return diffPlans(side(a, 'old.nixplan'), a, side(b, 'new.nixplan'), b, { relocated: false });
}

/** The summary with every code span taken out: what GitHub would render as Markdown/HTML. */
const outsideCode = (md: string): string => md.replace(/(`+)[^`]*?\1|(`+) [\s\S]*? \2/g, '');

/** The cells of each table row (split on `|` not escaped by a backslash). */
const cellCounts = (md: string): number[][] => {
  const tables: number[][] = [];
  let current: number[] | undefined;
  for (const line of md.split('\n')) {
    if (line.startsWith('|')) {
      current ??= [];
      current.push(line.split(/(?<!\\)\|/).length);
    } else if (current !== undefined) {
      tables.push(current);
      current = undefined;
    }
  }
  return tables;
};

describe('markdown helpers', () => {
  test('a code span holds anything, one line, pipes escaped', () => {
    const span = codeSpan(HOSTILE);
    expect(span.startsWith('``')).toBe(true); // longer than the backtick inside
    expect(span).not.toContain('\n');
    expect(span).toContain('\\|');
    expect(span).toContain('\\u{202e}');
  });

  test('plain text renders nothing', () => {
    const text = plainText(HOSTILE);
    expect(text).not.toMatch(/(?<!\\)<|\n/);
    expect(text).not.toMatch(/(?<!\\)[[\]()@#*`|]/);
  });
});

describe('the diff section', () => {
  test('a version table, counts, the rest collapsed, and nothing from a plan rendered', () => {
    const d = plans(40, 10, HOSTILE);
    const md = diffSection(d, { description: `the artifact ${codeSpan('plan.nixplan')} of this run` });
    expect(md).toContain('### Changes against the artifact `plan.nixplan` of this run');
    expect(md).toContain(
      '**5 version changes (5 upgrades), 6 rebuilt**; derivations 41 → 41 (11 new, 11 gone).',
    );
    expect(md).toContain(
      '**To build**: on a host that realised the compared plan, the outputs of the 11 new derivations (built, or substituted where a binary cache has them); the other 30 it has already.',
    );
    expect(md).toContain('| `pkg0` | ⬆ upgrade | `1.0 → 1.1` |  |');
    expect(md).toContain('<details><summary>Rebuilt at the same version (an input changed) (6)</summary>');
    expect(outsideCode(md)).not.toMatch(/<img|javascript:|@admin|\*\*bold/);
    for (const table of cellCounts(md)) expect(new Set(table).size).toBe(1);
  });

  test('an identical plan, and the same plan in another realm', () => {
    const d = plans(5, 0);
    expect(diffSection(d, { description: 'x' })).toContain(
      '**No changes**: the same 6 derivations and roots.',
    );
    expect(diffSection(d, { description: 'x' })).toContain(
      '**To build**: nothing on a host that realised the compared plan (it has all 6 derivations).',
    );
    const relocated = { ...d, realm: { old: '/alpha/store', new: STORE, relocated: true } };
    expect(diffSection(relocated, { description: 'x' })).toContain(
      '**Same plan, other realm**: relocated into `/nix/store`, it is exactly this plan (6 derivations).',
    );
  });

  test('30,000 derivations, all changed: bounded, and it says how many it left out', () => {
    const d = plans(30_000, 30_000);
    const md = diffSection(d, { description: 'x' });
    expect(Buffer.byteLength(md)).toBeLessThan(400 * 1024);
    expect(md).toContain('**15,000 version changes (15,000 upgrades), 15,001 rebuilt**');
    const more = [...md.matchAll(/…and ([\d,]+) more/g)].map((m) => Number(m[1]?.replace(/,/g, '')));
    expect(more.length).toBeGreaterThanOrEqual(2);
    // What is shown plus what is counted is everything.
    const shownRows = (md.match(/^\| `pkg/gm) ?? []).length;
    expect(shownRows + more.reduce((x, y) => x + y, 0)).toBeGreaterThanOrEqual(30_000);

    const manifest = {
      format: 'nix-plan',
      formatVersion: 1,
      tool: 'nix-plan 0.1.0',
      nixVersion: '2.34.8',
      storeDir: STORE,
      systems: ['x86_64-linux'],
      include: 'drvs',
      roots: [{ attribute: HOSTILE, drvPath: d.new.roots[0]?.drvPath ?? '', outputs: { out: '' } }],
      counts: { drv: 30_001, text: 0, source: 0, output: 0 },
      narBytes: { drv: 1, text: 0, source: 0, output: 0 },
      paths: 30_001,
      stream: { sha256: '0'.repeat(64), size: 1, compressedSha256: '0'.repeat(64), compressedSize: 1 },
      signatures: [],
      checksum: '0'.repeat(64),
    } as BundleManifest;
    const summary = planSummary({
      manifest,
      bundleBytes: 1,
      digest: `sha256:${'c'.repeat(64)}`,
      artifactName: 'plan.nixplan',
      artifactUrl: undefined,
      timings: { evaluateMs: 1, exportMs: 1, uploadMs: 1 },
      realiseAction: './realise',
      jobs: 1,
      comparison: { diff: d, baseline: 'x', compared: { manifest, trust: trustReportOf(manifest, []) } },
      now: new Date('2026-12-06T10:00:00Z'),
    });
    expect(Buffer.byteLength(summary)).toBeLessThanOrEqual(SUMMARY_BUDGET);
    expect(Buffer.byteLength(summary)).toBeLessThan(1024 * 1024);
    expect(summary).toContain('| origin | this plan | compared plan |');
    expect(summary).toContain('### How to realise this plan');
    expect(outsideCode(summary)).not.toMatch(/<img|javascript:|@admin/);
  });
});

describe('provenance side by side', () => {
  test('creation time, provenance and trust of each plan, escaped', () => {
    const base = {
      format: 'nix-plan',
      tool: 'nix-plan 0.1.0',
      nixVersion: '2.34.8',
      storeDir: STORE,
      systems: ['x86_64-linux'],
      include: 'drvs',
      roots: [],
      counts: { drv: 1, text: 0, source: 0, output: 0 },
      narBytes: { drv: 1, text: 0, source: 0, output: 0 },
      paths: 1,
      stream: { sha256: '0'.repeat(64), size: 1, compressedSha256: '0'.repeat(64), compressedSize: 1 },
      checksum: '0'.repeat(64),
    };
    const current = {
      ...base,
      formatVersion: 2,
      createdAt: '2026-12-06T09:00:00Z',
      provenance: { repository: 'o/r', commit: 'a'.repeat(40), ref: HOSTILE },
      signatures: [{ key: 'ci-1', sig: 'x' }],
    } as BundleManifest;
    const older = { ...base, formatVersion: 1, signatures: [{ key: 'ci-1', sig: 'x' }] } as BundleManifest;
    const md = provenanceSection(
      { manifest: current, signedHere: true },
      {
        manifest: older,
        trust: {
          keysGiven: true,
          verifiedBy: ['ci-1'],
          signatures: [{ key: 'ci-1', status: 'verified' }],
          noCheckSigs: false,
          unproven: 0,
        },
      },
      new Date('2026-12-06T10:00:00Z'),
    );
    expect(md).toContain('| origin | this plan | compared plan |');
    expect(md).toContain(
      '| created | `2026-12-06T09:00:00Z` (60 minutes ago) | unknown (a format 1 bundle records no creation time) |',
    );
    expect(md).toContain('| commit | `' + 'a'.repeat(40) + '` | — |');
    expect(md).toContain('| trust | signed in this job by `ci-1` | verified: signed by trusted key `ci-1` |');
    expect(outsideCode(md)).not.toMatch(/<img|javascript:|@admin/);
    for (const table of cellCounts(md)) expect(new Set(table).size).toBe(1);
  });
});
