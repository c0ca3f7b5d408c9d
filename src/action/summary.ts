// The job summaries: what a plan holds, what it cost, and how to use it; kept well under GitHub's
// 1 MiB summary limit by truncating every list.
import { OBJECT_KINDS, type BundleManifest, type RelocationSummary } from '../core/bundle/manifest.js';
import type { PlanSide, SignatureInfo } from '../core/diff/plan-diff.js';
import { signatureText } from '../core/diff/describe.js';
import type { BuildReport } from '../app/build-report.js';
import type { Comparison } from './compare.js';
import { rootLabel } from './matrix.js';
import { diffSection, provenanceSection } from './summary-diff.js';

/** GitHub refuses step summaries above 1 MiB; ours stay within half of it. */
export const SUMMARY_BUDGET = 512 * 1024;
/** Longest list shown in full (roots, out paths, warnings). */
export const LIST_LIMIT = 50;

/** `1.5 MiB`-style sizes. */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${n} B` : `${value.toFixed(1)} ${units[unit]}`;
}

/** `1.2 s` / `340 ms`. */
export function formatMs(ms: number): string {
  return ms >= 1000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms)} ms`;
}

/** Text safe inside a table cell. */
function cell(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');
}

/** Text inside a code span (backticks cannot be escaped there, so they are replaced). */
function code(text: string): string {
  return `\`${text.replace(/`/g, "'")}\``;
}

/** A Markdown table of at most `limit` rows, saying how many were left out. */
export function table(headers: string[], rows: string[][], limit = LIST_LIMIT): string {
  const lines = [`| ${headers.map(cell).join(' | ')} |`, `|${headers.map(() => ' --- |').join('')}`];
  for (const row of rows.slice(0, limit)) lines.push(`| ${row.map(cell).join(' | ')} |`);
  if (rows.length > limit) lines.push('', `…and ${rows.length - limit} more.`);
  return lines.join('\n') + '\n';
}

/** Cuts a summary that would still exceed the budget (it never should after the list limits). */
export function capSummary(markdown: string, budget = SUMMARY_BUDGET): string {
  if (Buffer.byteLength(markdown) <= budget) return markdown;
  const note = '\n\n…summary truncated to stay under GitHub’s 1 MiB limit.\n';
  // Cut at a character boundary: a partial UTF-8 sequence at the end decodes to one U+FFFD.
  const kept = Buffer.from(markdown)
    .subarray(0, budget - Buffer.byteLength(note))
    .toString('utf8')
    .replace(/\uFFFD$/, '');
  return markdown.slice(0, kept.length) + note;
}

function rootsTable(manifest: BundleManifest): string {
  return table(
    ['root', 'derivation', 'outputs'],
    manifest.roots.map((r) => [
      code(rootLabel(r)),
      code(r.drvPath),
      Object.entries(r.outputs)
        .map(([name, path]) => `${name}: ${path === '' ? '(content-addressed)' : code(path)}`)
        .join(', '),
    ]),
  );
}

function contentsTable(manifest: BundleManifest): string {
  const rows = OBJECT_KINDS.filter((k) => manifest.counts[k] > 0).map((k) => [
    k,
    String(manifest.counts[k]),
    formatBytes(manifest.narBytes[k]),
  ]);
  return table(['kind', 'paths', 'NAR bytes'], rows);
}

/** The relocation report of a manifest, or '' when it was not relocated. */
export function relocationSection(from: string, to: string, report: RelocationSummary): string {
  const parts = [
    `### Relocation ${code(from)} → ${code(to)}\n\n`,
    table(
      ['objects rewritten', 'hashes rewritten', 'bare hash rewrites'],
      [
        [
          OBJECT_KINDS.filter((k): k is 'drv' | 'text' | 'source' => k !== 'output')
            .map((k) => `${report.objects[k]} ${k}`)
            .join(', '),
          String(report.hashesRewritten),
          String(report.bareHashRewrites),
        ],
      ],
    ),
  ];
  if (report.bareStoreDirMentions.length > 0) {
    parts.push(
      '\nPaths that mention the old store dir outside a store path (left as they are):\n\n',
      table(
        ['path', 'mentions'],
        report.bareStoreDirMentions.map((m) => [code(m.path), String(m.count)]),
      ),
    );
  }
  if (report.warnings.length > 0) {
    const shown = report.warnings.slice(0, LIST_LIMIT).map((w) => `- ${w.replace(/\r?\n/g, ' ')}`);
    if (report.warnings.length > LIST_LIMIT) shown.push(`- …and ${report.warnings.length - LIST_LIMIT} more`);
    parts.push('\n**Warnings**\n\n', shown.join('\n'), '\n');
  }
  return parts.join('');
}

