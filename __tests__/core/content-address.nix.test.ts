import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { identifyContentAddress } from '../../src/core/content-address.js';
import { parseHash } from '../../src/core/hash.js';
import { nixVersions, ScratchStore } from '../support/nix.js';

const FIXTURE = new URL('../fixtures/content-address/default.nix', import.meta.url).pathname;

describe.each(nixVersions())('identifyContentAddress against Nix $label', (version) => {
  let store: ScratchStore;
  const lines = async (cmd: string, args: string[]): Promise<string[]> =>
    (await store.run(cmd, args)).stdout.toString('utf8').trim().split('\n');
  /** The facts Nix records about a path, plus its contents when it is a regular file. */
  const facts = async (path: string) => {
    const narHash = parseHash((await lines('nix-store', ['-q', '--hash', path]))[0] ?? '');
    const references = (await lines('nix-store', ['-q', '--references', path])).filter((l) => l !== '');
    let file;
    try {
      file = { executable: false, contents: new Uint8Array(readFileSync(path)) };
    } catch {
      file = undefined; // a directory
    }
    return { path, references, narHash: narHash.bytes, file };
  };
  const evalPath = async (attr: string): Promise<string> =>
    JSON.parse(
      (
        await lines('nix-instantiate', [
          '--eval',
          '--read-write-mode',
          '--strict',
          '--json',
          FIXTURE,
          '-A',
          attr,
        ])
      )[0] ?? '""',
    ) as string;
  const build = async (attr: string): Promise<string> => {
    const [drv] = await store.instantiate(FIXTURE, [attr]);
    return (await lines('nix-store', ['--realise', drv ?? '']))[0] ?? '';
  };

  beforeAll(() => {
    store = new ScratchStore(version);
  });
  afterAll(() => store.dispose());

  test.each([
    ['plain', 'text'],
    ['withRef', 'text'],
  ])('builtins.toFile %s is text-addressed', async (attr, kind) => {
    const path = await evalPath(attr);
    const f = await facts(path);
    const ca = identifyContentAddress(f, store.storeDir);
    expect(ca?.kind).toBe(kind);
    expect(ca?.ca).toMatch(/^text:sha256:[0-9a-z]{52}$/);
    // A text file's NAR hash is never asked for, so a reader may put off computing it.
    const asked: string[] = [];
    const lazily = { ...f, narHash: () => (asked.push(path), f.narHash) };
    expect(identifyContentAddress(lazily, store.storeDir)).toEqual(ca);
    expect(asked).toEqual([]);
  });

  test.each(['file', 'dir'])('path literal %s is a recursive source', async (attr) => {
    const path =
      (
        await lines('nix-instantiate', [
          '--eval',
          '--read-write-mode',
          '-E',
          `"\${(import ${FIXTURE}).${attr}}"`,
        ])
      )[0]?.replace(/"/g, '') ?? '';
    const f = await facts(path);
    const ca = identifyContentAddress(f, store.storeDir);
    expect(ca).toEqual({ kind: 'source', ca: expect.stringMatching(/^fixed:r:sha256:[0-9a-z]{52}$/) });
    // Its NAR hash is what makes it one: computed when asked for, and without it, not recognised.
    expect(identifyContentAddress({ ...f, narHash: () => f.narHash }, store.storeDir)).toEqual(ca);
    expect(identifyContentAddress({ ...f, narHash: undefined }, store.storeDir)).toBeUndefined();
  });

  test('every .drv of the closure is text-addressed as a drv', async () => {
    const drvs = await store.instantiate(FIXTURE, ['built', 'flatSha1']);
    for (const drv of await store.requisites(drvs)) {
      if (!drv.endsWith('.drv')) continue;
      expect(identifyContentAddress(await facts(drv), store.storeDir)?.kind).toBe('drv');
    }
  });

  test.each([
    ['flatSha256', 'sha256'],
    ['flatSha1', 'sha1'],
    ['flatSha512', 'sha512'],
  ])('flat fixed output %s is found with its algorithm', async (attr, algo) => {
    const out = await build(attr);
    expect(identifyContentAddress(await facts(out), store.storeDir)?.ca).toMatch(
      new RegExp(`^fixed:${algo}:`),
    );
  });

  test('an input-addressed output is not content-addressed', async () => {
    const out = await build('built');
    expect(identifyContentAddress(await facts(out), store.storeDir)).toBeUndefined();
  });

  test('a changed byte or a foreign store dir breaks the match', async () => {
    const f = await facts(await evalPath('plain'));
    const contents = new Uint8Array(f.file?.contents ?? []);
    contents[0] = (contents[0] ?? 0) ^ 1;
    expect(
      identifyContentAddress({ ...f, file: { executable: false, contents } }, store.storeDir),
    ).toBeUndefined();
    expect(identifyContentAddress(f, '/elsewhere/store')).toBeUndefined();
  });
});
