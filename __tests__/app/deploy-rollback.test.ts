// `deploy --rollback` and `apply --rollback` without Nix or SSH: where a rollback goes and when it
// is refused, what the last-applied record says afterwards, how the command line and the action
// take it, and how the results are shown. The real thing runs in deploy.nix and apply.nix.
import { describe, expect, test } from '@jest/globals';
import { rollbackSummary } from '../../src/action/deploy.js';
import { parseDeploySettings } from '../../src/action/deploy-settings.js';
import { silentLogger } from '../../src/app/deps.js';
import { rolledBackRecord, rollbackStep } from '../../src/app/deploy/rollback.js';
import type { RollbackResult } from '../../src/app/deploy/types.js';
import { formatDeploy } from '../../src/cli/deploy-command.js';
import { main } from '../../src/cli/main.js';
import type { UseCases } from '../../src/cli/use-cases.js';
import { NixPlanError } from '../../src/core/errors.js';
import { parseLastApplied } from '../../src/core/freshness.js';
import { parseLastActivation, type HostProbe, type LastActivation } from '../../src/nix/host-markers.js';
import { lastActivationNotes } from '../../src/app/deploy/last-activation.js';

const S = '/nix/store';
const sys = (c: string, name: string): string => `${S}/${c.repeat(32)}-nixos-system-${name}`;
const P = '/nix/var/nix/profiles/system';
const probe = (extra: Partial<HostProbe>): HostProbe => ({
  nixVersion: '2.34.0',
  storeDir: S,
  uid: 0,
  systemd: false,
  zstd: true,
  ...extra,
});

describe('where a rollback goes', () => {
  test('from the current generation to the one the probe found below it', () => {
    expect(
      rollbackStep(
        probe({
          generation: `${P}-12-link`,
          system: sys('2', 'web-2'),
          previousGeneration: `${P}-9-link`,
          previousSystem: sys('1', 'web-1'),
        }),
        'web',
        P,
      ),
    ).toEqual({
      from: `${P}-12-link`,
      fromGeneration: 12,
      fromSystem: sys('2', 'web-2'),
      to: 9,
      toSystem: sys('1', 'web-1'),
    });
  });

  test('nothing to go back to is refused by name (usage, exit 2)', () => {
    const refused = (p: HostProbe): NixPlanError => {
      try {
        rollbackStep(p, 'web', P);
      } catch (e) {
        return e as NixPlanError;
      }
      throw new Error('not refused');
    };
    const none = refused(probe({}));
    expect(none.code).toBe('usage');
    expect(none.message).toBe(
      `web: profile '${P}' has no generation, so there is nothing to roll back; nothing was changed`,
    );
    const one = refused(probe({ generation: `${P}-1-link`, system: sys('1', 'web-1') }));
    expect(one.code).toBe('usage');
    expect(one.message).toBe(
      `web: profile '${P}' has no generation before the current one (1) to roll back to; nothing was changed`,
    );
    // A generation link that points at nothing readable: the host's problem, not a usage error.
    const dangling = refused(probe({ generation: `${P}-2-link`, previousGeneration: `${P}-1-link` }));
    expect(dangling.code).toBe('host');
    // A generation that is a link to a link (or to a directory outside the store) is no system
    // nix-env made: what the comparison shows could change under it before it is activated.
    for (const previousSystem of [`${P}-0-link`, '/tmp/system', `/elsewhere/store/${'1'.repeat(32)}-x`]) {
      const odd = refused(
        probe({
          generation: `${P}-2-link`,
          system: sys('2', 'web-2'),
          previousGeneration: `${P}-1-link`,
          previousSystem,
        }),
      );
      expect(odd.code).toBe('host');
      expect(odd.message).toBe(
        `web: generation 1 of '${P}' (system-1-link) is not a link to a system in ${S}; nothing was changed`,
      );
    }
  });
});

