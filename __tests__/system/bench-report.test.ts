// The benchmark's report: targets judged from medians, markdown sections replaced in place, the plot.
import { describe, expect, test } from '@jest/globals';
import fc from 'fast-check';
import { median } from '../../bench/measure.js';
import {
  coresUsed,
  judge,
  markdownReport,
  renderSvg,
  replaceSection,
  type BenchResults,
  type SizeResult,
  type StepName,
  type StepResult,
} from '../../bench/report.js';

const step = (seconds: number, rssMiB?: number): StepResult => ({
  samples: [{ seconds, rssMiB, cpuSeconds: seconds / 2 }],
  seconds,
  rssMiB,
});

function size(count: number, times: Partial<Record<StepName, number>>, bundle = 40, gzip = 100): SizeResult {
  const steps: Partial<Record<StepName, StepResult>> = {};
  for (const [k, v] of Object.entries(times)) steps[k as StepName] = step(v, count / 100);
  return {
    count,
    runs: 1,
    closure: { paths: count + 10, drvs: count, medianDrvBytes: 6000, exportBytes: 1000 },
    steps,
    bytes: { bundle, gzip },
    levels: [{ level: 3, bytes: 100, seconds: 1 }],
    relocationMatchesNative: true,
    importComplete: true,
  };
}

function results(sizes: SizeResult[]): BenchResults {
  return {
    date: '2026-01-01T00:00:00Z',
    seed: 1,
    machine: {
      cores: 2,
      cpuModel: 'test',
      memoryGiB: 1,
      nixVersion: 'nix-store (Nix) 2.8.0',
      nodeVersion: 'v24',
      platform: 'linux-x64',
      loadAverage: 0,
      gnuTime: true,
      zstdVersion: 'zstd',
    },
    loadAverageEnd: 0,
    cli: { available: true },
    sizes,
    profiles: [],
  };
}

describe('the one-evaluation row', () => {
  test('shows nix-plan beside one process per root, with the ratio and the mapping check', () => {
    const withEval: BenchResults = {
      ...results([size(1000, { export: 1 })]),
      evaluation: {
        hosts: 20,
        count: 2000,
        runs: 3,
        steps: { export: { ...step(6), phases: { evaluateMs: 4200 } }, perRoot: step(60) },
        rootsMapped: true,
      },
    };
    const md = markdownReport(withEval);
    expect(md).toContain('| 20 roots, one shared `let` | 6.00 s (whole export; evaluation 4.20 s) |');
    expect(md).toContain(
      '| 60.0 s (20 × nix path-info --derivation) | 0.1000× | each root names its installable ✓ |',
    );
    expect(markdownReport(results([size(1000, { export: 1 })]))).not.toContain('One evaluation');
    // --sizes none: the machine line and this table only.
    const only = markdownReport({ ...withEval, sizes: [] });
    expect(only).toContain('| 20 roots, one shared `let` |');
    expect(only).not.toContain('| closure |');
  });
});

