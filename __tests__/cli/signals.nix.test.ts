// Interrupts, for real: SIGINT, SIGTERM and SIGHUP arriving while `nix-store --import` is part-way
// through a plan (held on the lock of its last path, the ones before it already valid) stop Nix,
// remove what it had added, delete the temp dir and exit 130, 143 or 129: the store's database is
// what it was. The command line run as a process too, and killed with SIGKILL (which cannot be
// handled): running the same import again completes it. On Nix 2.8 and 2.34.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { StopSignal } from '../../src/core/errors.js';
import type { SignalSource } from '../../src/cli/signals.js';
import { childEnv } from '../../src/nix/runner.js';
import { narOfFile } from '../support/bundle-fixtures.js';
import { cli, dumpDb } from '../support/cli-run.js';
import { forgeBundle, noise, realPlan, sourceEntry, withEntry, type Plan } from '../support/forge.js';
import { ScratchStore, nixVersions } from '../support/nix.js';
import { inThrowawayStore } from '../support/stores.js';

const versions = nixVersions();
const EXIT: Record<StopSignal, number> = { SIGHUP: 129, SIGINT: 130, SIGTERM: 143 };
/** How long to wait for a state the import must reach. */
const WAIT_MS = 60_000;

/** Stop signals a test sends by hand. */
class FakeSignals extends EventEmitter implements SignalSource {
  send(signal: StopSignal): void {
    this.emit(signal);
  }
}

async function until(what: string, ready: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + WAIT_MS;
  while (!(await ready())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Holds the lock Nix takes on `path` before adding it (`<path>.lock`, flock), so an import stops
 * there with everything before it added. Returns what lets go again.
 */
async function holdPathLock(path: string): Promise<() => void> {
  const lock = `${path}.lock`;
  // One process holds it (the shell becomes the sleep, keeping the locked descriptor): killing it lets go.
  const holder = spawn('sh', ['-c', 'exec 9>"$0" && flock -x 9 && exec sleep 600', lock], {
    stdio: 'ignore',
  });
  await until('the lock is held', () => spawnSync('flock', ['-n', lock, 'true']).status === 1);
  return () => {
    if (holder.exitCode === null) holder.kill('SIGKILL');
  };
}

/** Waits until `what`, failing with its result if `running` ends first. */
async function whileRunning(
  running: Promise<unknown>,
  what: string,
  ready: () => boolean | Promise<boolean>,
): Promise<void> {
  let ended: unknown;
  const watch = running.then((r) => (ended = r));
  await Promise.race([
    until(what, async () => {
      if (ended !== undefined) throw new Error(`it ended before ${what}: ${JSON.stringify(ended)}`);
      return ready();
    }),
    watch.then(() => new Promise((r) => setTimeout(r, 200))),
  ]);
  if (ended !== undefined) throw new Error(`it ended before ${what}: ${JSON.stringify(ended)}`);
}

/** Processes (other than this one) running against the store at `storeDir`: Nix children left behind. */
function nixProcessesOf(storeDir: string): number[] {
  const needle = `NIX_STORE_DIR=${storeDir}\0`;
  return readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d) && Number(d) !== process.pid)
    .filter((d) => {
      try {
        return `${readFileSync(`/proc/${d}/environ`, 'latin1')}\0`.includes(needle);
      } catch {
        return false; // gone meanwhile
      }
    })
    .map(Number);
}

