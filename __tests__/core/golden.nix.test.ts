// The golden fixtures are what Nix writes today: scripts/golden.mjs, run again with each Nix
// under test, makes every committed file of __tests__/fixtures/golden byte for byte (those of
// dynamic/ with a Nix that has dynamic derivations, 2.18 and later; with an older one, none).
import { afterAll, describe, expect, test } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { nixVersions } from '../support/nix.js';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const GOLDEN = join(REPO, '__tests__', 'fixtures', 'golden');

/** Every file under `dir`, relative to it, sorted. */
function files(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => relative(dir, join(e.parentPath, e.name)))
    .sort();
}

const scratch: string[] = [];
afterAll(() => {
  for (const d of scratch) rmSync(d, { recursive: true, force: true });
});

describe.each(nixVersions())('scripts/golden.mjs on Nix $label', (version) => {
  test('writes the committed fixtures byte for byte', () => {
    const out = mkdtempSync(join(tmpdir(), 'nix-plan-golden-out-'));
    scratch.push(out);
    const path = [version.binDir, process.env['PATH']].filter((p) => p !== undefined).join(delimiter);
    execFileSync(process.execPath, [join(REPO, 'scripts', 'golden.mjs'), out], {
      env: { ...process.env, PATH: path },
      stdio: 'pipe',
    });
    const made = files(out);
    const [major, minor] = (
      /(\d+)\.(\d+)/.exec(
        execFileSync('nix-instantiate', ['--version'], {
          env: { ...process.env, PATH: path },
          encoding: 'utf8',
        }),
      ) ?? []
    )
      .slice(1)
      .map(Number);
    const dynamic = major! > 2 || (major === 2 && minor! >= 18);
    // The inputs (golden.nix, dynamic.nix, source.txt) are committed beside what the script writes.
    const inputs = new Set(['golden.nix', 'dynamic.nix', 'source.txt']);
    expect(made).toEqual(
      files(GOLDEN).filter((f) => !inputs.has(f) && (dynamic || !f.startsWith(`dynamic${sep}`))),
    );
    expect(made.some((f) => f.startsWith(`dynamic${sep}`))).toBe(dynamic);
    for (const f of made)
      expect([f, readFileSync(join(out, f)).equals(readFileSync(join(GOLDEN, f)))]).toEqual([f, true]);
  });
});
