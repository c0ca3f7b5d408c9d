// Benchmark results: their shape (bench/out/results.json), the targets they are judged against,
// the markdown tables the bench prints and writes into docs/performance.md, and the SVG plot.
// Types only: Node runs the bench's .ts files by stripping types, and cannot resolve './measure.js'.
import type { MachineInfo, Sample } from './measure.js';

/** The commands timed for each closure size: nix-plan's and the baselines they replace. */
export type StepName =
  | 'instantiate' // baseline: nix-instantiate in a fresh store (what realise-ready replaces)
  | 'instantiateTarget' // baseline: NIX_STORE_DIR=<target> nix-instantiate (what relocate replaces)
  | 'evaluateOnly' // nix-instantiate --readonly-mode: the evaluation without the store writes
  | 'export'
  | 'exportBaseline' // nix-store -qR | xargs nix-store --export | gzip -9
  | 'import'
  | 'importBaseline' // zstd -dc bundle | nix-store --import
  | 'relocate'
  | 'diff' // nix-plan diff of the plan and a variant with 1% of its packages changed
  | 'diffBaseline' // nix-store -qR of both roots | sort | comm -3: which paths differ, no more
  | 'deploy' // nix-plan deploy --action push to a fresh host over loopback SSH
  | 'deployBaseline'; // nix-copy-closure --to of the same .drv closure

/** The runs of one step. */
export interface StepResult {
  readonly samples: Sample[];
  /** Median wall seconds over the samples. */
  readonly seconds: number;
  /** Largest peak RSS over the samples, MiB. */
  readonly rssMiB: number | undefined;
  /** Median user + system CPU seconds (the command and its children). */
  readonly cpuSeconds?: number | undefined;
  /** Median of each phase timing (ms) the command reported. */
  readonly phases?: Readonly<Record<string, number>>;
  /** Why the step could not be measured (the CLI not built yet, a command failing). */
  readonly error?: string;
}

/** One zstd level of `nix-plan export --level`. */
export interface LevelResult {
  readonly level: number;
  readonly bytes: number;
  readonly seconds: number;
}

/** Everything measured for one closure size of one workload. */
export interface SizeResult {
  /** The generator's workload (absent in results from before there were two: `nixpkgs`). */
  readonly workload?: string;
  /** Derivations requested from the generator (= .drv files in the closure). */
  readonly count: number;
  readonly runs: number;
  readonly closure: {
    readonly paths: number;
    readonly drvs: number;
    readonly medianDrvBytes: number;
    /** Bytes of the uncompressed `nix-store --export` stream of the closure. */
    readonly exportBytes: number;
    /** Derivations on the longest dependency chain (absent in older results). */
    readonly depth?: number;
  };
  readonly steps: Partial<Record<StepName, StepResult>>;
  /** Bytes of the bundle (default level) and of the gzip -9 baseline. */
  readonly bytes: { readonly bundle: number | undefined; readonly gzip: number };
  readonly levels: LevelResult[];
  /** The relocated bundle's root equals the root native evaluation in the target realm gives. */
  readonly relocationMatchesNative: boolean | undefined;
  /** After `nix-plan import` the fresh store holds exactly the closure's paths. */
  readonly importComplete: boolean | undefined;
  /** The variant `diff` compares with: packages changed, and derivations that differ as a result. */
  readonly diffVariant?: { readonly packagesChanged: number; readonly drvsDiffer: number | undefined };
}

/**
 * One evaluation for all roots: `hosts` flake installables over one shared closure, exported by
 * nix-plan (one `nix` process) against one `nix path-info --derivation` process per root.
 */
export interface EvaluationResult {
  readonly hosts: number;
  /** Derivations in the shared closure (the hosts come on top). */
  readonly count: number;
  readonly runs: number;
  readonly steps: { readonly export?: StepResult; readonly perRoot?: StepResult };
  /** Every root of the bundle carries the installable it came from, in the order given. */
  readonly rootsMapped: boolean | undefined;
}

/** One function's share of a CPU profile. */
export interface ProfileEntry {
  readonly fn: string;
  readonly selfMs: number;
  readonly percent: number;
}