describe('the last-applied record after a rollback', () => {
  const step = {
    from: `${P}-4-link`,
    fromGeneration: 4,
    fromSystem: sys('4', 'b'),
    to: 3,
    toSystem: sys('3', 'a'),
  };
  const record = {
    version: 1,
    createdAt: '2026-12-06T10:00:00Z',
    digest: `sha256:${'a'.repeat(64)}`,
    checksum: 'b'.repeat(64),
    storeDir: S,
    roots: [`${S}/${'c'.repeat(32)}-nixos-system-b.drv`],
    appliedAt: '2026-12-06T11:00:00Z',
  };
  const at = new Date('2026-12-07T02:00:00Z');

  test('keeps the newest plan as the downgrade floor and says where the host went back to', () => {
    const bytes = new Uint8Array(Buffer.from(`${JSON.stringify(record)}\n`));
    const text = rolledBackRecord(bytes, step, at, P, silentLogger);
    expect(JSON.parse(text)).toEqual({
      ...record,
      rolledBack: { generation: 3, system: sys('3', 'a'), from: 4, at: '2026-12-07T02:00:00Z' },
    });
    // Still a record every reader takes, with the same floor.
    expect(parseLastApplied(text, 'x')).toEqual(record);
  });

  test('no record: none is written; an unreadable one is left alone, said so', () => {
    expect(rolledBackRecord(undefined, step, at, P, silentLogger)).toBe('');
    const warned: string[] = [];
    const log = { ...silentLogger, warn: (m: string) => warned.push(m) };
    expect(rolledBackRecord(new Uint8Array(Buffer.from('[1]')), step, at, P, log)).toBe('');
    expect(rolledBackRecord(new Uint8Array(Buffer.from('{"version":1}')), step, at, P, log)).toBe('');
    expect(warned).toEqual([
      `${P}.nix-plan.json is not a last-applied record: left as it is`,
      `${P}.nix-plan.json is not a last-applied record: left as it is`,
    ]);
  });

  test("a record with members of the host's own is written back with the record's members only", () => {
    // Nested 200,000 deep: JSON.stringify of the whole object ran out of stack (an internal error
    // after the comparison was shown, before activating).
    const deep = `${'['.repeat(200_000)}${']'.repeat(200_000)}`;
    const bytes = new Uint8Array(Buffer.from(`${JSON.stringify(record).slice(0, -1)},"x":${deep}}`));
    const text = rolledBackRecord(bytes, step, at, P, silentLogger);
    expect(JSON.parse(text)).toEqual({
      ...record,
      rolledBack: { generation: 3, system: sys('3', 'a'), from: 4, at: '2026-12-07T02:00:00Z' },
    });
  });
});

describe('the command line', () => {
  async function run(argv: string[]): Promise<{ code: number; err: string; calls: unknown[] }> {
    let err = '';
    const calls: unknown[] = [];
    const io = {
      stdout: { write: () => true },
      stderr: { write: (c: string | Uint8Array) => (err += c.toString()) },
    };
    const useCases: Partial<UseCases> = {
      deployRollback: (options) => {
        calls.push(options);
        return Promise.resolve({ rollback: true, profile: P, hosts: [], ok: true });
      },
    };
    const code = await main(argv, { io, useCases });
    return { code, err, calls };
  }

  test('--rollback takes no plan and no option about one; push has no meaning', async () => {
    for (const argv of [
      ['deploy', '--rollback', 'host.nixplan', '--host', 'root@h'],
      ['deploy', '--rollback', '--host', 'root@h', '--trusted-key', 'k:AAAA'],
      ['deploy', '--rollback', '--host', 'root@h', '--allow-downgrade'],
      ['deploy', '--rollback', '--host', 'root@h', '--action', 'push'],
    ]) {
      const r = await run(argv);
      expect(r.code).toBe(2);
      expect(r.calls).toEqual([]);
    }
    expect((await run(['deploy', '--rollback', 'x.nixplan', '--host', 'root@h'])).err).toMatch(
      /--rollback takes no BUNDLE/,
    );
  });

  test('the options a rollback has reach it', async () => {
    const r = await run([
      'deploy',
      '--rollback',
      '--host',
      'web=root@10.0.0.5',
      '--host',
      'db=root@10.0.0.6:2222',
      '--action',
      'boot',
      '--profile',
      'profiles/system',
      '--jobs',
      '2',
      '--keep-going',
      '--use-sudo',
      '--confirm-timeout',
      '5',
      '--ssh-option=-F./ssh_config',
    ]);
    expect(r.code).toBe(0);
    expect(r.calls).toEqual([
      expect.objectContaining({
        action: 'boot',
        profile: 'profiles/system',
        jobs: 2,
        keepGoing: true,
        useSudo: true,
        confirmTimeout: 5,
        sshOptions: ['-F./ssh_config'],
        hosts: [
          { name: 'web', target: { user: 'root', host: '10.0.0.5' } },
          { name: 'db', target: { user: 'root', host: '10.0.0.6', port: 2222 } },
        ],
      }),
    ]);
  });
});

