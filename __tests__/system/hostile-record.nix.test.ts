// The last-applied record beside an out-link, planted by whoever can write that directory (a
// workspace an earlier step wrote, a shared directory): a FIFO, a link, a huge file. `realise
// --out-link` reads it before anything is imported: each is refused as an unreadable record (exit
// 11), promptly, without reading through it, and the store's `nix-store --dump-db` is unchanged;
// `--allow-downgrade` waives it, as its message says, and the record written replaces the plant.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import {
  closeSync,
  constants,
  lstatSync,
  openSync,
  readFileSync,
  rmSync,
  symlinkSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { join, resolve } from 'node:path';
import { cli, dumpDb } from '../support/cli-run.js';
import { nixVersions, ScratchStore } from '../support/nix.js';

describe.each(nixVersions())('a planted last-applied record, Nix $label', (version) => {
  let evaluator: ScratchStore;
  let store: ScratchStore;
  let plan: string;

  beforeAll(async () => {
    evaluator = new ScratchStore(version);
    plan = join(evaluator.root, 'hello.nixplan');
    const made = await cli(
      ['export', '-f', resolve('examples/hello'), '-A', 'hello', '-o', plan],
      evaluator.runner,
    );
    expect(made.code).toBe(0);
    store = new ScratchStore(version, { storeDir: evaluator.storeDir, root: join(evaluator.root, 'host') });
    rmSync(evaluator.storeDir, { recursive: true, force: true });
  }, 300_000);
  afterAll(() => {
    store?.dispose();
    evaluator?.dispose();
  });

  /**
   * `realise --out-link LINK` with `plant` at LINK.nix-plan.json: refused as unreadable (exit 11),
   * the store unchanged. A FIFO nobody writes would hold the old code forever: after 30 s the test
   * opens it for writing itself (ending the read) and fails.
   */
  async function refused(name: string, plant: (record: string) => void, why: string): Promise<void> {
    const link = join(store.root, name);
    const record = `${link}.nix-plan.json`;
    plant(record);
    await store.validPaths();
    const before = await dumpDb(store);
    let timer: NodeJS.Timeout | undefined;
    const hung = new Promise<'hung'>((done) => (timer = setTimeout(() => done('hung'), 30_000)));
    const run = await Promise.race([cli(['realise', plan, '--out-link', link], store.runner), hung]);
    clearTimeout(timer);
    if (run === 'hung') {
      if (lstatSync(record).isFIFO()) closeSync(openSync(record, constants.O_WRONLY | constants.O_NONBLOCK));
      throw new Error(`realise waited on ${record}`);
    }
    expect(run.err).toContain(`the last-applied record '${record}' is unreadable (${why}`);
    expect(run.code).toBe(11);
    expect(await dumpDb(store)).toBe(before);
  }

  test('a FIFO is refused, not waited on', async () => {
    await refused('fifo', (r) => execFileSync('mkfifo', [r]), 'not a regular file');
  }, 120_000);

  test('a link is refused, not read through, even to a record that would let the plan pass', async () => {
    const elsewhere = join(store.root, 'elsewhere.json');
    // A record an older plan left: through the link, the old code took it as this out-link's.
    writeFileSync(
      elsewhere,
      JSON.stringify({
        version: 1,
        createdAt: '2000-01-01T00:00:00Z',
        digest: `sha256:${'0'.repeat(64)}`,
        checksum: '0'.repeat(64),
        storeDir: store.storeDir,
        roots: [],
        appliedAt: '2000-01-01T00:00:00Z',
      }),
    );
    await refused('link', (r) => symlinkSync(elsewhere, r), 'a symbolic link');
    await refused('devzero', (r) => symlinkSync('/dev/zero', r), 'a symbolic link');
  }, 120_000);

  test('a file larger than any record is refused by its size, unread', async () => {
    await refused(
      'huge',
      (r) => {
        writeFileSync(r, '');
        truncateSync(r, 1024 * 1024 * 1024); // sparse: nothing is written
      },
      '1073741824 bytes, more than a record holds',
    );
  }, 120_000);

  test('--allow-downgrade waives it with a warning; the record written replaces the link', async () => {
    const link = join(store.root, 'waived');
    const record = `${link}.nix-plan.json`;
    const target = join(store.root, 'not-a-record');
    writeFileSync(target, 'kept');
    symlinkSync(target, record);
    const run = await cli(['realise', plan, '--out-link', link, '--allow-downgrade'], store.runner);
    expect(run.err).toContain('--allow-downgrade: applying anyway: the last-applied record');
    expect(run.code).toBe(0);
    expect(lstatSync(record).isFile()).toBe(true);
    expect(JSON.parse(readFileSync(record, 'utf8'))).toMatchObject({ version: 1 });
    expect(readFileSync(target, 'utf8')).toBe('kept');
  }, 300_000);
});
