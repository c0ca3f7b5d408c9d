// A genuine plan with a .drv only a newer Nix reads (git-hashed, made by Nix 2.34 with the feature
// on), deployed to a host whose probe reports an older Nix: refused for that host before the host
// is told to import anything. The host is a recording stand-in: what matters is what it is sent.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger, type Logger } from '../../src/app/deps.js';
import { exportPlan } from '../../src/app/export.js';
import { deployPlan } from '../../src/app/deploy/index.js';
import { HOST_PROGRAM_NAME } from '../../src/nix/host-script.js';
import { FileInput } from '../../src/nix/runner.js';
import type { HostRunOptions, HostRunResult, HostShell } from '../../src/nix/ssh.js';
import { nixVersions, ScratchStore } from '../support/nix.js';

const v234 = nixVersions().find((v) => v.label === '2.34');

/** A host that answers the probe with `nix`, accepts any plan, and records each phase and its input. */
class RecordingHost implements HostShell {
  readonly remote = true;
  readonly label = 'old';
  readonly phases: string[] = [];
  readonly received: Buffer[] = [];
  constructor(
    private readonly nix: string,
    private readonly storeDir: string,
  ) {}

  async run(argv: readonly string[], options: HostRunOptions = {}): Promise<HostRunResult> {
    const phase = argv[argv.indexOf(HOST_PROGRAM_NAME) + 1] ?? '';
    this.phases.push(phase);
    const input = options.input;
    let stdin = Buffer.alloc(0);
    try {
      if (input instanceof FileInput) stdin = await readFile(input.path);
      else if (input instanceof Uint8Array) stdin = Buffer.from(input);
      else if (input !== undefined) {
        const chunks: Buffer[] = [];
        for await (const c of input) chunks.push(Buffer.from(c));
        stdin = Buffer.concat(chunks);
      }
    } catch (e) {
      // The stream failed instead of ending with the go signal: a real host imports nothing.
      return { code: 1, stdout: Buffer.from(''), stderr: (e as Error).message };
    }
    if (phase === 'receive') this.received.push(stdin);
    const lines =
      phase === 'probe'
        ? [
            'protocol 1',
            'uid 0',
            `nix nix-store (Nix) ${this.nix}`,
            `store-dir ${JSON.stringify(this.storeDir)}`,
          ].concat(['systemd 0', 'zstd 0', 'end'])
        : phase === 'receive'
          ? ['imported 1', 'end']
          : ['error host not answering'];
    return { code: 0, stdout: Buffer.from(lines.map((l) => `@nix-plan ${l}\n`).join('')), stderr: '' };
  }
}

(v234 === undefined ? describe.skip : describe)('deploying a plan a host Nix cannot read', () => {
  const work = mkdtempSync(join(tmpdir(), 'nix-plan-deploy-shapes-'));
  let maker: ScratchStore;
  let plan: string;

  beforeAll(async () => {
    maker = new ScratchStore(v234!, {
      root: join(work, 'maker'),
      extraConf: 'experimental-features = nix-command flakes git-hashing\n',
    });
    writeFileSync(
      join(work, 'git.nix'),
      `builtins.derivation { name = "shape-git"; system = builtins.currentSystem; builder = "/bin/sh";
         args = [ "-c" "echo git > $out" ]; outputHashMode = "git"; outputHashAlgo = "sha1";
         outputHash = "0000000000000000000000000000000000000000"; }`,
    );
    const [drv] = await maker.instantiate(join(work, 'git.nix'));
    plan = join(work, 'git.nixplan');
    await exportPlan(
      { drvPaths: [drv!], output: plan, include: 'drvs' },
      { runner: maker.runner, log: silentLogger },
    );
  }, 300_000);
  afterAll(() => {
    maker?.wipe();
    rmSync(work, { recursive: true, force: true });
  });

  async function push(
    nix: string,
  ): Promise<{ host: RecordingHost; result: Awaited<ReturnType<typeof deployPlan>>; warnings: string[] }> {
    const host = new RecordingHost(nix, maker.storeDir);
    const warnings: string[] = [];
    const log: Logger = { ...silentLogger, warn: (m: string) => void warnings.push(m) };
    const result = await deployPlan(
      plan,
      { hosts: [{ target: { host: 'old' } }], profile: '/nix/var/nix/profiles/system', action: 'push' },
      { runner: maker.runner, log, shellFor: () => host },
    );
    return { host, result, warnings };
  }

  test('a host on Nix 2.8 is refused the git-hashed plan: it is told to import nothing', async () => {
    const { host, result } = await push('2.8.0');
    expect(result.ok).toBe(false);
    expect(result.hosts[0]?.error?.code).toBe('bundle');
    expect(result.hosts[0]?.error?.message).toMatch(
      /derivation '[^']*-shape-git\.drv' output 'out' is a git-hashed output \('git:'\), which Nix reads only from 2\.21 on, with the experimental feature 'git-hashing'; the host old runs Nix 2\.8\.0, which cannot read it/,
    );
    // The plan may have been sent while it was verified, but never followed by the go signal.
    expect(host.received.every((b) => !b.toString('latin1').includes('@nix-plan-verified'))).toBe(true);
  });

  test('a host on Nix 2.34 gets it, with a warning that its features were not asked', async () => {
    const { host, result, warnings } = await push('2.34.0');
    expect(result.hosts[0]?.error).toBeUndefined();
    expect(host.phases).toContain('receive');
    expect(warnings.join('\n')).toContain(
      "'git-hashing': not checked (what the host old accepts cannot be asked)",
    );
  });
});