describe('the deploy action', () => {
  const reader =
    (inputs: Record<string, string>) =>
    (name: string): string =>
      inputs[name] ?? '';
  const env = (): undefined => undefined;

  test('rollback: true is read; with push it is refused', () => {
    const base = { hosts: 'root@h', 'known-hosts': 'h ssh-ed25519 AAAA' };
    expect(parseDeploySettings(reader(base), env).rollback).toBe(false);
    expect(parseDeploySettings(reader({ ...base, rollback: 'true' }), env)).toMatchObject({
      rollback: true,
      action: 'switch',
    });
    expect(() => parseDeploySettings(reader({ ...base, rollback: 'true', action: 'push' }), env)).toThrow(
      /^input "action": push sends a plan/,
    );
  });
});

describe('how a rollback is shown', () => {
  const result: RollbackResult = {
    rollback: true,
    profile: P,
    ok: false,
    hosts: [
      {
        name: 'web',
        target: 'root@w',
        action: 'switch',
        outcome: 'switched',
        generation: 3,
        previousGeneration: 4,
        rollback: { from: 4, to: 3 },
        system: sys('3', 'web-3'),
        currentSystem: sys('3', 'web-3'),
        seconds: 4.25,
      },
      {
        name: 'db',
        target: 'root@d',
        action: 'switch',
        outcome: 'reverted',
        generation: 7,
        previousGeneration: 7,
        rollback: { from: 7, to: 6 },
        seconds: 2,
        error: { code: 'activation', message: 'switch-to-configuration switch exited with 1: …' },
      },
      {
        name: 'cache',
        target: 'root@c',
        action: 'switch',
        outcome: 'needs-attention',
        generation: 5,
        rollback: { from: 5, to: 4 },
        seconds: 3,
        error: { code: 'attention', message: 'switch-to-configuration switch exited with 1: …' },
      },
      {
        name: 'mail',
        target: 'root@m',
        action: 'switch',
        outcome: 'failed',
        seconds: 0.3,
        error: { code: 'usage', message: "mail: profile '…' has no generation before the current one (1)" },
      },
    ],
  };

  test('the table says which generation each host went back to', () => {
    expect(formatDeploy(result)).toBe(
      [
        'HOST   GENERATION  RESULT                            TIME',
        'web    3 (was 4)   rolled back to 3, switched        4.3 s',
        'db     7           rollback FAILED, 7 re-activated   2.0 s',
        'cache  5           rollback FAILED, NEEDS ATTENTION  3.0 s',
        'mail   -           FAILED                            0.3 s',
        '',
      ].join('\n'),
    );
  });

  test('a test or dry-activate of the previous generation does not read as a rollback', () => {
    const tried = (action: 'test' | 'dry-activate'): RollbackResult => ({
      ...result,
      hosts: [{ ...result.hosts[0]!, action, outcome: action === 'test' ? 'tested' : 'dry-activated' }],
    });
    expect(formatDeploy(tried('dry-activate'))).toMatch(
      /^web +3 \(was 4\) +generation 3 dry-activated, nothing changed +4\.3 s$/m,
    );
    expect(formatDeploy(tried('test'))).toMatch(/ generation 3 tested, profile unchanged /);
    expect(rollbackSummary(tried('dry-activate'))).toContain(
      '- `web`: dry-activate of generation 3 only; the profile was left at 4',
    );
  });

  test('the summary says it rolled back, from which generation to which', () => {
    const md = rollbackSummary(result);
    expect(md).toContain(`## nix-plan deploy: rollback of \`${P}\``);
    expect(md).toContain('- `web`: rolled back from generation 4 to 3 (switch)');
    expect(md).toContain('- `db`: **not rolled back** (from generation 7 to 6 was tried)');
    expect(md).toContain('- `mail`: **not rolled back**');
    expect(md).toMatch(/\| web \| 3 \(was 4\) \| ✅ switched \|/);
    // A rollback that failed and was undone never reads as a host rolled back.
    expect(md).toContain('| db | 7 | ❌ rollback failed, 7 re-activated | 2.0 s |');
    expect(md).toContain('| cache | 5 | 🚨 rollback failed, needs attention | 3.0 s |');
    expect(md).toContain('### Failures');
  });
});