/** The hottest functions of one nix-plan command, from `node --cpu-prof`. */
export interface ProfileSummary {
  readonly command: string;
  readonly count: number;
  readonly totalMs: number;
  readonly top: ProfileEntry[];
}

/** bench/out/results.json. */
export interface BenchResults {
  readonly date: string;
  readonly seed: number;
  /** `git describe --always --dirty` of the sources measured. */
  readonly commit?: string;
  readonly machine: MachineInfo;
  readonly loadAverageEnd: number;
  /** Whether the nix-plan CLI could be built and run; the baselines are measured either way. */
  readonly cli: { readonly available: boolean; readonly note?: string };
  readonly sizes: SizeResult[];
  /** The one-evaluation case (absent in results from before it existed, or with --hosts 0). */
  readonly evaluation?: EvaluationResult;
  readonly profiles: ProfileSummary[];
}

/** A figure judged against its target; `met` is undefined when there is no target or no figure. */
export interface Judged {
  readonly workload?: string | undefined;
  readonly count: number;
  readonly step: string;
  readonly ratio: number | undefined;
  readonly target: string;
  readonly met: boolean | undefined;
}

const ratioOf = (a: number | undefined, b: number | undefined): number | undefined =>
  a === undefined || b === undefined || !Number.isFinite(a) || !Number.isFinite(b) || b === 0
    ? undefined
    : a / b;
const secs = (s: StepResult | undefined): number | undefined =>
  s === undefined || s.error !== undefined ? undefined : s.seconds;
const within = (x: number | undefined, limit: number): boolean | undefined =>
  x === undefined ? undefined : x <= limit;

/** The issue's targets, applied to every size (memory and the 3 s relocation at their sizes). */
export function judge(results: BenchResults): Judged[] {
  const judged: Judged[] = [];
  for (const s of results.sizes) {
    // Each workload is judged on its own: memory at its own largest size.
    const largest = Math.max(...results.sizes.filter((x) => x.workload === s.workload).map((x) => x.count));
    const out: Judged[] = [];
    const t = s.steps;
    const exportTime = ratioOf(secs(t.export), secs(t.exportBaseline));
    const exportSize = ratioOf(s.bytes.bundle, s.bytes.gzip);
    const importTime = ratioOf(secs(t.import), secs(t.importBaseline));
    const relocate = ratioOf(secs(t.relocate), secs(t.instantiateTarget));
    const fresh = ratioOf(secs(t.import), secs(t.instantiate));
    const deploy = ratioOf(secs(t.deploy), secs(t.deployBaseline));
    out.push(
      {
        count: s.count,
        step: 'export time',
        ratio: exportTime,
        target: '≤ 0.6×',
        met: within(exportTime, 0.6),
      },
      {
        count: s.count,
        step: 'export size',
        ratio: exportSize,
        target: '≤ 0.4×',
        met: within(exportSize, 0.4),
      },
      {
        count: s.count,
        step: 'import time',
        ratio: importTime,
        target: '≤ 0.8×',
        met: within(importTime, 0.8),
      },
      { count: s.count, step: 'realise-ready', ratio: fresh, target: 'report', met: undefined },
      {
        count: s.count,
        step: 'relocate time',
        ratio: relocate,
        target: '≤ 0.1×',
        met: within(relocate, 0.1),
      },
      {
        count: s.count,
        step: 'deploy time',
        ratio: deploy,
        target: '≤ 0.5×',
        met: within(deploy, 0.5),
      },
    );
    if (s.count === 10000) {
      const r = secs(t.relocate);
      out.push({
        count: s.count,
        step: 'relocate ≤ 3 s',
        ratio: undefined,
        target: '≤ 3 s',
        met: within(r, 3),
      });
    }
    if (t.diff !== undefined)
      out.push({
        count: s.count,
        step: 'diff time',
        ratio: ratioOf(secs(t.diff), secs(t.diffBaseline)),
        target: 'report',
        met: undefined,
      });
    if (s.count === 10000 && t.diff !== undefined) {
      // The issue's target for diff: two 10,000-derivation plans in 1.5 s and 300 MB.
      out.push(
        {
          count: s.count,
          step: 'diff ≤ 1.5 s',
          ratio: undefined,
          target: '≤ 1.5 s',
          met: within(secs(t.diff), 1.5),
        },
        {
          count: s.count,
          step: 'diff peak RSS',
          ratio: undefined,
          target: '≤ 300 MB',
          met: within(t.diff.error === undefined ? t.diff.rssMiB : undefined, 300),
        },
      );
    }
    if (s.count === largest && s.count >= 30000) {
      const mem = (n: StepName, limit: number): Judged => ({
        count: s.count,
        step: `${n} peak RSS`,
        ratio: undefined,
        target: `≤ ${limit} MB`,
        met: within(t[n]?.error === undefined ? t[n]?.rssMiB : undefined, limit),
      });
      out.push(mem('export', 300), mem('import', 300), mem('relocate', 300));
    }
    judged.push(...out.map((j) => (s.workload === undefined ? j : { ...j, workload: s.workload })));
  }
  return judged;
}

