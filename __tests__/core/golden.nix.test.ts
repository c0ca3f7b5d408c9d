// The golden fixtures are what Nix writes today: scripts/golden.mjs, run again with each Nix
// under test, makes every committed file of __tests__/fixtures/golden byte for byte.
import { afterAll, describe, expect, test } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join, relative } from 'node:path';
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
    // The inputs (golden.nix, source.txt) are committed beside what the script writes.
    expect(made).toEqual(files(GOLDEN).filter((f) => f !== 'golden.nix' && f !== 'source.txt'));
    for (const f of made)
      expect([f, readFileSync(join(out, f)).equals(readFileSync(join(GOLDEN, f)))]).toEqual([f, true]);
  });
});
