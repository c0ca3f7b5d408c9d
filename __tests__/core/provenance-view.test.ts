// The origin and trust of a plan as a person reads it: the same facts on a terminal and in Markdown, nothing from the bundle unescaped.
import { describe, expect, test } from '@jest/globals';
import type { BundleManifest } from '../../src/core/bundle/index.js';
import { trustReportOf, trustStatus, type TrustReport } from '../../src/core/bundle/trust-report.js';
import { formatAge, originMarkdown, originRows, originText } from '../../src/core/provenance-view.js';

function manifest(over: Partial<BundleManifest> = {}): BundleManifest {
  return {
    format: 'nix-plan',
    formatVersion: 2,
    tool: 'nix-plan 0.2.0',
    nixVersion: '2.34.8',
    createdAt: '2026-12-01T00:00:00Z',
    provenance: {
      repository: 'owner/name',
      commit: 'a'.repeat(40),
      ref: 'refs/heads/main',
      dirty: true,
      runUrl: 'https://github.com/owner/name/actions/runs/42/attempts/2',
      runAttempt: 2,
      flake: { url: 'path:/src', inputs: [{ name: 'nixpkgs', url: 'github:NixOS/nixpkgs/abc' }] },
    },
    storeDir: '/beta/store',
    systems: ['x86_64-linux'],
    include: 'drvs',
    roots: [],
    counts: { drv: 1, text: 0, source: 0, output: 0 },
    narBytes: { drv: 1, text: 0, source: 0, output: 0 },
    paths: 1,
    stream: { sha256: '0'.repeat(64), size: 1, compressedSha256: '1'.repeat(64), compressedSize: 1 },
    promotions: [
      {
        digest: `sha256:${'d'.repeat(64)}`,
        storeDir: '/nix/store',
        checksum: 'e'.repeat(64),
        signedBy: [{ key: 'ci-1', fingerprint: `sha256:${'f'.repeat(64)}` }],
        at: '2026-12-02T00:00:00Z',
      },
    ],
    signatures: [
      { key: 'beta-1', sig: 'x' },
      { key: 'other', sig: 'y' },
    ],
    checksum: '2'.repeat(64),
    ...over,
  };
}

const now = new Date('2026-12-04T00:00:00Z');

describe('trust status', () => {
  const report = (over: Partial<TrustReport>): TrustReport => ({
    keysGiven: true,
    verifiedBy: ['beta-1'],
    signatures: [],
    noCheckSigs: false,
    unproven: 0,
    ...over,
  });
  test('the four states, in the words of the contract', () => {
    expect(trustStatus(manifest(), report({}))).toBe('verified: signed by trusted key beta-1');
    expect(trustStatus(manifest())).toBe('signatures: 2 (not verified)');
    expect(trustStatus(manifest({ signatures: [] }))).toBe('unsigned');
    expect(trustStatus(manifest(), report({ keysGiven: false, verifiedBy: [], noCheckSigs: true }))).toBe(
      'NOT CHECKED (--no-check-sigs)',
    );
  });
  test('without keys every signature is not-checked', () => {
    expect(trustReportOf(manifest(), []).signatures).toEqual([
      { key: 'beta-1', status: 'not-checked' },
      { key: 'other', status: 'not-checked' },
    ]);
  });
});

