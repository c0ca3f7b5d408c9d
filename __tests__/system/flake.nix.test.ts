// The flake (flake.nix, flake.lock) on real Nix (2.8 and 2.34), offline: its nixpkgs input is
// overridden with a small stand-in flake that provides just what the flake uses (`nodejs_24`, this
// machine's Node.js, and `runCommand`), so the package is evaluated, built and run for real —
// `nix run` exports a plan — and the shell completions and man page are installed with it.
// (The GitHub workflow builds it against the locked nixpkgs.)
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import {
  copyFileSync,
  cpSync,
  existsSync,
  linkSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nixVersions, ScratchStore, SYSTEM } from '../support/nix.js';

const REPO = join(import.meta.dirname, '..', '..');
const SYSTEMS = ['x86_64-linux', 'aarch64-linux', 'x86_64-darwin', 'aarch64-darwin'];

/** A stand-in for nixpkgs: `nodejs_24` is `node` (a path outside the store), `runCommand` a plain derivation. */
function standIn(node: string): string {
  return `{
  outputs = { self }: {
    legacyPackages = builtins.listToAttrs (map (system: {
      name = system;
      value = {
        nodejs_24 = derivation {
          name = "nodejs-24-stand-in";
          inherit system;
          builder = "/bin/sh";
          args = [ "-c" "mkdir -p $out/bin && ln -s ${node} $out/bin/node" ];
          PATH = "/usr/bin:/bin";
        };
        runCommand = name: env: script:
          derivation (builtins.removeAttrs env [ "meta" ] // {
            inherit name system;
            builder = "/bin/sh";
            args = [ "-e" "-c" script ];
            PATH = "/usr/bin:/bin";
          }) // { meta = env.meta or { }; };
      };
    }) ${JSON.stringify(SYSTEMS).replace(/,/g, ' ')});
  };
}
`;
}

describe.each(nixVersions())('the flake on Nix $label', (version) => {
  let work: string;
  let src: string;
  let store: ScratchStore;
  let override: string[];
  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'nix-plan-flake-'));
    // The flake as it is committed: flake.nix, flake.lock, package.json and the CLI bundle.
    src = join(work, 'src');
    mkdirSync(join(src, 'dist'), { recursive: true });
    for (const f of ['flake.nix', 'flake.lock', 'package.json']) copyFileSync(join(REPO, f), join(src, f));
    cpSync(join(REPO, 'dist', 'cli'), join(src, 'dist', 'cli'), { recursive: true });
    // Node.js where both this machine and the chroot of the other Nix see it.
    const node = join(work, 'node', 'node');
    mkdirSync(join(work, 'node'));
    try {
      linkSync(process.execPath, node);
    } catch {
      copyFileSync(process.execPath, node);
    }
    mkdirSync(join(work, 'nixpkgs'));
    writeFileSync(join(work, 'nixpkgs', 'flake.nix'), standIn(node));
    store = new ScratchStore(version);
    override = ['--override-input', 'nixpkgs', `path:${join(work, 'nixpkgs')}`, '--no-write-lock-file'];
  });
  afterAll(() => {
    store.dispose();
    rmSync(work, { recursive: true, force: true });
  });

  const nix = async (args: string[]): Promise<string> =>
    (
      await store.run('nix', ['--extra-experimental-features', 'nix-command flakes', ...args])
    ).stdout.toString('utf8');

  test('the lock pins nixpkgs to a release branch, by revision and hash', () => {
    const lock = JSON.parse(readFileSync(join(REPO, 'flake.lock'), 'utf8')) as {
      nodes: { nixpkgs: { locked: Record<string, unknown>; original: Record<string, unknown> } };
    };
    expect(lock.nodes.nixpkgs.original).toMatchObject({ type: 'github', owner: 'NixOS', repo: 'nixpkgs' });
    expect(lock.nodes.nixpkgs.original['ref']).toMatch(/^nixos-\d\d\.\d\d$/);
    expect(lock.nodes.nixpkgs.locked['rev']).toMatch(/^[0-9a-f]{40}$/);
    expect(lock.nodes.nixpkgs.locked['narHash']).toMatch(/^sha256-[A-Za-z0-9+/]{43}=$/);
  });

  test('packages.<system>.default and apps.<system>.default evaluate for every system', async () => {
    for (const system of SYSTEMS) {
      const drv = JSON.parse(
        await nix(['eval', '--json', `path:${src}#packages.${system}.default.drvPath`, ...override]),
      ) as string;
      expect(drv).toMatch(new RegExp(`^${store.storeDir}/[a-z0-9]{32}-nix-plan-\\d+\\.\\d+\\.\\d+\\.drv$`));
      const app = JSON.parse(
        await nix(['eval', '--json', `path:${src}#apps.${system}.default`, ...override]),
      ) as {
        type: string;
        program: string;
      };
      expect(app.type).toBe('app');
      expect(app.program).toMatch(new RegExp(`^${store.storeDir}/[a-z0-9]{32}-nix-plan-[^/]*/bin/nix-plan$`));
    }
    const meta = JSON.parse(
      await nix(['eval', '--json', `path:${src}#packages.${SYSTEM}.default.meta.mainProgram`, ...override]),
    ) as string;
    expect(meta).toBe('nix-plan');
  });

  test('nix build gives nix-plan with completions and a man page; nix run exports a plan', async () => {
    const built = JSON.parse(await nix(['build', '--json', '--no-link', `path:${src}`, ...override])) as {
      outputs: { out: string };
    }[];
    const out = built[0]?.outputs.out ?? '';
    for (const f of [
      'bin/nix-plan',
      'share/bash-completion/completions/nix-plan',
      'share/zsh/site-functions/_nix-plan',
      'share/fish/vendor_completions.d/nix-plan.fish',
      'share/man/man1/nix-plan.1',
    ])
      expect(existsSync(join(out, f))).toBe(true);
    expect(readFileSync(join(out, 'share/man/man1/nix-plan.1'), 'utf8')).toMatch(/^\.TH NIX\\-PLAN 1 /);

    const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string };
    expect(await nix(['run', `path:${src}`, ...override, '--', '--version'])).toBe(
      `nix-plan ${pkg.version}\n`,
    );

    // The app at work: an export in this store, of the example plan.
    const example = join(work, 'hello');
    cpSync(join(REPO, 'examples', 'hello'), example, { recursive: true });
    const bundle = join(work, 'hello.nixplan');
    await nix([
      'run',
      `path:${src}`,
      ...override,
      '--',
      'export',
      '-f',
      example,
      '-A',
      'hello',
      '-o',
      bundle,
      '-q',
    ]);
    const inspected = JSON.parse(
      await nix(['run', `path:${src}`, ...override, '--', 'inspect', bundle, '--json']),
    ) as {
      manifest: { storeDir: string; roots: { attribute: string }[] };
    };
    expect(inspected.manifest.storeDir).toBe(store.storeDir);
    expect(inspected.manifest.roots.map((r) => r.attribute)).toEqual(['hello']);
  });
});