describe.each(versions.map((v) => [v.label, v] as const))(
  'interrupted imports, Nix %s',
  (_label, version) => {
    const base = mkdtempSync(join(tmpdir(), 'nix-plan-signals-'));
    const storeDir = join(base, 'store');
    /** TMPDIR of the command line run as a process, so what it leaves can be seen. */
    const importTmp = join(base, 'tmp');
    let plan: Plan;
    let store: ScratchStore;
    let file: string;

    /** Whether `path` is valid in the store. */
    const valid = async (path: string): Promise<boolean> =>
      (await store.run('nix-store', ['--check-validity', path], { allowFailure: true })).code === 0;
    /** The root .drv comes last in the stream: the import is held there. */
    const held = (): string => plan.entries[plan.entries.length - 1]!.path;
    /** The entry before it: valid once the import reached the held one. */
    const before = (): string => plan.entries[plan.entries.length - 2]!.path;

    beforeAll(async () => {
      plan = await inThrowawayStore(version, storeDir, join(base, 'maker'), (maker) =>
        realPlan(maker, 's', 'drvs', join(base, 'marker')),
      );
      // A few MiB of sources first, so there is something to remove again.
      for (let i = 0; i < 3; i++)
        plan = withEntry(plan, sourceEntry(storeDir, `src${i}`, narOfFile(noise(2 * 1024 * 1024, i + 1))), 0);
      expect(held()).toBe(plan.roots[0]!.drvPath);
      store = new ScratchStore(version, { storeDir, root: join(base, 'target') });
      await store.validPaths(); // the database exists before the first snapshot
      file = join(base, 'plan.nixplan');
      writeFileSync(file, await forgeBundle(plan));
      mkdirSync(importTmp);
    });
    afterAll(() => {
      store.dispose();
      rmSync(base, { recursive: true, force: true, maxRetries: 10, retryDelay: 200 });
    });

    test.each(['SIGINT', 'SIGTERM', 'SIGHUP'] as const)(
      '%s part-way through nix-store --import: Nix stopped, what it added removed again',
      async (signal) => {
        const db = await dumpDb(store);
        const release = await holdPathLock(held());
        try {
          const signals = new FakeSignals();
          const running = cli(['import', file], store.runner, { signals });
          await whileRunning(running, 'the import is held on its last path', () => valid(before()));
          expect(await valid(held())).toBe(false);
          signals.send(signal);
          const { code, err } = await running;
          expect(`exit ${code}: ${err}`).toMatch(
            new RegExp(
              `^exit ${EXIT[signal]}: (.|\\n)*interrupted by ${signal}(.|\\n)*removed again, the store is as it was`,
            ),
          );
          expect(nixProcessesOf(storeDir)).toEqual([]);
        } finally {
          release();
        }
        expect(await dumpDb(store)).toBe(db);
      },
    );

    describe('the command line as a process', () => {
      let entry: string;

      beforeAll(() => {
        // The command line built from the sources as it ships (dist/cli), into this test's dir.
        const out = join(base, 'dist');
        execFileSync(
          process.execPath,
          ['node_modules/@vercel/ncc/dist/ncc/cli.js', 'build', 'src/entry/cli.ts', '-o', out, '--quiet'],
          { stdio: 'pipe' },
        );
        entry = join(out, 'index.js');
      }, WAIT_MS * 3);

      function start(): ChildProcess {
        return spawn(process.execPath, [entry, 'import', file], {
          env: { ...childEnv({ binDir: version.binDir, env: store.env }), TMPDIR: importTmp },
          stdio: ['ignore', 'ignore', 'pipe'],
        });
      }

      function exited(
        child: ChildProcess,
      ): Promise<{ code: number | null; signal: string | null; err: string }> {
        let err = '';
        child.stderr?.on('data', (c: Buffer) => (err += c.toString()));
        return new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal, err })));
      }

      test('SIGTERM: exit 143, the store as it was, no Nix process and no temp dir left', async () => {
        const db = await dumpDb(store);
        const release = await holdPathLock(held());
        try {
          const child = start();
          const done = exited(child);
          await whileRunning(done, 'the import is held on its last path', () => valid(before()));
          child.kill('SIGTERM');
          const { code, signal, err } = await done;
          expect(`exit ${code ?? signal}: ${err}`).toMatch(
            /^exit 143: (.|\n)*interrupted by SIGTERM(.|\n)*the store is as it was/,
          );
          expect(nixProcessesOf(storeDir)).toEqual([]);
        } finally {
          release();
        }
        expect(await dumpDb(store)).toBe(db);
        expect(readdirSync(importTmp)).toEqual([]);
      });

      test('SIGKILL cannot be handled: running the same import again completes it', async () => {
        const release = await holdPathLock(held());
        try {
          const child = start();
          const done = exited(child);
          await whileRunning(done, 'the import is held on its last path', () => valid(before()));
          child.kill('SIGKILL');
          expect((await done).signal).toBe('SIGKILL');
        } finally {
          release();
        }
        // The orphaned nix-store goes on once the lock is free; whatever it did, the rerun completes.
        await until('no Nix process is left', () => nixProcessesOf(storeDir).length === 0);
        const { code, err } = await cli(['import', file, '-q'], store.runner);
        expect([code, err]).toEqual([0, '']);
        for (const e of plan.entries) expect(await valid(e.path)).toBe(true);
        // What the killed run could not remove (its temp dir) is all it left.
        rmSync(importTmp, { recursive: true, force: true });
        mkdirSync(importTmp);
      });
    });
  },
);
