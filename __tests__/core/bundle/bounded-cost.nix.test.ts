// Bounded cost, for real: however many paths a plan refers to without holding them, the store is
// asked about them once; a plan that lies about its sizes is refused before more than it declared
// was read or written; and an import that has no room in the temp dir, or is over --max-size, is
// refused before anything is decompressed. On Nix 2.8 and 2.34, the store unchanged by refusals.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NixPlanError } from '../../../src/core/errors.js';
import type { BundleManifest } from '../../../src/core/bundle/manifest.js';
import { memorySource } from '../../../src/core/bundle/index.js';
import { verifyBundle } from '../../../src/core/bundle/reader.js';
import { narOfFile } from '../../support/bundle-fixtures.js';
import { cli, dumpDb, RecordingRunner } from '../../support/cli-run.js';
import {
  forgeBundle,
  forgeRaw,
  noise,
  realPlan,
  sourceEntry,
  textEntry,
  withEntry,
  type Plan,
} from '../../support/forge.js';
import { ScratchStore, nixVersions } from '../../support/nix.js';
import { inThrowawayStore } from '../../support/stores.js';

const versions = nixVersions();

/** How many texts the plan refers to without holding them (the issue's case took 1,000 queries). */
const REFERENCES = 1000;

/** The `nix-store --check-validity` runs among `commands` that ask about any of `paths`. */
function validityQueriesAbout(commands: readonly (readonly string[])[], paths: readonly string[]): number {
  const wanted = new Set(paths);
  return commands.filter(
    (c) => c[0] === 'nix-store' && c.includes('--check-validity') && c.some((a) => wanted.has(a)),
  ).length;
}

/** `bytes` (an honest bundle whose manifest is `m`) with manifest fields changed, checksum recomputed. */
function withManifest(bytes: Uint8Array, m: BundleManifest, changes: Partial<BundleManifest>): Uint8Array {
  const { checksum: _c, ...rest } = m;
  return forgeRaw({ ...rest, ...changes }, bytes.subarray(bytes.length - m.stream.compressedSize));
}

