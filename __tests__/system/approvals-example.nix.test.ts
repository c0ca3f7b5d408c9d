// docs/approvals-example.md is what scripts/approvals-example.mjs renders from a run of the built
// actions (dist/). Rendered again here, it must say the same as the committed file, but for what
// differs from run to run: store hashes, digests, commits, times, durations and sizes, the order
// Nix happened to build in, the scratch root and each step's scratch directory in it. A summary
// that changes without the example being rendered again fails here.
import { describe, expect, test } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO } from '../support/action-step.js';

/** The root the committed example was rendered with (`--root`). */
const COMMITTED_ROOT = '/tmp/example';

/** The example's lines with what varies between runs masked, sorted (build order varies). */
function normalised(markdown: string, root: string): string[] {
  return (
    markdown
      .replaceAll(root, COMMITTED_ROOT)
      // A step's scratch directory (its RUNNER_TEMP), where a plan that was not uploaded stays.
      .replace(/\/(plan|promote|realise)-[A-Za-z0-9]{6}\//g, '/$1-TEMP/')
      .replace(/\b[0-9a-df-np-sv-z]{32}-/g, 'HASH-')
      .replace(/sha256:[0-9a-f]{64}/g, 'sha256:DIGEST')
      .replace(/\b[0-9a-f]{40}\b/g, 'COMMIT')
      .replace(/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ/g, 'TIME')
      .replace(/\(\d+ (second|minute|hour|day)s? ago\)/g, '(AGO)')
      .replace(/\b\d+(\.\d+)? (ms|s)\b/g, 'DURATION')
      .replace(/\b\d+(\.\d+)? (B|KiB|MiB)\b/g, 'SIZE')
      .replace(/\b\d+(\.\d+)?×/g, 'RATIO×')
      .split('\n')
      .sort()
  );
}

describe('the example summaries in docs/approvals-example.md', () => {
  test('are what the script renders from the built actions today', () => {
    const work = mkdtempSync(join(tmpdir(), 'nix-plan-example-test-'));
    try {
      const root = join(work, 'root');
      const out = join(work, 'example.md');
      execFileSync(
        process.execPath,
        [join(REPO, 'scripts', 'approvals-example.mjs'), '--root', root, '--out', out],
        { cwd: REPO, stdio: 'pipe', env: { ...process.env, TMPDIR: work } },
      );
      const rendered = readFileSync(out, 'utf8');
      const committed = readFileSync(join(REPO, 'docs', 'approvals-example.md'), 'utf8');
      const now = normalised(rendered, root);
      const then = normalised(committed, COMMITTED_ROOT);
      const missing = then.filter((l) => !now.includes(l));
      const added = now.filter((l) => !then.includes(l));
      if (missing.length > 0 || added.length > 0 || now.length !== then.length)
        throw new Error(
          'docs/approvals-example.md no longer shows what the actions write: render it again with ' +
            '`node scripts/approvals-example.mjs --root /tmp/example` (after `npm run build`) and commit it.\n' +
            `only in the committed file:\n${missing.join('\n')}\nonly in today's rendering:\n${added.join('\n')}`,
        );
      // What a reviewer needs is in it.
      expect(rendered).toContain('| `openssl` | ⬆ upgrade | `3.0.13 → 3.0.14` |');
      expect(rendered).toMatch(
        /\*\*To build\*\*: on a host that realised the compared plan, the outputs of the 7 new/,
      );
      expect(rendered).toContain('the input was **verified**: signed by trusted key `ci-1`');
      expect(rendered).toMatch(/Nix built \*\*7\*\* derivations and substituted \*\*1\*\* path/);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  }, 600_000);
});
