// docs/architecture.md's module map names every module of src/ as the module itself describes it,
// and the check fails when a module is missing, gone, or says nothing about what it is for.
import { afterEach, beforeEach, describe, expect, test } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const SCRIPT = join(REPO, 'scripts', 'module-map.mjs');

function map(...args: string[]): { code: number; stderr: string } {
  const r = spawnSync(process.execPath, [SCRIPT, ...args], { encoding: 'utf8' });
  return { code: r.status ?? 1, stderr: r.stderr };
}

describe('module map', () => {
  test("the repository's map is current", () => {
    const r = map('--check');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const page = readFileSync(join(REPO, 'docs', 'architecture.md'), 'utf8');
    expect(page).toContain('- `app/deploy/rollback.ts`: Going back one generation on a host');
    expect(page).toContain('- `core/bundle/reader.ts`: ');
  });

  describe('on a small tree', () => {
    let dir = '';
    const src = (): string => join(dir, 'src');
    const doc = (): string => join(dir, 'architecture.md');
    const module = (path: string, text: string): void => {
      mkdirSync(join(src(), path, '..'), { recursive: true });
      writeFileSync(join(src(), path), text);
    };
    const check = (): { code: number; stderr: string } => map('--check', '--src', src(), '--doc', doc());

    beforeEach(() => {
      dir = mkdtempSync(join(tmpdir(), 'nix-plan-module-map-'));
      module('core/a.ts', '// What a is for. More about a.\nexport const a = 1;\n');
      module('app/b.ts', '// What b is for: the detail.\nexport const b = 2;\n');
      writeFileSync(doc(), '# Architecture\n\n<!-- modules:begin -->\n<!-- modules:end -->\n\nAfter.\n');
      expect(map('--write', '--src', src(), '--doc', doc()).code).toBe(0);
    });
    afterEach(() => rmSync(dir, { recursive: true, force: true }));

    test('--write makes a map that --check accepts, text around it kept', () => {
      const page = readFileSync(doc(), 'utf8');
      expect(page).toContain('- `core/a.ts`: What a is for\n');
      expect(page).toContain('- `app/b.ts`: What b is for\n');
      expect(page.indexOf('core/a.ts')).toBeLessThan(page.indexOf('app/b.ts'));
      expect(page).toMatch(/^# Architecture\n/);
      expect(page).toMatch(/After\.\n$/);
      expect(check()).toEqual({ code: 0, stderr: '' });
    });

    test('a new module not in the map fails, naming it', () => {
      module('nix/c.ts', '// What c is for.\nexport const c = 3;\n');
      const r = check();
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('not in the map: src/nix/c.ts');
    });

    test('a removed module still in the map fails, naming it', () => {
      rmSync(join(src(), 'app', 'b.ts'));
      const r = check();
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('in the map, not in src/: app/b.ts');
    });

    test('a module whose comment changed fails', () => {
      module('core/a.ts', '// What a does now.\nexport const a = 1;\n');
      const r = check();
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('in other words');
    });

    test('a module that does not say what it is for fails', () => {
      module('core/d.ts', 'export const d = 4;\n');
      const r = check();
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('src/core/d.ts: opens with no comment saying what it is for');
    });
  });
});