/** How a later job (or a person) uses the plan; `realiseAction` is e.g. `owner/nix-plan/realise@v1`. */
export function realiseSnippet(realiseAction: string, artifactName: string, digest: string): string {
  return [
    '### How to realise this plan\n',
    'In a later job of this workflow (`needs:` this one):\n',
    '```yaml',
    `- uses: ${realiseAction}`,
    '  with:',
    `    artifact-name: ${artifactName}`,
    `    digest: ${digest}`,
    '```\n',
    'Or anywhere with Nix, after downloading the artifact:\n',
    '```sh',
    `nix-plan realise ${artifactName}`,
    `# or, with stock tools: zstd -dc ${artifactName} | nix-store --import`,
    '```\n',
  ].join('\n');
}

/** Facts the root action's summary shows. */
export interface PlanSummaryFacts {
  readonly manifest: BundleManifest;
  readonly bundleBytes: number;
  readonly digest: string;
  readonly artifactName: string;
  readonly artifactUrl: string | undefined;
  readonly timings: { evaluateMs: number; exportMs: number; uploadMs: number | undefined };
  readonly realiseAction: string;
  readonly jobs: number;
  /** What `compare-to` found (undefined: not asked for). */
  readonly comparison?: Comparison | undefined;
  /** The plan as a side of a comparison: its provenance and signatures. */
  readonly plan?: PlanSide | undefined;
}

/** The comparison part of a summary: the diff, or why there was nothing to compare with. */
export function comparisonSection(c: Comparison | undefined): string {
  if (c === undefined) return '';
  if (c.diff !== undefined && c.baseline !== undefined)
    return `${diffSection(c.diff, { description: c.baseline })}\n`;
  return `### Changes\n\n${c.missing ?? 'nothing to compare with'}.\n\n`;
}

/** The root action's summary. */
export function planSummary(f: PlanSummaryFacts): string {
  const m = f.manifest;
  const ratio = f.bundleBytes > 0 ? m.stream.size / f.bundleBytes : 0;
  const parts = [
    `## nix-plan: ${code(f.artifactName)}\n\n`,
    `${m.roots.length} root(s), ${m.paths} store paths (${m.include}), evaluated by Nix ${m.nixVersion} ` +
      `for ${code(m.storeDir)}${m.systems.length > 0 ? ` on ${m.systems.join(', ')}` : ''}; ` +
      `${m.signatures.length > 0 ? `signed by ${m.signatures.map((s) => code(s.key)).join(', ')}` : 'unsigned'}.\n\n`,
    table(
      ['bundle', 'export stream', 'ratio', 'evaluating', 'exporting', 'uploading', 'matrix jobs'],
      [
        [
          f.artifactUrl === undefined
            ? formatBytes(f.bundleBytes)
            : `[${formatBytes(f.bundleBytes)}](${f.artifactUrl})`,
          formatBytes(m.stream.size),
          `${ratio.toFixed(1)}×`,
          formatMs(f.timings.evaluateMs),
          formatMs(f.timings.exportMs),
          f.timings.uploadMs === undefined ? 'not uploaded' : formatMs(f.timings.uploadMs),
          String(f.jobs),
        ],
      ],
    ),
    '\n',
    comparisonSection(f.comparison),
    '### Roots\n\n',
    rootsTable(m),
    '\n### Contents\n\n',
    contentsTable(m),
    '\n',
  ];
  if (m.relocatedFrom !== undefined) {
    parts.push(relocationSection(m.relocatedFrom.storeDir, m.storeDir, m.relocatedFrom.report), '\n');
  }
  if (f.plan !== undefined)
    parts.push(provenanceSection(f.plan, f.comparison?.diff?.old, { ownSignatures: true }), '\n');
  parts.push(realiseSnippet(f.realiseAction, f.artifactName, f.digest));
  return capSummary(parts.join(''));
}

/** Facts the realise action's summary shows. */
export interface RealiseSummaryFacts {
  readonly manifest: BundleManifest;
  readonly label: string;
  readonly shard: string | undefined;
  readonly outPaths: Record<string, Record<string, string>>;
  readonly timings: { fetchMs: number; realiseMs: number };
  /** What building did (built against substituted, and when each root was ready). */
  readonly build?: BuildReport | undefined;
}

const HOW: Readonly<Record<BuildReport['roots'][number]['how'], string>> = {
  built: 'built',
  substituted: 'substituted',
  valid: 'already valid',
  unknown: 'not known (a custom --log-format)',
};

