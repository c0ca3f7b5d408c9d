// The npm package as users get it: `npm pack` output run with `npx nix-plan`, offline (the bundles
// in dist/ are self-contained, so the package has no dependencies to fetch), exporting a plan with
// real Nix (2.8 and 2.34).
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nixVersions, ScratchStore } from '../support/nix.js';

const REPO = join(import.meta.dirname, '..', '..');

/** This process's environment without npm's script variables (they would steer the child npm). */
function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.toLowerCase().startsWith('npm_')),
  );
  return { ...env, ...extra };
}

describe('npm pack, then npx nix-plan', () => {
  let work: string;
  let tarball: string;
  let files: string[];
  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'nix-plan-pack-'));
    const r = spawnSync('npm', ['pack', '--json', '--pack-destination', work], {
      cwd: REPO,
      encoding: 'utf8',
      env: cleanEnv({ npm_config_loglevel: 'error' }),
    });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const [packed] = JSON.parse(r.stdout) as { filename: string; files: { path: string }[] }[];
    tarball = join(work, packed?.filename ?? '');
    files = (packed?.files ?? []).map((f) => f.path);
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  /** `npx nix-plan ARGS` from the tarball, with an empty npm cache and no network. */
  function npx(
    args: string[],
    env: Record<string, string> = {},
  ): { status: number | null; stdout: string; stderr: string } {
    const cwd = join(work, 'elsewhere');
    mkdirSync(cwd, { recursive: true });
    return spawnSync(
      'npx',
      [
        '--yes',
        '--offline',
        '--cache',
        join(work, 'npm-cache'),
        '--package',
        tarball,
        '--',
        'nix-plan',
        ...args,
      ],
      {
        cwd,
        encoding: 'utf8',
        env: cleanEnv({ HOME: join(work, 'home'), npm_config_update_notifier: 'false', ...env }),
      },
    );
  }

  test('the tarball holds the bundles, the actions and the docs, and nothing it does not need', () => {
    expect(existsSync(tarball)).toBe(true);
    for (const f of [
      'package.json',
      'README.md',
      'LICENSE',
      'dist/cli/index.js',
      'dist/cli/package.json',
      'action.yml',
    ])
      expect(files).toContain(f);
    expect(files.filter((f) => /^(src|__tests__|bench|scripts|node_modules)\//.test(f))).toEqual([]);
  });

  test('npx runs it offline: --version, help, completions', () => {
    const version = npx(['--version']);
    expect(version.stderr).toBe('');
    expect(version.status).toBe(0);
    expect(version.stdout).toMatch(/^nix-plan \d+\.\d+\.\d+\n$/);
    expect(npx(['--help']).stdout).toContain('Usage: nix-plan COMMAND');
    expect(npx(['completions', 'bash']).stdout).toContain(
      'complete -o filenames -o bashdefault -F _nix_plan nix-plan',
    );
  });

  test.each(nixVersions())('npx nix-plan exports a plan with Nix $label', (version) => {
    const store = new ScratchStore(version);
    try {
      const example = join(store.root, 'hello');
      cpSync(join(REPO, 'examples', 'hello'), example, { recursive: true });
      const bundle = join(store.root, 'hello.nixplan');
      const r = npx(['export', '-f', example, '-A', 'hello', '-o', bundle, '--json'], {
        ...store.env,
        // The second Nix's wrappers first; the host's Nix is on PATH already (beside Node.js).
        PATH: `${version.binDir === undefined ? '' : `${version.binDir}:`}${process.env['PATH'] ?? ''}`,
      });
      expect(r.stderr).not.toMatch(/error/);
      expect(r.status).toBe(0);
      const { manifest } = JSON.parse(r.stdout) as {
        manifest: { storeDir: string; roots: { attribute: string }[] };
      };
      expect(manifest.storeDir).toBe(store.storeDir);
      expect(manifest.roots.map((x) => x.attribute)).toEqual(['hello']);
    } finally {
      store.dispose();
    }
  });
});
