// The export stream against real Nix: ours equals `nix-store --export`, Nix imports ours, we read Nix's.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { sha256, toHex } from '../../src/core/hash.js';
import { readExport, writeExport, type ExportedPath } from '../../src/core/export-stream.js';
import { dumpPath } from '../../src/nix/fs-tree.js';
import { nixVersions, ScratchStore, type DumpDbRecord } from '../support/nix.js';
import { collect } from '../support/streams.js';

const FIXTURE = join(import.meta.dirname, '..', 'fixtures', 'nar', 'closure.nix');

describe.each(nixVersions())('export stream against Nix $label', (version) => {
  let store: ScratchStore;
  let closure: string[];
  let db: Map<string, DumpDbRecord>;
  let drvs: { dep: string; top: string };
  let outs: { dep: string; top: string };

  beforeAll(async () => {
    store = new ScratchStore(version);
    const [dep, top] = await store.instantiate(FIXTURE, ['dep', 'top']);
    if (dep === undefined || top === undefined) throw new Error('nix-instantiate printed too little');
    drvs = { dep, top };
    const { stdout } = await store.run('nix-store', ['--realise', dep, top]);
    const [depOut, topOut] = stdout.toString('utf8').trim().split('\n');
    if (depOut === undefined || topOut === undefined)
      throw new Error('nix-store --realise printed too little');
    outs = { dep: depOut, top: topOut };
    closure = await store.requisites([top, topOut]);
    db = await store.dumpDb(closure);
  });
  afterAll(() => store.dispose());

  /** Our export stream of `paths`, from the files in the store and Nix's registrations. */
  function ours(paths: readonly string[]): AsyncIterable<Uint8Array> {
    return writeExport(
      paths.map((path) => {
        const info = db.get(path);
        if (info === undefined) throw new Error(`no registration for ${path}`);
        return { path, references: info.refs, deriver: info.deriver, nar: dumpPath(path) };
      }),
    );
  }

  test('the deriver Nix records: the .drv for build outputs, none for drvs, sources and texts', () => {
    expect(closure.length).toBe(6);
    for (const p of closure) {
      const expected = p === outs.dep ? drvs.dep : p === outs.top ? drvs.top : '';
      expect({ p, deriver: db.get(p)?.deriver }).toEqual({ p, deriver: expected });
    }
  });

  test('our stream of the closure in `nix-store -qR` order equals `nix-store --export`, byte for byte', async () => {
    const theirs = (await store.run('nix-store', ['--export', ...closure])).stdout;
    const mine = await collect(ours(closure));
    expect(mine.length).toBe(theirs.length);
    expect(Buffer.compare(Buffer.from(mine), theirs)).toBe(0);
  });

  test('a stream Nix writes is read back without loss', async () => {
    const theirs = (await store.run('nix-store', ['--export', ...closure])).stdout;
    const narBytes = new Map<number, number>();
    const streamHash = createHash('sha256');
    const read: ExportedPath[] = [];
    for await (const e of readExport(
      [new Uint8Array(theirs)],
      {},
      {
        storeDir: store.storeDir,
        onNarBytes: (c, i) => narBytes.set(i, (narBytes.get(i) ?? 0) + c.length),
        onStreamBytes: (c) => streamHash.update(c),
      },
    ))
      read.push(e);
    expect(read.map((e) => e.path)).toEqual(closure);
    expect(streamHash.digest('hex')).toBe(toHex(sha256(theirs)));
    read.forEach((e, i) => {
      const info = db.get(e.path);
      expect({ path: e.path, refs: e.references, deriver: e.deriver }).toEqual({
        path: e.path,
        refs: info?.refs,
        deriver: info?.deriver,
      });
      expect(toHex(e.nar.narHash)).toBe(info?.narHash);
      expect(e.nar.narSize).toBe(info?.narSize);
      expect(narBytes.get(i)).toBe(info?.narSize);
      // every path but the tree directory is a single non-executable file (drvs, the text, outputs)
      if (!e.path.endsWith('-tree'))
        expect(e.nar.file).toEqual({ executable: false, contents: new Uint8Array(readFileSync(e.path)) });
      else expect(e.nar.file).toBeUndefined();
    });
  });

  test('`nix-store --import` into a fresh store with the same store dir accepts our stream', async () => {
    const fresh = new ScratchStore(version, { storeDir: store.storeDir });
    try {
      const stream = await collect(ours(closure));
      // Remove the files, so the import has to recreate every path from our NARs.
      for (const p of closure) rmSync(p, { recursive: true, force: true });
      const { stdout } = await fresh.run('nix-store', ['--import'], { input: stream });
      expect(stdout.toString('utf8').trim().split('\n')).toEqual(closure);
      const imported = await fresh.dumpDb(closure);
      for (const p of closure) expect({ p, info: imported.get(p) }).toEqual({ p, info: db.get(p) });
      const verify = await fresh.run('nix-store', ['--verify', '--check-contents'], { allowFailure: true });
      expect({ code: verify.code, stderr: verify.stderr }).toEqual({ code: 0, stderr: expect.any(String) });
      expect(verify.stderr).not.toMatch(/modified|corrupt|invalid|error/i);
    } finally {
      fresh.dispose();
    }
  });
});