describe('judge', () => {
  test('ratios are nix-plan over baseline and meet or miss the issue targets', () => {
    const all = {
      exportBaseline: 2,
      importBaseline: 10,
      instantiate: 20,
      instantiateTarget: 20,
      deployBaseline: 10,
    };
    const good = judge(
      results([size(10000, { ...all, export: 1.2, import: 8, relocate: 2, deploy: 5 }, 40, 100)]),
    );
    const byStep = new Map(good.map((j) => [j.step, j]));
    expect(byStep.get('export time')?.ratio).toBeCloseTo(0.6);
    expect(byStep.get('export time')?.met).toBe(true);
    expect(byStep.get('export size')).toMatchObject({ ratio: 0.4, met: true });
    expect(byStep.get('import time')).toMatchObject({ ratio: 0.8, met: true });
    expect(byStep.get('relocate time')).toMatchObject({ ratio: 0.1, met: true });
    expect(byStep.get('relocate ≤ 3 s')?.met).toBe(true);
    expect(byStep.get('realise-ready')).toMatchObject({ ratio: 0.4, met: undefined });
    expect(byStep.get('deploy time')).toMatchObject({ ratio: 0.5, met: true });

    const bad = judge(
      results([size(10000, { ...all, export: 1.21, import: 8.1, relocate: 3.1, deploy: 5.1 }, 41, 100)]),
    );
    for (const s of [
      'export time',
      'export size',
      'import time',
      'relocate time',
      'relocate ≤ 3 s',
      'deploy time',
    ])
      expect(bad.find((j) => j.step === s)?.met).toBe(false);
  });

  test('memory is judged on the largest size of at least 30,000 derivations only', () => {
    const t = { export: 1, import: 1, relocate: 1 };
    const small = judge(results([size(1000, t)]));
    expect(small.some((j) => j.step.endsWith('peak RSS'))).toBe(false);
    // size() gives count/100 MiB: 290 MiB meets the 300 MB targets, 400 MiB misses them.
    const big = judge(results([size(1000, t), size(29000, t), size(40000, t)]));
    const mem = big.filter((j) => j.step.endsWith('peak RSS'));
    expect(mem.map((j) => [j.count, j.step, j.met])).toEqual([
      [40000, 'export peak RSS', false],
      [40000, 'import peak RSS', false],
      [40000, 'relocate peak RSS', false],
    ]);
    // Each workload at its own largest size.
    const two = judge(
      results([
        { ...size(40000, t), workload: 'nixpkgs' },
        { ...size(29000, t), workload: 'deep' },
        { ...size(30000, t), workload: 'deep' },
      ]),
    );
    expect(
      two.filter((j) => j.step.endsWith('peak RSS')).map((j) => [j.workload, j.count, j.step, j.met]),
    ).toEqual([
      ['nixpkgs', 40000, 'export peak RSS', false],
      ['nixpkgs', 40000, 'import peak RSS', false],
      ['nixpkgs', 40000, 'relocate peak RSS', false],
      ['deep', 30000, 'export peak RSS', true],
      ['deep', 30000, 'import peak RSS', true],
      ['deep', 30000, 'relocate peak RSS', true],
    ]);
  });

  test('diff: a ratio to report at every size, and the 1.5 s / 300 MB targets at 10,000', () => {
    const t = { diff: 1.2, diffBaseline: 2.4 };
    const small = judge(results([size(1000, t)]));
    expect(small.filter((j) => j.step.startsWith('diff')).map((j) => [j.step, j.ratio, j.met])).toEqual([
      ['diff time', 0.5, undefined],
    ]);
    // size() gives count/100 MiB: 100 MiB at 10,000.
    const ten = judge(results([size(10000, t)]));
    expect(ten.filter((j) => j.step.startsWith('diff')).map((j) => [j.step, j.met])).toEqual([
      ['diff time', undefined],
      ['diff ≤ 1.5 s', true],
      ['diff peak RSS', true],
    ]);
    const slow = judge(results([size(10000, { diff: 1.6, diffBaseline: 1 })]));
    expect(slow.find((j) => j.step === 'diff ≤ 1.5 s')?.met).toBe(false);
    const r = size(10000, t);
    const md = markdownReport(results([{ ...r, diffVariant: { packagesChanged: 100, drvsDiffer: 101 } }]));
    expect(md).toContain(
      '| 10,000 drvs (1 run) | diff (100 packages changed, 101 drvs differ) | 1.20 s, 100 MB |',
    );
    expect(md).toContain('| diff, absolute | 1.20 s |  | n/a | ≤ 1.5 s | ✓ |');
    expect(md).toContain('| diff, peak RSS | 100 MB |  | n/a | ≤ 300 MB | ✓ |');
  });

  test('a step that failed or was not measured has no ratio and no verdict', () => {
    const r = size(1000, { exportBaseline: 1 });
    r.steps.import = { samples: [], seconds: Number.NaN, rssMiB: undefined, error: 'boom' };
    const j = judge(results([r]));
    expect(j.find((x) => x.step === 'export time')).toMatchObject({ ratio: undefined, met: undefined });
    expect(j.find((x) => x.step === 'import time')).toMatchObject({ ratio: undefined, met: undefined });
  });
});