describe('origin', () => {
  test('text: aligned lines, age, dirty, run, flake, promotion and trust', () => {
    expect(originText(manifest(), undefined, { now })).toBe(
      [
        'created:     2026-12-01T00:00:00Z (3 days ago)',
        'repository:  owner/name',
        `commit:      ${'a'.repeat(40)} with uncommitted changes`,
        'ref:         refs/heads/main',
        'run:         run 42, attempt 2 https://github.com/owner/name/actions/runs/42/attempts/2',
        'flake:       path:/src',
        '  input:     nixpkgs github:NixOS/nixpkgs/abc',
        `promotion 1: from /nix/store at 2026-12-02T00:00:00Z, input sha256:${'d'.repeat(64)}, unverified claim: input verified by ci-1 (sha256:${'f'.repeat(64)})`,
        'trust:       signatures: 2 (not verified)',
        '',
      ].join('\n'),
    );
  });
  test('markdown: bundle values in code spans, the run as a link', () => {
    const md = originMarkdown(manifest(), undefined, { now });
    expect(md).toContain(
      '| run | [run 42, attempt 2](https://github.com/owner/name/actions/runs/42/attempts/2) |',
    );
    expect(md).toContain('| input | `nixpkgs` `github:NixOS/nixpkgs/abc` |');
    expect(md).toContain('| trust | signatures: 2 (not verified) |');
  });
  test('a run URL that is not plain https is shown, not linked', () => {
    const odd = manifest({ provenance: { runUrl: 'https://x.example/a(b)' } });
    expect(originMarkdown(odd)).toContain('| run | `https://x.example/a(b)` |');
  });
  test("a run URL elsewhere than the plan's repository, or not a run's, is shown whole, not behind 'run N'", () => {
    // A link reading "run 42" beside "repository owner/name" must lead to that repository's run 42.
    for (const runUrl of [
      'https://github.com/mallory/name/actions/runs/42',
      'https://github.com/owner/name/issues/42/runs/42',
    ]) {
      const md = originMarkdown(manifest({ provenance: { repository: 'owner/name', runUrl } }));
      expect(md).toContain(`| run | \`${runUrl}\` |`);
    }
    // Another server (GitHub Enterprise, or not GitHub at all) is named in the link's text.
    const ghes = originMarkdown(
      manifest({
        provenance: { repository: 'owner/name', runUrl: 'https://git.example.com/owner/name/actions/runs/7' },
      }),
    );
    expect(ghes).toContain(
      '| run | [run 7 on git.example.com](https://git.example.com/owner/name/actions/runs/7) |',
    );
  });
  test('format 1, and a plan promoted from one, say what is unknown', () => {
    const v1 = manifest({
      formatVersion: 1,
      createdAt: undefined,
      provenance: undefined,
      promotions: undefined,
    });
    expect(originRows(v1).map((r) => r.label)).toEqual(['created', 'source', 'trust']);
    expect(originText(v1)).toMatch(/^created: +unknown \(a format 1 bundle records no creation time\)$/m);
    expect(originText(manifest({ createdAt: undefined }))).toMatch(
      /unknown \(promoted from a format 1 bundle/,
    );
  });
  test('a long promotions chain is shown by its most recent promotions, a few keys each', () => {
    // A manifest may record 256 promotions naming 64 keys of 256 bytes each: about 6 MB of table,
    // which would push the hosts, the changes and the failures out of a summary.
    const signedBy = Array.from({ length: 64 }, (_, k) => ({
      key: `k${k}-${'n'.repeat(250)}`,
      fingerprint: `sha256:${'f'.repeat(64)}`,
    }));
    const promotions = Array.from({ length: 256 }, (_, i) => ({
      digest: `sha256:${'d'.repeat(64)}`,
      storeDir: i % 2 === 0 ? '/a/store' : '/nix/store',
      checksum: 'e'.repeat(64),
      signedBy,
      at: '2026-12-02T00:00:00Z',
    }));
    const long = manifest({ promotions });
    const md = originMarkdown(long, undefined, { now });
    expect(Buffer.byteLength(md)).toBeLessThan(64 * 1024);
    expect(md).toContain('| promotions | 236 earlier promotions not shown (inspect --json lists them) |');
    expect(md).not.toContain('| promotion 236 |');
    expect(md).toMatch(/^\| promotion 237 \| from `\/a\/store` /m);
    expect(md).toMatch(/^\| promotion 256 \| .* and 60 more keys \|$/m);
    expect(md).toContain('| trust | signatures: 2 (not verified) |');
    expect(
      originText(long)
        .split('\n')
        .filter((l) => l.startsWith('promotion ')),
    ).toHaveLength(20);
  });
  test('a promotion says who verified its input only when a trusted key signed the plan, else it is a claim', () => {
    // Anyone can write a promotion naming ci's key and fingerprint and sign it with a key of their
    // own: unless a key the reader trusts signed the plan, that is all the record is.
    const claimed = `unverified claim: input verified by ci-1 (sha256:${'f'.repeat(64)})`;
    const untrusted = trustReportOf(manifest(), [], {});
    const keysGivenNoneVerified: TrustReport = { ...untrusted, keysGiven: true };
    for (const trust of [undefined, untrusted, keysGivenNoneVerified]) {
      expect(originText(manifest(), trust)).toContain(`, ${claimed}\n`);
      expect(originMarkdown(manifest(), trust)).toContain(
        ', unverified claim: input verified by `ci-1` (`sha256:',
      );
    }
    const verified: TrustReport = { ...keysGivenNoneVerified, verifiedBy: ['beta-1'] };
    for (const text of [
      originText(manifest(), verified),
      originText(manifest(), undefined, { signedHere: true }),
    ]) {
      expect(text).toContain(`, input verified by ci-1 (sha256:${'f'.repeat(64)})\n`);
      expect(text).not.toContain('claim');
    }
  });
  test('a plan just signed here says so, instead of "not verified"', () => {
    expect(originText(manifest(), undefined, { signedHere: true })).toMatch(
      /^trust: +signed in this job by beta-1, other$/m,
    );
  });
  test('ages', () => {
    expect([1000, 119_000, 3 * 3600_000, 50 * 3600_000].map(formatAge)).toEqual([
      '1 second',
      '119 seconds',
      '3 hours',
      '2 days',
    ]);
  });
});
