// fs-tree against real Nix: our NAR of files on disk is byte for byte what `nix-store --dump` writes.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NixPlanError } from '../../src/core/errors.js';
import { sha256, toHex } from '../../src/core/hash.js';
import { summariseNar } from '../../src/core/nar.js';
import { writeNar } from '../../src/core/nar-write.js';
import { dumpPath, fileTreeOf } from '../../src/nix/fs-tree.js';
import { nixVersions, ScratchStore } from '../support/nix.js';
import { collect } from '../support/streams.js';

const FIXTURE = join(import.meta.dirname, '..', 'fixtures', 'nar', 'closure.nix');

/** A directory that exercises what a NAR must get right: byte order of names, modes, links. */
function trickyTree(root: string): string {
  const d = join(root, 'tricky');
  mkdirSync(join(d, 'sub', 'deeper'), { recursive: true });
  // UTF-16 order puts U+1F600 first, byte order puts U+FF21 first; Nix uses byte order.
  for (const name of ['B', 'a', '\uff21', '\u{1f600}', '.hidden', 'a.b', 'a-b', 'pad-7', 'pad-8'])
    writeFileSync(join(d, name), name);
  writeFileSync(Buffer.from([...Buffer.from(d + '/'), 0xff, 0xfe]), 'not UTF-8'); // a non-UTF-8 name
  writeFileSync(join(d, 'empty'), '');
  writeFileSync(join(d, 'big'), Buffer.alloc(1536 * 1024 + 3, 'z')); // streamed, not read whole
  writeFileSync(join(d, 'sub', 'deeper', 'x'), '1234567'); // 7 bytes: padding
  writeFileSync(join(d, 'sub', 'eight'), '12345678'); // 8 bytes: no padding
  writeFileSync(join(d, 'tool'), '#!/bin/sh\n');
  chmodSync(join(d, 'tool'), 0o755);
  writeFileSync(join(d, 'owner-x-only'), 'x');
  chmodSync(join(d, 'owner-x-only'), 0o700);
  writeFileSync(join(d, 'group-x-only'), 'x');
  chmodSync(join(d, 'group-x-only'), 0o654); // group and others may execute, the owner not
  symlinkSync('a', join(d, 'link'));
  symlinkSync('/nowhere/dangling', join(d, 'dangling'));
  symlinkSync('..', join(d, 'sub', 'up'));
  return d;
}

describe('fileTreeOf (no Nix)', () => {
  let root: string;
  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'nix-plan-fs-tree-'));
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  test('refuses what a NAR cannot hold', async () => {
    const fifo = join(root, 'fifo');
    execFileSync('mkfifo', [fifo]);
    await expect(fileTreeOf(fifo)).rejects.toBeInstanceOf(NixPlanError);
  });

  test('a file that grows while it is read is refused, not silently truncated', async () => {
    const f = join(root, 'growing');
    writeFileSync(f, 'abc');
    const tree = await fileTreeOf(f);
    writeFileSync(f, 'abcdef');
    await expect(collect(dumpPath(f))).resolves.toBeDefined(); // a fresh look is consistent
    if (tree.type !== 'regular') throw new Error('expected a regular file');
    await expect(collect(writeNar(tree))).rejects.toThrow(/size/);
  });
});

describe.each(nixVersions())('fs-tree against Nix $label', (version) => {
  let store: ScratchStore;
  let dir: string;
  beforeAll(() => {
    store = new ScratchStore(version);
    dir = trickyTree(store.root);
  });
  afterAll(() => store.dispose());

  test('the NAR of a tricky directory equals `nix-store --dump`, byte for byte', async () => {
    const ours = await collect(dumpPath(dir));
    const { stdout } = await store.run('nix-store', ['--dump', dir]);
    expect(ours.length).toBe(stdout.length);
    expect(Buffer.compare(Buffer.from(ours), stdout)).toBe(0);
    // and our reader accepts Nix's NAR, with the same hash
    const summary = await summariseNar([new Uint8Array(stdout)]);
    expect(summary.narHash).toEqual(sha256(ours));
  });

  test('single files and symlinks at the top equal `nix-store --dump` too', async () => {
    for (const p of [
      join(dir, 'tool'),
      join(dir, 'empty'),
      join(dir, 'big'),
      join(dir, 'link'),
      join(dir, 'group-x-only'),
    ]) {
      const { stdout } = await store.run('nix-store', ['--dump', p]);
      expect(toHex(sha256(await collect(dumpPath(p))))).toBe(toHex(sha256(stdout)));
    }
  });

  test('every path of a closure has the NAR hash and size Nix registered', async () => {
    const [drv] = await store.instantiate(FIXTURE, ['top']);
    if (drv === undefined) throw new Error('nix-instantiate printed nothing');
    const { stdout: built } = await store.run('nix-store', ['--realise', drv]);
    const out = built.toString('utf8').trim();
    const closure = await store.requisites([drv, out]);
    expect(closure.length).toBe(6); // 2 drvs, the tree, the toFile text, 2 outputs
    const db = await store.dumpDb(closure);
    for (const p of closure) {
      const info = db.get(p);
      const summary = await summariseNar(dumpPath(p));
      expect({ path: p, hash: toHex(summary.narHash), size: summary.narSize }).toEqual({
        path: p,
        hash: info?.narHash,
        size: info?.narSize,
      });
    }
  });
});