describe('report output', () => {
  test('markdown names every measured size and marks missed targets', () => {
    const md = markdownReport(
      results([
        size(1000, {
          export: 3,
          exportBaseline: 1,
          import: 1,
          importBaseline: 1,
          deploy: 2,
          deployBaseline: 1,
        }),
      ]),
    );
    expect(md).toContain('| 1,000 drvs (1 run) | export time | 3.00 s |');
    expect(md).toContain('| 1,000 drvs (1 run) | deploy to a fresh host over SSH (push) | 2.00 s |');
    expect(md).toContain('✗ missed');
    expect(md).toContain('2 cores');
  });

  test('two workloads: each row names its workload and gets its own verdicts', () => {
    const times = { export: 1, exportBaseline: 2, import: 1, importBaseline: 1 };
    const md = markdownReport(
      results([
        { ...size(1000, times), workload: 'nixpkgs' },
        { ...size(1000, { ...times, export: 3 }), workload: 'deep' },
      ]),
    );
    expect(md).toContain(
      '| nixpkgs 1,000 drvs (1 run) | export time | 1.00 s | 2.00 s (export \\| gzip -9) | 0.5000× | ≤ 0.6× | ✓ |',
    );
    expect(md).toContain(
      '| deep 1,000 drvs (1 run) | export time | 3.00 s | 2.00 s (export \\| gzip -9) | 1.50× | ≤ 0.6× | ✗ missed |',
    );
    // The plot is of the first workload only.
    const svg = renderSvg(
      results([
        { ...size(1000, times), workload: 'nixpkgs' },
        { ...size(1000, times), workload: 'deep' },
      ]),
    );
    expect(svg.match(/<circle /g)).toHaveLength(4);
    expect(svg).toContain('nixpkgs workload');
  });

  test('CPU utilisation: CPU time over wall time per run, the median, printed beside the CPU time', () => {
    const st = (pairs: [number, number][]): StepResult => ({
      samples: pairs.map(([seconds, cpuSeconds]) => ({ seconds, cpuSeconds, rssMiB: undefined })),
      seconds: median(pairs.map((p) => p[0])),
      rssMiB: undefined,
      cpuSeconds: median(pairs.map((p) => p[1])),
    });
    expect(coresUsed(st([[2, 3]]))).toBe(1.5);
    expect(
      coresUsed(
        st([
          [1, 1],
          [2, 1],
          [4, 6],
        ]),
      ),
    ).toBe(1);
    expect(coresUsed(st([]))).toBeUndefined();
    expect(coresUsed(undefined)).toBeUndefined();
    expect(
      coresUsed({ samples: [{ seconds: 1, cpuSeconds: undefined, rssMiB: 1 }], seconds: 1, rssMiB: 1 }),
    ).toBe(undefined);
    const r = size(1000, {});
    r.steps.export = st([[2, 3]]);
    r.steps.importBaseline = st([[4, 2]]);
    const md = markdownReport(results([r]));
    expect(md).toContain('| 1,000 | 3.00 s (1.50) | n/a | n/a | 2.00 s (0.50) |');
  });

  test('replaceSection swaps only the text between the markers', () => {
    const doc = 'a\n<!-- f:begin -->\nold\n<!-- f:end -->\nz\n';
    expect(replaceSection(doc, 'f', 'new\n')).toBe('a\n<!-- f:begin -->\nnew\n<!-- f:end -->\nz\n');
    expect(() => replaceSection('no markers', 'f', 'x')).toThrow(/f:begin/);
  });

  test('the plot draws a line per series with two or more sizes, and only points otherwise', () => {
    const two = renderSvg(
      results([size(1000, { export: 1, exportBaseline: 2 }), size(10000, { export: 5, exportBaseline: 9 })]),
    );
    expect(two.startsWith('<svg')).toBe(true);
    expect(two.match(/<path /g)).toHaveLength(2);
    expect(two.match(/<circle /g)).toHaveLength(4);
    const one = renderSvg(results([size(1000, { export: 1 })]));
    expect(one.match(/<path /g)).toBeNull();
    expect(one.match(/<circle /g)).toHaveLength(1);
  });
});

describe('median', () => {
  test('is the middle element of the sorted list (mean of the two middles for an even count)', () => {
    fc.assert(
      fc.property(fc.array(fc.double({ noNaN: true, min: -1e6, max: 1e6 }), { minLength: 1 }), (xs) => {
        const m = median(xs);
        const below = xs.filter((x) => x < m).length;
        const above = xs.filter((x) => x > m).length;
        expect(below).toBeLessThanOrEqual(xs.length / 2);
        expect(above).toBeLessThanOrEqual(xs.length / 2);
      }),
    );
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 2, 3])).toBe(2.5);
    expect(median([])).toBeNaN();
  });
});
