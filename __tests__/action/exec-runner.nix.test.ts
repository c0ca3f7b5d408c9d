// The actions' runner: real Nix (2.8 and 2.34) through the real @actions/exec — the `[command]`
// line, stdout as data (not echoed), stderr passed on only when asked, failures as NixCommandErrors
// — and the one streamed input handed to the streaming runner.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ExecRunner } from '../../src/action/exec-runner.js';
import { NixCommandError } from '../../src/nix/errors.js';
import { FileInput, type CommandRunner, type RunOptions, type RunResult } from '../../src/nix/runner.js';
import { nixVersions, ScratchStore } from '../support/nix.js';

describe.each(nixVersions())('ExecRunner with Nix $label', (version) => {
  let s: ScratchStore;
  let echoed: string;
  let runner: ExecRunner;
  beforeAll(() => {
    s = new ScratchStore(version);
  });
  afterAll(() => s.dispose());
  const fresh = (streaming?: CommandRunner): ExecRunner => {
    echoed = '';
    runner = new ExecRunner({
      binDir: version.binDir,
      env: s.env,
      echo: (t) => (echoed += t),
      ...(streaming === undefined ? {} : { streaming }),
    });
    return runner;
  };

  test('echoes the [command] line, returns stdout as data without echoing it', async () => {
    const r = await fresh().run('nix-store', ['--version']);
    expect(r.code).toBe(0);
    expect(r.stdout.toString('utf8')).toMatch(
      new RegExp(`^nix-store \\(Nix\\) ${version.label.replace('.', '\\.')}\\.`),
    );
    expect(echoed).toMatch(/^\[command\]\S*nix-store --version\n$/);
  });

  test('the store is the scratch store (binDir and environment reach Nix)', async () => {
    const { stdout } = await fresh().run('nix-instantiate', ['--eval', '--json', '-E', 'builtins.storeDir']);
    expect(JSON.parse(stdout.toString('utf8'))).toBe(s.storeDir);
  });

  test('a failure is a NixCommandError with the stderr tail, or pointing above when it was passed on', async () => {
    const args = ['--eval', '-E', 'throw "MARKER-of-a-failure"'];
    const error = await fresh()
      .run('nix-instantiate', args)
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(NixCommandError);
    expect((error as NixCommandError).message).toMatch(/failed with exit code 1:\n.*MARKER-of-a-failure/s);
    let shown = '';
    const passedOn = await fresh()
      .run('nix-instantiate', args, { onStderr: (c) => (shown += Buffer.from(c).toString()) })
      .catch((e: unknown) => e);
    expect(shown).toContain('MARKER-of-a-failure');
    expect((passedOn as Error).message).toMatch(/failed with exit code 1 \(its output is above\)$/);
    const allowed = await fresh().run('nix-instantiate', args, { allowFailure: true });
    expect(allowed.code).toBe(1);
    expect(allowed.stderr).toContain('MARKER-of-a-failure');
  });

  test('bytes go in through exec; a streamed input goes to the streaming runner', async () => {
    // An empty export stream (one u64 0) imports nothing; a truncated one shows the bytes arrived.
    const empty = await fresh().run('nix-store', ['--import'], { input: new Uint8Array(8) });
    expect(empty.code).toBe(0);
    const truncated = new Uint8Array(8);
    truncated[0] = 1;
    const bad = await fresh().run('nix-store', ['--import'], { input: truncated, allowFailure: true });
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/end.of.file|EOF/i);

    const calls: [string, readonly string[], RunOptions | undefined][] = [];
    const streaming: CommandRunner = {
      run: (cmd, args, options): Promise<RunResult> => {
        calls.push([cmd, args, options]);
        return Promise.resolve({ code: 0, stdout: Buffer.alloc(0), stderr: '' });
      },
    };
    const dir = mkdtempSync(join(tmpdir(), 'nix-plan-exec-'));
    try {
      writeFileSync(join(dir, 'stream'), 'x');
      const input = new FileInput(join(dir, 'stream'));
      await fresh(streaming).run('nix-store', ['--import'], { input });
      expect(calls).toEqual([['nix-store', ['--import'], { input }]]);
      expect(echoed).toBe('[command]nix-store --import\n');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a program that is not there is a nix error saying so', async () => {
    await expect(fresh().run('nix-no-such-tool', [])).rejects.toMatchObject({
      code: 'nix',
      message: expect.stringMatching(/cannot run nix-no-such-tool: .*is Nix installed and on PATH/),
    });
  });
});
