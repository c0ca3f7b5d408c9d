// The job summaries: what a plan holds, where it came from, who vouched for it, what it cost, and
// how to use it; kept well under GitHub's 1 MiB summary limit by truncating every list. Anything
// from a bundle is shown in a code span (core/text.ts), never as Markdown or HTML: a forged label
// must not render a link, an image, a heading or a "verified" badge.
import {
  OBJECT_KINDS,
  trustStatus,
  type BundleManifest,
  type RelocationSummary,
  type TrustReport,
} from '../core/bundle/index.js';
import { CONTENT_ADDRESSED_KINDS } from '../core/content-address.js';
import { originMarkdown } from '../core/provenance-view.js';
import { markdownCode, unsafeCharacter } from '../core/text.js';
import { quoteShellWord } from '../core/shell-words.js';
import type { BuildReport } from '../app/build-report.js';
import type { Comparison } from './compare.js';
import { rootLabel } from './matrix.js';
import { codeSpan } from './markdown.js';
import { diffSection, provenanceSection } from './summary-diff.js';
import { capSummary } from './summary-cap.js';

// Names this module has always given, where callers still find them.
export { capSummary, SUMMARY_BUDGET } from './summary-cap.js';

/** Longest list shown in full (roots, out paths, warnings). */
export const LIST_LIMIT = 50;

import { formatBytes } from '../app/display.js';

export { formatBytes };

/** `1.2 s` / `340 ms`. */
export function formatMs(ms: number): string {
  return ms >= 1000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms)} ms`;
}

/**
 * Text safe inside a table cell: GFM splits cells at an unescaped `|` before it parses anything
 * else, so `\|` is the one escape a cell needs (code spans included, where every other backslash
 * is shown as it is: doubling them would show a label with a backslash wrongly).
 */
function cell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');
}

/** Text from a bundle, inside a code span (see markdownCode). */
const code = markdownCode;

/**
 * The trust status in a sentence: our words as Markdown, the key names from the bundle as code.
 */
export function trustMarkdown(manifest: BundleManifest, trust?: TrustReport): string {
  const prefix = 'verified: signed by trusted key ';
  const status = trustStatus(manifest, trust);
  if (trust !== undefined && status.startsWith(prefix))
    return `**verified**: signed by trusted key ${trust.verifiedBy.map(code).join(', ')}`;
  // The other statuses are our own words (no key name in them).
  if (status.startsWith('NOT CHECKED')) return `**${status}**`;
  return status;
}

/**
 * A plan taken from where nothing pins it (`allow-unpinned-source`), in our words: the origin is
 * one of unprovenOrigin's descriptions, never a value from the plan or the inputs.
 */
export function unpinnedMarkdown(origin: string): string {
  return (
    `**NOT PINNED (allow-unpinned-source)**: this plan was taken from ${origin} with neither \`digest\` ` +
    `nor \`trusted-keys\`; whoever can write there chose it.\n`
  );
}

/** A Markdown table of at most `limit` rows, saying how many were left out. */
export function table(headers: string[], rows: string[][], limit = LIST_LIMIT): string {
  const lines = [`| ${headers.map(cell).join(' | ')} |`, `|${headers.map(() => ' --- |').join('')}`];
  for (const row of rows.slice(0, limit)) lines.push(`| ${row.map(cell).join(' | ')} |`);
  if (rows.length > limit) lines.push('', `…and ${rows.length - limit} more.`);
  return lines.join('\n') + '\n';
}

/** Most outputs listed in one cell (a root may have 1,000, each name up to 211 bytes). */
const OUTPUTS_PER_CELL = 8;

/** A root's outputs in one table cell: `name`: `path`, the first few, then how many more. */
function outputsCell(outputs: Record<string, string>): string {
  const all = Object.entries(outputs);
  const shown = all
    .slice(0, OUTPUTS_PER_CELL)
    .map(([name, path]) => `${code(name)}: ${path === '' ? '(content-addressed)' : code(path)}`);
  if (all.length > OUTPUTS_PER_CELL) shown.push(`and ${all.length - OUTPUTS_PER_CELL} more`);
  return shown.join(', ');
}

