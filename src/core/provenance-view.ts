// Where a plan came from and who vouched for it, as a person reads it: one pure function per
// medium (terminal text, GitHub Markdown), shared by `inspect`, `verify` and every job summary.
//
// Values that come from the bundle are kept apart from our own words until the last step, where
// each medium escapes them its own way (core/text.ts): a terminal sees no control sequence, a
// summary shows them in code spans, so a forged label can neither print a fake line nor render
// a link, an image or an emoji "✅".
import type { BundleManifest } from './bundle/manifest-types.js';
import { trustStatus, type TrustReport } from './bundle/trust-report.js';
import { escapeTerminal, markdownCode } from './text.js';

/**
 * A piece of a value: our own words (never holding anything from the bundle), text from the
 * bundle, or a link (our words, to a URL checked to be plain https).
 */
export type Segment =
  { readonly text: string } | { readonly data: string } | { readonly link: string; readonly url: string };

/** One line of the description: a label and its value. */
export interface OriginRow {
  readonly label: string;
  readonly value: readonly Segment[];
}

/** How to describe a plan. */
export interface OriginOptions {
  /** The clock: adds the plan's age. */
  readonly now?: Date | undefined;
  /** The plan was just written and signed by this job (export, promote): say so, not "not verified". */
  readonly signedHere?: boolean | undefined;
}

/** Longest list (flake inputs, promotions) shown in full. */
export const ORIGIN_LIST_LIMIT = 20;
/** Most keys named per promotion (a manifest may record 64, each name up to 256 bytes). */
export const PROMOTION_SIGNERS_SHOWN = 4;

/** A URL safe to link to as it is: https, a host, a path of plain characters. */
const PLAIN_HTTPS = /^https:\/\/[A-Za-z0-9.-]+(?::\d{1,5})?\/[A-Za-z0-9._~/%+-]*$/;

/** "3 days", "5 hours", "12 minutes", "40 seconds". */
export function formatAge(ms: number): string {
  const s = Math.floor(Math.abs(ms) / 1000);
  const [n, unit] =
    s >= 2 * 86400
      ? [Math.floor(s / 86400), 'day']
      : s >= 2 * 3600
        ? [Math.floor(s / 3600), 'hour']
        : s >= 120
          ? [Math.floor(s / 60), 'minute']
          : [s, 'second'];
  return `${n} ${unit}${n === 1 ? '' : 's'}`;
}

function created(m: BundleManifest, now: Date | undefined): Segment[] {
  if (m.createdAt === undefined)
    return [
      {
        text:
          m.formatVersion === 1
            ? 'unknown (a format 1 bundle records no creation time)'
            : 'unknown (promoted from a format 1 bundle, which records no creation time)',
      },
    ];
  const age = now === undefined ? undefined : now.getTime() - Date.parse(m.createdAt);
  return [
    { data: m.createdAt },
    ...(age === undefined
      ? []
      : [{ text: age < 0 ? ` (${formatAge(age)} in the future)` : ` (${formatAge(age)} ago)` }]),
  ];
}

/**
 * The rows describing a plan's origin and trust: creation time, repository, commit, ref,
 * workflow, run, flake and its inputs, each promotion, and the signature status. A version-1
 * plan says its origin is unknown. `now` adds the plan's age.
 */
