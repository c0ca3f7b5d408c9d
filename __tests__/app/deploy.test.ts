// The parts of deploy that need no host: reading --host and --ssh-option, quoting for the remote
// login shell (checked by a real sh, bash, dash, zsh and fish), root matching and shape checks,
// the host program's syntax and marker protocol, per-host prefixes, the final table, and how
// reports become exit codes.
import { describe, expect, test } from '@jest/globals';
import fc from 'fast-check';
import { anyString } from '../support/code-points.js';
import { execFileSync, spawnSync } from 'node:child_process';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deploySummary } from '../../src/action/deploy.js';
import { parseDeploySettings } from '../../src/action/deploy-settings.js';
import { activateSafely, generationNumber, reportProblem } from '../../src/app/deploy/activation.js';
import {
  defaultOutputs,
  deployPlan,
  type DeployResult,
  type HostResult,
} from '../../src/app/deploy/index.js';
import { deployRollback } from '../../src/app/deploy/rollback-hosts.js';
import { linePrefixer } from '../../src/app/deploy/prefix.js';
import { assignRoots, rootMatch, systemOfRoot } from '../../src/app/deploy/roots.js';
import type { BundleManifest, BundleRoot } from '../../src/core/bundle/manifest.js';
import type { TrustReport } from '../../src/core/bundle/trust-report.js';
import { NixPlanError } from '../../src/core/errors.js';
import { unsafeCharacter } from '../../src/core/text.js';
import { formatDeploy, parseHostOption } from '../../src/cli/deploy-command.js';
import { main } from '../../src/cli/main.js';
import type { UseCases } from '../../src/cli/use-cases.js';
import { changesLines } from '../../src/cli/diff-format.js';
import { hostChanges, splitOutputName } from '../../src/app/deploy/changes.js';
import {
  activationReport,
  parseClosures,
  parseMarkers,
  type ClosurePath,
} from '../../src/nix/host-markers.js';
import { HostProgram } from '../../src/nix/host-program.js';
import { HOST_SCRIPT, hostProgramArgv } from '../../src/nix/host-script.js';
import { SUPERVISOR, SWITCH_FUNCTIONS } from '../../src/nix/host-supervisor.js';
import {
  parseSshTarget,
  remoteCommandLine,
  shellQuote,
  SshHost,
  type HostRunOptions,
  type HostRunResult,
  type HostShell,
} from '../../src/nix/ssh.js';

const S = '/nix/store';
const drv = (name: string): string => `${S}/${'a'.repeat(32)}-${name}.drv`;
const root = (name: string, extra: Partial<BundleRoot> = {}): BundleRoot => ({
  drvPath: drv(name),
  outputs: { out: `${S}/${'b'.repeat(32)}-${name}` },
  ...extra,
});
/** A plan made by a CI run and signed by `ci`, as a deploy result carries it. */
const MANIFEST: BundleManifest = {
  format: 'nix-plan',
  formatVersion: 2,
  tool: 'nix-plan 0.1.0',
  nixVersion: '2.34.0',
  createdAt: '2026-12-01T00:00:00Z',
  provenance: { repository: 'owner/infra', commit: 'c'.repeat(40), ref: 'refs/heads/main' },
  storeDir: S,
  systems: ['x86_64-linux'],
  include: 'drvs',
  roots: [root('nixos-system-web-1.0')],
  counts: { drv: 1, text: 0, source: 0, output: 0 },
  narBytes: { drv: 1, text: 0, source: 0, output: 0 },
  paths: 1,
  stream: { sha256: '0'.repeat(64), size: 1, compressedSha256: '1'.repeat(64), compressedSize: 1 },
  signatures: [{ key: 'ci', sig: 'x' }],
  checksum: '2'.repeat(64),
};
const SIGNED_BY_CI: TrustReport = {
  keysGiven: true,
  verifiedBy: ['ci'],
  signatures: [{ key: 'ci', status: 'verified' }],
  noCheckSigs: false,
  unproven: 0,
};
/** A deploy's result as the use case returns it: the plan above, signed by `ci`, no hosts yet. */
const deployResult = (extra: Partial<DeployResult> = {}): DeployResult => ({
  bundle: 'p',
  digest: 'sha256:ab',
  storeDir: S,
  signedBy: [],
  trust: SIGNED_BY_CI,
  manifest: MANIFEST,
  ok: true,
  hosts: [],
  ...extra,
});