function rootsTable(manifest: BundleManifest): string {
  return table(
    ['root', 'derivation', 'outputs'],
    manifest.roots.map((r) => [code(rootLabel(r)), code(r.drvPath), outputsCell(r.outputs)]),
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
          CONTENT_ADDRESSED_KINDS.map((k) => `${report.objects[k]} ${k}`).join(', '),
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
    const shown = report.warnings.slice(0, LIST_LIMIT).map((w) => `- ${code(w)}`);
    if (report.warnings.length > LIST_LIMIT) shown.push(`- …and ${report.warnings.length - LIST_LIMIT} more`);
    parts.push('\n**Warnings**\n\n', shown.join('\n'), '\n');
  }
  return parts.join('');
}

/**
 * Where a plan was published, which decides how a later job gets it: GitHub's artifact service, a
 * shared directory (`artifact-dir`: the later job needs it too, and finds the file at `path`), or
 * nowhere (`upload: false`: the bundle stays at `bundlePath` on this runner, for later steps of
 * this job, which name this step by its `id`).
 */
export type Published =
  | { readonly kind: 'artifact' }
  | { readonly kind: 'directory'; readonly dir: string; readonly path: string }
  | { readonly kind: 'none'; readonly bundlePath: string; readonly stepId: string | undefined };

/** The id of the step running (GITHUB_ACTION) when it is one a workflow gave, else undefined. */
export function stepIdOf(githubAction: string | undefined): string | undefined {
  // A step without `id:` is named `__run`, `__owner_repo`, … by the runner: not one to refer to.
  return githubAction !== undefined &&
    /^[A-Za-z_][A-Za-z0-9_-]*$/.test(githubAction) &&
    !githubAction.startsWith('__')
    ? githubAction
    : undefined;
}

/**
 * How a later job (or a person) uses the plan, for where it was published; `realiseAction` is e.g.
 * `owner/nix-plan/realise@v1`. Inputs are written as YAML double-quoted strings where they come
 * from the workflow (a directory, a path), so none can end the fence or the line.
 */