describe.each(versions.map((v) => [v.label, v] as const))('bounded cost, Nix %s', (_label, version) => {
  const base = mkdtempSync(join(tmpdir(), 'nix-plan-cost-'));
  const storeDir = join(base, 'store');
  let plan: Plan;
  let store: ScratchStore;
  let texts: string[] = [];

  beforeAll(async () => {
    plan = await inThrowawayStore(version, storeDir, join(base, 'maker'), (maker) =>
      realPlan(maker, 'c', 'drvs', join(base, 'marker')),
    );
    store = new ScratchStore(version, { storeDir, root: join(base, 'target') });
    // The texts, imported first: later plans refer to them without holding them.
    let held = plan;
    for (let i = 0; i < REFERENCES; i++)
      held = withEntry(held, textEntry(storeDir, `t${i}`, `text ${i}\n`), 0);
    texts = held.entries.slice(0, REFERENCES).map((e) => e.path);
    const file = join(base, 'texts.nixplan');
    writeFileSync(file, await forgeBundle(held));
    const { code, err } = await cli(['import', file, '-q'], store.runner);
    expect([code, err]).toEqual([0, '']);
  });
  afterAll(() => {
    store.dispose();
    // The remove raced something still writing under base once (ENOTEMPTY): retry briefly.
    rmSync(base, { recursive: true, force: true, maxRetries: 10, retryDelay: 200 });
  });

  test(`${REFERENCES} references the store has: one validity query about them`, async () => {
    const file = join(base, 'refers.nixplan');
    writeFileSync(file, await forgeBundle(withEntry(plan, textEntry(storeDir, 'refers', 'x\n', texts))));
    const runner = new RecordingRunner(store.runner);
    const { code, err } = await cli(['import', file, '-q'], runner);
    expect([code, err]).toEqual([0, '']);
    expect(validityQueriesAbout(runner.commands, texts)).toBe(1);
    // And few Nix processes in all, not one per reference.
    expect(runner.commands.length).toBeLessThan(16);
  });

  test('one of them missing: refused after the same one query, the store unchanged', async () => {
    const missing = `${storeDir}/${'0'.repeat(32)}-gone`;
    const refs = [...texts.slice(1), missing];
    const file = join(base, 'refers-missing.nixplan');
    writeFileSync(file, await forgeBundle(withEntry(plan, textEntry(storeDir, 'refers-2', 'y\n', refs))));
    const before = await dumpDb(store);
    const runner = new RecordingRunner(store.runner);
    const { code, err } = await cli(['import', file], runner);
    expect(`exit ${code}: ${err}`).toMatch(
      /^exit 7: .*'[^']*-gone', which is neither in the bundle nor valid/s,
    );
    expect(validityQueriesAbout(runner.commands, refs)).toBe(1);
    expect(await dumpDb(store)).toBe(before);
  });

  test('a plan that under-declares its NAR bytes: refused before more than it declared is handed on', async () => {
    // A 16 MiB source whose manifest claims 8 MiB less NAR bytes than the bundle holds; every other
    // field (stream sizes and digests, checksum) is honest.
    const big = sourceEntry(storeDir, 'big', narOfFile(noise(16 * 1024 * 1024)));
    const honest = await forgeBundle(withEntry(plan, big, 0));
    const { manifest: m } = await verifyBundle(memorySource(honest), { storeDir });
    const narBytes = { ...m.narBytes, source: m.narBytes.source - 8 * 1024 * 1024 };
    const lying = withManifest(honest, m, { narBytes });
    const declared = Object.values(narBytes).reduce((a, b) => a + b, 0);
    let handed = 0;
    await expect(
      verifyBundle(memorySource(lying), { storeDir, onNarBytes: (c) => void (handed += c.length) }),
    ).rejects.toThrow(/lies about its sizes/);
    expect(handed).toBeLessThanOrEqual(declared);
    expect(handed).toBeGreaterThan(0);
    // Through the command line: exit 3, nothing added, nothing left in the temp dir.
    const file = join(base, 'lying.nixplan');
    writeFileSync(file, lying);
    const before = await dumpDb(store);
    const { code, err } = await cli(['import', file], store.runner);
    expect(`exit ${code}: ${err}`).toMatch(/^exit 3: .*lies about its sizes/s);
    expect(await dumpDb(store)).toBe(before);
  });

  test('a plan that under-declares its stream: refused before more than it declared is written', async () => {
    // The stream 8 MiB shorter than it is (and its NAR bytes with it, as the schema wants).
    const big = sourceEntry(storeDir, 'big', narOfFile(noise(16 * 1024 * 1024)));
    const honest = await forgeBundle(withEntry(plan, big, 0));
    const { manifest: m } = await verifyBundle(memorySource(honest), { storeDir });
    const less = 8 * 1024 * 1024;
    const size = m.stream.size - less;
    const lying = withManifest(honest, m, {
      stream: { ...m.stream, size },
      narBytes: { ...m.narBytes, source: m.narBytes.source - less },
    });
    let written = 0;
    const refused = await verifyBundle(memorySource(lying), {
      storeDir,
      onStreamBytes: (c) => void (written += c.length),
    }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(NixPlanError);
    expect(String(refused)).toMatch(/decompresses to more than the \d+ bytes|lies about its sizes/);
    expect(written).toBeLessThanOrEqual(size);
    expect(written).toBeGreaterThan(0);
  });

  test('no room in the temp dir, or over --max-size: refused before decompressing, the store unchanged', async () => {
    const honest = await forgeBundle(plan);
    const { manifest: m } = await verifyBundle(memorySource(honest), { storeDir });
    // A plan declaring 4 PiB uncompressed, allowed by --max-size: no temp dir has that room.
    const huge = join(base, 'huge.nixplan');
    writeFileSync(huge, withManifest(honest, m, { stream: { ...m.stream, size: 2 ** 52 } }));
    const before = await dumpDb(store);
    let r = await cli(['import', huge, '--max-size', '8192T'], store.runner);
    expect(`exit ${r.code}: ${r.err}`).toMatch(
      /^exit 8: .*but \S+ has room for \d+: free some, or point TMPDIR/s,
    );
    // An honest plan over --max-size.
    const file = join(base, 'honest.nixplan');
    writeFileSync(file, honest);
    r = await cli(['import', file, '--max-size', '1K'], store.runner);
    expect(`exit ${r.code}: ${r.err}`).toMatch(
      /^exit 8: .*more than the limit of 1024 bytes \(raise it with --max-size\)/s,
    );
    expect(await dumpDb(store)).toBe(before);
  });
});