/** The first column of a row: the closure's size, after its workload when the results name one. */
const closureLabel = (s: SizeResult): string =>
  s.workload === undefined ? fmtCount(s.count) : `${s.workload} ${fmtCount(s.count)}`;

/**
 * Cores a step kept busy: CPU time (user + system, children included) over wall time, the median
 * of its runs' ratios; undefined without CPU times (no GNU time).
 */
export function coresUsed(st: StepResult | undefined): number | undefined {
  if (st === undefined || st.error !== undefined) return undefined;
  const ratios = st.samples.flatMap((x) =>
    x.cpuSeconds === undefined || !(x.seconds > 0) ? [] : [x.cpuSeconds / x.seconds],
  );
  if (ratios.length === 0) return undefined;
  ratios.sort((a, b) => a - b);
  const mid = ratios.length >> 1;
  return ratios.length % 2 === 1 ? ratios[mid] : ((ratios[mid - 1] ?? 0) + (ratios[mid] ?? 0)) / 2;
}

const fmtCount = (n: number): string => n.toLocaleString('en-US');
const fmtSecs = (s: StepResult | undefined): string =>
  s === undefined
    ? '—'
    : s.error !== undefined
      ? 'n/a'
      : s.seconds < 10
        ? `${s.seconds.toFixed(2)} s`
        : `${s.seconds.toFixed(1)} s`;
const fmtBytes = (b: number | undefined): string =>
  b === undefined ? 'n/a' : b >= 1e6 ? `${(b / 1e6).toFixed(2)} MB` : `${(b / 1e3).toFixed(1)} KB`;
// Four significant digits below 1: a ratio just over its target (0.4004) must not print as 0.400.
const fmtRatio = (r: number | undefined): string =>
  r === undefined ? 'n/a' : `${r.toPrecision(r < 1 ? 4 : 3)}×`;
const fmtMet = (m: boolean | undefined): string => (m === undefined ? '' : m ? '✓' : '✗ missed');
const fmtRss = (s: StepResult | undefined): string =>
  s === undefined || s.error !== undefined || s.rssMiB === undefined ? 'n/a' : `${Math.round(s.rssMiB)} MB`;

/** The one-evaluation table (empty without that case). */
function evaluationSection(results: BenchResults): string[] {
  const lines: string[] = [];
  const e = results.evaluation;
  if (e !== undefined) {
    const ratio = ratioOf(secs(e.steps.export), secs(e.steps.perRoot));
    const evaluatePhase = e.steps.export?.phases?.['evaluateMs'];
    lines.push(
      '',
      `One evaluation for all roots: ${e.hosts} flake installables over one shared closure of ${fmtCount(e.count)} derivations (${e.runs} run${e.runs === 1 ? '' : 's'}, fresh store each); the baseline is what nix-plan did before, one evaluating process per root, and only evaluates:`,
      '',
      '| case | nix-plan | baseline | ratio | |',
      '|---|---|---|---|---|',
      `| ${e.hosts} roots, one shared \`let\` | ${fmtSecs(e.steps.export)} (whole export${evaluatePhase === undefined ? '' : `; evaluation ${(evaluatePhase / 1000).toFixed(2)} s`}) | ${fmtSecs(e.steps.perRoot)} (${e.hosts} × nix path-info --derivation) | ${fmtRatio(ratio)} | ${e.rootsMapped === undefined ? '' : e.rootsMapped ? 'each root names its installable ✓' : '✗ roots not mapped to their installables'} |`,
    );
  }
  return lines;
}