export function realiseSnippet(
  realiseAction: string,
  artifactName: string,
  digest: string,
  published: Published = { kind: 'artifact' },
): string {
  const yaml = (lines: string[]): string[] => [
    '```yaml',
    `- uses: ${realiseAction}`,
    '  with:',
    ...lines,
    '```\n',
  ];
  // A path with a line break or another control character is not shown as a command at all.
  const sh = (intro: string, path: string): string[] =>
    unsafeCharacter(path) !== undefined
      ? []
      : [
          intro,
          '```sh',
          `nix-plan realise ${quoteShellWord(path)}`,
          `# or, with stock tools: zstd -dc ${quoteShellWord(path)} | nix-store --import`,
          '```\n',
        ];
  if (published.kind === 'none') {
    const step = published.stepId ?? 'ID';
    return [
      '### How to realise this plan\n',
      "It was not published (`upload: false`): the bundle is on this runner only, at the step's " +
        `\`bundle-path\` output. In a later step of this job${published.stepId === undefined ? ' (give this step an `id:`)' : ''}:\n`,
      ...yaml([`    bundle: \${{ steps.${step}.outputs.bundle-path }}`, `    digest: ${digest}`]),
      ...sh('Or with Nix on this runner:\n', published.bundlePath),
    ].join('\n');
  }
  if (published.kind === 'directory')
    return [
      '### How to realise this plan\n',
      'In a later job of this workflow (`needs:` this one), on a runner that sees the same directory:\n',
      ...yaml([
        `    artifact-dir: ${JSON.stringify(published.dir)}`,
        `    artifact-name: ${artifactName}`,
        `    digest: ${digest}`,
      ]),
      ...sh('Or anywhere with Nix and that directory:\n', published.path),
    ].join('\n');
  return [
    '### How to realise this plan\n',
    'In a later job of this workflow (`needs:` this one):\n',
    ...yaml([`    artifact-name: ${artifactName}`, `    digest: ${digest}`]),
    ...sh('Or anywhere with Nix, after downloading the artifact:\n', artifactName),
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
  /** Where the plan was published (default: GitHub's artifact service). */
  readonly published?: Published | undefined;
  readonly jobs: number;
  /** The clock, for the plan's age (default now). */
  readonly now?: Date | undefined;
  /** What `compare-to` found (undefined: not asked for). */
  readonly comparison?: Comparison | undefined;
}

/** The comparison part of a summary: the diff, or why there was nothing to compare with. */
export function comparisonSection(c: Comparison | undefined): string {
  if (c === undefined) return '';
  if (c.refused !== undefined)
    return (
      `### Changes\n\n**Not compared: a plan was refused.** Comparing with ${c.baseline ?? 'the plan asked for'} ` +
      `stopped because one of the two plans fails the checks \`nix-plan verify\` makes (${c.refused.code}): ` +
      `${codeSpan(c.refused.message)}\n\nNo diff is shown, and this step fails.\n\n`
    );
  if (c.diff !== undefined && c.baseline !== undefined)
    return `${diffSection(c.diff, { description: c.baseline, ownUnproven: c.ownUnproven })}\n`;
  return `### Changes\n\n${c.missing ?? 'nothing to compare with'}.\n\n`;
}

/**
 * Where a plan (signed in this job) came from: beside the plan it was compared with when there
 * was one, else alone.
 */
function originSection(m: BundleManifest, now: Date, comparison: Comparison | undefined): string {
  const compared = comparison?.compared;
  if (compared === undefined) return originMarkdown(m, undefined, { now, signedHere: true });
  return provenanceSection(
    { manifest: m, signedHere: true, ownUnproven: comparison?.ownUnproven },
    { manifest: compared.manifest, trust: compared.trust },
    now,
  );
}

/** The root action's summary. */
export function planSummary(f: PlanSummaryFacts): string {
  const m = f.manifest;
  const ratio = f.bundleBytes > 0 ? m.stream.size / f.bundleBytes : 0;
  const parts = [
    `## nix-plan: ${code(f.artifactName)}\n\n`,
    `${m.roots.length} root(s), ${m.paths} store paths (${m.include}), evaluated by Nix ${code(m.nixVersion)} ` +
      `for ${code(m.storeDir)}${m.systems.length > 0 ? ` on ${m.systems.map(code).join(', ')}` : ''}; ` +
      `${m.signatures.length > 0 ? `signed by ${m.signatures.map((s) => code(s.key)).join(', ')}` : 'unsigned'}.\n\n`,
    originSection(m, f.now ?? new Date(), f.comparison),
    '\n',
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
  parts.push(realiseSnippet(f.realiseAction, f.artifactName, f.digest, f.published));
  return capSummary(parts.join(''));
}

/** Facts the realise action's summary shows. */
export interface RealiseSummaryFacts {
  readonly manifest: BundleManifest;
  readonly label: string;
  readonly shard: string | undefined;
  readonly outPaths: Record<string, Record<string, string>>;
  readonly timings: { fetchMs: number; realiseMs: number };
  /** What was proven about who made the plan. */
  readonly trust?: TrustReport | undefined;
  /** The clock, for the plan's age (default now). */
  readonly now?: Date | undefined;
  /** What building did (built against substituted, and when each root was ready). */
  readonly build?: BuildReport | undefined;
  /** Where the plan was taken from with nothing to pin it (`allow-unpinned-source`). */
  readonly unpinned?: string | undefined;
  /** The workflow run whose artifact it is, when it is another run's (`run-id`, `repository`). */
  readonly run?: { readonly id: number; readonly repository: string | undefined } | undefined;
  /** The `digest` input the plan's bytes were checked against, when one was given. */
  readonly digest?: string | undefined;
}

const HOW: Readonly<Record<BuildReport['roots'][number]['how'], string>> = {
  built: 'built',
  substituted: 'substituted',
  valid: 'already valid',
  unknown: 'not known (a custom --log-format)',
};

/** What Nix did for each root, and the lists of what it built and substituted, collapsed. */
function buildSection(b: BuildReport, outPaths: Record<string, Record<string, string>>): string {
  const parts = [
    `Nix built **${b.built.length}** derivation${b.built.length === 1 ? '' : 's'} and substituted **${b.substituted.length}** path${b.substituted.length === 1 ? '' : 's'} in ${formatMs(b.totalMs)}.\n`,
    table(
      ['root', 'how', 'ready after', 'outputs'],
      b.roots.map((r) => [
        code(r.label),
        HOW[r.how],
        r.readyMs === undefined ? '—' : formatMs(r.readyMs),
        outputsCell(outPaths[r.drvPath] ?? {}),
      ]),
    ),
  ];
  const list = (title: string, header: string, paths: readonly string[]): string =>
    `<details><summary>${title} (${paths.length})</summary>\n\n${table(
      [header],
      paths.map((p) => [code(p)]),
      200,
    )}\n</details>\n`;
  if (b.built.length > 0) parts.push(list('Built', 'derivation', b.built));
  if (b.substituted.length > 0) parts.push(list('Substituted', 'path', b.substituted));
  return parts.join('\n');
}

/** Which run an artifact came from, for a heading (nothing when it is this run's). */
function runText(run: RealiseSummaryFacts['run']): string {
  if (run === undefined) return '';
  return ` from run ${run.id}${run.repository === undefined ? '' : ` of ${code(run.repository)}`}`;
}

/** The realise action's summary. */
export function realiseSummary(f: RealiseSummaryFacts): string {
  const rows = Object.entries(f.outPaths).flatMap(([drv, outs]) =>
    Object.entries(outs).map(([name, path]) => [code(drv), code(name), code(path)]),
  );
  return capSummary(
    [
      `## nix-plan realise: ${code(f.label)}${runText(f.run)}${f.shard === undefined ? '' : ` (shard ${f.shard})`}\n`,
      `Built ${Object.keys(f.outPaths).length} of ${f.manifest.roots.length} root(s) in ${code(f.manifest.storeDir)} ` +
        `without evaluating: fetching ${formatMs(f.timings.fetchMs)}, importing and building ${formatMs(f.timings.realiseMs)}. ` +
        `Plan ${trustMarkdown(f.manifest, f.trust)}${f.digest === undefined ? '' : `; its bytes are the ones ${code('digest')} pins (${code(f.digest)})`}.\n`,
      ...(f.unpinned === undefined ? [] : [unpinnedMarkdown(f.unpinned)]),
      originMarkdown(f.manifest, f.trust, { now: f.now ?? new Date() }),
      f.build === undefined
        ? table(['derivation', 'output', 'path'], rows)
        : buildSection(f.build, f.outPaths),
    ].join('\n'),
  );
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
  /** Where the promoted plan was published (default: GitHub's artifact service). */
  readonly published?: Published | undefined;
  /** The clock, for the plan's age (default now). */
  readonly now?: Date | undefined;
  /** What was promoted: where it was fetched from (safe Markdown), its manifest and what was proven of it. */
  readonly source?:
    | { readonly description: string; readonly manifest: BundleManifest; readonly trust: TrustReport }
    | undefined;
  /** What `compare-to` found: the previous promotion into this realm. */
  readonly comparison?: Comparison | undefined;
  /** Where the input was taken from with nothing to pin it (`allow-unpinned-source`). */
  readonly unpinned?: string | undefined;
}

/** The promote action's summary. */
export function promoteSummary(f: PromoteSummaryFacts): string {
  const m = f.manifest;
  // What this job checked is the input's status, not its output's: a promotion without a
  // `signing-key` writes a plan nothing signs, and the summary must not read as if it were vouched for.
  const source =
    f.source === undefined
      ? ''
      : m.signatures.length > 0
        ? `Promoted ${f.source.description} from ${code(f.from)} into ${code(m.storeDir)}; the input was ${trustMarkdown(f.source.manifest, f.source.trust)}.\n\n`
        : `Promoted ${f.source.description} from ${code(f.from)} into ${code(m.storeDir)}. This job checked the input: ` +
          `${trustMarkdown(f.source.manifest, f.source.trust)}. **The promoted plan is unsigned** (no \`signing-key\`): ` +
          'no key vouches for it, only its digest, so a job that uses it must pin `digest` (as below) or trust whoever can write where it is kept.\n\n';
  return capSummary(
    [
      `## nix-plan promote: ${code(f.artifactName)}\n\n`,
      source,
      f.unpinned === undefined ? '' : `${unpinnedMarkdown(f.unpinned)}\n`,
      `${m.roots.length} root(s), ${m.paths} store paths, now for ${code(m.storeDir)}; ` +
        `${m.signatures.length > 0 ? `signed by ${m.signatures.map((s) => code(s.key)).join(', ')}` : 'unsigned'}; ` +
        `bundle ${f.artifactUrl === undefined ? formatBytes(f.bundleBytes) : `[${formatBytes(f.bundleBytes)}](${f.artifactUrl})`}.\n\n`,
      originSection(m, f.now ?? new Date(), f.comparison),
      '\n',
      comparisonSection(f.comparison),
      relocationSection(f.from, m.storeDir, f.report),
      '\n### Roots\n\n',
      rootsTable(m),
      '\n',
      realiseSnippet(f.realiseAction, f.artifactName, f.digest, f.published),
    ].join(''),
  );
}