/** The realise action's summary. */
export function realiseSummary(f: RealiseSummaryFacts): string {
  const b = f.build;
  const parts = [
    `## nix-plan realise: ${code(f.label)}${f.shard === undefined ? '' : ` (shard ${f.shard})`}\n`,
    `Built ${Object.keys(f.outPaths).length} of ${f.manifest.roots.length} root(s) in ${code(f.manifest.storeDir)} ` +
      `without evaluating: fetching ${formatMs(f.timings.fetchMs)}, importing and building ${formatMs(f.timings.realiseMs)}.\n`,
  ];
  if (b !== undefined) {
    parts.push(
      `Nix built **${b.built.length}** derivation${b.built.length === 1 ? '' : 's'} and substituted **${b.substituted.length}** path${b.substituted.length === 1 ? '' : 's'} in ${formatMs(b.totalMs)}.\n`,
      table(
        ['root', 'how', 'ready after', 'outputs'],
        b.roots.map((r) => [
          code(r.label),
          HOW[r.how],
          r.readyMs === undefined ? '—' : formatMs(r.readyMs),
          Object.entries(f.outPaths[r.drvPath] ?? {})
            .map(([name, path]) => `${code(name)}: ${code(path)}`)
            .join(', '),
        ]),
      ),
    );
    if (b.built.length > 0)
      parts.push(
        `<details><summary>Built (${b.built.length})</summary>\n\n${table(
          ['derivation'],
          b.built.map((d) => [code(d)]),
          200,
        )}\n</details>\n`,
      );
    if (b.substituted.length > 0)
      parts.push(
        `<details><summary>Substituted (${b.substituted.length})</summary>\n\n${table(
          ['path'],
          b.substituted.map((d) => [code(d)]),
          200,
        )}\n</details>\n`,
      );
  } else {
    const rows = Object.entries(f.outPaths).flatMap(([drv, outs]) =>
      Object.entries(outs).map(([name, path]) => [code(drv), name, code(path)]),
    );
    parts.push(table(['derivation', 'output', 'path'], rows));
  }
  return capSummary(parts.join('\n'));
}

/** Facts the promote action's summary shows. */
export interface PromoteSummaryFacts {
  readonly from: string;
  readonly manifest: BundleManifest;
  readonly report: RelocationSummary;
  readonly bundleBytes: number;
  readonly digest: string;
  readonly artifactName: string;
  readonly artifactUrl: string | undefined;
  readonly realiseAction: string;
  /** What was promoted: where it was fetched from (safe Markdown) and its signatures as checked. */
  readonly source?:
    { readonly description: string; readonly signatures: readonly SignatureInfo[] } | undefined;
  /** What `compare-to` found: the previous promotion into this realm. */
  readonly comparison?: Comparison | undefined;
  /** The promoted plan as a side of a comparison. */
  readonly plan?: PlanSide | undefined;
}

/** The promote action's summary. */
export function promoteSummary(f: PromoteSummaryFacts): string {
  const m = f.manifest;
  const source =
    f.source === undefined
      ? ''
      : `Promoted ${f.source.description} from ${code(f.from)} into ${code(m.storeDir)}; the input was ${signatureMarkdown(f.source.signatures)}.\n\n`;
  return capSummary(
    [
      `## nix-plan promote: ${code(f.artifactName)}\n\n`,
      source,
      `${m.roots.length} root(s), ${m.paths} store paths, now for ${code(m.storeDir)}; ` +
        `${m.signatures.length > 0 ? `signed by ${m.signatures.map((s) => code(s.key)).join(', ')}` : 'unsigned'}; ` +
        `bundle ${f.artifactUrl === undefined ? formatBytes(f.bundleBytes) : `[${formatBytes(f.bundleBytes)}](${f.artifactUrl})`}.\n\n`,
      comparisonSection(f.comparison),
      relocationSection(f.from, m.storeDir, f.report),
      '\n### Roots\n\n',
      rootsTable(m),
      '\n',
      f.plan === undefined
        ? ''
        : `${provenanceSection(f.plan, f.comparison?.diff?.old, { ownSignatures: true })}\n`,
      realiseSnippet(f.realiseAction, f.artifactName, f.digest),
    ].join(''),
  );
}

/** Signature statuses as a phrase with the key names as code. */
function signatureMarkdown(signatures: readonly SignatureInfo[]): string {
  const verified = signatures.filter((s) => s.status === 'verified');
  if (verified.length > 0)
    return `verified: signed by trusted key ${verified.map((s) => code(s.key)).join(', ')}`;
  return signatureText(signatures);
}