/** The figures as markdown: machine, times and sizes beside their baselines, memory, compression. */
export function markdownReport(results: BenchResults): string {
  const m = results.machine;
  const lines: string[] = [];
  const verdicts = judge(results);
  const verdictsOf = (s: SizeResult): Judged[] =>
    verdicts.filter((v) => v.count === s.count && v.workload === s.workload);
  lines.push(
    `Measured ${results.date} on ${m.cores} cores (${m.cpuModel}), ${m.memoryGiB} GiB RAM, ` +
      `${m.nixVersion}, Node ${m.nodeVersion}, ${m.zstdVersion}, ${m.platform}; ` +
      `load average ${m.loadAverage.toFixed(2)} at the start, ${results.loadAverageEnd.toFixed(2)} at the end. ` +
      `Generator seed ${results.seed}${results.commit === undefined ? '' : `; sources at ${results.commit}`}.`,
    '',
  );
  if (!results.cli.available)
    lines.push(`**nix-plan was not measured:** ${results.cli.note ?? 'CLI unavailable'}`, '');
  else if (results.cli.note !== undefined) lines.push(`Note: ${results.cli.note}.`, '');
  if (results.sizes.length === 0) return [...lines, ...evaluationSection(results).slice(1)].join('\n') + '\n';
  lines.push('| closure | step | nix-plan | baseline | ratio | target | |', '|---|---|---|---|---|---|---|');
  for (const s of results.sizes) {
    const t = s.steps;
    const c = `${closureLabel(s)} drvs (${s.runs} run${s.runs === 1 ? '' : 's'})`;
    const verdict = (_count: number, step: string): Judged | undefined =>
      verdictsOf(s).find((v) => v.step === step);
    const row = (step: string, plan: string, base: string, v: Judged | undefined): void => {
      lines.push(
        `| ${c} | ${step} | ${plan} | ${base} | ${fmtRatio(v?.ratio)} | ${v?.target ?? ''} | ${fmtMet(v?.met)} |`,
      );
    };
    row(
      'export time',
      fmtSecs(t.export),
      `${fmtSecs(t.exportBaseline)} (export \\| gzip -9)`,
      verdict(s.count, 'export time'),
    );
    row(
      'export size',
      fmtBytes(s.bytes.bundle),
      `${fmtBytes(s.bytes.gzip)} (gzip -9)`,
      verdict(s.count, 'export size'),
    );
    row(
      'import',
      fmtSecs(t.import),
      `${fmtSecs(t.importBaseline)} (zstd -dc \\| nix-store --import)`,
      verdict(s.count, 'import time'),
    );
    row(
      'realise-ready on a fresh host',
      fmtSecs(t.import),
      `${fmtSecs(t.instantiate)} (nix-instantiate${t.evaluateOnly === undefined ? '' : `; evaluation alone ${fmtSecs(t.evaluateOnly)}`})`,
      verdict(s.count, 'realise-ready'),
    );
    row(
      'relocate',
      fmtSecs(t.relocate),
      `${fmtSecs(t.instantiateTarget)} (NIX_STORE_DIR=… nix-instantiate)`,
      verdict(s.count, 'relocate time'),
    );
    if (t.deploy !== undefined || t.deployBaseline !== undefined)
      row(
        'deploy to a fresh host over SSH (push)',
        fmtSecs(t.deploy),
        `${fmtSecs(t.deployBaseline)} (nix-copy-closure --to, the .drv closure)`,
        verdict(s.count, 'deploy time'),
      );
    const three = verdict(s.count, 'relocate ≤ 3 s');
    if (three !== undefined) row('relocate, absolute', fmtSecs(t.relocate), '', three);
    if (t.diff !== undefined) {
      const v = s.diffVariant;
      const what =
        v === undefined
          ? 'diff'
          : `diff (${fmtCount(v.packagesChanged)} packages changed, ${v.drvsDiffer === undefined ? '?' : fmtCount(v.drvsDiffer)} drvs differ)`;
      row(
        what,
        `${fmtSecs(t.diff)}, ${fmtRss(t.diff)}`,
        `${fmtSecs(t.diffBaseline)} (nix-store -qR both \\| comm -3)`,
        verdict(s.count, 'diff time'),
      );
      const time = verdict(s.count, 'diff ≤ 1.5 s');
      if (time !== undefined) row('diff, absolute', fmtSecs(t.diff), '', time);
      const mem = verdict(s.count, 'diff peak RSS');
      if (mem !== undefined) row('diff, peak RSS', fmtRss(t.diff), '', mem);
    }
  }
  lines.push(...evaluationSection(results));
  lines.push(
    '',
    'Peak memory (max RSS of the command or its largest child process, largest over the runs):',
    '',
    '| closure | export | import | relocate | nix-instantiate | export \\| gzip -9 | zstd -dc \\| nix-store --import | |',
    '|---|---|---|---|---|---|---|---|',
  );
  for (const s of results.sizes) {
    const t = s.steps;
    const mem = verdictsOf(s).filter((v) => v.step.endsWith('peak RSS'));
    const note =
      mem.length === 0
        ? ''
        : mem.map((v) => `${v.step.split(' ')[0]} ${v.target} ${fmtMet(v.met)}`).join('; ');
    lines.push(
      `| ${closureLabel(s)} | ${fmtRss(t.export)} | ${fmtRss(t.import)} | ${fmtRss(t.relocate)} | ${fmtRss(t.instantiate)} | ${fmtRss(t.exportBaseline)} | ${fmtRss(t.importBaseline)} | ${note} |`,
    );
  }
  const fmtCpu = (st: StepResult | undefined): string => {
    if (st === undefined || st.error !== undefined || st.cpuSeconds === undefined) return 'n/a';
    const cores = coresUsed(st);
    return `${st.cpuSeconds.toFixed(2)} s${cores === undefined ? '' : ` (${cores.toFixed(2)})`}`;
  };
  lines.push(
    '',
    'CPU time (user + system of the command and its children, median; steadier than wall time on a busy machine, but blind to waiting on the disk), and in parentheses the cores the command kept busy: CPU time ÷ wall time, median of the runs (2.00 would be both cores of a 2-core machine all the time):',
    '',
    '| closure | export | export \\| gzip -9 | import | zstd -dc \\| nix-store --import | nix-instantiate | relocate | nix-instantiate in the target |',
    '|---|---|---|---|---|---|---|---|',
  );
  for (const s of results.sizes) {
    const t = s.steps;
    lines.push(
      `| ${closureLabel(s)} | ${fmtCpu(t.export)} | ${fmtCpu(t.exportBaseline)} | ${fmtCpu(t.import)} | ${fmtCpu(t.importBaseline)} | ${fmtCpu(t.instantiate)} | ${fmtCpu(t.relocate)} | ${fmtCpu(t.instantiateTarget)} |`,
    );
  }
  const phased = results.sizes.flatMap((s) =>
    (['export', 'import', 'relocate'] as const).flatMap((n) => {
      const ph = s.steps[n]?.phases;
      if (ph === undefined || Object.keys(ph).length === 0) return [];
      const parts = Object.entries(ph).map(([k, v]) => `${k.replace(/Ms$/, '')} ${(v / 1000).toFixed(2)} s`);
      return [`- ${closureLabel(s)} drvs, \`nix-plan ${n}\`: ${parts.join(', ')} (median)`];
    }),
  );
  if (phased.length > 0) lines.push('', 'Phases as nix-plan reports them (`--json` timings):', '', ...phased);
  const levels = [...new Set(results.sizes.flatMap((s) => s.levels.map((l) => l.level)))].sort(
    (a, b) => a - b,
  );
  lines.push(
    '',
    'Sizes: the longest dependency chain (derivations), the uncompressed export stream, gzip -9 of it, the bundle at the default level, and the bundle per `--level` (compression ratio against the raw stream; time of the whole export):',
    '',
    `| closure | paths | longest chain | median .drv | raw export | gzip -9 | bundle | bundle bytes/drv |${levels.map((l) => ` level ${l} |`).join('')}`,
    `|---|---|---|---|---|---|---|---|${levels.map(() => '---|').join('')}`,
  );
  for (const s of results.sizes) {
    const raw = s.closure.exportBytes;
    const cells = levels.map((l) => {
      const r = s.levels.find((x) => x.level === l);
      return r === undefined ? ' — |' : ` ${(raw / r.bytes).toFixed(1)}× (${r.seconds.toFixed(1)} s) |`;
    });
    lines.push(
      `| ${closureLabel(s)} | ${fmtCount(s.closure.paths)} | ${s.closure.depth === undefined ? 'n/a' : fmtCount(s.closure.depth)} | ${fmtBytes(s.closure.medianDrvBytes)} | ${fmtBytes(raw)} | ${fmtBytes(s.bytes.gzip)} (${(raw / s.bytes.gzip).toFixed(1)}×) | ${s.bytes.bundle === undefined ? 'n/a' : `${fmtBytes(s.bytes.bundle)} (${(raw / s.bytes.bundle).toFixed(1)}×)`} | ${s.bytes.bundle === undefined ? 'n/a' : Math.round(s.bytes.bundle / s.count)} |${cells.join('')}`,
    );
  }
  const checks = results.sizes.filter(
    (s) => s.relocationMatchesNative !== undefined || s.importComplete !== undefined,
  );
  if (checks.length > 0) {
    lines.push('', 'Checks made in the same run:', '');
    for (const s of checks)
      lines.push(
        `- ${closureLabel(s)} drvs: relocated root ${s.relocationMatchesNative === undefined ? 'not checked' : s.relocationMatchesNative ? 'equals' : '**differs from**'} the root native evaluation gives in the target store; ` +
          `imported store ${s.importComplete === undefined ? 'not checked' : s.importComplete ? 'holds the whole closure' : '**misses paths**'}.`,
      );
  }
  for (const p of results.profiles) {
    lines.push(
      '',
      `CPU profile of \`nix-plan ${p.command}\` on ${fmtCount(p.count)} drvs (${(p.totalMs / 1000).toFixed(1)} s sampled), top functions by self time:`,
      '',
    );
    lines.push('| function | self | share |', '|---|---|---|');
    for (const e of p.top)
      lines.push(
        `| \`${e.fn.replace(/\|/g, '\\|')}\` | ${Math.round(e.selfMs)} ms | ${e.percent.toFixed(1)}% |`,
      );
  }
  return lines.join('\n') + '\n';
}

