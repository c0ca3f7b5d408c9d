// What a deploy stages on a host stays alive there until the deploy ends: against a real OpenSSH
// server and real Nix (2.8 and 2.34) on the host side, a `nix-store --gc` runs on the host between
// the deploy's sessions (a wrapper first on the host login's PATH runs it before the first
// nix-store of the phase named in the control dir), and the deploy still activates the new
// system; afterwards no root of the deploy remains; one cut off is cleaned by a later deploy.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../../src/app/deps.js';
import { exportPlan } from '../../src/app/export.js';
import { deployPlan } from '../../src/app/deploy/index.js';
import type { DeployResult } from '../../src/app/deploy/types.js';
import { main } from '../../src/cli/main.js';
import { generateKeyPair } from '../../src/core/signing.js';
import type { CommandRunner } from '../../src/nix/runner.js';
import { parseSshTarget, SshHost, type HostShell } from '../../src/nix/ssh.js';
import { SwitchControl, systemNix } from '../support/nixos-fixture.js';
import { nixVersions, ScratchStore, type NixVersion } from '../support/nix.js';
import { sshdAvailable, SshServer } from '../support/sshd.js';

const versions = sshdAvailable() ? nixVersions() : [];
const describeSsh = versions.length > 0 ? describe : describe.skip;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function cli(argv: string[], runner?: CommandRunner): Promise<Run> {
  let stdout = '';
  let stderr = '';
  const io = {
    stdout: { write: (c: string | Uint8Array) => (stdout += c.toString()) },
    stderr: { write: (c: string | Uint8Array) => (stderr += c.toString()) },
  };
  const code = await main(argv, { io, ...(runner !== undefined && { runner }) });
  return { code, stdout, stderr };
}

/** Fails with what the deploy said unless it succeeded. */
function succeeded(run: Run): void {
  if (run.code !== 0) throw new Error(`the deploy exited with ${run.code}:\n${run.stderr}`);
}

/** What Nix says when a build's result is not rooted: a deploy must never print it. */
const ADD_ROOT_WARNING = "you did not specify '--add-root'";

/**
 * A `nix-store` for the host's PATH that, when the file `gc-before-PHASE` is in `control`, takes
 * it (renamed to `gc-ran-PHASE`, which gets the GC's output) and runs `nix-store --gc` before the
 * first nix-store the host program runs in PHASE; then runs `real` as asked.
 */
function gcHook(real: string, control: string): string {
  return [
    '#!/bin/sh',
    `real='${real}'`,
    `ctl='${control}'`,
    "phase=$(tr '\\0' '\\n' < /proc/$PPID/cmdline 2> /dev/null | awk 'f { print; exit } $0 == \"nix-plan-host\" { f = 1 }')",
    'if [ -n "$phase" ] && mv "$ctl/gc-before-$phase" "$ctl/gc-ran-$phase" 2> /dev/null; then',
    '  "$real" --gc >> "$ctl/gc-ran-$phase" 2>&1 || echo "GC FAILED" >> "$ctl/gc-ran-$phase"',
    'fi',
    'exec "$real" "$@"',
    '',
  ].join('\n');
}

interface Setup {
  version: NixVersion;
  store: ScratchStore;
  control: SwitchControl;
  profile: string;
  plans: Record<string, string>;
  systems: Record<string, string>;
  drvs: Record<string, string>;
}