export function originRows(
  manifest: BundleManifest,
  trust?: TrustReport,
  options: OriginOptions = {},
): OriginRow[] {
  const rows: OriginRow[] = [{ label: 'created', value: created(manifest, options.now) }];
  const p = manifest.provenance;
  if (p === undefined || Object.keys(p).length === 0)
    rows.push({
      label: 'source',
      value: [
        { text: manifest.formatVersion === 1 ? 'unknown (a format 1 bundle records none)' : 'not recorded' },
      ],
    });
  else {
    if (p.repository !== undefined) rows.push({ label: 'repository', value: [{ data: p.repository }] });
    if (p.commit !== undefined)
      rows.push({
        label: 'commit',
        value: [{ data: p.commit }, ...(p.dirty === true ? [{ text: ' with uncommitted changes' }] : [])],
      });
    if (p.ref !== undefined) rows.push({ label: 'ref', value: [{ data: p.ref }] });
    if (p.workflow !== undefined) rows.push({ label: 'workflow', value: [{ data: p.workflow }] });
    if (p.runUrl !== undefined) {
      const name = runName(p.runUrl, p.runAttempt, p.repository);
      rows.push({
        label: 'run',
        value: name !== undefined ? [{ link: name, url: p.runUrl }] : [{ data: p.runUrl }],
      });
    }
    if (p.flake !== undefined) {
      rows.push({ label: 'flake', value: [{ data: p.flake.url }] });
      const shown = p.flake.inputs.slice(0, ORIGIN_LIST_LIMIT);
      for (const input of shown)
        rows.push({ label: '  input', value: [{ data: input.name }, { text: ' ' }, { data: input.url }] });
      if (p.flake.inputs.length > shown.length)
        rows.push({
          label: '  inputs',
          value: [{ text: `…and ${p.flake.inputs.length - shown.length} more` }],
        });
    }
  }
  // The most recent promotions (the last one says who signed this plan's input); a plan may
  // record 256, each naming 64 keys: shown whole they would push everything after them out of a
  // summary.
  const promotions = manifest.promotions ?? [];
  const earlier = Math.max(0, promotions.length - ORIGIN_LIST_LIMIT);
  if (earlier > 0)
    rows.push({
      label: 'promotions',
      value: [
        {
          text: `${earlier} earlier promotion${earlier === 1 ? '' : 's'} not shown (inspect --json lists them)`,
        },
      ],
    });
  // A promotion is the promoter's statement, under the plan's signature: it says who verified the
  // input only as far as a key the reader trusts signed this plan. Otherwise anyone could have
  // written it (a forger with a key of their own names ci's key and fingerprint), and it is shown
  // as a claim, never in the words of a check.
  // Each promotion copies the records before it from its input: a trusted signature on this plan
  // vouches for those only as far back as every later promoter verified its input with a key. A
  // record from before a promotion that took its input unproven (--no-check-sigs, or no key) is
  // whatever that input said: a claim, however this plan is signed.
  const vouched = options.signedHere === true || (trust?.verifiedBy.length ?? 0) > 0;
  let unproven = -1;
  for (const [j, pr] of promotions.entries())
    if (pr.noCheckSigs === true || pr.signedBy.length === 0) unproven = j;
  for (const [i, pr] of promotions.entries()) {
    if (i < earlier) continue;
    const claim = !vouched || i < unproven;
    const signers = pr.signedBy.slice(0, PROMOTION_SIGNERS_SHOWN);
    const more = pr.signedBy.length - signers.length;
    rows.push({
      label: `promotion ${i + 1}`,
      value: [
        { text: 'from ' },
        { data: pr.storeDir },
        { text: ' at ' },
        { data: pr.at },
        { text: ', input ' },
        { data: pr.digest },
        ...(pr.noCheckSigs === true
          ? [{ text: ', accepted NOT CHECKED (--no-check-sigs)' }]
          : pr.signedBy.length === 0
            ? [{ text: ', input not verified by any key' }]
            : [
                { text: claim ? ', unverified claim: input verified by ' : ', input verified by ' },
                ...signers.flatMap((s, j) => [
                  ...(j > 0 ? [{ text: ', ' }] : []),
                  { data: s.key },
                  { text: ' (' },
                  { data: s.fingerprint },
                  { text: ')' },
                ]),
                ...(more > 0 ? [{ text: ` and ${more} more key${more === 1 ? '' : 's'}` }] : []),
              ]),
      ],
    });
  }
  rows.push({ label: 'trust', value: trustSegments(manifest, trust, options.signedHere === true) });
  return rows;
}