/** Replaces the text between `<!-- NAME:begin -->` and `<!-- NAME:end -->` in a document. */
export function replaceSection(doc: string, name: string, body: string): string {
  const begin = `<!-- ${name}:begin -->`;
  const end = `<!-- ${name}:end -->`;
  const i = doc.indexOf(begin);
  const j = doc.indexOf(end);
  if (i < 0 || j < i) throw new Error(`the document has no ${begin} … ${end} section`);
  return `${doc.slice(0, i + begin.length)}\n${body}${doc.slice(j)}`;
}

interface Series {
  readonly label: string;
  readonly color: string;
  readonly dashed: boolean;
  readonly points: [number, number][];
}

/**
 * A log–log SVG of wall time against closure size: each nix-plan step beside its baseline, for the
 * first workload measured (the tables have the others).
 */
export function renderSvg(results: BenchResults): string {
  const workload = results.sizes[0]?.workload;
  const sizes = results.sizes.filter((s) => s.workload === workload);
  const pick = (step: StepName): [number, number][] =>
    sizes
      .map((s): [number, number | undefined] => [s.count, secs(s.steps[step])])
      .filter((p): p is [number, number] => p[1] !== undefined && p[1] > 0)
      .sort((a, b) => a[0] - b[0]);
  const series: Series[] = [
    { label: 'nix-plan export', color: '#1f77b4', dashed: false, points: pick('export') },
    { label: 'nix-store --export | gzip -9', color: '#1f77b4', dashed: true, points: pick('exportBaseline') },
    { label: 'nix-plan import', color: '#2ca02c', dashed: false, points: pick('import') },
    {
      label: 'zstd -dc | nix-store --import',
      color: '#2ca02c',
      dashed: true,
      points: pick('importBaseline'),
    },
    { label: 'nix-instantiate (fresh store)', color: '#7f7f7f', dashed: true, points: pick('instantiate') },
    { label: 'nix-plan relocate', color: '#ff7f0e', dashed: false, points: pick('relocate') },
    {
      label: 'nix-instantiate in the target realm',
      color: '#ff7f0e',
      dashed: true,
      points: pick('instantiateTarget'),
    },
  ].filter((s) => s.points.length > 0);
  const W = 860;
  const H = 460;
  const left = 70;
  const right = 330;
  const top = 40;
  const bottom = 60;
  const xs = sizes.map((s) => s.count);
  const ys = series.flatMap((s) => s.points.map((p) => p[1]));
  const xMin = Math.log10(Math.min(...xs)) - 0.15;
  const xMax = Math.log10(Math.max(...xs)) + 0.15;
  const yMin = Math.floor(Math.log10(Math.min(...ys, 1)));
  const yMax = Math.ceil(Math.log10(Math.max(...ys, 1)));
  const px = (x: number): number => left + ((Math.log10(x) - xMin) / (xMax - xMin || 1)) * (W - left - right);
  const py = (y: number): number =>
    H - bottom - ((Math.log10(y) - yMin) / (yMax - yMin || 1)) * (H - top - bottom);
  const f = (n: number): string => n.toFixed(1);
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="#fff"/>`,
    `<text x="${left}" y="22" font-size="15" font-weight="bold">Wall time against closure size (median, log–log${workload === undefined ? '' : `; ${workload} workload`})</text>`,
    `<rect x="${left}" y="${top}" width="${W - left - right}" height="${H - top - bottom}" fill="none" stroke="#999"/>`,
  ];
  for (let e = yMin; e <= yMax; e++) {
    const y = py(10 ** e);
    const label = e >= 0 ? `${10 ** e} s` : `${(10 ** e).toFixed(-e)} s`;
    out.push(
      `<line x1="${left}" y1="${f(y)}" x2="${W - right}" y2="${f(y)}" stroke="#e5e5e5"/>`,
      `<text x="${left - 6}" y="${f(y + 4)}" text-anchor="end">${label}</text>`,
    );
  }
  for (const x of xs) {
    out.push(
      `<line x1="${f(px(x))}" y1="${top}" x2="${f(px(x))}" y2="${H - bottom}" stroke="#e5e5e5"/>`,
      `<text x="${f(px(x))}" y="${H - bottom + 18}" text-anchor="middle">${fmtCount(x)}</text>`,
    );
  }
  out.push(
    `<text x="${(left + W - right) / 2}" y="${H - 18}" text-anchor="middle">derivations in the closure</text>`,
  );
  for (const s of series) {
    const dash = s.dashed ? ' stroke-dasharray="6 4"' : '';
    const d = s.points.map((p, i) => `${i === 0 ? 'M' : 'L'}${f(px(p[0]))},${f(py(p[1]))}`).join(' ');
    if (s.points.length > 1)
      out.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="2"${dash}/>`);
    for (const p of s.points)
      out.push(
        `<circle cx="${f(px(p[0]))}" cy="${f(py(p[1]))}" r="3.5" fill="${s.dashed ? '#fff' : s.color}" stroke="${s.color}" stroke-width="1.5"/>`,
      );
  }
  series.forEach((s, i) => {
    const y = top + 10 + i * 22;
    const x = W - right + 16;
    const dash = s.dashed ? ' stroke-dasharray="6 4"' : '';
    out.push(
      `<line x1="${x}" y1="${y}" x2="${x + 28}" y2="${y}" stroke="${s.color}" stroke-width="2"${dash}/>`,
      `<text x="${x + 34}" y="${y + 4}">${s.label.replace(/&/g, '&amp;').replace(/</g, '&lt;')}</text>`,
    );
  });
  const legendEnd = top + 10 + series.length * 22;
  out.push(
    `<text x="${W - right + 16}" y="${legendEnd + 12}" fill="#555">solid: nix-plan; dashed: baseline</text>`,
    `<text x="${W - right + 16}" y="${legendEnd + 28}" fill="#555">${results.machine.cores} cores, ${results.machine.nixVersion.replace(/^nix-store \(Nix\) /, 'Nix ')}</text>`,
    '</svg>',
    '',
  );
  return out.join('\n');
}
