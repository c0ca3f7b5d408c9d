// What `nix-plan diff` prints, pinned: a change meant to make diff faster (another thread, another
// order of work, less memory) must print the same text and the same `--json` document for the
// same two plans, byte for byte.
//
// The plans are the benchmark's nixpkgs workload at 300 derivations and its variant with packages
// changed (what the bench's diff rows compare), evaluated in a chroot store whose logical store
// dir is /nix/store (as in export.bytes.nix.test.ts) and exported at a fixed time with no
// provenance, so their paths and contents do not depend on where the test runs. A manifest names
// the Nix and the nix-plan that wrote it, which its checksum and the bundle's digest cover too:
// those, the two versions and the test's directory are replaced by placeholders before the
// output's sha256 is compared. Everything else is pinned as printed: packages, versions, counts,
// roots, the plans' facts and the order of it all.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { changedVariant, generateClosure, writeClosure } from '../../bench/generate.js';
import { silentLogger } from '../../src/app/deps.js';
import { exportPlan } from '../../src/app/export.js';
import { TOOL_VERSION } from '../../src/app/version.js';
import { readBundleHead } from '../../src/app/inspect.js';
import { main } from '../../src/cli/main.js';
import type { CliIo } from '../../src/cli/terminal.js';
import { nixVersions, ScratchStore } from '../support/nix.js';

const NOW = (): Date => new Date('2026-01-02T03:04:05Z');

/** sha256 of the text and the --json document, placeholders in. */
const GOLDEN = {
  text: 'dda6d44805ea8ce76a84a6c482298db9c64749d4340f2db0bb1599a17591b66e',
  json: '3c0a0b51b09acb9a2ce4d773a470e0fb343e58ae5b34fcad1c009dd0fbcf3590',
};

const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex');

describe.each(nixVersions())('diff output on Nix $label', (version) => {
  let dir: string;
  let store: ScratchStore;
  let oldPlan: string;
  let newPlan: string;
  let placeholders: [string, string][];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'nix-plan-diff-bytes-'));
    store = new ScratchStore(version, { root: join(dir, 'state'), storeDir: '/nix/store' });
    const generated = generateClosure({ count: 300, seed: 3, workload: 'nixpkgs' });
    const variant = changedVariant(generated, 6);
    const uri = `local?root=${join(dir, 'chroot')}`;
    const deps = { runner: store.runner, log: silentLogger };
    // Not a git worktree: the plans record no commit (the checkout's would change with every commit).
    const noGit = join(dir, 'no-git');
    mkdirSync(noGit);
    const plans: string[] = [];
    for (const [name, closure] of [
      ['old', generated],
      ['new', variant.closure],
    ] as const) {
      const src = join(dir, `${name}-src`);
      writeClosure(src, closure);
      const { stdout } = await store.run('nix-instantiate', ['--store', uri, src]);
      const root = stdout.toString('utf8').trim();
      const output = join(dir, `${name}.nixplan`);
      await exportPlan({ drvPaths: [root], output, store: uri, now: NOW, provenance: { dir: noGit } }, deps);
      plans.push(output);
    }
    [oldPlan, newPlan] = plans as [string, string];
    const digest = (f: string): string =>
      `sha256:${createHash('sha256').update(readFileSync(f)).digest('hex')}`;
    const nixVersion = (await store.run('nix-store', ['--version'])).stdout
      .toString('utf8')
      .trim()
      .split(' ')
      .pop()!;
    const checksum = async (f: string): Promise<string> => (await readBundleHead(f)).manifest.checksum;
    placeholders = [
      [digest(oldPlan), '<old digest>'],
      [digest(newPlan), '<new digest>'],
      [await checksum(oldPlan), '<old checksum>'],
      [await checksum(newPlan), '<new checksum>'],
      [dir, '<dir>'],
      [JSON.stringify(nixVersion), '"<nix version>"'],
      [JSON.stringify(TOOL_VERSION), '"<tool>"'],
    ];
  }, 120_000);

  afterAll(() => {
    store.dispose();
    spawnSync('chmod', ['-R', 'u+w', dir]); // the chroot store's directories are read-only
    rmSync(dir, { recursive: true, force: true, maxRetries: 2 });
  });

  async function diff(...args: string[]): Promise<string> {
    let out = '';
    let err = '';
    const io: CliIo = {
      stdout: { write: (s: string) => (out += s) },
      stderr: { write: (s: string) => (err += s) },
    };
    const code = await main(['diff', oldPlan, newPlan, ...args, '-q'], { io, runner: store.runner });
    expect({ code, err }).toEqual({ code: 0, err: '' });
    return placeholders.reduce((s, [from, to]) => s.split(from).join(to), out);
  }

  test('the text and the --json document are the pinned ones', async () => {
    const text = await diff();
    const json = await diff('--json');
    // What the pins stand for, readably: the packages the variant changed, and nothing unplaced.
    expect(text).toContain('<<< <dir>/old.nixplan (plan for /nix/store; 300 derivations; unsigned;');
    expect(json).not.toContain(dir);
    expect(JSON.parse(json)).toMatchObject({ identical: false, old: { bundle: { digest: '<old digest>' } } });
    expect({ text: sha256(text), json: sha256(json) }).toEqual(GOLDEN);
  });
});