describe('what the last activation left, said before the next deploy or rollback', () => {
  const id = '20261207T230300Z-0a1b2c3d';
  const markers = (extra: [string, string][] = []): [string, string][] => [
    ['last-activation', `act-${id}`],
    ['last-action', 'switch'],
    ['last-out', sys('3', 'web-3')],
    ['last-state', 'reverted'],
    ['last-switch-rc', '0'],
    ...extra,
  ];

  test("the probe's markers are read strictly; anything else is not reported at all", () => {
    expect(parseLastActivation(markers([['last-expired', '1']]), S)).toEqual({
      id,
      action: 'switch',
      out: sys('3', 'web-3'),
      state: 'reverted',
      switchRc: 0,
      expired: true,
      timedOut: false,
    });
    expect(parseLastActivation([], S)).toBeUndefined();
    for (const [key, value] of [
      ['last-activation', 'act-../../etc'],
      ['last-activation', id],
      ['last-action', 'dry-activate'],
      ['last-action', ''],
      ['last-state', 'lost'],
      ['last-state', 'reverted\u001b[2K'],
    ] as const)
      expect(parseLastActivation(markers([[key, value]]), S)).toBeUndefined();
    // A system outside the store, or with control characters, is not shown.
    expect(parseLastActivation(markers([['last-out', '/etc/passwd']]), S)?.out).toBeUndefined();
    expect(parseLastActivation(markers([['last-out', `${sys('3', 'web')}\u001b]`]]), S)?.out).toBeUndefined();
  });

  const notes = (last: Partial<LastActivation>, extra: Partial<HostProbe> = {}, rollback = false): string[] =>
    lastActivationNotes(
      probe({
        generation: `${P}-7-link`,
        system: sys('2', 'web-2'),
        lastActivation: {
          id,
          action: 'switch',
          out: sys('3', 'web-3'),
          state: 'done',
          expired: false,
          timedOut: false,
          ...last,
        },
        ...extra,
      }),
      'web',
      P,
      rollback,
    );
  const what = `web: the last activation here (switch of ${sys('3', 'web-3')}, started 2026-12-07T23:03:00Z)`;

  test('nothing when it ended as planned', () => {
    expect(notes({})).toEqual([]);
    expect(notes({ action: 'boot' })).toEqual([]);
    // A test of the system the profile names leaves nothing behind.
    expect(notes({ action: 'test', out: sys('2', 'web-2') })).toEqual([]);
    expect(lastActivationNotes(probe({}), 'web', P, true)).toEqual([]);
    // Still running: the busy refusal says so.
    expect(notes({ state: 'switching' }, { busy: '42' })).toEqual([]);
  });

  test('reverted by the watchdog, by a failure or a timeout; never finished; not undone', () => {
    expect(notes({ state: 'reverted', expired: true })).toEqual([
      `${what} was not confirmed in time: the host's watchdog re-activated the generation before it`,
    ]);
    expect(notes({ state: 'reverted', expired: true }, {}, true)).toEqual([
      `${what} was not confirmed in time: the host's watchdog re-activated the generation before it. ` +
        'The host runs generation 7 again, and a rollback goes one further back',
    ]);
    expect(notes({ state: 'reverted', switchRc: 4 })).toEqual([
      `${what} failed (switch-to-configuration exited with 4): the supervisor re-activated the generation before it`,
    ]);
    expect(notes({ state: 'reverted', timedOut: true })).toEqual([
      `${what} did not finish within its activation timeout: the supervisor re-activated the generation before it`,
    ]);
    expect(notes({ state: 'no-previous', switchRc: 1 })).toEqual([
      `${what} failed (switch-to-configuration exited with 1), and was undone; there was no generation before it to re-activate`,
    ]);
    expect(notes({ state: 'revert-failed', switchRc: 1 })).toEqual([
      `${what} failed, and re-activating the generation before it failed too: the host may need attention (${P}.nix-plan.d/act-${id}/log on the host)`,
    ]);
    expect(notes({ state: 'switching' })).toEqual([
      `${what} never finished: its supervisor is gone (was the host restarted?); see ${P}.nix-plan.d/act-${id}/log on the host`,
    ]);
  });

  test('a test the profile does not name: a rollback goes past it, and says so', () => {
    const tested = `web: the last activation here (test of ${sys('3', 'web-3')}, started 2026-12-07T23:03:00Z) is not in the profile: unless the host restarted since, it runs that system, not generation 7's`;
    expect(notes({ action: 'test' })).toEqual([tested]);
    expect(notes({ action: 'test' }, {}, true)).toEqual([
      `${tested}. A rollback goes from generation 7 to the one before it; it does not re-activate generation 7 ` +
        "(to undo only the test, run that generation's bin/switch-to-configuration switch on the host, or restart it)",
    ]);
  });
});
