// Job summaries: they say what a plan holds and how to use it, and never exceed GitHub's limit.
import { describe, expect, test } from '@jest/globals';
import fc from 'fast-check';
import type { BundleManifest } from '../../src/core/bundle/manifest.js';
import type { TrustReport } from '../../src/core/bundle/trust-report.js';
import {
  capSummary,
  formatBytes,
  planSummary,
  promoteSummary,
  realiseSummary,
  realiseSnippet,
  stepIdOf,
  SUMMARY_BUDGET,
  table,
} from '../../src/action/summary.js';

function manifest(roots: number, relocated = false): BundleManifest {
  return {
    format: 'nix-plan',
    formatVersion: 1,
    tool: 'nix-plan 0.1.0',
    nixVersion: '2.8.0',
    storeDir: relocated ? '/beta/store' : '/nix/store',
    systems: ['x86_64-linux'],
    include: 'drvs',
    roots: Array.from({ length: roots }, (_, i) => ({
      attribute: `pkgs.p${i}|x`,
      drvPath: `/nix/store/${'a'.repeat(32)}-p${i}.drv`,
      outputs: { out: `/nix/store/${'b'.repeat(32)}-p${i}`, dev: '' },
    })),
    counts: { drv: 10, text: 2, source: 3, output: 0 },
    narBytes: { drv: 20480, text: 100, source: 3 << 20, output: 0 },
    paths: 15,
    stream: {
      sha256: '0'.repeat(64),
      size: 4 << 20,
      compressedSha256: '1'.repeat(64),
      compressedSize: 1 << 20,
    },
    ...(relocated && {
      relocatedFrom: {
        storeDir: '/nix/store',
        report: {
          objects: { drv: 10, text: 2, source: 3 },
          hashesRewritten: 40,
          bareHashRewrites: 1,
          bareStoreDirMentions: Array.from({ length: 500 }, (_, i) => ({
            path: `/beta/store/x${i}`,
            count: 2,
          })),
          warnings: Array.from({ length: 500 }, (_, i) => `warning ${i}`),
        },
      },
    }),
    signatures: [{ key: 'ci-1', sig: 'x' }],
    checksum: '2'.repeat(64),
  };
}

const facts = (roots: number) => ({
  manifest: manifest(roots),
  bundleBytes: 1 << 20,
  digest: `sha256:${'c'.repeat(64)}`,
  artifactName: 'plan.nixplan',
  artifactUrl: 'https://github.com/o/r/actions/runs/1/artifacts/2',
  timings: { evaluateMs: 2500, exportMs: 300, uploadMs: 120 },
  realiseAction: 'o/nix-plan/realise@v1',
  jobs: 4,
});