describe('hosts and ssh arguments', () => {
  test('[NAME=][USER@]HOST[:PORT], IPv6 in brackets; bad ones are usage errors', () => {
    expect(parseHostOption('root@10.0.0.5')).toEqual({ target: { user: 'root', host: '10.0.0.5' } });
    expect(parseHostOption('web=deploy@web.example.org:2222')).toEqual({
      name: 'web',
      target: { user: 'deploy', host: 'web.example.org', port: 2222 },
    });
    expect(parseSshTarget('[::1]:22')).toEqual({ host: '::1', port: 22 });
    expect(parseSshTarget('fe80::1')).toEqual({ host: 'fe80::1' });
    expect(parseSshTarget('myalias')).toEqual({ host: 'myalias' });
    for (const bad of ['-oProxyCommand=x', 'root@', 'h:0', 'h:99999', 'a b', 'u;x@h', '[::1', ''])
      expect(() => parseSshTarget(bad)).toThrow(NixPlanError);
    expect(() => parseHostOption('we b=h')).toThrow(/plain word/);
  });

  test("ssh's argv: the user's options first (ssh keeps the first value), then ours, then -- HOST COMMAND", () => {
    const host = new SshHost(
      { user: 'root', host: 'h', port: 2222 },
      { sshOptions: ['-F./cfg', '-oBatchMode=no'] },
    );
    const argv = host.sshArgs(['echo', 'a b']);
    expect(argv.slice(0, 2)).toEqual(['-F./cfg', '-oBatchMode=no']);
    expect(argv.slice(argv.indexOf('--'))).toEqual(['--', 'h', "echo 'a b'"]);
    expect(argv).toEqual(expect.arrayContaining(['-p', '2222', '-l', 'root', '-T', 'BatchMode=yes']));
    // A fresh connection cannot be talked into reusing a multiplexed one.
    expect(host.sshArgs(['true'], true).slice(0, 4)).toEqual([
      '-o',
      'ControlMaster=no',
      '-o',
      'ControlPath=none',
    ]);
  });

  test('--ssh-option=-F… and every other form reach ssh as one raw argument each', async () => {
    let seen: Parameters<UseCases['deployPlan']>[1] | undefined;
    const code = await main(
      [
        'deploy',
        'p',
        '--host',
        'h',
        '--ssh-option=-F./ssh_config',
        '--ssh-option',
        'StrictHostKeyChecking=yes',
        '--ssh-option=-o',
        '--ssh-option=Port=2',
        '--ssh-option',
        '-v',
      ],
      {
        io: { stdout: { write: () => true }, stderr: { write: () => true } },
        useCases: {
          deployPlan: (_b, options) => {
            seen = options;
            return Promise.resolve(deployResult({ digest: '' }));
          },
        },
      },
    );
    expect(code).toBe(0);
    expect(seen?.sshOptions).toEqual(['-F./ssh_config', 'StrictHostKeyChecking=yes', '-o', 'Port=2', '-v']);
  });

  /** The login shells sshd may hand the command line to (`$SHELL -c LINE`): all in CI. */
  const LOGIN_SHELLS = ['sh', 'bash', 'dash', 'zsh', 'fish'].filter((shell) => {
    const found = spawnSync('sh', ['-c', `command -v ${shell}`]).status === 0;
    if (!found && process.env['CI'] === 'true') throw new Error(`CI needs ${shell}: run .ci/run`);
    return found;
  });
  const throughLoginShell = (shell: string, args: readonly string[]): string[] => {
    if (args.length === 0) return [];
    const out = execFileSync(shell, ['-c', remoteCommandLine(['printf', '%s\\0', ...args])]);
    return out.toString('utf8').split('\0').slice(0, -1);
  };

  test.each(LOGIN_SHELLS)(
    'quoting for the remote shell: any argv comes back out of a real %s -c unchanged',
    (shell) => {
      fc.assert(
        fc.property(
          fc.array(
            fc.oneof(
              anyString().map((s) => s.replace(/\0/g, '')),
              fc.string({
                unit: fc.constantFrom('\\', "'", '"', '$', '`', '\n', ' ', 'a', '!', '*', '#', ';'),
              }),
            ),
            { maxLength: 6 },
          ),
          (args) => {
            expect(throughLoginShell(shell, args)).toEqual(args);
          },
        ),
        { numRuns: 25 },
      );
      // The host program itself, as every connection sends it (it holds `\\n` in a printf format).
      const argv = hostProgramArgv('probe', ['/nix/var/nix/profiles/system', "it's \\ \\\\ there"]);
      expect(throughLoginShell(shell, argv)).toEqual(argv);
    },
  );

  test('with --use-sudo a relative --profile is a usage error (2) before any host is asked', async () => {
    // sudo sets the home a relative profile would be taken from; without sudo it is the login's.
    const run = async (...extra: string[]): Promise<{ code: number; err: string }> => {
      let err = '';
      let asked = 0;
      const shellFor = (): HostShell => {
        asked++;
        return { label: 'h', remote: true, run: () => Promise.reject(new Error('no host in this test')) };
      };
      const code = await main(['deploy', ...extra, '--host', 'deploy@h', '--use-sudo'], {
        io: { stdout: { write: () => true }, stderr: { write: (c: string) => (err += c) } },
        useCases: {
          deployPlan: (b, o, d) => deployPlan(b, o, { ...d, shellFor }),
          deployRollback: (o, d) => deployRollback(o, { ...d, shellFor }),
        },
      });
      expect(asked).toBe(0);
      return { code, err };
    };
    for (const extra of [
      ['missing.nixplan', '--profile', 'profiles/system'],
      ['--rollback', '--profile', './system'],
    ]) {
      const { code, err } = await run(...extra);
      expect(code).toBe(2);
      expect(err).toContain('is relative: with --use-sudo give an absolute path');
    }
    // An absolute profile passes this check: the missing bundle is the next error.
    const absolute = await run('missing.nixplan', '--profile', '/nix/var/nix/profiles/system');
    expect(absolute.err).not.toContain('is relative');
    expect(absolute.err).toContain("cannot read bundle 'missing.nixplan'");
  });

  test('quoting for the remote shell: plain words stay bare, NUL is refused', () => {
    expect(shellQuote('/nix/store/abc-x')).toBe('/nix/store/abc-x');
    expect(() => shellQuote('a\0b')).toThrow(NixPlanError);
  });
});

describe('roots and shape', () => {
  test('one host takes the only root; several take the best match by name', () => {
    expect(assignRoots([root('nixos-system-x-1')], [{}])).toHaveLength(1);
    expect(() => assignRoots([root('nixos-system-x-1'), root('nixos-system-y-1')], [{}])).toThrow(/2 roots/);
    const roots = [
      root('nixos-system-web-24.05', {
        installable: '.#nixosConfigurations.web.config.system.build.toplevel',
      }),
      root('nixos-system-db-24.05', { attribute: 'db' }),
      root('nixos-system-web-2-24.05'),
    ];
    expect(rootMatch(roots[0] as BundleRoot, 'web')).toBe(2);
    expect(rootMatch(roots[1] as BundleRoot, 'db')).toBe(3);
    expect(rootMatch(roots[2] as BundleRoot, 'web-2')).toBe(1);
    expect(rootMatch(roots[2] as BundleRoot, 'web')).toBe(0);
    expect(assignRoots(roots, [{ name: 'web' }, { name: 'db' }, { name: 'web-2' }])).toEqual(roots);
    expect(() => assignRoots(roots, [{ name: 'mail' }])).toThrow(/no root of the plan is for host 'mail'/);
  });

  test('a root that is not a NixOS system, has no out, or a deferred out is refused by name', () => {
    expect(systemOfRoot(root('nixos-system-x-1'), false)).toMatch(/-nixos-system-x-1$/);
    expect(() => systemOfRoot(root('hello-2.12'), false)).toThrow(/not a NixOS system/);
    expect(systemOfRoot(root('hello-2.12'), true)).toMatch(/hello-2\.12$/);
    expect(() => systemOfRoot({ drvPath: drv('nixos-system-x'), outputs: { bin: '/x' } }, false)).toThrow(
      /no 'out'/,
    );
    expect(() => systemOfRoot({ drvPath: drv('nixos-system-x'), outputs: { out: '' } }, false)).toThrow(
      /content-addressed/,
    );
  });
});