describeSsh('a deploy keeps what it stages on the host alive until it ends', () => {
  let work: string;
  let server: SshServer;
  const key = generateKeyPair('deploy-roots-1');
  const setups = new Map<string, Setup>();
  const hostName = (v: NixVersion): string => `r${v.label.replace('.', '')}`;

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'nix-plan-deploy-roots-'));
    const specs = [];
    for (const version of versions) {
      const root = join(work, `v${version.label}`);
      const realm = join(root, 'store');
      const controlDir = join(root, 'control');
      mkdirSync(controlDir, { recursive: true });
      mkdirSync(join(root, 'profiles'));
      const profile = join(root, 'profiles', 'system');
      const ci = new ScratchStore(version, { storeDir: realm, root: join(root, 'ci') });
      const systemFile = join(root, 'system.nix');
      writeFileSync(systemFile, systemNix());
      const plans: Record<string, string> = {};
      const systems: Record<string, string> = {};
      const drvs: Record<string, string> = {};
      for (const label of ['a', 'b', 'c', 'd', 'e', 'f', 'g']) {
        const [drv] = await ci.instantiateExpr(
          `import ${systemFile} { label = "${label}"; control = "${controlDir}"; profile = "${profile}"; packages = { hello = "${label}"; }; }`,
        );
        plans[label] = join(root, `${label}.nixplan`);
        const { manifest } = await exportPlan(
          { drvPaths: [drv ?? ''], output: plans[label], signingKeys: [key.secretKey] },
          { runner: ci.runner, log: silentLogger },
        );
        systems[label] = manifest.roots[0]?.outputs['out'] ?? '';
        drvs[label] = drv ?? '';
      }
      ci.dispose();
      rmSync(realm, { recursive: true, force: true });
      const store = new ScratchStore(version, { storeDir: realm, root: join(root, 'host') });
      const hooks = join(root, 'hooks');
      mkdirSync(hooks);
      const real =
        version.binDir === undefined
          ? execFileSync('sh', ['-c', 'command -v nix-store'], { encoding: 'utf8' }).trim()
          : join(version.binDir, 'nix-store');
      writeFileSync(join(hooks, 'nix-store'), gcHook(real, controlDir));
      chmodSync(join(hooks, 'nix-store'), 0o755);
      const tmp = join(root, 'tmp');
      mkdirSync(tmp);
      specs.push({
        name: hostName(version),
        env: {
          ...store.env,
          PATH: `${hooks}:${version.binDir === undefined ? '' : `${version.binDir}:`}/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin`,
          TMPDIR: tmp,
        },
      });
      setups.set(version.label, {
        version,
        store,
        control: new SwitchControl(controlDir),
        profile,
        plans,
        systems,
        drvs,
      });
    }
    server = await SshServer.start(specs);
  }, 600_000);

  afterAll(() => {
    server?.stop();
    if (work !== undefined) rmSync(work, { recursive: true, force: true });
  });

  describe.each(versions.map((v) => [v.label, v] as const))('host with Nix %s', (label) => {
    const s = (): Setup => {
      const setup = setups.get(label);
      if (setup === undefined) throw new Error('no setup');
      return setup;
    };
    const args = (plan: string, ...extra: string[]): string[] => [
      'deploy',
      s().plans[plan] ?? plan,
      '--host',
      hostName(s().version),
      '--profile',
      s().profile,
      '--trusted-key',
      key.publicKey,
      `--ssh-option=-F${server.configFile}`,
      '--confirm-timeout',
      '0',
      ...extra,
    ];
    const rootsDir = (): string => `${s().profile}.nix-plan.d/roots`;
    const leftRoots = (): string[] => (existsSync(rootsDir()) ? readdirSync(rootsDir()).sort() : []);
    const gcBefore = (phase: string): void => writeFileSync(join(s().control.dir, `gc-before-${phase}`), '');
    const gcRan = (phase: string): string => {
      const file = join(s().control.dir, `gc-ran-${phase}`);
      const text = existsSync(file) ? readFileSync(file, 'utf8') : 'the GC did not run';
      rmSync(file, { force: true });
      return text;
    };
    /** The host store's roots, as `nix-store --gc --print-roots` lists them: link → store path. */
    const roots = async (): Promise<string[]> =>
      (await s().store.run('nix-store', ['--gc', '--print-roots'])).stdout
        .toString('utf8')
        .split('\n')
        .filter((l) => l !== '' && !l.startsWith('{'))
        .map((l) => l.replace(/^"(.*)" -> /, '$1 -> '))
        .sort();
    const valid = async (path: string): Promise<boolean> => (await s().store.validPaths()).includes(path);
    const current = (): string | undefined =>
      existsSync(s().profile) ? readlinkSync(s().profile) : undefined;

    test('a GC after the import and before the build: the plan is still there, the system built and switched to', async () => {
      gcBefore('closure');
      const run = await cli(args('a'));
      const gc = gcRan('closure');
      expect(gc).not.toContain('GC FAILED');
      expect(gc).not.toBe('the GC did not run');
      succeeded(run);
      expect(run.stderr).not.toContain(ADD_ROOT_WARNING);
      expect(current()).toBe('system-1-link');
      expect(readlinkSync(`${s().profile}-1-link`)).toBe(s().systems['a']);
      expect(s().control.calls()).toEqual([`a switch ok system-1-link`]);
      // The deploy's roots are gone: the host's roots are its profile's generation, nothing else.
      expect(leftRoots()).toEqual([]);
      expect(await roots()).toEqual([`${s().profile}-1-link -> ${s().systems['a']}`]);
      await s().store.run('nix-store', ['--gc']);
      expect(await valid(s().systems['a'] ?? '')).toBe(true);
    }, 120_000);

    test('a GC after the build and before the profile is set: the system built is still there and activated', async () => {
      s().control.reset();
      gcBefore('activate');
      const run = await cli(args('b'));
      const gc = gcRan('activate');
      expect(gc).not.toContain('GC FAILED');
      expect(gc).not.toBe('the GC did not run');
      succeeded(run);
      expect(run.stderr).not.toContain(ADD_ROOT_WARNING);
      expect(current()).toBe('system-2-link');
      expect(readlinkSync(`${s().profile}-2-link`)).toBe(s().systems['b']);
      expect(s().control.calls()).toEqual([`b switch ok system-2-link`]);
      expect(leftRoots()).toEqual([]);
      expect(await roots()).toEqual([
        `${s().profile}-1-link -> ${s().systems['a']}`,
        `${s().profile}-2-link -> ${s().systems['b']}`,
      ]);
    }, 120_000);

    test('--build-on local: a GC after the copy and before the closure query leaves the copied system', async () => {
      s().control.reset();
      const local = new ScratchStore(s().version, {
        storeDir: s().store.storeDir,
        root: join(work, `local-${label.replace('.', '')}`),
      });
      try {
        gcBefore('closure');
        const run = await cli(args('c', '--build-on', 'local'), local.runner);
        const gc = gcRan('closure');
        expect(gc).not.toContain('GC FAILED');
        expect(gc).not.toBe('the GC did not run');
        // (This machine's build may say it; the host, whose output follows, must not.)
        succeeded(run);
        expect(run.stderr.slice(run.stderr.indexOf('deploying '))).not.toContain(ADD_ROOT_WARNING);
        expect(current()).toBe('system-3-link');
        expect(readlinkSync(`${s().profile}-3-link`)).toBe(s().systems['c']);
        expect(leftRoots()).toEqual([]);
      } finally {
        local.dispose();
      }
    }, 180_000);

    test('a dry-activate with a GC before it: nothing left rooted once it ends, the system it built collectable', async () => {
      s().control.reset();
      gcBefore('activate');
      const run = await cli(args('d', '--action', 'dry-activate'));
      expect(gcRan('activate')).not.toBe('the GC did not run');
      succeeded(run);
      expect(run.stderr).not.toContain(ADD_ROOT_WARNING);
      expect(s().control.calls()).toEqual([`d dry-activate ok system-3-link`]);
      expect(leftRoots()).toEqual([]);
      expect(await valid(s().systems['d'] ?? '')).toBe(true);
      // (A process of the dry-activation still ending holds it as a runtime root for a moment.)
      for (let i = 0; i < 20 && (await valid(s().systems['d'] ?? '')); i++) {
        await s().store.run('nix-store', ['--gc']);
        if (await valid(s().systems['d'] ?? '')) await new Promise((r) => setTimeout(r, 500));
      }
      expect(await valid(s().systems['d'] ?? '')).toBe(false);
      expect(await valid(s().drvs['d'] ?? '')).toBe(false);
    }, 120_000);

    test('a deploy cut off before it ends leaves its roots; a later deploy removes them once they are stale', async () => {
      s().control.reset();
      // The connection is gone after the transfer, as when the runner is killed then: the build
      // and the release of the roots never reach the host (the probe and the transfer are real).
      const cutShell = (target: Parameters<typeof parseSshTarget>[0]): HostShell => {
        const inner = new SshHost(parseSshTarget(target), { sshOptions: [`-F${server.configFile}`] });
        return {
          label: inner.label,
          remote: true,
          run: (argv, options) =>
            ['closure', 'release'].includes(argv[argv.indexOf('nix-plan-host') + 1] ?? '')
              ? Promise.resolve({ code: 255, stdout: Buffer.alloc(0), stderr: 'Connection reset by peer' })
              : inner.run(argv, options),
        };
      };
      const warnings: string[] = [];
      const cutDeploy = (plan: string): Promise<unknown> =>
        deployPlan(
          s().plans[plan] ?? '',
          {
            hosts: [{ target: parseSshTarget(hostName(s().version)) }],
            profile: s().profile,
            action: 'switch',
            confirmTimeout: 0,
            trustedKeys: [key.publicKey],
            sshOptions: [`-F${server.configFile}`],
          },
          {
            runner: s().store.runner,
            log: { ...silentLogger, warn: (m: string) => warnings.push(m) },
            shellFor: () => cutShell(hostName(s().version)),
          },
        );
      const cut = (await cutDeploy('e')) as DeployResult;
      expect(cut.ok).toBe(false);
      expect(current()).toBe('system-3-link');
      expect(warnings.join('\n')).toContain("could not remove this deploy's garbage collector roots");
      const [first, ...more] = leftRoots();
      expect(more).toEqual([]);
      const dir = join(rootsDir(), first ?? '');
      expect(readdirSync(dir).sort()).toEqual(['drv', 'pid', 'time']);
      expect(readlinkSync(join(dir, 'drv'))).toBe(s().drvs['e']);
      // Left behind, they still hold: the deploy's plan and system survive a GC.
      await s().store.run('nix-store', ['--gc']);
      expect(await valid(s().drvs['e'] ?? '')).toBe(true);
      // Another deploy right after (as if the first were still going) leaves them alone...
      const run = await cli(args('f'));
      succeeded(run);
      expect(leftRoots()).toEqual([first]);
      // ...and one after they have had no session for longer than the stale time removes them.
      writeFileSync(join(dir, 'time'), `${Math.floor(Date.now() / 1000) - 601}\n`);
      const later = await cli(args('g'));
      succeeded(later);
      expect(leftRoots()).toEqual([]);
      expect((await roots()).every((r) => /-\d+-link -> /.test(r))).toBe(true);
    }, 240_000);
  });
});
