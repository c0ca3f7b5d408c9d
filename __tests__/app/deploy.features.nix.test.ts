// A host's experimental features, asked over a real OpenSSH server of a real Nix 2.34 host when the
// plan has a shape that needs one: a system that depends on a git-hashed path (made by Nix 2.34
// with `git-hashing` on) is refused for a host that has the feature off, before it imports any
// of it (its store unchanged), and goes on to a host that has it on.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../../src/app/deps.js';
import { exportPlan } from '../../src/app/export.js';
import { main } from '../../src/cli/main.js';
import { dumpDb } from '../support/cli-run.js';
import { nixVersions, ScratchStore } from '../support/nix.js';
import { sshdAvailable, SshServer } from '../support/sshd.js';

const v234 = sshdAvailable() ? nixVersions().find((v) => v.label === '2.34') : undefined;
const describe234 = v234 !== undefined ? describe : describe.skip;

async function cli(argv: string[]): Promise<{ code: number; stderr: string }> {
  let stderr = '';
  const io = {
    stdout: { write: (): boolean => true },
    stderr: { write: (c: string | Uint8Array) => ((stderr += c.toString()), true) },
  };
  const code = await main(argv, { io });
  return { code, stderr };
}

describe234('deploy asks a host its experimental features when the plan needs one', () => {
  let work: string;
  let server: SshServer;
  let plan: string;
  const stores: Record<string, ScratchStore> = {};

  beforeAll(async () => {
    if (v234 === undefined) return;
    work = mkdtempSync(join(tmpdir(), 'nix-plan-deploy-features-'));
    const realm = join(work, 'store');
    const maker = new ScratchStore(v234, {
      storeDir: realm,
      root: join(work, 'maker'),
      extraConf: 'experimental-features = nix-command flakes git-hashing\n',
    });
    const file = join(work, 'system.nix');
    writeFileSync(
      file,
      `let git = builtins.derivation { name = "shape-git"; system = builtins.currentSystem; builder = "/bin/sh";
         args = [ "-c" "echo git > $out" ]; outputHashMode = "git"; outputHashAlgo = "sha1";
         outputHash = "0000000000000000000000000000000000000000"; };
       in builtins.derivation { name = "nixos-system-feat-1.0"; system = builtins.currentSystem;
         builder = "/bin/sh"; inherit git; args = [ "-c" "echo $git > $out" ]; }`,
    );
    const [drv] = await maker.instantiateExpr(`import ${file}`);
    plan = join(work, 'feat.nixplan');
    await exportPlan({ drvPaths: [drv ?? ''], output: plan }, { runner: maker.runner, log: silentLogger });
    maker.dispose();
    rmSync(realm, { recursive: true, force: true });
    const specs = [];
    for (const [name, features] of [
      ['off', 'nix-command'],
      ['on', 'nix-command git-hashing'],
    ] as const) {
      const store = new ScratchStore(v234, {
        storeDir: realm,
        root: join(work, name),
        extraConf: `experimental-features = ${features}\n`,
      });
      stores[name] = store;
      const tmp = join(work, `tmp-${name}`);
      mkdirSync(tmp);
      specs.push({
        name,
        env: {
          ...store.env,
          PATH: `${v234.binDir ?? ''}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin`,
          TMPDIR: tmp,
        },
      });
    }
    server = await SshServer.start(specs);
  }, 300_000);

  afterAll(() => {
    server?.stop();
    if (work !== undefined) rmSync(work, { recursive: true, force: true });
  });

  const deploy = (host: string): Promise<{ code: number; stderr: string }> =>
    cli([
      'deploy',
      plan,
      '--host',
      host,
      '--profile',
      join(work, `profile-${host}`, 'system'),
      `--ssh-option=-F${server.configFile}`,
      '--action',
      'dry-activate',
    ]);

  test('a host with the feature off is refused (exit 3) before it imports any of the plan', async () => {
    const store = stores['off'];
    if (store === undefined) throw new Error('no store');
    const before = await dumpDb(store);
    server.clearSessions();
    const run = await deploy('off');
    expect(run.stderr).toContain("with the experimental feature 'git-hashing'");
    expect(run.stderr).toContain('has it off (its Nix 2.34');
    expect(run.code).toBe(3);
    expect(server.sessions()).not.toContain('nix-plan-host closure');
    expect(server.sessions()).toContain('nix-plan-host features');
    expect(await dumpDb(store)).toBe(before);
    expect(await store.validPaths()).toEqual([]);
  }, 120_000);

  test('a host with the feature on gets the plan: no refusal, no warning that it was not asked', async () => {
    server.clearSessions();
    const run = await deploy('on');
    expect(run.stderr).not.toContain('has it off');
    expect(run.stderr).not.toContain('not checked');
    expect(server.sessions()).toContain('nix-plan-host receive');
    // (The git-hashed path cannot be built here: what matters is that the host took the plan,
    // its nix-hash warning meanwhile that it does not know the feature: that is no hash.)
    expect(run.stderr).toContain('2 paths imported');
    expect(await stores['on']?.validPaths()).not.toEqual([]);
  }, 120_000);
});