describe('the host program', () => {
  test('parses as POSIX sh (dash, bash --posix), and so does the supervisor it writes', () => {
    const dir = mkdtempSync(join(tmpdir(), 'nix-plan-host-script-'));
    try {
      for (const shell of [
        ['dash', '-n'],
        ['bash', '--posix', '-n'],
      ]) {
        const r = spawnSync(shell[0] ?? '', [...shell.slice(1), '-c', HOST_SCRIPT]);
        expect(r.stderr.toString()).toBe('');
        expect(r.status).toBe(0);
      }
      const supervisor = /<< 'NIX_PLAN_SUPERVISOR'\n([\s\S]*?)\nNIX_PLAN_SUPERVISOR\n/.exec(HOST_SCRIPT)?.[1];
      expect(supervisor).toMatch(/^# nix-plan activation supervisor/);
      expect(spawnSync('dash', ['-n', '-c', supervisor ?? '']).status).toBe(0);
      // On a systemd host the switch runs as nixos-rebuild runs it, in the unit it uses.
      expect(supervisor).toContain(
        'systemd-run -E LOCALE_ARCHIVE -E NIXOS_INSTALL_BOOTLOADER --collect --no-ask-password --pipe',
      );
      expect(supervisor).toContain('--unit=nixos-rebuild-switch-to-configuration --wait');
      expect(HOST_SCRIPT).toContain('if [ -d /run/systemd/system ]');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('the supervisor writes the record through a new file of its own, never a link planted at a temp name', () => {
    const writeRecord = /^write_record\(\) \{\n[\s\S]*?^\}$/m.exec(SUPERVISOR)?.[0];
    expect(writeRecord).toBeDefined();
    const dir = mkdtempSync(join(tmpdir(), 'nix-plan-write-record-'));
    try {
      const profile = join(dir, 'system');
      const victim = join(dir, 'victim');
      writeFileSync(victim, 'not the record\n');
      // Links at the names the supervisor could be expected to use: its pid's, and a few more.
      const script = [
        `profile='${profile}'`,
        `get() { [ "$1" = record ] && printf '%s\\n' '{"version":1}'; }`,
        `note() { printf 'note: %s\\n' "$*"; }`,
        `put() { printf 'put: %s\\n' "$*"; }`,
        `for n in $$ 0 1 2 XXXXXX; do ln -s '${victim}' "$profile.nix-plan.json.tmp.$n"; done`,
        writeRecord ?? '',
        'write_record',
      ].join('\n');
      const r = spawnSync('sh', ['-c', script]);
      expect(r.stderr.toString()).toBe('');
      expect(r.stdout.toString()).toBe('');
      expect(readFileSync(victim, 'utf8')).toBe('not the record\n');
      expect(readFileSync(`${profile}.nix-plan.json`, 'utf8')).toBe('{"version":1}\n');
      expect(statSync(`${profile}.nix-plan.json`).mode & 0o777).toBe(0o644);
      // Nothing left beside it but the links planted.
      expect(
        readdirSync(dir).filter((f) => f.includes('.tmp.') && !lstatSync(join(dir, f)).isSymbolicLink()),
      ).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('switch-to-configuration under its time limit: its output and nothing of the timer in the log', () => {
    // The activation's log is streamed to the job log, where a reviewer reads it: dash reporting
    // the timer it stopped ("Terminated") would read as a switch that was killed.
    const dir = mkdtempSync(join(tmpdir(), 'nix-plan-run-limited-'));
    try {
      mkdirSync(join(dir, 'system', 'bin'), { recursive: true });
      writeFileSync(
        join(dir, 'system', 'bin', 'switch-to-configuration'),
        '#!/bin/sh\necho "switching: $1"\necho "would restart: a.service" >&2\n',
        { mode: 0o755 },
      );
      const script = [
        'nap() { sleep 0.2; }',
        SWITCH_FUNCTIONS,
        `for i in 1 2 3 4 5 6; do run_limited '${dir}/system' switch 600 '${dir}/mark' < /dev/null >> '${dir}/log' 2>&1; echo "rc=$?" >> '${dir}/log'; done`,
      ].join('\n');
      const r = spawnSync('dash', ['-c', script]);
      expect(r.stderr.toString()).toBe('');
      expect(readFileSync(join(dir, 'log'), 'utf8')).toBe(
        'switching: switch\nwould restart: a.service\nrc=0\n'.repeat(6),
      );
      expect(existsSync(join(dir, 'mark'))).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('an unknown phase is refused in the protocol, not with a shell error', () => {
    const [cmd, ...args] = hostProgramArgv('nonsense', []);
    const r = spawnSync(cmd ?? '', args);
    expect(parseMarkers(r.stdout)).toEqual([['error', "usage unknown phase 'nonsense'"]]);
    expect(r.status).toBe(1);
  });

  /** An `ssh` that runs no host: it answers every phase with the shell text `answer` prints. */
  const hostileSsh = (answer: string): { program: HostProgram; dispose: () => void } => {
    const dir = mkdtempSync(join(tmpdir(), 'nix-plan-hostile-ssh-'));
    const ssh = join(dir, 'ssh');
    writeFileSync(ssh, `#!/bin/sh\n${answer}\n`, { mode: 0o755 });
    return {
      program: new HostProgram(new SshHost({ host: 'hostile' }, { program: ssh })),
      dispose: () => rmSync(dir, { recursive: true, force: true }),
    };
  };
  const PROBE_HEAD =
    'printf \'@nix-plan protocol 1\\n@nix-plan uid 0\\n@nix-plan nix nix-store (Nix) 2.34.0\\n@nix-plan store-dir "/nix/store"\\n\'';

  test('a host answering with more than 64 MiB is cut off and refused, whatever the phase', async () => {
    // 70 MB of one line that is no marker, then a probe's end: without a bound every byte is kept.
    const { program, dispose } = hostileSsh(
      `${PROBE_HEAD}; head -c 70000000 /dev/zero | tr '\\0' a; printf '\\n@nix-plan end\\n'`,
    );
    try {
      await expect(program.probe('/p')).rejects.toThrow(
        'hostile: the host sent more than 67108864 bytes of answers during the probe phase: refused',
      );
      await expect(program.missing([`${S}/${'a'.repeat(32)}-x`])).rejects.toThrow(/during the missing phase/);
    } finally {
      dispose();
    }
  });

  test("a probe's links and systems must be absolute paths of printable characters", async () => {
    for (const [key, value] of [
      ['generation', '/p-2-link\\033]0;pwned\\007'],
      // A carriage return made the whole line unreadable as a marker: the probe said "no generation".
      ['generation', '/p-2-link\\r'],
      ['previous-system', 'relative/system'],
    ] as const) {
      const { program, dispose } = hostileSsh(
        `${PROBE_HEAD}; printf '@nix-plan ${key} ${value}\\n@nix-plan end\\n'`,
      );
      try {
        await expect(program.probe('/p')).rejects.toThrow(
          `hostile: the host sent a ${key} that is not an absolute path of printable characters`,
        );
      } finally {
        dispose();
      }
    }
    const { program, dispose } = hostileSsh(
      `${PROBE_HEAD}; printf '@nix-plan generation /p-2-link\\n@nix-plan end\\n'`,
    );
    try {
      expect(await program.probe('/p')).toMatchObject({ storeDir: S, generation: '/p-2-link' });
    } finally {
      dispose();
    }
  });

  test('markers: only @nix-plan lines count; the report keeps the last value of each', () => {
    const m = parseMarkers(
      'welcome from .bashrc\n@nix-plan activation 20260101T000000Z-ab\n@nix-plan previous /p/system-1-link\n' +
        '@nix-plan generation /p/system-2-link\n@nix-plan logged 10\n@nix-plan state reverted\n' +
        '@nix-plan switch-rc 1\n@nix-plan revert-rc 0\n@nix-plan logged 42\n@nix-plan current /p/system-1-link\n',
    );
    expect(activationReport(m)).toMatchObject({
      id: '20260101T000000Z-ab',
      state: 'reverted',
      switchRc: 1,
      revertRc: 0,
      logged: 42,
      previous: '/p/system-1-link',
      current: '/p/system-1-link',
    });
    expect(activationReport([['state', 'something-else']]).state).toBe('lost');
  });
});

describe('reports become outcomes and exit codes', () => {
  const base = { recordFailed: false, logged: 0, previous: '/p/system-4-link', current: '/p/system-4-link' };
  test('restored → 13 (activation), not restored → 14 (attention), and the current generation is named', () => {
    expect(reportProblem({ ...base, state: 'done' }, 'switch', 30)).toBeUndefined();
    const failed = reportProblem(
      { ...base, state: 'reverted', switchRc: 4, removed: '/p/system-5-link' },
      'switch',
      30,
    );
    expect(failed?.code).toBe('activation');
    expect(failed?.message).toBe(
      'switch-to-configuration switch exited with 4 (some units failed): re-activated the previous generation 4 and removed system-5-link; the current generation is 4',
    );
    expect(reportProblem({ ...base, state: 'reverted', switchRc: 0 }, 'test', 30)?.message).toMatch(
      /^the activation was not confirmed within 30 s: re-activated/,
    );
    expect(
      reportProblem({ ...base, state: 'revert-failed', switchRc: 1, revertRc: 2 }, 'switch', 30)?.code,
    ).toBe('attention');
    expect(reportProblem({ ...base, state: 'lost' }, 'switch', 30)?.code).toBe('attention');
    expect(
      reportProblem({ ...base, state: 'dry-activated', switchRc: 3 }, 'dry-activate', 30)?.message,
    ).toMatch(/nothing was changed/);
    // Out of time: stopped, and said so, whatever the switch's exit code then was.
    expect(
      reportProblem({ ...base, state: 'reverted', switchRc: 143, timedOut: 600 }, 'switch', 30)?.message,
    ).toBe(
      'switch-to-configuration switch did not finish within 600 s and was stopped: re-activated the previous generation 4; the current generation is 4',
    );
    const stuck = reportProblem(
      { ...base, state: 'revert-failed', switchRc: 143, timedOut: 5, revertRc: 143, revertTimedOut: 5 },
      'switch',
      30,
    );
    expect(stuck?.code).toBe('attention');
    expect(stuck?.message).toMatch(
      /did not finish within 5 s and was stopped, and restoring the previous generation failed \(its switch-to-configuration did not finish within 5 s and was stopped\)/,
    );
    expect(
      reportProblem({ ...base, state: 'dry-activated', switchRc: 143, timedOut: 5 }, 'dry-activate', 30)
        ?.message,
    ).toBe(
      'switch-to-configuration dry-activate did not finish within 5 s and was stopped; nothing was changed',
    );
    expect(generationNumber('/nix/var/nix/profiles/system-12-link')).toBe(12);
  });

  /** A host that answers each phase from a script, failing connections on demand. */
  class ScriptedHost implements HostShell {
    readonly remote = true;
    readonly label = 'scripted';
    readonly phases: string[] = [];
    constructor(private readonly answers: ((phase: string) => HostRunResult)[]) {}
    run(argv: readonly string[], _options?: HostRunOptions): Promise<HostRunResult> {
      const phase = argv[argv.indexOf('nix-plan-host') + 1] ?? '';
      this.phases.push(phase);
      const answer = this.answers.shift();
      if (answer === undefined) throw new Error('no more answers');
      return Promise.resolve(answer(phase));
    }
  }
  const said = (lines: string[], code = 0): HostRunResult => ({
    code,
    stdout: Buffer.from(lines.map((l) => `@nix-plan ${l}\n`).join('')),
    stderr: code === 255 ? 'Connection refused' : '',
  });
  const request = {
    profile: '/p',
    action: 'switch' as const,
    out: '/s',
    confirmTimeout: 3,
    activationTimeout: 600,
    recordSeen: 'none',
    record: '',
  };
  const fakeClock = (): { now: () => number; sleep: (ms: number) => Promise<void> } => {
    let t = 0;
    return { now: () => t, sleep: (ms) => Promise.resolve(void (t += ms)) };
  };
  const log = { info: () => undefined, warn: () => undefined, debug: () => undefined };

  test('a switch is confirmed over a new connection; refused connections are retried until the timeout', async () => {
    const host = new ScriptedHost([
      () =>
        said(['activation X', 'previous /p/system-1-link', 'logged 5', 'state awaiting-confirmation', 'end']),
      () => said([], 255),
      () => said([], 255),
      () => said(['confirmed 1', 'logged 9', 'state done', 'current /p/system-2-link', 'end']),
    ]);
    const outcome = await activateSafely(new HostProgram(host), request, { log, clock: fakeClock() });
    expect(host.phases).toEqual(['activate', 'confirm', 'confirm', 'confirm']);
    expect(outcome).toMatchObject({ confirmed: true, generation: 2, previousGeneration: 1 });
  });

  test('the watchdog won the race: reported as rolled back (13), never as success', async () => {
    const host = new ScriptedHost([
      () => said(['activation X', 'previous /p/system-1-link', 'state awaiting-confirmation', 'end']),
      () => said(['confirmed 0', 'switch-rc 0', 'state reverted', 'current /p/system-1-link', 'end']),
    ]);
    const error = await activateSafely(new HostProgram(host), request, { log, clock: fakeClock() }).catch(
      (e: unknown) => e,
    );
    expect((error as NixPlanError).code).toBe('activation');
    expect((error as NixPlanError).message).toMatch(
      /not confirmed within 3 s: re-activated the previous generation 1/,
    );
  });

  test('no way back in before the timeout: exit 12, saying the watchdog will revert', async () => {
    const host = new ScriptedHost([
      () => said(['activation X', 'previous /p/system-1-link', 'state awaiting-confirmation', 'end']),
      ...Array.from({ length: 10 }, () => () => said([], 255)),
    ]);
    const error = await activateSafely(new HostProgram(host), request, { log, clock: fakeClock() }).catch(
      (e: unknown) => e,
    );
    expect((error as NixPlanError).code).toBe('host');
    expect((error as NixPlanError).message).toMatch(
      /could not log in again to confirm within 3 s: unconfirmed, the host's watchdog/,
    );
    expect(host.phases.filter((p) => p === 'confirm').length).toBeGreaterThanOrEqual(3);
  });
});

describe('output', () => {
  test('per-host prefixes are added to whole lines, whatever the chunking', () => {
    fc.assert(
      fc.property(fc.array(fc.string(), { maxLength: 8 }), fc.integer({ min: 1, max: 7 }), (lines, size) => {
        const text = lines.map((l) => `${l.replace(/\n/g, ' ')}\n`).join('');
        const out: string[] = [];
        const p = linePrefixer('[web] ', (c) => out.push(c.toString()));
        for (let i = 0; i < text.length; i += size) p.write(text.slice(i, i + size));
        p.flush();
        expect(out.join('')).toBe(lines.map((l) => `[web] ${l.replace(/\n/g, ' ')}\n`).join(''));
      }),
    );
  });

  test('a host printing a line without end is passed on in prefixed pieces, not held whole', () => {
    const out: string[] = [];
    const p = linePrefixer('[web] ', (c) => out.push(c.toString()));
    p.write('a'.repeat(100 * 1024));
    expect(out).toEqual([`[web] ${'a'.repeat(64 * 1024)}\n`]);
    p.write('b\nnext\n');
    p.flush();
    expect(out).toEqual([
      `[web] ${'a'.repeat(64 * 1024)}\n`,
      `[web] ${'a'.repeat(36 * 1024)}b\n`,
      '[web] next\n',
    ]);
  });

  test('a carriage return cannot send a line back over its prefix: it starts a prefixed line of its own', () => {
    const out: string[] = [];
    const p = linePrefixer('[web] ', (c) => out.push(c.toString()));
    // A progress line redrawn with \r, a forged line for another host, a CRLF line end.
    p.write('copying 10%\rcopying 100%\n[db] all good\r\r\nend\r\n');
    p.flush();
    expect(out).toEqual([
      '[web] copying 10%\n',
      '[web] copying 100%\n',
      '[web] [db] all good\n',
      '[web] end\n',
    ]);
  });

  test("control characters after the prefix are shown escaped, as the project shows a stranger's text", () => {
    const out: string[] = [];
    const p = linePrefixer('[web] ', (c) => out.push(c.toString()));
    // Cursor up and clear the line, an OSC title, a C1 CSI, a bidi override; a tab stays.
    p.write('a\x1b[1A\x1b[2Kb\x1b]0;t\x07\u009b2K\u202ec\td\n');
    p.write('unfinished\x1b[K');
    p.flush();
    expect(out).toEqual([
      '[web] a\\e[1A\\e[2Kb\\e]0;t\\x07\\x9b2K\\u{202e}c\td\n',
      '[web] unfinished\\e[K\n',
    ]);
    // Whatever the bytes, every line written starts with the prefix and holds no control
    // character but the tab and its final newline.
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.integer({ min: 1, max: 9 }), (bytes, size) => {
        const lines: string[] = [];
        const q = linePrefixer('[web] ', (c) => lines.push(c.toString()));
        for (let i = 0; i < bytes.length; i += size) q.write(bytes.subarray(i, i + size));
        q.flush();
        for (const line of lines) {
          expect(line.startsWith('[web] ')).toBe(true);
          expect(line.endsWith('\n')).toBe(true);
          expect(unsafeCharacter(line.slice(0, -1).replace(/\t/g, ' '))).toBeUndefined();
        }
      }),
    );
  });

  // What a host sent can end up inside one of our messages (the tail of its stderr in an error,
  // an error it reported): each line of the message keeps the host's prefix, so a line of the
  // host's cannot pass for another host's result, nor for nix-plan's own; control characters are
  // the logger's to escape (a terminal's below).
  const FORGED =
    'web: the probe stopped (exit code 1): connection reset\n[db] switched\ndeploy finished\x1b[2K\r';

  test('several hosts: every line of a message about a host is prefixed (the library default)', () => {
    const lines: string[] = [];
    const log = {
      info: (m: string) => lines.push(`info: ${m}`),
      warn: (m: string) => lines.push(`warn: ${m}`),
      debug: (m: string) => lines.push(`debug: ${m}`),
    };
    const out = defaultOutputs({ runner: { run: () => Promise.reject(new Error('no')) }, log }, true)('web');
    out.log.warn(FORGED);
    out.log.info('one line');
    out.done();
    expect(lines).toEqual([
      `warn: [web] web: the probe stopped (exit code 1): connection reset\n[web] [db] switched\n[web] deploy finished\x1b[2K\r`,
      'info: [web] one line',
    ]);
    // One host: no prefix, the message as it is.
    const single: string[] = [];
    defaultOutputs(
      {
        runner: { run: () => Promise.reject(new Error('no')) },
        log: { ...log, warn: (m) => single.push(m) },
      },
      false,
    )('web').log.warn(FORGED);
    expect(single).toEqual([FORGED]);
  });

  test('several hosts on the command line: each line prefixed, control characters shown', async () => {
    let err = '';
    const code = await main(['deploy', 'p', '--host', 'web=root@w', '--host', 'db=root@d'], {
      io: { stdout: { write: () => true }, stderr: { write: (c: string) => (err += c) } },
      useCases: {
        deployPlan: (_b, _options, deps) => {
          const out = deps.hostOutputs?.('web');
          out?.log.warn(FORGED);
          out?.done();
          return Promise.resolve(deployResult({ digest: '' }));
        },
      },
    });
    expect(code).toBe(0);
    expect(err).toBe(
      'warning: [web] web: the probe stopped (exit code 1): connection reset\n[web] [db] switched\n[web] deploy finished\\e[2K\\r\n',
    );
    expect(err.split('\n').filter((l) => l.startsWith('[db]'))).toEqual([]);
  });

  test('one host: its output passes through as it printed it (no prefix to protect)', () => {
    const out: string[] = [];
    const p = linePrefixer('', (c) => out.push(c.toString()));
    p.write('10%\r100%\x1b[K\n');
    expect(out).toEqual(['10%\r100%\x1b[K\n']);
  });

  test('the final table: host, generation, result, time', () => {
    const result: DeployResult = {
      bundle: 'p',
      digest: 'sha256:x',
      storeDir: S,
      signedBy: ['ci'],
      trust: SIGNED_BY_CI,
      manifest: MANIFEST,
      ok: false,
      hosts: [
        {
          name: 'web',
          target: 'root@w',
          action: 'switch',
          outcome: 'switched',
          generation: 3,
          previousGeneration: 2,
          seconds: 12.34,
        },
        {
          name: 'db',
          target: 'root@d',
          action: 'switch',
          outcome: 'rolled-back',
          generation: 7,
          previousGeneration: 7,
          seconds: 8.1,
          error: { code: 'activation', message: 'x' },
        },
        {
          name: 'new',
          target: 'root@n',
          action: 'switch',
          outcome: 'rolled-back',
          seconds: 3,
          error: { code: 'activation', message: 'x' },
        },
        {
          name: 'cache',
          target: 'root@c',
          action: 'switch',
          outcome: 'needs-attention',
          generation: 4,
          seconds: 5,
          error: { code: 'attention', message: 'x' },
        },
        { name: 'mail', target: 'root@m', action: 'switch', outcome: 'skipped', seconds: 0 },
      ],
    };
    // A failed host's result says where it was left: rolled back to which generation, or undone.
    expect(formatDeploy(result)).toBe(
      [
        'HOST   GENERATION  RESULT                                    TIME',
        'web    3 (was 2)   switched                                  12.3 s',
        'db     7           FAILED, rolled back to 7                  8.1 s',
        'new    -           FAILED, undone (no generation before it)  3.0 s',
        'cache  4           FAILED, NEEDS ATTENTION                   5.0 s',
        'mail   -           skipped                                   -',
        '',
      ].join('\n'),
    );
  });
});

describe('what changes on a host', () => {
  const p = (hash: string, name: string, narSize = 1024): ClosurePath => ({
    path: `${S}/${hash.repeat(32)}-${name}`,
    narSize,
  });
  const oldSystem = p('1', 'nixos-system-web-24.05');
  const newSystem = p('2', 'nixos-system-web-24.11');
  const shared = p('3', 'glibc-2.39', 5000);
  const old = [oldSystem, shared, p('4', 'openssl-3.0.12'), p('5', 'openssl-3.0.12-dev'), p('6', 'gone-1')];
  const now = [
    newSystem,
    shared,
    p('7', 'openssl-3.0.13'),
    p('8', 'openssl-3.0.13-dev'),
    p('9', 'hello-2.12', 3072),
  ];

  test('output names are stripped as `nix store diff-closures` strips them, names read as parseDrvName reads them', () => {
    expect(splitOutputName('openssl-3.0.13-dev')).toEqual({ name: 'openssl-3.0.13', output: 'dev' });
    expect(splitOutputName('gcc-13.2.0-lib64')).toEqual({ name: 'gcc-13.2.0', output: 'lib64' });
    expect(splitOutputName('nixos-system-web-24.11')).toEqual({
      name: 'nixos-system-web-24.11',
      output: 'out',
    });
    expect(splitOutputName('etc')).toEqual({ name: 'etc', output: 'out' });
  });

  test('a version bump, an added and a removed package, closure counts and sizes', () => {
    const c = hostChanges(
      {
        current: '/nix/var/nix/profiles/system-11-link',
        currentSystem: oldSystem.path,
        old,
        oldInvalid: false,
        new: now,
      },
      newSystem.path,
    );
    expect(c.status).toBe('changed');
    expect(c.previous).toEqual({ generation: 11, system: oldSystem.path });
    expect(c.closure).toEqual({
      old: { paths: 5, bytes: 9096 },
      new: { paths: 5, bytes: 11144 },
      added: 4,
      removed: 4,
    });
    expect(c.packages.map((x) => [x.name, x.change, x.old.versions, x.new.versions])).toEqual([
      ['gone', 'removed', ['1'], []],
      ['hello', 'added', [], ['2.12']],
      ['nixos-system-web', 'upgrade', ['24.05'], ['24.11']],
      ['openssl', 'upgrade', ['3.0.12'], ['3.0.13']],
    ]);
    // openssl's out and dev are one package; its paths are listed on each side.
    expect(c.packages[3]?.new.paths).toEqual([now[2]?.path, now[3]?.path]);
    const lines = changesLines('web', c);
    expect(lines.join('\n')).toBe(
      [
        `Changes on web: generation 11 (${oldSystem.path}) → ${newSystem.path}`,
        '  2 version changes (2 upgrades), 1 added, 1 removed; closure 5 → 5 paths (4 added, 4 removed), 8.9 KiB → 10.9 KiB (+2.0 KiB)',
        '  Version changes:',
        '    [U] nixos-system-web  24.05 → 24.11',
        '    [U] openssl           3.0.12 → 3.0.13',
        '  Added packages:',
        '    [A] hello  2.12',
        '  Removed packages:',
        '    [R] gone  1',
        '',
      ].join('\n'),
    );
  });

  test('first deployment, the same system again, a current system missing from the store', () => {
    const first = hostChanges({ oldInvalid: false, new: now }, newSystem.path);
    expect(first).toMatchObject({ status: 'first', previous: undefined, counts: { added: 4 } });
    expect(changesLines('web', first)).toEqual([
      `Changes on web: no generation yet → ${newSystem.path}`,
      "  first deployment: the profile has no generation to compare with; the new system's closure is 5 paths, 10.9 KiB (4 packages)",
      '',
    ]);
    const same = hostChanges(
      { current: '/p-3-link', currentSystem: newSystem.path, old: now, oldInvalid: false, new: now },
      newSystem.path,
    );
    expect(same).toMatchObject({ status: 'unchanged', packages: [], closure: { added: 0, removed: 0 } });
    const unknown = hostChanges(
      { current: '/p-3-link', currentSystem: oldSystem.path, oldInvalid: true, new: now },
      newSystem.path,
    );
    expect(unknown.status).toBe('unknown');
    expect(unknown.closure.old).toBeUndefined();
  });

  test("the host's closure lines are checked: a store path of the plan's store dir and a size, or refused", () => {
    const ok: [string, string][] = [
      ['current', '/nix/var/nix/profiles/system-2-link'],
      ['current-system', oldSystem.path],
      ['old', `1024 ${oldSystem.path}`],
      ['new', `2048 ${newSystem.path}`],
      ['end', ''],
    ];
    expect(parseClosures(ok, S, 'h')).toEqual({
      current: '/nix/var/nix/profiles/system-2-link',
      currentSystem: oldSystem.path,
      old: [{ path: oldSystem.path, narSize: 1024 }],
      oldInvalid: false,
      new: [{ path: newSystem.path, narSize: 2048 }],
    });
    const bad = (lines: [string, string][]): unknown => {
      try {
        return parseClosures(lines, S, 'h');
      } catch (e) {
        return (e as Error).message;
      }
    };
    expect(bad([['new', `x ${newSystem.path}`]])).toMatch(/^h: the host sent a line without a size/);
    expect(bad([['new', `1 /elsewhere/${'a'.repeat(32)}-x`]])).toMatch(/a path outside \/nix\/store/);
    expect(bad([['new', `1 ${S}/${'a'.repeat(32)}-x\x1b[2J`]])).toMatch(/not a store path/);
    expect(
      bad([
        ['current', '/p-1-link\r'],
        ['new', `1 ${newSystem.path}`],
      ]),
    ).toMatch(/control characters/);
    expect(bad([['end', '']])).toMatch(/no path of the new system/);
  });
});

describe('the deploy action settings', () => {
  const KEY =
    '-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAA\nQyNTUxOQAAACAGWQYvyDBuZ\n-----END OPENSSH PRIVATE KEY-----';
  const reader =
    (inputs: Record<string, string>) =>
    (name: string): string =>
      inputs[name] ?? '';
  const env = (): undefined => undefined;

  test('hosts, key (normalised, CRLF accepted) and known-hosts are read; the rest defaults', () => {
    const s = parseDeploySettings(
      reader({
        hosts: 'web=root@10.0.0.5\n# a comment\ndb=root@10.0.0.6:2222\n',
        'ssh-private-key': KEY.replace(/\n/g, '\r\n'),
        'known-hosts': '10.0.0.5 ssh-ed25519 AAAA',
        'trusted-keys': 'ci:' + Buffer.alloc(32, 1).toString('base64'),
      }),
      env,
    );
    expect(s.hosts.map((h) => h.name)).toEqual(['web', 'db']);
    expect(s.hosts[1]?.target).toEqual({ user: 'root', host: '10.0.0.6', port: 2222 });
    expect(s.sshPrivateKey).toBe(`${KEY}\n`);
    expect(s).toMatchObject({
      action: 'switch',
      buildOn: 'host',
      keepGoing: false,
      allowUnknownHosts: false,
    });
  });

  test('known-hosts is required unless explicitly opted out; a bad key is refused without echoing it', () => {
    expect(() => parseDeploySettings(reader({ hosts: 'h' }), env)).toThrow(
      /^input "known-hosts": is required/,
    );
    expect(
      parseDeploySettings(reader({ hosts: 'h', 'allow-unknown-hosts': 'true' }), env).knownHosts,
    ).toBeUndefined();
    const secret = 'not-a-key-but-a-secret-value';
    let message = '';
    try {
      parseDeploySettings(reader({ hosts: 'h', 'known-hosts': 'x', 'ssh-private-key': secret }), env);
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toMatch(/^input "ssh-private-key": is not a private key/);
    expect(message).not.toContain(secret);
    expect(() => parseDeploySettings(reader({ 'known-hosts': 'x' }), env)).toThrow(
      /^input "hosts": is required/,
    );
    expect(() => parseDeploySettings(reader({ hosts: '-oProxyCommand', 'known-hosts': 'x' }), env)).toThrow(
      /^input "hosts": bad host/,
    );
  });

  test('the summary: who signed the plan and where it came from, a row per host, failures spelled out', () => {
    const md = deploySummary('plan.nixplan', {
      bundle: 'p',
      digest: 'sha256:ab',
      storeDir: S,
      signedBy: ['ci'],
      trust: SIGNED_BY_CI,
      manifest: MANIFEST,
      ok: false,
      hosts: [
        {
          name: 'web',
          target: 'root@w',
          action: 'switch',
          outcome: 'switched',
          generation: 3,
          previousGeneration: 2,
          seconds: 1.5,
          currentSystem: '/nix/store/x-nixos-system-web',
          changes: hostChanges(
            {
              current: '/nix/var/nix/profiles/system-2-link',
              currentSystem: `${S}/${'1'.repeat(32)}-nixos-system-web-1`,
              old: [
                `${'1'.repeat(32)}-nixos-system-web-1`,
                `${'3'.repeat(32)}-hello-1.0`,
                `${'5'.repeat(32)}-gone-1`,
              ].map((b) => ({ path: `${S}/${b}`, narSize: 100 })),
              oldInvalid: false,
              new: [
                `${'2'.repeat(32)}-nixos-system-web-2`,
                `${'4'.repeat(32)}-hello-1.1`,
                `${'6'.repeat(32)}-new-1`,
              ].map((b) => ({ path: `${S}/${b}`, narSize: 100 })),
            },
            `${S}/${'2'.repeat(32)}-nixos-system-web-2`,
          ),
        },
        {
          name: 'db',
          target: 'root@d',
          action: 'switch',
          outcome: 'rolled-back',
          generation: 7,
          seconds: 2,
          error: {
            code: 'activation',
            message: 'switch-to-configuration switch exited with 1: <img src=x>\n\x1b[2J @here',
          },
        },
      ],
    });
    expect(md).toContain('| web | 3 (was 2) | ✅ switched | 1.5 s | `/nix/store/x-nixos-system-web` |');
    expect(md).toContain('| db | 7 | ❌ failed, rolled back to 7 | 2.0 s |');
    // The message quotes the host's output: escaped, on one line.
    expect(md).toContain('- `db`: `switch-to-configuration switch exited with 1: <img src=x> \\e[2J @here`');
    // What changes on web, for the reviewer: the generation replaced, counts, version changes.
    expect(md).toContain('### Changes on `web` (switch)');
    expect(md).toContain(
      `generation 2 \`${S}/${'1'.repeat(32)}-nixos-system-web-1\` → \`${S}/${'2'.repeat(32)}-nixos-system-web-2\``,
    );
    expect(md).toContain(
      '**2 version changes (2 upgrades), 1 added, 1 removed; closure 3 → 3 paths (3 added, 3 removed), 300 B → 300 B (±0 B)**',
    );
    expect(md).toContain('| `hello` | ⬆ upgrade | `1.0 → 1.1` |  |');
    expect(md).toContain('<details><summary>Added and removed packages (2)</summary>');
    expect(md).not.toContain('### Changes on `db`');
    expect(md).toContain('Plan `sha256:ab`: **verified**: signed by trusted key `ci`.');
    expect(md).toContain('| repository | `owner/infra` |');
    expect(md).toContain(`| commit | \`${'c'.repeat(40)}\` |`);
    expect(md).toMatch(/\| created \| `2026-12-01T00:00:00Z` \(\d+ days? ago\) \|/);
    // How to undo it: for the host that is on a new generation, the one that was rolled back is not.
    expect(md).toContain(
      '### To undo\n\n`web` is on a new generation now. Run this action again with `rollback: true`',
    );
  });

  test('the summary says how to undo a switch or a boot, and only when a profile moved', () => {
    const host = (
      name: string,
      action: HostResult['action'],
      outcome: HostResult['outcome'],
      generations: Pick<HostResult, 'generation' | 'previousGeneration'> = {
        generation: 3,
        previousGeneration: 2,
      },
    ): HostResult => ({
      name,
      target: `root@${name}`,
      action,
      outcome,
      seconds: 1,
      ...generations,
    });
    const undo = (hosts: HostResult[]): string | undefined =>
      /### To undo\n\n(.*)\n/.exec(deploySummary('plan.nixplan', deployResult({ hosts })))?.[1];
    expect(undo([host('a', 'switch', 'switched'), host('b', 'boot', 'booted')])).toMatch(
      /^`a`, `b` are on a new generation now\. .*`rollback: true`.*the highest-numbered generation below its current one/,
    );
    for (const [action, outcome] of [
      ['dry-activate', 'dry-activated'],
      ['push', 'pushed'],
      ['test', 'tested'],
      ['switch', 'rolled-back'],
      ['switch', 'needs-attention'],
      ['switch', 'failed'],
      ['switch', 'skipped'],
    ] as const)
      expect(undo([host('a', action, outcome)])).toBeUndefined();
    // The system the profile already held makes no generation; a first generation has none before
    // it: a rollback would undo an earlier deploy, or be refused, so neither is offered one.
    const summary = deploySummary(
      'plan.nixplan',
      deployResult({
        hosts: [
          host('a', 'switch', 'switched', { generation: 4, previousGeneration: 4 }),
          host('b', 'boot', 'booted', { generation: 1 }),
          host('c', 'switch', 'switched', { generation: 1 }),
        ],
      }),
    );
    expect(summary).not.toContain('on a new generation now');
    expect(summary).toContain(
      '### To undo\n\n`a`: the profile already held this system, so no generation was made and there is none of ' +
        'this deploy to undo (`rollback: true` would go back past it, to the generation below).\n\n' +
        '`b`, `c` have the first generation of their profile: there is none before it to roll back to.\n',
    );
  });

  test("the host table shows a host's system only where it is known: none for a host refused before activating", () => {
    const planSystem = `/nix/store/${'p'.repeat(32)}-nixos-system-web-24.05`;
    const oldSystem = `/nix/store/${'o'.repeat(32)}-nixos-system-web-24.04`;
    const row = (h: Partial<HostResult> & Pick<HostResult, 'outcome'>): string => {
      const md = deploySummary(
        'plan.nixplan',
        deployResult({
          hosts: [
            { name: 'web', target: 'root@web', action: 'switch', seconds: 1, system: planSystem, ...h },
          ],
        }),
      );
      return md.split('\n').find((l) => l.startsWith('| web |')) ?? '';
    };
    expect(row({ outcome: 'failed', error: { code: 'realm', message: 'refused' } })).not.toContain(
      planSystem,
    );
    expect(row({ outcome: 'skipped' })).not.toContain(planSystem);
    expect(row({ outcome: 'rolled-back', currentSystem: oldSystem })).toContain(oldSystem);
    expect(row({ outcome: 'rolled-back', currentSystem: oldSystem })).not.toContain(planSystem);
    expect(row({ outcome: 'switched', currentSystem: planSystem })).toContain(planSystem);
    expect(row({ outcome: 'pushed' })).toContain(planSystem);
  });

  test('the summary says when the plan was taken from where nothing pins it (allow-unpinned-source)', () => {
    const result = deployResult();
    expect(deploySummary('plan.nixplan', result)).not.toContain('NOT PINNED');
    expect(deploySummary('/srv/p.nixplan', result, new Date(), 'a bundle file ("bundle")')).toContain(
      '**NOT PINNED (allow-unpinned-source)**: this plan was taken from a bundle file ("bundle") with neither `digest` nor `trusted-keys`',
    );
  });

  test("the summary's heading: a bundle path from an input cannot end it and write Markdown of its own", () => {
    const label = 'plans/web.nixplan`\n\n# ✅ verified <img src=x onerror=alert(1)> @here\r\x1b[2J';
    const md = deploySummary(label, deployResult({ bundle: label }));
    const [heading, next] = md.split('\n');
    expect(heading).toBe(
      '## nix-plan deploy: ``plans/web.nixplan`\\n\\n# ✅ verified <img src=x onerror=alert(1)> @here\\r\\e[2J``',
    );
    expect(next).toBe('');
    expect(md).not.toMatch(/^# /m);
  });
});
