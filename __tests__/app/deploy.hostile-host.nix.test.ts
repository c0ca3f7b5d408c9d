// A hostile host, against a real local store: a deploy target nix-plan does not control answers
// the host program's questions as it likes. What it answers may steer what it is shown, never
// what this machine runs or sends it beyond the plan's own system.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../../src/app/deps.js';
import { exportPlan } from '../../src/app/export.js';
import { deployPlan } from '../../src/app/deploy/index.js';
import { generateKeyPair } from '../../src/core/signing.js';
import { HOST_PROGRAM_NAME } from '../../src/nix/host-script.js';
import { FileInput } from '../../src/nix/runner.js';
import type { HostRunOptions, HostRunResult, HostShell } from '../../src/nix/ssh.js';
import { readFile } from 'node:fs/promises';
import { nixVersions, ScratchStore } from '../support/nix.js';
import { systemNix } from '../support/nixos-fixture.js';

const versions = nixVersions();
const describeNix = versions.length > 0 ? describe : describe.skip;

/** Everything a host command was given on standard input. */
async function drain(input: HostRunOptions['input']): Promise<Buffer> {
  if (input === undefined) return Buffer.alloc(0);
  if (input instanceof FileInput) return readFile(input.path);
  if (input instanceof Uint8Array) return Buffer.from(input);
  const chunks: Buffer[] = [];
  for await (const c of input) chunks.push(Buffer.from(c));
  return Buffer.concat(chunks);
}

/** A host that answers each phase of the host program with `answers[phase]`, and records what it got. */
class HostileHost implements HostShell {
  readonly remote = true;
  readonly label = 'evil';
  readonly phases: string[] = [];
  readonly received: Buffer[] = [];
  constructor(private readonly answers: Record<string, (stdin: Buffer) => string>) {}

  async run(argv: readonly string[], options: HostRunOptions = {}): Promise<HostRunResult> {
    const phase = argv[argv.indexOf(HOST_PROGRAM_NAME) + 1] ?? '';
    this.phases.push(phase);
    const stdin = await drain(options.input);
    if (phase === 'receive') this.received.push(stdin);
    const answer = this.answers[phase]?.(stdin) ?? '@nix-plan error host not answering\n';
    return { code: 0, stdout: Buffer.from(answer), stderr: '' };
  }
}

describeNix.each(versions.map((v) => [v.label, v] as const))('a hostile host, Nix %s', (_label, version) => {
  let work: string;
  let local: ScratchStore;
  let plan: string;
  let system: string;
  let secret: string;
  const key = generateKeyPair('ci-1');

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'nix-plan-hostile-host-'));
    local = new ScratchStore(version, { root: join(work, 'local') });
    const control = join(work, 'control');
    mkdirSync(control);
    const file = join(work, 'system.nix');
    writeFileSync(file, systemNix());
    const [drv] = await local.instantiateExpr(`import ${file} { label = "web"; control = "${control}"; }`);
    plan = join(work, 'web.nixplan');
    const { manifest } = await exportPlan(
      { drvPaths: [drv ?? ''], output: plan, signingKeys: [key.secretKey] },
      { runner: local.runner, log: silentLogger },
    );
    system = manifest.roots[0]?.outputs['out'] ?? '';
    // Built here (--build-on local), beside a path of this machine's store that is none of the
    // host's business: another host's configuration, a key someone put in the store.
    await local.run('nix-store', ['--realise', drv ?? '']);
    const secretFile = join(work, 'db-wireguard.key');
    writeFileSync(secretFile, 'SECRET-KEY-OF-ANOTHER-HOST\n');
    secret = (await local.run('nix-store', ['--add', secretFile])).stdout.toString('utf8').trim();
  }, 300_000);

  afterAll(() => {
    local?.dispose();
    if (work !== undefined) rmSync(work, { recursive: true, force: true });
  });

  const probe = (): string =>
    [
      'protocol 1',
      'uid 0',
      'nix nix-store (Nix) 2.34.0',
      `store-dir ${JSON.stringify(local.storeDir)}`,
      'systemd 0',
      'zstd 0',
      'end',
    ]
      .map((l) => `@nix-plan ${l}\n`)
      .join('');

  test('--build-on local sends only paths of the system it was asked about, whatever the host says is missing', async () => {
    // Asked which paths of the system's closure it lacks, the host names another path of this
    // machine's store, and an option for the local nix-store --export the answer was given to.
    for (const stray of [secret, '--option', `${local.storeDir}/../../etc/passwd`]) {
      const host = new HostileHost({
        probe,
        missing: (asked) =>
          `${asked
            .toString('utf8')
            .split('\n')
            .filter((p) => p !== '')
            .map((p) => `@nix-plan missing ${p}\n`)
            .join('')}@nix-plan missing ${stray}\n@nix-plan end\n`,
        receive: () => '@nix-plan imported 1\n@nix-plan end\n',
      });
      const before = await local.validPaths();
      const result = await deployPlan(
        plan,
        {
          hosts: [{ target: { host: 'evil' } }],
          profile: '/nix/var/nix/profiles/system',
          trustedKeys: [key.publicKey],
          buildOn: 'local',
        },
        {
          runner: local.runner,
          log: silentLogger,
          shellFor: () => host,
          realise: () => Promise.resolve(),
        },
      );
      expect(result.ok).toBe(false);
      expect(result.hosts[0]?.error).toEqual({
        code: 'host',
        message: expect.stringContaining(
          `evil: the host answered that ${JSON.stringify(stray)} is missing, a path it was not asked about (the closure of ${system}): refused, nothing was sent`,
        ) as unknown as string,
      });
      // Nothing went to the host: not the stray path, not the system.
      expect(host.phases).toEqual(['probe', 'missing']);
      expect(Buffer.concat(host.received).includes('SECRET-KEY-OF-ANOTHER-HOST')).toBe(false);
      expect(await local.validPaths()).toEqual(before);
    }
  }, 120_000);

  test("a host's error kind is one of ours: one named after Object's own members is the host's error", async () => {
    for (const kind of ['constructor', '__proto__', 'toString', 'hasOwnProperty']) {
      const evil = new HostileHost({ probe: () => `@nix-plan error ${kind} refused\n` });
      const good = new HostileHost({ probe });
      const before = await local.validPaths();
      const result = await deployPlan(
        plan,
        {
          hosts: [{ target: { host: 'evil' } }, { target: { host: 'good' } }],
          profile: '/nix/var/nix/profiles/system',
          trustedKeys: [key.publicKey],
          action: 'push',
          keepGoing: true,
        },
        {
          runner: local.runner,
          log: silentLogger,
          shellFor: (t) => (t.host === 'evil' ? evil : good),
        },
      );
      expect(result.ok).toBe(false);
      // A code the exit codes and --json know (a function or an object was neither).
      expect({ kind, error: result.hosts[0]?.error }).toEqual({
        kind,
        error: { code: 'host', message: 'evil: refused' },
      });
      expect(JSON.parse(JSON.stringify(result.hosts[0]?.error))).toEqual({
        code: 'host',
        message: 'evil: refused',
      });
      expect(await local.validPaths()).toEqual(before);
    }
  }, 120_000);
});