/** A run's URL: `https://HOST/OWNER/NAME/actions/runs/ID`, maybe `/attempts/N`. */
const RUN_URL =
  /^https:\/\/([A-Za-z0-9.-]+(?::\d{1,5})?)\/([A-Za-z0-9_.-]+\/[A-Za-z0-9_.-]+)\/actions\/runs\/(\d+)(?:\/attempts\/\d+)?\/?$/;

/**
 * The text of a link to a plan's run, or undefined when it must be shown whole instead: a link
 * reading "run 42" beside the repository row must lead to that repository's run 42, so only a
 * plain run URL of the repository the plan names is linked (another server's is named in the
 * text). Our own words, from the URL's digits and host only: the text never holds bundle text.
 */
function runName(
  url: string,
  attempt: number | undefined,
  repository: string | undefined,
): string | undefined {
  const m = RUN_URL.exec(url);
  if (m === null || !PLAIN_HTTPS.test(url) || repository?.toLowerCase() !== m[2]?.toLowerCase())
    return undefined;
  const host = m[1] === 'github.com' ? '' : ` on ${m[1] ?? ''}`;
  return `run ${m[3] ?? ''}${host}${attempt === undefined ? '' : `, attempt ${attempt}`}`;
}

/** The trust status with the key names marked as bundle data. */
function trustSegments(
  manifest: BundleManifest,
  trust: TrustReport | undefined,
  signedHere: boolean,
): Segment[] {
  if (signedHere && trust === undefined && manifest.signatures.length > 0)
    return [
      { text: 'signed in this job by ' },
      ...manifest.signatures.flatMap((g, i) => [...(i > 0 ? [{ text: ', ' }] : []), { data: g.key }]),
    ];
  const status = trustStatus(manifest, trust);
  const prefix = 'verified: signed by trusted key ';
  if (!status.startsWith(prefix) || trust === undefined) return [{ text: status }];
  return [
    { text: prefix },
    ...trust.verifiedBy.flatMap((k, i) => [...(i > 0 ? [{ text: ', ' }] : []), { data: k }]),
  ];
}

/** A row's value for a terminal: bundle text escaped (no control sequence gets through). */
export function segmentsText(value: readonly Segment[]): string {
  return value
    .map((s) =>
      'data' in s ? escapeTerminal(s.data) : 'url' in s ? `${s.link} ${s.url}` : escapeTerminal(s.text),
    )
    .join('');
}

/**
 * A row's value in Markdown: bundle text in code spans, links only to plain https URLs, our own
 * words as they are (they never hold bundle text, and read better unescaped in the source).
 */
export function segmentsMarkdown(value: readonly Segment[]): string {
  return value
    .map((s) => ('data' in s ? markdownCode(s.data) : 'url' in s ? `[${s.link}](${s.url})` : s.text))
    .join('');
}

/**
 * The origin and trust of a plan for a terminal: `label: value` lines, aligned, every value from
 * the bundle escaped. The same facts as `originMarkdown`.
 */
export function originText(
  manifest: BundleManifest,
  trust?: TrustReport,
  options: OriginOptions = {},
): string {
  const rows = originRows(manifest, trust, options);
  const width = Math.max(...rows.map((r) => r.label.length)) + 1;
  return rows.map((r) => `${`${r.label}:`.padEnd(width)} ${segmentsText(r.value)}\n`).join('');
}

/**
 * The origin and trust of a plan as a two-column Markdown table for a job summary, every value
 * from the bundle in a code span (and `|` escaped for the table).
 */
export function originMarkdown(
  manifest: BundleManifest,
  trust?: TrustReport,
  options: OriginOptions = {},
): string {
  const rows = originRows(manifest, trust, options);
  const cell = (s: string): string => s.replace(/\|/g, '\\|');
  return [
    '| origin | |',
    '| --- | --- |',
    ...rows.map((r) => `| ${cell(r.label.trim())} | ${cell(segmentsMarkdown(r.value))} |`),
    '',
  ].join('\n');
}