describe('plan summary', () => {
  test('shows sizes, ratio, timings, signer, roots and the realise snippet', () => {
    const md = planSummary(facts(3));
    expect(md).toContain(
      '| [1.0 MiB](https://github.com/o/r/actions/runs/1/artifacts/2) | 4.0 MiB | 4.0× | 2.5 s | 300 ms | 120 ms | 4 |',
    );
    expect(md).toContain('signed by `ci-1`');
    expect(md).toContain('`pkgs.p2\\|x`'); // a pipe in a cell is escaped
    expect(md).toContain('`dev`: (content-addressed)');
    expect(md).toContain(
      '- uses: o/nix-plan/realise@v1\n  with:\n    artifact-name: plan.nixplan\n    digest: sha256:ccc',
    );
    expect(md).toMatch(/\| source \| 3 \| 3\.0 MiB \|/);
  });

  test('the realise snippet fetches the plan from where it was published, and only from there', () => {
    const digest = `sha256:${'c'.repeat(64)}`;
    // upload: false: no artifact to name; later steps of this job take the file by its output.
    const local = planSummary({
      ...facts(1),
      artifactUrl: undefined,
      published: { kind: 'none', bundlePath: '/runner/temp/nix-plan/plan/plan.nixplan', stepId: 'plan' },
    });
    expect(local).toContain('It was not published (`upload: false`)');
    expect(local).toContain(
      `- uses: o/nix-plan/realise@v1\n  with:\n    bundle: \${{ steps.plan.outputs.bundle-path }}\n    digest: ${digest}\n`,
    );
    expect(local).toContain('nix-plan realise /runner/temp/nix-plan/plan/plan.nixplan\n');
    expect(local).not.toContain('artifact-name:');
    expect(local).not.toContain('after downloading the artifact');
    // A step without an id: the snippet says to give it one.
    const anonymous = realiseSnippet('x', 'plan.nixplan', digest, {
      kind: 'none',
      bundlePath: '/t/plan.nixplan',
      stepId: stepIdOf('__owner_nix-plan'),
    });
    expect(anonymous).toContain('(give this step an `id:`)');
    expect(anonymous).toContain('bundle: ${{ steps.ID.outputs.bundle-path }}');
    expect(stepIdOf('plan-1')).toBe('plan-1');
    expect(stepIdOf('__run_2')).toBeUndefined();
    expect(stepIdOf(undefined)).toBeUndefined();
    // artifact-dir: the later job reads the same directory; a path is quoted for YAML and sh.
    const shared = realiseSnippet('x', 'plan.nixplan', digest, {
      kind: 'directory',
      dir: "/srv/plans 'a'",
      path: "/srv/plans 'a'/42/plan.nixplan",
    });
    expect(shared).toContain(
      `  with:\n    artifact-dir: "/srv/plans 'a'"\n    artifact-name: plan.nixplan\n    digest: ${digest}\n`,
    );
    expect(shared).toContain(`nix-plan realise '/srv/plans '\\''a'\\''/42/plan.nixplan'\n`);
    // A line break in a path cannot end the code block: no command is shown for it.
    const odd = realiseSnippet('x', 'plan.nixplan', digest, {
      kind: 'directory',
      dir: '/srv/a\n```\n# heading',
      path: '/srv/a\n```\n# heading/1/plan.nixplan',
    });
    expect(odd).toContain('artifact-dir: "/srv/a\\n```\\n# heading"');
    expect(odd).not.toMatch(/^# heading/m);
    expect(odd).not.toContain('nix-plan realise');
    // GitHub's artifact service, as before.
    expect(realiseSnippet('x', 'plan.nixplan', digest)).toContain(
      'Or anywhere with Nix, after downloading the artifact:\n\n```sh\nnix-plan realise plan.nixplan\n',
    );
  });

  test('lists are truncated and say how many were left out; any plan stays under budget', () => {
    const md = planSummary(facts(100_000));
    expect(md).toContain('…and 99950 more.');
    expect(Buffer.byteLength(md)).toBeLessThan(SUMMARY_BUDGET);
  });

  test('a root with a thousand outputs lists a few and counts the rest, so the rows after it stay', () => {
    const m = manifest(50);
    const outputs = Object.fromEntries(
      Array.from({ length: 1000 }, (_, i) => [
        `o${i}${'x'.repeat(200)}`,
        `/nix/store/${'b'.repeat(32)}-p-o${i}`,
      ]),
    );
    const md = planSummary({
      ...facts(50),
      manifest: { ...m, roots: m.roots.map((r) => ({ ...r, outputs })) },
    });
    expect(md).toContain(`\`o7${'x'.repeat(200)}\`: \`/nix/store/${'b'.repeat(32)}-p-o7\`, and 992 more |`);
    expect(md).not.toContain(`o8${'x'.repeat(200)}`);
    // Nothing was cut: the realise snippet after the roots is there.
    expect(md).not.toContain('This summary was cut');
    expect(md).toContain('### How to realise this plan');
  });

  test('a promotion shows the relocation report with truncated mentions and warnings', () => {
    const md = promoteSummary({
      ...facts(2),
      from: '/nix/store',
      manifest: manifest(2, true),
      report: manifest(2, true).relocatedFrom!.report,
    });
    expect(md).toContain('### Relocation `/nix/store` → `/beta/store`');
    expect(md).toContain('| 10 drv, 2 text, 3 source | 40 | 1 |');
    expect(md).toContain('…and 450 more.');
    expect(md).toContain('- …and 450 more');
  });

  test('a promotion without a signing key says what this job checked, and that its output is unsigned', () => {
    const input = manifest(2);
    const trust = { verifiedBy: ['ci-1'] } as unknown as TrustReport;
    const source = { description: 'artifact `plan.nixplan`', manifest: input, trust };
    const base = { ...facts(2), from: '/nix/store', report: manifest(2, true).relocatedFrom!.report, source };
    const unsigned = promoteSummary({ ...base, manifest: { ...manifest(2, true), signatures: [] } });
    expect(unsigned).toContain('This job checked the input: **verified**: signed by trusted key `ci-1`.');
    expect(unsigned).toContain('**The promoted plan is unsigned** (no `signing-key`)');
    expect(unsigned).not.toContain('the input was');
    const signed = promoteSummary({
      ...base,
      manifest: { ...manifest(2, true), signatures: [{ key: 'beta-1', sig: 'x' }] },
    });
    expect(signed).toContain('; the input was **verified**: signed by trusted key `ci-1`.');
    expect(signed).not.toContain('unsigned');
  });

  test('a promotion of a plan taken unpinned says so (allow-unpinned-source), and only then', () => {
    const base = {
      ...facts(2),
      from: '/nix/store',
      manifest: manifest(2, true),
      report: manifest(2, true).relocatedFrom!.report,
    };
    expect(promoteSummary(base)).not.toContain('NOT PINNED');
    expect(promoteSummary({ ...base, unpinned: 'a shared directory ("artifact-dir")' })).toContain(
      '**NOT PINNED (allow-unpinned-source)**: this plan was taken from a shared directory ("artifact-dir") with neither `digest` nor `trusted-keys`; whoever can write there chose it.',
    );
  });

  test('a realisation of a plan taken unpinned says so, and only then; no empty paragraph otherwise', () => {
    const base = {
      manifest: manifest(1),
      label: 'plan.nixplan',
      shard: undefined,
      outPaths: { [`/nix/store/${'a'.repeat(32)}-p0.drv`]: { out: `/nix/store/${'b'.repeat(32)}-p0` } },
      timings: { fetchMs: 1, realiseMs: 2 },
    };
    const pinned = realiseSummary(base);
    expect(pinned).not.toContain('NOT PINNED');
    expect(pinned).not.toMatch(/\n\n\n/);
    const unpinned = realiseSummary({ ...base, unpinned: 'a bundle file ("bundle")' });
    expect(unpinned).toContain(
      '**NOT PINNED (allow-unpinned-source)**: this plan was taken from a bundle file',
    );
    expect(unpinned).not.toMatch(/\n\n\n/);
  });
});

describe('the realise summary says where the plan came from and what pinned it', () => {
  const base = {
    manifest: manifest(1),
    label: 'plan.nixplan',
    shard: undefined,
    outPaths: { [`/nix/store/${'a'.repeat(32)}-p0.drv`]: { out: `/nix/store/${'b'.repeat(32)}-p0` } },
    timings: { fetchMs: 1, realiseMs: 2 },
  };

  test("another run's artifact names that run (and repository); this run's names none", () => {
    expect(realiseSummary(base)).toMatch(/^## nix-plan realise: `plan.nixplan`\n/);
    expect(realiseSummary({ ...base, run: { id: 4242, repository: undefined } })).toMatch(
      /^## nix-plan realise: `plan.nixplan` from run 4242\n/,
    );
    expect(realiseSummary({ ...base, run: { id: 4242, repository: 'acme/infra' } })).toMatch(
      /^## nix-plan realise: `plan.nixplan` from run 4242 of `acme\/infra`\n/,
    );
  });

  test('a digest with no keys: the signatures were not verified, and the digest pinned the bytes', () => {
    const digest = `sha256:${'c'.repeat(64)}`;
    const text = realiseSummary({ ...base, digest });
    expect(text).toMatch(/Plan signatures: \d+ \(not verified\); its bytes are the ones `digest` pins/);
    expect(text).toContain(`(\`${digest}\`).`);
    expect(realiseSummary(base)).not.toContain('pins');
  });
});

describe('summary helpers', () => {
  test('capSummary keeps any text within budget, cut at a line end, and marks the cut', () => {
    fc.assert(
      fc.property(
        fc.array(fc.string({ unit: 'grapheme', minLength: 0, maxLength: 200 }), { maxLength: 60 }),
        fc.integer({ min: 200, max: 6000 }),
        (lines, budget) => {
          const text = lines.join('\n');
          const out = capSummary(text, budget);
          if (Buffer.byteLength(text) <= budget) expect(out).toBe(text);
          else {
            expect(Buffer.byteLength(out)).toBeLessThanOrEqual(budget);
            const at = Math.max(out.indexOf('\n> [!NOTE]'), out.indexOf('\n…summary cut.'));
            expect(at).toBeGreaterThanOrEqual(0);
            const kept = out.slice(0, at).replace(/\n(```|<\/details>|\n)*$/, '');
            expect(text.startsWith(kept)).toBe(true);
            // Whole lines only: what is kept ends where a line of the text ended.
            if (kept.includes('\n')) expect(text[kept.length]).toBe('\n');
          }
        },
      ),
    );
  });

  test('a cut summary closes what it left open and says what is missing', () => {
    const rows = Array.from({ length: 4000 }, (_, i) => `| \`pkg${i}\` | rebuilt |`).join('\n');
    const md = [
      '## nix-plan: `plan.nixplan`\n',
      '<details><summary>Rebuilt (4000)</summary>\n',
      '| package | change |\n| --- | --- |',
      rows,
      '</details>\n',
      '### Roots\n\nroots here\n',
      '### How to realise this plan\n\n```yaml\n- uses: x\n```\n',
    ].join('\n');
    const out = capSummary(md, 32 * 1024);
    expect(Buffer.byteLength(out)).toBeLessThanOrEqual(32 * 1024);
    expect(out).toMatch(/\| `pkg\d+` \| rebuilt \|\n\n<\/details>\n\n> \[!NOTE\]\n/);
    expect(out).toMatch(
      /> \*\*This summary was cut\*\* to stay under GitHub’s 1 MiB limit for a step summary: the last \d+\.\d KiB of \d+\.\d KiB are not shown, including the sections “Roots”, “How to realise this plan”\./,
    );
    expect(out).toContain('`nix-plan inspect --contents` and `nix-plan diff` show it in full.');
    // A code block cut in half is closed.
    const fenced = capSummary(`intro\n\n\`\`\`text\n${'line\n'.repeat(10_000)}\`\`\`\n`, 8 * 1024);
    expect(fenced).toMatch(/line\n\n```\n\n> \[!NOTE\]/);
  });

  test('formatBytes and table', () => {
    expect([0, 1023, 1024, 1536, 5 * 2 ** 30].map(formatBytes)).toEqual([
      '0 B',
      '1023 B',
      '1.0 KiB',
      '1.5 KiB',
      '5.0 GiB',
    ]);
    expect(table(['a'], [['1'], ['2'], ['3']], 2)).toBe('| a |\n| --- |\n| 1 |\n| 2 |\n\n…and 1 more.\n');
    // Only `|` is escaped (GFM takes `\|` out before parsing a cell, in code spans too): a
    // backslash in a label shows as one backslash, and `\|` cannot end the cell early.
    expect(table(['root'], [['`a\\b|c`'], ['`d\\|e`']])).toBe(
      '| root |\n| --- |\n| `a\\b\\|c` |\n| `d\\\\|e` |\n',
    );
  });
});
