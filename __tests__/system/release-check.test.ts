// The release gate: a vX.Y.Z tag releases only what package.json and CHANGELOG.md say, and the
// notes printed are the changelog's section. Run as the release workflow runs it.
import { describe, expect, test } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const SCRIPT = join(REPO, 'scripts', 'release-check.mjs');

function check(tag: string, root?: string): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [SCRIPT, tag], {
    encoding: 'utf8',
    env: { ...process.env, ...(root === undefined ? {} : { NIX_PLAN_RELEASE_ROOT: root }) },
  });
  return { code: r.status ?? 1, stdout: r.stdout, stderr: r.stderr };
}

/** A package root with this version and changelog. */
function fixture(version: string, changelog: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'nix-plan-release-'));
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'nix-plan', version }));
  writeFileSync(join(dir, 'CHANGELOG.md'), changelog);
  return dir;
}

const CHANGELOG = `# Changelog\n\n## [Unreleased]\n\n- next\n\n## [1.2.3] - 2026-12-01\n\n### Fixed\n\n- a thing\n\n## [1.2.2]\n\n- older\n\n[1.2.3]: https://example.invalid/v1.2.3\n`;

describe('release-check', () => {
  test("this repository's own version has a changelog section", () => {
    const { version } = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string };
    const r = check(`v${version}`);
    expect(r.stderr).toBe(`major=v${version.split('.')[0] ?? ''}\n`);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).not.toBe('');
  });

  test('prints the section of the tagged version and the major tag to move', () => {
    const dir = fixture('1.2.3', CHANGELOG);
    try {
      const r = check('v1.2.3', dir);
      expect(r.code).toBe(0);
      expect(r.stdout).toBe('### Fixed\n\n- a thing\n');
      expect(r.stderr).toBe('major=v1\n');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test.each([
    ['1.2.3', 'no leading v'],
    ['v1.2', 'two parts'],
    ['v1.2.3-rc.1', 'a pre-release'],
    ['v01.2.3', 'a leading zero'],
    ['v1.2.3\nv9.9.9', 'two lines'],
  ])('refuses the tag %j (%s)', (tag) => {
    const dir = fixture('1.2.3', CHANGELOG);
    try {
      const r = check(tag, dir);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('is not vMAJOR.MINOR.PATCH');
      expect(r.stdout).toBe('');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('refuses a tag that is not the package version, naming both', () => {
    const dir = fixture('1.2.3', CHANGELOG);
    try {
      const r = check('v1.2.2', dir);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain("the tag is v1.2.2 but package.json's version is 1.2.3");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('refuses a version without a changelog section, or with an empty one', () => {
    const missing = fixture('1.3.0', CHANGELOG);
    const empty = fixture('1.3.0', '# Changelog\n\n## [1.3.0]\n\n## [1.2.3]\n\n- x\n');
    try {
      expect(check('v1.3.0', missing).stderr).toContain('CHANGELOG.md has no "## [1.3.0]" section');
      const r = check('v1.3.0', empty);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('section is empty');
    } finally {
      rmSync(missing, { recursive: true, force: true });
      rmSync(empty, { recursive: true, force: true });
    }
  });
});
