// Plan bundles end to end with real Nix 2.8 and 2.34: write, inspect without decompressing, verify, import with stock tools and with ours.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NixPlanError } from '../../src/core/errors.js';
import { ZstdFrameScanner } from '../../src/core/bundle/frame.js';
import type { ManifestDraft } from '../../src/core/bundle/manifest.js';
import {
  exportStream,
  memorySource,
  openBundle,
  readBundleHead,
  type VerifiedEntry,
} from '../../src/core/bundle/index.js';
import { verifyBundle } from '../../src/core/bundle/reader.js';
import { writeBundle, type WrittenBundle } from '../../src/core/bundle/writer.js';
import { generateKeyPair, parseSecretKey } from '../../src/core/signing.js';
import {
  codeOf,
  draftFor,
  encodeExport,
  nixClosure,
  splitExport,
  type NixClosure,
} from '../support/bundle-fixtures.js';
import { fileOfNar } from '../support/forge.js';
import { ScratchStore, nixVersions } from '../support/nix.js';

async function* chunked(bytes: Uint8Array, size = 1000): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < bytes.length; i += size) yield await Promise.resolve(bytes.subarray(i, i + size));
}

/** `zstd -dc FILE` as a stream of chunks (the stock tool, no flags). */
async function* zstdDecompress(file: string): AsyncGenerator<Uint8Array> {
  const child = spawn('zstd', ['-dc', file], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
  for await (const c of child.stdout) yield c as Buffer;
  if ((await exited) !== 0) throw new Error('zstd -dc failed');
}

const keys = generateKeyPair('bundle-test-1');
const secret = parseSecretKey(keys.secretKey);

describe.each(nixVersions())('bundle with Nix $label', (version) => {
  const tmp = mkdtempSync(join(tmpdir(), 'nix-plan-bundle-'));
  // The store dir is fixed and outside each scratch store, so a fresh store can take the same realm.
  const storeDir = join(tmp, 'store');
  const bundlePath = join(tmp, 'plan.nixplan');
  const stores: ScratchStore[] = [];
  let fx: NixClosure;
  let draft: ManifestDraft;
  let written: WrittenBundle;

  /** A new empty store in the bundle's realm (the previous one, and its files, are removed). */
  function freshStore(): ScratchStore {
    for (const s of stores.splice(0)) s.dispose();
    rmSync(storeDir, { recursive: true, force: true });
    const s = new ScratchStore(version, { storeDir });
    stores.push(s);
    return s;
  }

  beforeAll(async () => {
    fx = await nixClosure(freshStore(), 'rt');
    draft = await draftFor(fx.exportBytes, storeDir, [
      { attribute: 'top', drvPath: fx.drvPath, outputs: { out: fx.outPath } },
    ]);
    written = await writeBundle(bundlePath, draft, chunked(fx.exportBytes), { keys: [secret] });
  });
  afterAll(() => {
    for (const s of stores) s.dispose();
    rmSync(tmp, { recursive: true, force: true });
  });

  test('the writer records what it wrote, leaves no temporary files, and keeps the window stock zstd decodes', async () => {
    const { manifest } = written;
    expect(manifest.counts).toEqual({ drv: 2, text: 1, source: 1, output: 0 });
    expect(manifest.stream.size).toBe(fx.exportBytes.length);
    expect(written.bundleBytes).toBe(readFileSync(bundlePath).length);
    expect(readdirSync(tmp).sort()).toEqual(['plan.nixplan', 'store']);
    const source = await openBundle(bundlePath);
    const head = await readBundleHead(source);
    const scanner = new ZstdFrameScanner(head.dataOffset);
    for await (const c of source.stream(head.dataOffset)) scanner.push(c);
    await source.close();
    const frame = scanner.finish();
    expect(frame.windowSize).toBeLessThanOrEqual(2 ** 27);
    expect(frame.hasChecksum).toBe(true);
    // A source that fails mid-stream leaves nothing behind and its error reaches the caller.
    async function* failing(): AsyncGenerator<Uint8Array> {
      yield await Promise.resolve(fx.exportBytes.subarray(0, 100));
      throw new NixPlanError('nix', 'nix-store --export died');
    }
    await expect(writeBundle(join(tmp, 'failed.nixplan'), draft, failing())).rejects.toThrow(
      'nix-store --export died',
    );
    expect(readdirSync(tmp).sort()).toEqual(['plan.nixplan', 'store']);
  });

  test('inspect reads the manifest without decompressing (garbage data still inspects, but does not verify)', async () => {
    const bytes = readFileSync(bundlePath);
    const head = await readBundleHead(memorySource(bytes));
    expect(head.manifest).toEqual(written.manifest);
    const garbage = Buffer.from(bytes);
    garbage.fill(0x55, head.dataOffset);
    expect((await readBundleHead(memorySource(garbage))).manifest).toEqual(written.manifest);
    expect(await codeOf(verifyBundle(memorySource(garbage)))).toBe('malformed');
  });

  test('verify: everything checks out, with the signature, and each entry is classified', async () => {
    const entries: VerifiedEntry[] = [];
    const report = await verifyBundle(bundlePath, {
      storeDir,
      trustedKeys: [keys.publicKey],
      onEntry: (e) => void entries.push(e),
    });
    expect(report.paths).toBe(fx.closure.length);
    expect(report.trustedSignatures).toEqual(['bundle-test-1']);
    expect(entries.map((e) => e.path).sort()).toEqual([...fx.closure].sort());
    expect(entries.find((e) => e.path === fx.drvPath)?.ca).toMatch(/^text:sha256:/);
    expect(entries.filter((e) => e.kind === 'source').map((e) => e.ca)).toEqual([
      expect.stringMatching(/^fixed:r:sha256:/),
    ]);
  });

  test('verify refuses another realm (naming both dirs), an untrusted signer, and a store that lacks a dependency', async () => {
    await expect(verifyBundle(bundlePath, { storeDir: '/beta/store' })).rejects.toThrow(
      `is a plan for the store dir ${storeDir}, but this store's dir is /beta/store`,
    );
    expect(await codeOf(verifyBundle(bundlePath, { storeDir: '/beta/store' }))).toBe('realm');
    expect(
      await codeOf(verifyBundle(bundlePath, { trustedKeys: [generateKeyPair('other').publicKey] })),
    ).toBe('signature');
    // Without the dependency .drv in the bundle, it must be valid in the store.
    const entries = await splitExport(fx.exportBytes); // dependency order: the root .drv comes last
    const last = entries[entries.length - 1];
    expect(last?.path).toBe(fx.drvPath);
    const partial = encodeExport(entries.filter((e) => e.path.endsWith('.drv') === false || e === last));
    const dropped = entries.filter((e) => e.path.endsWith('.drv') && e !== last).map((e) => e.path);
    const partialDraft = await draftFor(partial, storeDir, draft.roots);
    const partialPath = join(tmp, 'partial.nixplan');
    await writeBundle(partialPath, partialDraft, chunked(partial));
    await expect(verifyBundle(partialPath)).rejects.toThrow(
      /which is neither in the bundle nor valid in the store/,
    );
    // Valid there, and readable from there: the output paths of the .drv that uses them are checked.
    const inStore = new Map<string, Uint8Array>();
    for (const e of entries) if (dropped.includes(e.path)) inStore.set(e.path, await fileOfNar(e.nar));
    await expect(verifyBundle(partialPath, { isValidInStore: (p) => dropped.includes(p) })).rejects.toThrow(
      /which is neither in the bundle nor valid in the store/,
    );
    const report = await verifyBundle(partialPath, {
      isValidInStore: (p) => dropped.includes(p),
      readStoreDerivation: (p) => Promise.resolve(inStore.get(p)),
    });
    expect(report.storeReferences).toBe(dropped.length);
    rmSync(partialPath);
  });

  test('zstd -dc | nix-store --import (stock tools, no flags) accepts the bundle, and the plan realises', async () => {
    const store = freshStore();
    await store.run('nix-store', ['--import'], { input: zstdDecompress(bundlePath) });
    expect(await store.validPaths()).toEqual([...fx.closure].sort());
    const { stdout } = await store.run('nix-store', ['--realise', fx.drvPath]);
    expect(stdout.toString().trim()).toBe(fx.outPath);
  });

  test('our verified export stream imports with nix-store --import', async () => {
    const store = freshStore();
    const source = await openBundle(bundlePath);
    try {
      await verifyBundle(source, { storeDir: store.storeDir, trustedKeys: [keys.publicKey] });
      await store.run('nix-store', ['--import'], { input: exportStream(source) });
    } finally {
      await source.close();
    }
    expect(await store.validPaths()).toEqual([...fx.closure].sort());
  });

  test('exportStream withholds the end marker from a bundle changed after it was verified', async () => {
    const bytes = Buffer.from(readFileSync(bundlePath));
    const head = await readBundleHead(memorySource(bytes));
    // Same manifest, same compressed size, one byte of the note changed: a valid zstd frame that
    // decodes to a well-formed export stream, just not the one the manifest records.
    // Which change keeps the compressed size depends on the fixture's (random) store dir: try
    // every letter at every position of the note until one does.
    const note = 'a note for rt';
    const start = Buffer.from(fx.exportBytes).indexOf(note);
    let other: Uint8Array | undefined;
    const variantPath = join(tmp, 'variant.nixplan');
    for (let at = start; at < start + note.length && other === undefined; at++)
      for (let c = 0x61; c < 0x7b && other === undefined; c++) {
        if (c === fx.exportBytes[at]) continue;
        const changed = Buffer.from(fx.exportBytes);
        changed[at] = c;
        const v = await writeBundle(variantPath, draft, chunked(changed));
        if (v.manifest.stream.compressedSize === head.manifest.stream.compressedSize)
          other = readFileSync(variantPath).subarray(v.bundleBytes - v.manifest.stream.compressedSize);
      }
    rmSync(variantPath, { force: true });
    if (other === undefined) throw new Error('no same-size variant found');
    const source = memorySource(Buffer.concat([bytes.subarray(0, head.dataOffset), other]));
    let released = 0;
    const code = await codeOf(
      (async (): Promise<void> => {
        for await (const c of exportStream(source)) released += c.length;
      })(),
    );
    expect(code).toBe('bundle');
    expect(released).toBeLessThanOrEqual(fx.exportBytes.length - 8);
  });
});
