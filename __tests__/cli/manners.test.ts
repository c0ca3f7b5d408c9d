// The command line's manners without Nix: the spinner for phases without a total, the -v count,
// what the verbose runner adds to which command, and --nix-arg reaching the use cases split.
import { describe, expect, test } from '@jest/globals';
import { main, verbosityOf } from '../../src/cli/main.js';
import { formatElapsed, terminalProgress, type CliIo } from '../../src/cli/terminal.js';
import type { UseCases } from '../../src/cli/use-cases.js';
import { VerboseRunner } from '../../src/cli/verbose-runner.js';
import type { CommandRunner, RunOptions, RunResult } from '../../src/nix/runner.js';

/** A terminal whose clock and timer the test drives. */
function terminal(): CliIo & { err: () => string; tick: (ms: number) => void; timers: () => number } {
  let err = '';
  let clock = 0;
  const timers = new Set<() => void>();
  return {
    stdout: { write: () => true, isTTY: true },
    stderr: { write: (s: string | Uint8Array) => (err += s.toString()), isTTY: true, columns: 80 },
    now: () => clock,
    every: (_ms, fn) => {
      timers.add(fn);
      return () => timers.delete(fn);
    },
    err: () => err,
    tick: (ms) => {
      clock += ms;
      for (const fn of timers) fn();
    },
    timers: () => timers.size,
  };
}

describe('the spinner', () => {
  test('a phase without a total shows a spinner with the elapsed time until it ends', () => {
    const io = terminal();
    const task = terminalProgress(io, { quiet: false, verbose: false }).start('evaluating with Nix 2.34.8');
    expect(io.timers()).toBe(1);
    io.tick(1500);
    expect(io.err().endsWith('\r⠙ evaluating with Nix 2.34.8 1.5 s\x1b[K')).toBe(true);
    io.tick(65_000);
    expect(io.err().endsWith('\r⠹ evaluating with Nix 2.34.8 1 min 06 s\x1b[K')).toBe(true);
    task.done();
    expect(io.timers()).toBe(0);
    expect(io.err().endsWith('\r\x1b[Kevaluating with Nix 2.34.8: in 1 min 06 s\n')).toBe(true);
    // Done twice, or ticks after, draw nothing more.
    const before = io.err();
    task.done();
    task.tick();
    expect(io.err()).toBe(before);
  });

  test('a phase with a total gets a bar and no timer; quiet and logs get no spinner', () => {
    const io = terminal();
    terminalProgress(io, { quiet: false, verbose: false }).start('importing', 10).done();
    expect(io.timers()).toBe(0);
    const quiet = terminal();
    const q = terminalProgress(quiet, { quiet: true, verbose: false }).start('evaluating');
    expect(quiet.timers()).toBe(0);
    q.done();
    expect(quiet.err()).toBe('');
    expect(formatElapsed(42)).toBe('0.0 s');
    expect(formatElapsed(3_600_000)).toBe('60 min 00 s');
  });
});

describe('verbosity', () => {
  test.each([
    [['x'], 0, false],
    [['-v'], 1, false],
    [['-vv'], 2, false],
    [['-v', '--verbose', '-v'], 3, false],
    [['-qv'], 1, true],
    [['--', '-vv'], 0, false],
    [['-o', 'v'], 0, false],
  ])('%j is level %d, quiet %s', (argv, level, quiet) => {
    expect(verbosityOf(argv)).toEqual({ level, quiet, verbose: level > 0 });
  });
});

/** Records what it is asked to run. */
class Recorder implements CommandRunner {
  readonly calls: { cmd: string; args: readonly string[]; options: RunOptions }[] = [];
  run(cmd: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    this.calls.push({ cmd, args, options });
    return Promise.resolve({ code: 0, stdout: Buffer.alloc(0), stderr: '' });
  }
}

describe('the verbose runner', () => {
  test('-v echoes; -vv gives Nix tools -v and their stderr, never another program', async () => {
    const inner = new Recorder();
    let out = '';
    const runner = new VerboseRunner(inner, { level: 3, write: (t) => (out += t.toString()) });
    await runner.run('nix-store', ['--query', 'a b']);
    await runner.run('/nix/store/x-system/bin/switch-to-configuration', ['switch']);
    expect(inner.calls.map((c) => [c.cmd, ...c.args])).toEqual([
      ['nix-store', '-v', '-v', '--query', 'a b'],
      ['/nix/store/x-system/bin/switch-to-configuration', 'switch'],
    ]);
    expect(out).toBe(
      "+ nix-store -v -v --query 'a b'\n+ /nix/store/x-system/bin/switch-to-configuration switch\n",
    );
    inner.calls[0]?.options.onStderr?.(Buffer.from('nix says'));
    expect(out.endsWith('nix says')).toBe(true);
    expect(inner.calls[1]?.options.onStderr).toBeUndefined();
  });

  test('--log-format goes only to commands whose output the user sees', async () => {
    const inner = new Recorder();
    const shownLog = (): void => undefined;
    const runner = new VerboseRunner(inner, {
      level: 0,
      logFormat: 'internal-json',
      write: () => undefined,
      shownLog,
    });
    await runner.run('nix-store', ['--realise', '/s/x.drv'], { onStderr: shownLog });
    await runner.run('nix-store', ['--realise', '--dry-run', '/s/x'], { onStderr: () => undefined });
    await runner.run('nix-store', ['--check-validity']);
    expect(inner.calls.map((c) => c.args[0])).toEqual(['--log-format', '--realise', '--check-validity']);
  });
});

describe('--nix-arg', () => {
  test('each value is split as a shell would and comes before the arguments after --', async () => {
    const calls: unknown[][] = [];
    const useCases: Partial<UseCases> = {
      exportPlan: (...args: unknown[]) => {
        calls.push(args);
        return Promise.reject(new Error('stop'));
      },
    };
    const io: CliIo = { stdout: { write: () => true }, stderr: { write: () => true } };
    await main(
      [
        'export',
        '.#a',
        '-o',
        'x.nixplan',
        '--nix-arg',
        '--option extra-substituters "https://a https://b"',
        '--nix-arg=--impure',
        '--',
        '--max-jobs',
        '1',
      ],
      { io, useCases },
    );
    expect(calls[0]?.[0]).toMatchObject({
      evalArgs: ['--option', 'extra-substituters', 'https://a https://b', '--impure', '--max-jobs', '1'],
    });
  });

  test('an unclosed quote is a usage error naming --nix-arg', async () => {
    let err = '';
    const io: CliIo = { stdout: { write: () => true }, stderr: { write: (s: string) => (err += s) } };
    expect(await main(['realise', 'x.nixplan', '--nix-arg', "--option x 'y"], { io })).toBe(2);
    expect(err).toMatch(/--nix-arg: a ' quote is not closed/);
  });
});
