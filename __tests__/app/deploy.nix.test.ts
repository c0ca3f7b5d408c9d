// `nix-plan deploy` against a real OpenSSH server on 127.0.0.1 and real Nix (2.8 and 2.34) on the
// host side: a scratch store and profile stand in for a NixOS host, fixture systems record their
// switch-to-configuration calls and can fail, hang or cut the SSH connection.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { zstdCompressSync } from 'node:zlib';
import { silentLogger } from '../../src/app/deps.js';
import { exportPlan } from '../../src/app/export.js';
import { readBundleHead } from '../../src/app/inspect.js';
import { main } from '../../src/cli/main.js';
import { generateKeyPair } from '../../src/core/signing.js';
import { HostProgram, HostSessionError } from '../../src/nix/host-program.js';
import type { CommandRunner } from '../../src/nix/runner.js';
import { SshHost } from '../../src/nix/ssh.js';
import { NixPlanError } from '../../src/core/errors.js';
import { generationNumber } from '../../src/app/deploy/activation.js';
import { editDerivation, forgeBundle, loadPlan } from '../support/forge.js';
import { forgeFile, forgeManifest } from '../support/craft.js';
import { deployPlan } from '../../src/app/deploy/index.js';
import type { DeployResult } from '../../src/app/deploy/types.js';
import { deploySummary } from '../../src/action/deploy.js';
import { parseSshTarget } from '../../src/nix/ssh.js';
import { parseSecretKey, type SecretKey } from '../../src/core/signing.js';
import { fleetNix, SwitchControl, systemNix } from '../support/nixos-fixture.js';
import { nixVersions, ScratchStore, type NixVersion } from '../support/nix.js';
import {
  allowSudo,
  ensureLoginUser,
  LOGIN_USER,
  sshdAvailable,
  SshServer,
  sudoProblem,
} from '../support/sshd.js';

const versions = sshdAvailable() ? nixVersions() : [];
const describeSsh = versions.length > 0 ? describe : describe.skip;
/** Why the --use-sudo test cannot run here (CI has root and sudo: there it never skips). */
const noSudo = versions.length > 0 ? sudoProblem() : 'no SSH server';

/** Output and exit code of one `nix-plan` run. */
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

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Processes whose command line mentions `path` (a system's switch-to-configuration). */
function running(path: string): string[] {
  const found: string[] = [];
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
      if (cmdline.includes(path)) found.push(`${pid}: ${cmdline}`);
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

async function eventually(what: string, check: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

/** One Nix version's host: its store, its profiles, and the plans made for it. */
interface Setup {
  version: NixVersion;
  store: ScratchStore;
  control: SwitchControl;
  profile: string;
  fleetProfiles: Record<string, string>;
  tmp: Record<string, string>;
  plans: Record<string, string>;
  systems: Record<string, string>;
}

describeSsh('nix-plan deploy over SSH', () => {
  let work: string;
  let server: SshServer;
  const key = generateKeyPair('deploy-test-1');
  const stranger = generateKeyPair('someone-else-1');
  const setups = new Map<string, Setup>();
  const hostName = (v: NixVersion, role: string): string => `h${v.label.replace('.', '')}-${role}`;

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'nix-plan-deploy-test-'));
    const specs = [];
    for (const version of versions) {
      const root = join(work, `v${version.label}`);
      const realm = join(root, 'store');
      const controlDir = join(root, 'control');
      mkdirSync(controlDir, { recursive: true });
      const profiles = join(root, 'profiles');
      mkdirSync(profiles);
      const profile = join(profiles, 'system');
      // Fleet hosts share the store (as containers on one machine do) but each has its own home,
      // and the deploy names the profile relative to it.
      const homes: Record<string, string> = { web: join(root, 'home-web'), db: join(root, 'home-db') };
      for (const home of Object.values(homes)) mkdirSync(home);
      const fleetProfiles = {
        web: join(homes['web'] ?? '', 'profiles', 'system'),
        db: join(homes['db'] ?? '', 'profiles', 'system'),
      };
      // The plans are evaluated by a "CI" store in the same realm, which is then wiped: the host
      // starts with an empty store, as a new machine would.
      const ci = new ScratchStore(version, { storeDir: realm, root: join(root, 'ci') });
      const systemFile = join(root, 'system.nix');
      writeFileSync(systemFile, systemNix());
      const fleetFile = join(root, 'fleet.nix');
      writeFileSync(fleetFile, fleetNix(systemFile, controlDir, fleetProfiles));
      const plans: Record<string, string> = {};
      const systems: Record<string, string> = {};
      const base = { runner: ci.runner, log: silentLogger };
      // b over a: hello 1.0 → 1.1, extra 2.0 added (each with a -man output path).
      const packages: Record<string, string> = {
        a: '{ hello = "1.0"; }',
        b: '{ hello = "1.1"; extra = "2.0"; }',
        c: '{ }',
      };
      for (const label of ['a', 'b', 'c']) {
        const [drv] = await ci.instantiateExpr(
          `import ${systemFile} { label = "${label}"; control = "${controlDir}"; profile = "${profile}"; packages = ${packages[label]}; }`,
        );
        plans[label] = join(root, `${label}.nixplan`);
        const { manifest } = await exportPlan(
          { drvPaths: [drv ?? ''], output: plans[label], signingKeys: [key.secretKey] },
          base,
        );
        systems[label] = manifest.roots[0]?.outputs['out'] ?? '';
      }
      // A plan evaluated a day before the others: older than what the host will have applied.
      const [oldDrv] = await ci.instantiateExpr(
        `import ${systemFile} { label = "d"; control = "${controlDir}"; profile = "${profile}"; }`,
      );
      plans['old'] = join(root, 'old.nixplan');
      await exportPlan(
        {
          drvPaths: [oldDrv ?? ''],
          output: plans['old'],
          signingKeys: [key.secretKey],
          now: () => new Date(Date.now() - 86_400_000),
        },
        base,
      );
      plans['unsigned'] = join(root, 'unsigned.nixplan');
      await exportPlan(
        {
          drvPaths: [
            (
              await ci.instantiateExpr(`import ${systemFile} { label = "c"; control = "${controlDir}"; }`)
            )[0] ?? '',
          ],
          output: plans['unsigned'],
        },
        base,
      );
      // Build outputs, which only a trusted signature can vouch for, and no signature: unproven.
      plans['unproven'] = join(root, 'unproven.nixplan');
      await exportPlan(
        {
          drvPaths: [
            (
              await ci.instantiateExpr(`import ${systemFile} { label = "u"; control = "${controlDir}"; }`)
            )[0] ?? '',
          ],
          output: plans['unproven'],
          include: 'outputs',
        },
        base,
      );
      plans['fleet'] = join(root, 'fleet.nixplan');
      await exportPlan(
        { file: fleetFile, attributes: ['web', 'db'], output: plans['fleet'], signingKeys: [key.secretKey] },
        base,
      );
      ci.dispose();
      // A plan only a newer Nix reads (a git-hashed output, made by 2.34 with the feature on), for
      // the 2.8 host's realm: its host must refuse it before importing any of it.
      const v234 = nixVersions().find((v) => v.label === '2.34');
      if (version.label === '2.8' && v234 !== undefined) {
        const maker = new ScratchStore(v234, {
          storeDir: realm,
          root: join(root, 'maker'),
          extraConf: 'experimental-features = nix-command flakes git-hashing\n',
        });
        const [gitDrv] = await maker.instantiateExpr(
          'builtins.derivation { name = "shape-git"; system = builtins.currentSystem; builder = "/bin/sh"; ' +
            'args = [ "-c" "echo git > $out" ]; outputHashMode = "git"; outputHashAlgo = "sha1"; ' +
            'outputHash = "0000000000000000000000000000000000000000"; }',
        );
        plans['newer-shape'] = join(root, 'newer-shape.nixplan');
        await exportPlan(
          { drvPaths: [gitDrv ?? ''], output: plans['newer-shape'] },
          { runner: maker.runner, log: silentLogger },
        );
        maker.dispose();
      }
      rmSync(realm, { recursive: true, force: true });
      // A plan for another realm, signed by the same key.
      const other = new ScratchStore(version, {
        storeDir: join(root, 'other-store'),
        root: join(root, 'other'),
      });
      const [otherDrv] = await other.instantiateExpr(
        `import ${systemFile} { label = "a"; control = "${controlDir}"; profile = "${profile}"; }`,
      );
      plans['other-realm'] = join(root, 'other-realm.nixplan');
      await exportPlan(
        { drvPaths: [otherDrv ?? ''], output: plans['other-realm'], signingKeys: [key.secretKey] },
        { runner: other.runner, log: silentLogger },
      );
      other.dispose();

      const store = new ScratchStore(version, { storeDir: realm, root: join(root, 'host') });
      const tmp: Record<string, string> = {};
      for (const role of ['main', 'web', 'db']) {
        tmp[role] = join(root, `tmp-${role}`);
        mkdirSync(tmp[role]);
        specs.push({
          name: hostName(version, role),
          env: {
            ...store.env,
            PATH: `${version.binDir === undefined ? '' : `${version.binDir}:`}/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin`,
            TMPDIR: tmp[role],
            ...(homes[role] !== undefined && { HOME: homes[role] }),
          },
        });
      }
      setups.set(version.label, {
        version,
        store,
        control: new SwitchControl(controlDir),
        profile,
        fleetProfiles,
        tmp,
        plans,
        systems,
      });
    }
    server = await SshServer.start(specs);
    for (const s of setups.values()) symlinkSync(server.cutScript, join(s.control.dir, 'cut.sh'));
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
    const ssh = (): string[] => [`--ssh-option=-F${server.configFile}`];
    const host = (role = 'main'): string => hostName(s().version, role);
    const deploy = (plan: string, ...extra: string[]): Promise<Run> =>
      cli([
        'deploy',
        s().plans[plan] ?? plan,
        '--host',
        host(),
        '--profile',
        s().profile,
        '--trusted-key',
        key.publicKey,
        ...ssh(),
        ...extra,
      ]);
    const current = (profile = s().profile): string | undefined =>
      existsSync(profile) ? readlinkSync(profile) : undefined;
    // The host program's private temp dirs (transfer, closure query) left in the host's TMPDIR.
    const received = (role = 'main'): string[] =>
      readdirSync(s().tmp[role] ?? '').filter((f) => f.startsWith('nix-plan-'));

    test('a deploy that switches: sent, built on the host, switched, confirmed, recorded', async () => {
      server.clearSessions();
      const run = await deploy('a', '--json');
      expect(run.stderr).not.toMatch(/error/);
      expect(run.code).toBe(0);
      expect(run.stderr).toContain('plan verified: signed by trusted key deploy-test-1');
      const result = JSON.parse(run.stdout) as { ok: boolean; hosts: Record<string, unknown>[] };
      expect(result.ok).toBe(true);
      expect(result.hosts[0]).toMatchObject({
        outcome: 'switched',
        generation: 1,
        confirmed: true,
        system: s().systems['a'],
        currentSystem: s().systems['a'],
      });
      expect(current()).toBe('system-1-link');
      expect(readlinkSync(`${s().profile}-1-link`)).toBe(s().systems['a']);
      expect(s().control.calls()).toEqual(['a switch ok system-1-link']);
      expect(server.sessions()).toEqual([
        'nix-plan-host probe',
        'nix-plan-host receive',
        'nix-plan-host closure',
        'nix-plan-host activate',
        'nix-plan-host confirm',
      ]);
      // What changed: nothing to compare with on a new host, said so; the new closure counted.
      expect(result.hosts[0]?.['changes']).toMatchObject({
        status: 'first',
        system: s().systems['a'],
        closure: { new: { paths: 3 }, added: 3, removed: 0 },
        counts: { added: 2 },
      });
      expect(result.hosts[0]?.['changes']).not.toHaveProperty('previous');
      expect(run.stderr).toMatch(
        /first deployment: the profile has no generation to compare with; the new system's closure is 3 paths, [\d.]+ (?:B|KiB) \(2 packages\)/,
      );
      const record = JSON.parse(readFileSync(`${s().profile}.nix-plan.json`, 'utf8')) as Record<
        string,
        unknown
      >;
      const { manifest } = await readBundleHead(s().plans['a'] ?? '');
      expect(record).toMatchObject({
        version: 1,
        checksum: manifest.checksum,
        storeDir: manifest.storeDir,
        roots: [manifest.roots[0]?.drvPath],
      });
      expect(received()).toEqual([]);
    });

    test('push: the plan is sent and imported, nothing is built or activated', async () => {
      s().control.reset();
      const run = await deploy('b', '--action', 'push', '--json');
      expect(run.code).toBe(0);
      const result = JSON.parse(run.stdout) as { hosts: Record<string, unknown>[] };
      const { manifest } = await readBundleHead(s().plans['b'] ?? '');
      // Its packages' .drv files and the system's: all new to the host.
      expect(result.hosts[0]).toMatchObject({ outcome: 'pushed', imported: manifest.paths });
      expect(manifest.paths).toBe(3);
      expect(await s().store.validPaths()).toContain(manifest.roots[0]?.drvPath);
      expect(await s().store.validPaths()).not.toContain(s().systems['b']);
      expect(current()).toBe('system-1-link');
      expect(s().control.calls()).toEqual([]);
    });

    test("dry-activate: switch-to-configuration's output reaches the user, nothing changes", async () => {
      s().control.reset();
      const run = await deploy('b', '--action', 'dry-activate');
      expect(run.code).toBe(0);
      expect(run.stderr).toContain('b: switch-to-configuration dry-activate');
      expect(run.stderr).toContain('would restart: b-unit.service');
      expect(run.stdout).toMatch(/dry-activated/);
      // What a switch would change, from the host's closures: a version bump, an added package.
      const a = s().systems['a'] ?? '';
      const b = s().systems['b'] ?? '';
      expect(run.stdout).toContain(`Changes on ${host()}: generation 1 (${a}) → ${b}\n`);
      expect(run.stdout).toMatch(
        /^ {2}1 version change \(1 upgrade\), 2 added, 1 removed; closure 3 → 5 paths \(5 added, 3 removed\), [\d.]+ (?:B|KiB) → [\d.]+ (?:B|KiB) \(\+[\d.]+ (?:B|KiB)\)$/m,
      );
      expect(run.stdout).toMatch(/^ {2}Version changes:\n {4}\[U\] hello +1\.0 → 1\.1$/m);
      expect(run.stdout).toMatch(
        /^ {2}Added packages:\n {4}\[A\] extra +2\.0\n {4}\[A\] nixos-system-b +1\.0$/m,
      );
      expect(run.stdout).toMatch(/^ {2}Removed packages:\n {4}\[R\] nixos-system-a +1\.0$/m);
      expect(current()).toBe('system-1-link');
      expect(s().control.calls()).toEqual(['b dry-activate ok system-1-link']);
    });

    test('activation fails: the previous generation is re-activated, exit 13', async () => {
      s().control.reset();
      s().control.mode('b', 'fail');
      const run = await deploy('b');
      expect(run.code).toBe(13);
      expect(run.stderr).toContain('b: a unit failed to start');
      expect(run.stderr).toMatch(
        /switch-to-configuration switch exited with 1: re-activated the previous generation 1 and removed system-2-link; the current generation is 1/,
      );
      expect(current()).toBe('system-1-link');
      expect(existsSync(`${s().profile}-2-link`)).toBe(false);
      expect(s().control.calls()).toEqual(['b switch fail system-2-link', 'a switch ok system-1-link']);
    });

    test('a state directory planted beside the profile (open to others, not ours, a link) is refused, nothing changed', async () => {
      // Whoever could write the directory the activations keep their files in could change what
      // the supervisor runs as root: one that is not the deploying user's own is not used.
      const state = `${s().profile}.nix-plan.d`;
      const profiles = dirname(s().profile);
      const record = `${s().profile}.nix-plan.json`;
      const owner = statSync(state);
      const before = {
        profile: current(),
        links: readdirSync(profiles).sort(),
        state: readdirSync(state).sort(),
        record: readFileSync(record, 'utf8'),
      };
      const refused = async (message: RegExp): Promise<void> => {
        s().control.reset();
        // b, built on the host by the test before: nothing new reaches its store either.
        const run = await deploy('b');
        expect(run.stderr).toMatch(message);
        expect(run.code).toBe(12);
        expect(current()).toBe(before.profile);
        expect(readdirSync(profiles).sort()).toEqual(before.links);
        expect(readFileSync(record, 'utf8')).toBe(before.record);
        expect(s().control.calls()).toEqual([]);
      };
      chmodSync(state, 0o777);
      try {
        await refused(
          /system\.nix-plan\.d can be written by others than its owner \(drwxrwxrwx\): nothing was changed/,
        );
      } finally {
        chmodSync(state, 0o755);
      }
      chmodSync(state, 0o775);
      try {
        await refused(/can be written by others than its owner \(drwxrwxr-x\)/);
      } finally {
        chmodSync(state, 0o755);
      }
      chownSync(state, owner.uid + 1, owner.gid);
      try {
        await refused(
          new RegExp(
            `system\\.nix-plan\\.d belongs to uid ${owner.uid + 1}, not to uid ${owner.uid} that activates`,
          ),
        );
      } finally {
        chownSync(state, owner.uid, owner.gid);
      }
      const elsewhere = join(dirname(profiles), 'state-elsewhere');
      renameSync(state, elsewhere);
      symlinkSync(elsewhere, state);
      try {
        await refused(/system\.nix-plan\.d is not a directory: nothing was changed/);
      } finally {
        rmSync(state);
        renameSync(elsewhere, state);
      }
      expect(readdirSync(state).sort()).toEqual(before.state);
    });

    test('a switch that hangs is stopped after --activation-timeout and undone; a hanging dry-activate too', async () => {
      s().control.reset();
      s().control.mode('b', 'hang');
      const run = await deploy('b', '--activation-timeout', '2');
      expect(run.code).toBe(13);
      expect(run.stderr).toContain(
        'nix-plan: switch-to-configuration switch did not finish within 2 s: stopped it; restoring the previous generation',
      );
      expect(run.stderr).toMatch(
        /switch-to-configuration switch did not finish within 2 s and was stopped: re-activated the previous generation 1 and removed system-2-link; the current generation is 1/,
      );
      expect(current()).toBe('system-1-link');
      expect(existsSync(`${s().profile}-2-link`)).toBe(false);
      expect(s().control.calls()).toEqual(['b switch hang system-2-link', 'a switch ok system-1-link']);
      // Nothing of the hung switch is left running.
      expect(running(s().systems['b'] ?? '')).toEqual([]);

      s().control.reset();
      s().control.mode('b', 'hang');
      const dry = await deploy('b', '--action', 'dry-activate', '--activation-timeout', '2');
      expect(dry.code).toBe(13);
      expect(dry.stderr).toMatch(
        /switch-to-configuration dry-activate did not finish within 2 s and was stopped; nothing was changed/,
      );
      expect(current()).toBe('system-1-link');
      expect(s().control.calls()).toEqual(['b dry-activate hang system-1-link']);
      expect(running(s().systems['b'] ?? '')).toEqual([]);
      expect(received()).toEqual([]);
    });

    test('the connection is cut after switching: the watchdog restores the previous generation', async () => {
      s().control.reset();
      s().control.mode('b', 'cut');
      try {
        const run = await deploy('b', '--confirm-timeout', '2');
        expect(run.code).toBe(12);
        expect(run.stderr).toMatch(/lost the connection during the activation/);
        expect(run.stderr).toMatch(/watchdog re-activates the previous generation \(system-1-link\)/);
        await eventually(
          'the watchdog to restore generation 1',
          () => s().control.calls().length >= 2,
          20_000,
        );
        expect(s().control.calls()).toEqual(['b switch cut system-2-link', 'a switch ok system-1-link']);
        await eventually('the profile to point at generation 1', () => current() === 'system-1-link', 5000);
        expect(existsSync(`${s().profile}-2-link`)).toBe(false);
      } finally {
        await server.restart();
      }
    });

    test('transfer interrupted, or never confirmed as verified: the host store is unchanged and no temp file is left', async () => {
      const program = new HostProgram(
        new SshHost({ host: host() }, { sshOptions: ['-F', server.configFile] }),
      );
      const before = await s().store.validPaths();
      const head = await readBundleHead(s().plans['c'] ?? '');
      const bytes = readFileSync(s().plans['c'] ?? '').subarray(head.dataOffset);
      const expected = {
        size: bytes.length,
        sha256: head.manifest.stream.compressedSha256,
        encoding: 'zstd' as const,
      };
      // The connection dies halfway.
      const abort = new AbortController();
      async function* cut(): AsyncGenerator<Uint8Array> {
        yield bytes.subarray(0, bytes.length >> 1);
        await sleep(300);
        abort.abort();
        await new Promise((resolve) => abort.signal.addEventListener('abort', resolve));
      }
      const lost = await program.receive(cut(), expected, { signal: abort.signal }).catch((e: unknown) => e);
      expect(lost).toBeInstanceOf(HostSessionError);
      // The stream ends early: refused by size.
      const shortError = await program
        .receive(bytes.subarray(0, bytes.length >> 1), expected)
        .catch((e: unknown) => e);
      expect((shortError as NixPlanError).message).toMatch(
        /received \d+ of \d+ bytes: the transfer was cut short, nothing was imported/,
      );
      // Every byte there, sent while it was being verified here, and the verification failed:
      // the go signal never follows, so the host never reads it.
      const failing = sleep(200).then(() => {
        throw new NixPlanError('bundle', 'refused here');
      });
      failing.catch(() => undefined);
      const unconfirmed = await program
        .receive(bytes, expected, { verified: failing })
        .catch((e: unknown) => e);
      expect((unconfirmed as NixPlanError).message).toMatch(
        /the sender did not confirm the plan it sent as verified: nothing was imported/,
      );
      // Every byte there, one changed: refused by sha256.
      const forged = new Uint8Array(bytes);
      forged[forged.length >> 1] = (forged[forged.length >> 1] ?? 0) ^ 1;
      const forgedError = await program.receive(forged, expected).catch((e: unknown) => e);
      expect((forgedError as NixPlanError).message).toMatch(
        /has sha256 [0-9a-f]{64}, not the [0-9a-f]{64} verified: nothing was imported/,
      );
      await eventually('the host to remove its temp dirs', () => received().length === 0, 10_000);
      expect(await s().store.validPaths()).toEqual(before);
    });

    test("nix-store --import fails on the host: the message is Nix's, not zstd's broken pipe", async () => {
      // A stream nix-store --import refuses at its first bytes, 4 MiB of it: Nix stops reading
      // and exits, and zstd, still decompressing into the pipe, fails writing to it.
      const stream = Buffer.alloc(4 * 1024 * 1024, 0xff);
      const compressed = zstdCompressSync(stream);
      const program = new HostProgram(
        new SshHost({ host: host() }, { sshOptions: ['-F', server.configFile] }),
      );
      const before = await s().store.validPaths();
      const error = await program
        .receive(compressed, {
          size: compressed.length,
          sha256: createHash('sha256').update(compressed).digest('hex'),
          encoding: 'zstd',
        })
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(NixPlanError);
      expect((error as NixPlanError).message).toMatch(
        /^h\d+-main: nix-store --import failed with exit code [1-9]\d* \(zstd, decompressing the plan into it, exited [1-9]\d*\)$/,
      );
      expect((error as NixPlanError).message).not.toMatch(/zstd could not decompress/);
      await eventually('the host to remove its temp dirs', () => received().length === 0, 10_000);
      expect(await s().store.validPaths()).toEqual(before);
    });

    test('a plan for another realm, or an unproven one, is refused before any of it is sent', async () => {
      const before = await s().store.validPaths();
      server.clearSessions();
      const realm = await deploy('other-realm');
      expect(realm.code).toBe(5);
      expect(realm.stderr).toMatch(
        /the plan is for store dir .*other-store, the host's Nix uses .*nothing was sent/,
      );
      expect(server.sessions()).toEqual(['nix-plan-host probe']);

      server.clearSessions();
      const untrusted = await cli([
        'deploy',
        s().plans['a'] ?? '',
        '--host',
        host(),
        '--profile',
        s().profile,
        '--trusted-key',
        stranger.publicKey,
        ...ssh(),
      ]);
      expect(untrusted.code).toBe(4);
      const unproven = await cli([
        'deploy',
        s().plans['unproven'] ?? '',
        '--host',
        host(),
        '--profile',
        s().profile,
        ...ssh(),
      ]);
      expect(unproven.code).toBe(4);
      expect(unproven.stderr).toMatch(/is a build output.*--no-check-sigs/);
      // Accepted unproven on purpose: still never activated.
      const optedOut = await cli([
        'deploy',
        s().plans['unproven'] ?? '',
        '--host',
        host(),
        '--profile',
        s().profile,
        '--no-check-sigs',
        ...ssh(),
      ]);
      expect(optedOut.code).toBe(4);
      expect(optedOut.stderr).toMatch(
        /1 build output no trusted key signed: deploy activates only a proven system/,
      );
      expect(server.sessions().filter((l) => l !== 'nix-plan-host probe')).toEqual([]);
      expect(received()).toEqual([]);
      expect(await s().store.validPaths()).toEqual(before);
      expect(current()).toBe('system-1-link');
    });

    // Only a Nix 2.8 host, with a Nix 2.34 to make the plan, meets a shape its Nix cannot read: the
    // case is registered there alone, so a green run reports nothing skipped.
    if (label === '2.8' && nixVersions().some((v) => v.label === '2.34'))
      test("a plan this host's Nix cannot read (a shape of Nix 2.34) is refused before the host imports any of it", async () => {
        const plan = s().plans['newer-shape'];
        expect(plan).toBeDefined();
        const before = await s().store.validPaths();
        const dumpBefore = (await s().store.run('nix-store', ['--dump-db'])).stdout;
        s().control.reset();
        server.clearSessions();
        const run = await cli([
          'deploy',
          plan ?? '',
          '--host',
          host(),
          '--profile',
          s().profile,
          '--action',
          'push',
          ...ssh(),
        ]);
        expect(run.code).toBe(3);
        expect(run.stderr).toMatch(
          /-shape-git\.drv' output 'out' is a git-hashed output \('git:'\), which Nix reads only from 2\.21 on.*runs Nix 2\.8/,
        );
        // The plan may have been sent while it was verified: the host never imported it.
        expect(server.sessions()).not.toContain('nix-plan-host closure');
        await eventually('the host to remove what it received', () => received().length === 0, 10_000);
        expect(await s().store.validPaths()).toEqual(before);
        expect((await s().store.run('nix-store', ['--dump-db'])).stdout).toEqual(dumpBefore);
        expect(s().control.calls()).toEqual([]);
        expect(current()).toBe('system-1-link');
      });

    test('a plan of .drv files and sources proves itself: deployed without any key, its labels never reach a shell', async () => {
      // Such a plan needs no key, so its author writes every label: here in shell syntax. The
      // remote command is built from store paths and nix-plan's own words only, each quoted.
      const marker = join(s().tmp['main'] ?? '', '..', `label-ran-${label}`);
      const evil = `$(touch ${marker})\`touch ${marker}\`'"; touch ${marker} #`;
      const file = join(s().tmp['main'] ?? '', '..', `labels-${label}.nixplan`);
      forgeFile(s().plans['unsigned'] ?? '', file, (m) => {
        const roots = m['roots'] as Record<string, unknown>[];
        roots[0] = { ...roots[0], installable: evil, attribute: evil };
        return m;
      });
      s().control.reset();
      try {
        const run = await cli([
          'deploy',
          file,
          '--host',
          host(),
          '--profile',
          s().profile,
          '--action',
          'dry-activate',
          ...ssh(),
        ]);
        expect(run.stderr).toContain('plan unsigned');
        expect(run.stderr).toContain(`deploying ${evil} to `);
        expect(run.code).toBe(0);
      } finally {
        rmSync(file, { force: true });
      }
      expect(existsSync(marker)).toBe(false);
      expect(s().control.calls()).toEqual([expect.stringMatching(/^c dry-activate ok/)]);
      expect(current()).toBe('system-1-link');
    });

    test('a forged plan that proves itself by its head: sent while verified, refused here, nothing on the host', async () => {
      // A forger without a key: no build outputs, so the plan goes to the host while it is verified
      // here, but its system's .drv was edited and still names the output paths of the original.
      // How much reaches the host before the refusal is a matter of timing; none of it may stay.
      const plan = await loadPlan(new Uint8Array(readFileSync(s().plans['unsigned'] ?? '')));
      const forged = await editDerivation(plan, plan.roots[0]!.drvPath, (d) => {
        d.args = [new Uint8Array(Buffer.from('-c')), new Uint8Array(Buffer.from('echo forged'))];
      });
      const file = join(s().tmp['main'] ?? '', '..', `forged-${label}.nixplan`);
      writeFileSync(file, await forgeBundle(forged));
      const before = await s().store.validPaths();
      s().control.reset();
      try {
        const run = await cli(['deploy', file, '--host', host(), '--profile', s().profile, ...ssh()]);
        expect(run.code).toBe(3);
        expect(run.stderr).toMatch(/has output 'out' at .*, but Nix computes /);
      } finally {
        rmSync(file, { force: true });
      }
      await eventually('the host to remove what it received', () => received().length === 0, 10_000);
      expect(await s().store.validPaths()).toEqual(before);
      expect(s().control.calls()).toEqual([]);
      expect(current()).toBe('system-1-link');
    });

    test('the plan sent is the plan verified: a bundle rewritten in place while it is verified changes nothing', async () => {
      // The forger owns the file and rewrites it in place (the deploy's open file sees it): their
      // unsigned plan when the deploy opens it, a plan the trusted key signed while it is
      // verified, theirs again when it would be sent. Everything is read from a private copy made
      // first, so the plan verified is theirs, and it is refused with nothing sent.
      const padTo = (bytes: Uint8Array, size: number, keys: SecretKey[]): Uint8Array => {
        const pad = (n: number): Uint8Array =>
          forgeManifest(
            bytes,
            (m) => {
              const roots = m['roots'] as Record<string, unknown>[];
              roots[0] = {
                ...roots[0],
                installable: 'x'.repeat(Math.min(n, 4096)),
                attribute: 'y'.repeat(Math.max(0, n - 4096)),
              };
              return m;
            },
            { keys },
          );
        const padded = pad(size - pad(0).length);
        if (padded.length !== size) throw new Error(`cannot pad ${bytes.length} bytes to ${size}`);
        return padded;
      };
      let signed: Uint8Array = new Uint8Array(readFileSync(s().plans['a'] ?? ''));
      let theirs: Uint8Array = new Uint8Array(readFileSync(s().plans['unsigned'] ?? ''));
      // The same length: either fits the size the deploy saw when it opened the file.
      if (theirs.length <= signed.length) theirs = padTo(theirs, signed.length, []);
      else signed = padTo(signed, theirs.length, [parseSecretKey(key.secretKey)]);
      const file = join(s().tmp['main'] ?? '', '..', `rewritten-${label}.nixplan`);
      writeFileSync(file, theirs);
      const generation = current();
      const before = await s().store.validPaths();
      s().control.reset();
      server.clearSessions();
      const progress = {
        start: (task: string) => {
          if (task === 'verifying') writeFileSync(file, signed);
          return {
            tick: () => undefined,
            done: () => {
              if (task === 'verifying') writeFileSync(file, theirs);
            },
          };
        },
      };
      try {
        const refused = await deployPlan(
          file,
          {
            hosts: [{ target: parseSshTarget(host()) }],
            profile: s().profile,
            action: 'dry-activate',
            trustedKeys: [key.publicKey],
            sshOptions: [`-F${server.configFile}`],
          },
          { runner: s().store.runner, log: silentLogger, progress },
        ).catch((e: unknown) => e);
        expect(refused).toBeInstanceOf(NixPlanError);
        expect((refused as NixPlanError).code).toBe('signature');
        expect((refused as NixPlanError).message).toMatch(/not signed by a trusted key .*signed by: nobody/);
      } finally {
        rmSync(file, { force: true });
      }
      expect(server.sessions().filter((l) => l !== 'nix-plan-host probe')).toEqual([]);
      expect(received()).toEqual([]);
      expect(await s().store.validPaths()).toEqual(before);
      expect(s().control.calls()).toEqual([]);
      expect(current()).toBe(generation);
    });

    test('a plan older than the one the host last applied is refused without --allow-downgrade', async () => {
      server.clearSessions();
      const refused = await deploy('old');
      expect(refused.code).toBe(11);
      expect(refused.stderr).toMatch(/refusing a downgrade \(--allow-downgrade to force\)/);
      expect(server.sessions()).toEqual(['nix-plan-host probe']);
      expect(current()).toBe('system-1-link');
      s().control.reset();
      const forced = await deploy('old', '--allow-downgrade');
      expect(forced.code).toBe(0);
      expect(forced.stderr).toMatch(/--allow-downgrade: applying anyway/);
      expect(current()).toBe('system-2-link');
      expect(s().control.calls()).toEqual(['d switch ok system-2-link']);
    });

    test('--build-on local: built here, only the system closure is sent, the host builds nothing', async () => {
      s().control.reset();
      server.clearSessions();
      // "Here" is a machine of the same realm with its own, empty store.
      const local = new ScratchStore(s().version, {
        storeDir: s().store.storeDir,
        root: join(work, `local-${label.replace('.', '')}`),
      });
      // And a machine of another realm, whose store refuses the plan: the refusal names the
      // user's file (the local build reads a private copy of it), and nothing reaches the host.
      const elsewhere = new ScratchStore(s().version, {
        root: join(work, `elsewhere-${label.replace('.', '')}`),
      });
      const args = [
        'deploy',
        s().plans['c'] ?? '',
        '--host',
        host(),
        '--profile',
        s().profile,
        '--trusted-key',
        key.publicKey,
        '--build-on',
        'local',
        '--json',
        ...ssh(),
      ];
      const was = current();
      try {
        const refused = await cli(args, elsewhere.runner);
        expect(refused.code).toBe(5);
        expect(refused.stderr).toContain(
          `'${s().plans['c'] ?? ''}' is a plan for the store dir ${s().store.storeDir}`,
        );
        expect(refused.stderr).not.toContain('nix-plan-copy-');
        // (The host may have been probed meanwhile: that sends nothing of the plan.)
        expect(s().control.calls()).toEqual([]);
        expect(current()).toBe(was);
        expect(received()).toEqual([]);
        // A plan no trusted key signed, with a build output in it: the local build (which runs beside
        // the deploy's own verification) refuses it too, before any of it reaches this store,
        // and nothing reaches the host.
        const emptyDb = (await local.run('nix-store', ['--dump-db'])).stdout;
        const unproven = await cli(
          args.map((a) => (a === s().plans['c'] ? (s().plans['unproven'] ?? '') : a)),
          local.runner,
        );
        expect(unproven.code).toBe(4);
        expect(unproven.stderr).toMatch(
          /the bundle is not signed by a trusted key \(trusted: 'deploy-test-1'; signed by: nobody\)/,
        );
        expect((await local.run('nix-store', ['--dump-db'])).stdout).toEqual(emptyDb);
        expect(s().control.calls()).toEqual([]);
        expect(current()).toBe(was);
        expect(received()).toEqual([]);
        const { code, stdout, stderr } = await cli(args, local.runner);
        expect(stderr).not.toMatch(/error/);
        expect(code).toBe(0);
        const result = JSON.parse(stdout) as { hosts: Record<string, unknown>[] };
        expect(result.hosts[0]).toMatchObject({ outcome: 'switched', generation: 3, confirmed: true });
        expect(current()).toBe('system-3-link');
        expect(s().control.calls()).toEqual(['c switch ok system-3-link']);
        // Built here; the host got the system's closure and none of the plan's .drv files.
        const { manifest } = await readBundleHead(s().plans['c'] ?? '');
        const drv = manifest.roots[0]?.drvPath ?? '';
        expect(await local.validPaths()).toEqual(expect.arrayContaining([drv, s().systems['c']]));
        const onHost = await s().store.validPaths();
        expect(onHost).toContain(s().systems['c']);
        expect(onHost).not.toContain(drv);
        expect(received()).toEqual([]);
      } finally {
        local.dispose();
        elsewhere.dispose();
      }
    });

    test('two hosts in parallel, one failing, with --keep-going', async () => {
      s().control.reset();
      s().control.mode('db', 'fail');
      const run = await cli([
        'deploy',
        s().plans['fleet'] ?? '',
        '--host',
        `web=${host('web')}`,
        '--host',
        `db=${host('db')}`,
        '--profile',
        'profiles/system',
        '--jobs',
        '2',
        '--keep-going',
        '--json',
        '--trusted-key',
        key.publicKey,
        ...ssh(),
      ]);
      expect(run.code).toBe(13);
      const result = JSON.parse(run.stdout) as { ok: boolean; hosts: Record<string, unknown>[] };
      expect(result.ok).toBe(false);
      expect(result.hosts.map((h) => [h['name'], h['outcome'], h['generation']])).toEqual([
        ['web', 'switched', 1],
        ['db', 'rolled-back', undefined],
      ]);
      expect(run.stderr).toMatch(/^\[web\] web: switch-to-configuration switch$/m);
      expect(run.stderr).toMatch(/^\[db\] db: a unit failed to start$/m);
      expect(run.stderr).toMatch(
        /1 of 2 hosts failed \(first: db: .*there was no previous generation to re-activate; removed system-1-link/,
      );
      expect(current(s().fleetProfiles['web'])).toBe('system-1-link');
      expect(current(s().fleetProfiles['db'])).toBeUndefined();
      expect(s().control.calls().sort()).toEqual([
        `db switch fail system-1-link`,
        `web switch ok system-1-link`,
      ]);
    });

    (noSudo === undefined ? test : test.skip)(
      `a non-root login: refused without --use-sudo, nothing changed; with it the switch runs as root${noSudo === undefined ? '' : ` (skipped: ${noSudo})`}`,
      async () => {
        ensureLoginUser();
        server.openToOtherUsers();
        const removeRule = allowSudo();
        try {
          const login = `${LOGIN_USER}@${host()}`;
          const before = await s().store.validPaths();
          const generation = current();
          s().control.reset();
          server.clearSessions();
          const args = ['deploy', s().plans['b'] ?? '', '--host', login, '--profile', s().profile];
          const common = ['--trusted-key', key.publicKey, '--allow-downgrade', ...ssh()];
          const refused = await cli([...args, ...common]);
          expect(refused.code).toBe(12);
          expect(refused.stderr).toMatch(
            /the login on the host is uid \d+, not root: .* log in as root, or as a user allowed `sudo -n` with --use-sudo/,
          );
          // Nothing of the plan went there; the store, profile and temp dir are as they were.
          expect(server.sessions()).toEqual(['nix-plan-host probe']);
          expect(await s().store.validPaths()).toEqual(before);
          expect(current()).toBe(generation);
          expect(s().control.calls()).toEqual([]);
          expect(received()).toEqual([]);

          const run = await cli([...args, '--use-sudo', '--json', ...common]);
          expect(run.stderr).not.toMatch(/error/);
          expect(run.code).toBe(0);
          const result = JSON.parse(run.stdout) as { hosts: Record<string, unknown>[] };
          const next = (generationNumber(generation) ?? 0) + 1;
          expect(result.hosts[0]).toMatchObject({ outcome: 'switched', generation: next, confirmed: true });
          expect(current()).toBe(`system-${next}-link`);
          expect(readlinkSync(`${s().profile}-${next}-link`)).toBe(s().systems['b']);
          expect(s().control.calls()).toEqual([`b switch ok system-${next}-link`]);
          // sudo made it root: switch-to-configuration ran as uid 0.
          expect(s().control.uid('b')).toBe(0);
          expect(received()).toEqual([]);
        } finally {
          removeRule();
        }
      },
    );

    // --rollback: back one generation of the profile, with a deploy's safety. The tests above leave
    // the main profile with generations 1 to 3 or 4 (the sudo test adds one) and the fleet's web
    // profile with one generation, db's with none.
    const rollback = (...extra: string[]): Promise<Run> =>
      cli(['deploy', '--rollback', '--host', host(), '--profile', s().profile, ...ssh(), ...extra]);
    const generationNow = (): number => generationNumber(current()) ?? 0;
    /** The fixture label of generation `n`'s system (nixos-system-LABEL-1.0). */
    const labelOf = (n: number): string =>
      /nixos-system-(\w+)-1\.0$/.exec(readlinkSync(`${s().profile}-${n}-link`))?.[1] ?? '?';
    const links = (profile: string): string[] =>
      readdirSync(join(profile, '..'))
        .filter((f) => /-\d+-link$/.test(f) || f === 'system')
        .sort()
        .map((f) => `${f} → ${readlinkSync(join(profile, '..', f), { encoding: 'utf8' })}`);

    test('--rollback with nothing to go back to is refused by name, the hosts unchanged', async () => {
      const before = await s().store.validPaths();
      const profiles = Object.values(s().fleetProfiles);
      const linksBefore = profiles.map((p) => (existsSync(join(p, '..')) ? links(p) : []));
      s().control.reset();
      server.clearSessions();
      const run = await cli([
        'deploy',
        '--rollback',
        '--host',
        `web=${host('web')}`,
        '--host',
        `db=${host('db')}`,
        '--profile',
        'profiles/system',
        '--keep-going',
        '--json',
        ...ssh(),
      ]);
      expect(run.code).toBe(2);
      const result = JSON.parse(run.stdout) as {
        rollback: boolean;
        ok: boolean;
        hosts: Record<string, unknown>[];
      };
      expect(result).toMatchObject({ rollback: true, ok: false });
      expect(
        result.hosts.map((h) => [h['name'], h['outcome'], (h['error'] as { code: string }).code]),
      ).toEqual([
        ['web', 'failed', 'usage'],
        ['db', 'failed', 'usage'],
      ]);
      expect(run.stderr).toMatch(
        /web: profile 'profiles\/system' has no generation before the current one \(1\) to roll back to; nothing was changed/,
      );
      expect(run.stderr).toMatch(
        /db: profile 'profiles\/system' has no generation, so there is nothing to roll back/,
      );
      expect(server.sessions()).toEqual(['nix-plan-host probe', 'nix-plan-host probe']);
      expect(profiles.map((p) => (existsSync(join(p, '..')) ? links(p) : []))).toEqual(linksBefore);
      expect(await s().store.validPaths()).toEqual(before);
      expect(s().control.calls()).toEqual([]);
    });

    test('--rollback whose activation fails: the generation rolled back from is re-activated, exit 13', async () => {
      const n = generationNow();
      const record = readFileSync(`${s().profile}.nix-plan.json`, 'utf8');
      const linksBefore = links(s().profile);
      s().control.reset();
      s().control.mode(labelOf(n - 1), 'fail');
      const run = await rollback('--json');
      expect(run.code).toBe(13);
      // Not rolled back: the outcome is never the one of a deploy that was rolled back.
      expect((JSON.parse(run.stdout) as { hosts: Record<string, unknown>[] }).hosts).toEqual([
        expect.objectContaining({
          outcome: 'reverted',
          generation: n,
          rollback: { from: n, to: n - 1 },
          error: expect.objectContaining({ code: 'activation' }) as unknown,
        }),
      ]);
      expect(run.stderr).toMatch(
        new RegExp(
          `switch-to-configuration switch exited with 1: re-activated the generation rolled back from ${n}; the current generation is ${n}`,
        ),
      );
      expect(current()).toBe(`system-${n}-link`);
      expect(links(s().profile)).toEqual(linksBefore);
      expect(s().control.calls()).toEqual([
        `${labelOf(n - 1)} switch fail system-${n - 1}-link`,
        `${labelOf(n)} switch ok system-${n}-link`,
      ]);
      expect(readFileSync(`${s().profile}.nix-plan.json`, 'utf8')).toBe(record);
    });

    test('--rollback switches back to the previous generation, says what changes, confirms', async () => {
      const n = generationNow();
      const record = JSON.parse(readFileSync(`${s().profile}.nix-plan.json`, 'utf8')) as Record<
        string,
        unknown
      >;
      const from = readlinkSync(`${s().profile}-${n}-link`);
      const to = readlinkSync(`${s().profile}-${n - 1}-link`);
      s().control.reset();
      server.clearSessions();
      const run = await rollback('--json');
      expect(run.code).toBe(0);
      const result = JSON.parse(run.stdout) as { rollback: boolean; hosts: Record<string, unknown>[] };
      expect(result.rollback).toBe(true);
      expect(result.hosts[0]).toMatchObject({
        outcome: 'switched',
        generation: n - 1,
        previousGeneration: n,
        confirmed: true,
        system: to,
        currentSystem: to,
        rollback: { from: n, to: n - 1 },
        changes: { status: 'changed', previous: { generation: n, system: from }, system: to },
      });
      expect(run.stderr).toContain(`rolling back from generation ${n} to ${n - 1} (switch)`);
      expect(run.stderr).toContain(`generation ${n} (${from}) → ${to}`);
      expect(current()).toBe(`system-${n - 1}-link`);
      // Nothing made, nothing removed: the generation rolled back from is still there.
      expect(readlinkSync(`${s().profile}-${n}-link`)).toBe(from);
      expect(s().control.calls()).toEqual([`${labelOf(n - 1)} switch ok system-${n - 1}-link`]);
      expect(server.sessions()).toEqual([
        'nix-plan-host probe',
        'nix-plan-host closure',
        'nix-plan-host activate',
        'nix-plan-host confirm',
      ]);
      // The newest plan applied stays the downgrade floor; the record says the host went back.
      const after = JSON.parse(readFileSync(`${s().profile}.nix-plan.json`, 'utf8')) as Record<
        string,
        unknown
      >;
      expect(after).toMatchObject({ ...record, rolledBack: { generation: n - 1, system: to, from: n } });
    });

    test("the connection is cut after the rollback's switch: the watchdog restores the generation rolled back from", async () => {
      const n = generationNow();
      const record = readFileSync(`${s().profile}.nix-plan.json`, 'utf8');
      s().control.reset();
      s().control.mode(labelOf(n - 1), 'cut');
      try {
        const run = await rollback('--confirm-timeout', '2');
        expect(run.code).toBe(12);
        expect(run.stderr).toMatch(
          new RegExp(`watchdog re-activates the generation rolled back from \\(system-${n}-link\\)`),
        );
        await eventually(
          'the watchdog to restore the generation',
          () => s().control.calls().length >= 2,
          20_000,
        );
        expect(s().control.calls()).toEqual([
          `${labelOf(n - 1)} switch cut system-${n - 1}-link`,
          `${labelOf(n)} switch ok system-${n}-link`,
        ]);
        await eventually('the profile to point back', () => current() === `system-${n}-link`, 5000);
        expect(existsSync(`${s().profile}-${n - 1}-link`)).toBe(true);
        expect(readFileSync(`${s().profile}.nix-plan.json`, 'utf8')).toBe(record);
      } finally {
        await server.restart();
      }
    });

    test('after the watchdog reverted a switch, or a test left the profile behind, the next deploy and rollback say so', async () => {
      // Two generations of its own first, whatever the tests before left.
      for (const plan of ['a', 'b']) expect((await deploy(plan, '--allow-downgrade')).code).toBe(0);
      const n = generationNow();
      const record = readFileSync(`${s().profile}.nix-plan.json`, 'utf8');
      const linksBefore = links(s().profile);
      const c = s().systems['c'] ?? '';
      s().control.reset();
      s().control.mode('c', 'cut');
      try {
        expect((await deploy('c', '--allow-downgrade', '--confirm-timeout', '2')).code).toBe(12);
        await eventually(
          'the watchdog to restore the generation',
          () => s().control.calls().length >= 2,
          20_000,
        );
        await eventually('the profile to point back', () => current() === `system-${n}-link`, 5000);
      } finally {
        await server.restart();
      }
      // What the watchdog left: the generation before, the record as it was, no new generation.
      expect(links(s().profile)).toEqual(linksBefore);
      expect(readFileSync(`${s().profile}.nix-plan.json`, 'utf8')).toBe(record);
      const store = await s().store.validPaths();
      const unchanged = async (): Promise<void> => {
        expect(links(s().profile)).toEqual(linksBefore);
        expect(readFileSync(`${s().profile}.nix-plan.json`, 'utf8')).toBe(record);
        expect(await s().store.validPaths()).toEqual(store);
      };
      const reverted = `the last activation here \\(switch of ${c}, started \\d{4}-\\d\\d-\\d\\dT[\\d:]{8}Z\\) was not confirmed in time: the host's watchdog re-activated the generation before it`;
      s().control.reset();
      const dry = await rollback('--action', 'dry-activate');
      expect(dry.code).toBe(0);
      expect(dry.stderr).toMatch(
        new RegExp(
          `${reverted}\\. The host runs generation ${n} again, and a rollback goes one further back`,
        ),
      );
      const next = await deploy('c', '--allow-downgrade', '--action', 'dry-activate');
      expect(next.code).toBe(0);
      expect(next.stderr).toMatch(new RegExp(`${reverted}\n`));
      await unchanged();

      // `test` makes no generation: a rollback afterwards goes past the generation it left behind.
      s().control.reset();
      const tested = await deploy('c', '--allow-downgrade', '--action', 'test');
      expect(tested.code).toBe(0);
      expect(s().control.calls()).toEqual([`c test ok system-${n}-link`]);
      await unchanged();
      const after = await rollback('--action', 'dry-activate');
      expect(after.code).toBe(0);
      expect(after.stderr).toContain(`the last activation here (test of ${c}, started `);
      expect(after.stderr).toMatch(
        new RegExp(
          `is not in the profile: unless the host restarted since, it runs that system, not generation ${n}'s\\. ` +
            `A rollback goes from generation ${n} to the one before it; it does not re-activate generation ${n}`,
        ),
      );
      await unchanged();
    });

    test("deploying the system the profile already holds makes no generation, and the action's summary offers no rollback", async () => {
      expect((await deploy('b', '--allow-downgrade')).code).toBe(0);
      const n = generationNow();
      const linksBefore = links(s().profile);
      s().control.reset();
      const again = await deploy('b', '--json');
      expect(again.code).toBe(0);
      const result = JSON.parse(again.stdout) as DeployResult;
      expect(result.hosts[0]).toMatchObject({ outcome: 'switched', generation: n, previousGeneration: n });
      expect(s().control.calls()).toEqual([`b switch ok system-${n}-link`]);
      expect(links(s().profile)).toEqual(linksBefore);
      // A rollback would undo the deploy before this one: the summary says there is none of this one.
      const summary = deploySummary('b.nixplan', result);
      expect(summary).not.toContain('on a new generation now');
      expect(summary).toContain(
        `\`${host()}\`: the profile already held this system, so no generation was made and there is none of this deploy to undo`,
      );
      // One that made a generation is offered the rollback.
      const moved = await deploy('c', '--allow-downgrade', '--json');
      expect(moved.code).toBe(0);
      const movedResult = JSON.parse(moved.stdout) as DeployResult;
      expect(movedResult.hosts[0]).toMatchObject({ generation: n + 1, previousGeneration: n });
      expect(deploySummary('c.nixplan', movedResult)).toContain(
        `### To undo\n\n\`${host()}\` is on a new generation now. Run this action again with \`rollback: true\``,
      );
    });
  });
});
