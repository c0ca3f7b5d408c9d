// The private copy every command that imports, applies, deploys or diffs a plan works from: a file
// that is not what its head says is refused before a byte of it is copied into TMPDIR.
import { afterAll, afterEach, describe, expect, test } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fetchPlan } from '../../src/action/fetch.js';
import { ACTION_OPTION_NAMES } from '../../src/action/constants.js';
import { checkRoom, privateBundle, VerifiedStreamFile } from '../../src/app/private-copy.js';
import { main } from '../../src/cli/main.js';
import { memorySource, readBundleHead } from '../../src/core/bundle/index.js';
import type { OptionNames } from '../../src/core/option-names.js';
import { LocalDirectoryTransport } from '../../src/transport/local.js';
import { systemBundle } from '../support/bundle-fixtures.js';
import { capture } from '../support/cli-run.js';

const storeDir = '/a/s';
const work = mkdtempSync(join(tmpdir(), 'nix-plan-private-copy-'));
const TMPDIR = process.env['TMPDIR'];
afterEach(() => {
  if (TMPDIR === undefined) delete process.env['TMPDIR'];
  else process.env['TMPDIR'] = TMPDIR;
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

const TiB = 1024 ** 4;

/** A one-root NixOS-system plan; `compressedSize` forged into its manifest, checksum recomputed. */
const plan = (stream: { compressedSize?: number } = {}): Promise<Uint8Array> =>
  systemBundle(storeDir, 'web', stream);

/** Runs nix-plan with TMPDIR somewhere that does not exist: any use of it before the refusal fails. */
async function run(argv: string[]): Promise<{ code: number; err: string }> {
  process.env['TMPDIR'] = join(work, 'no-such-tmpdir');
  const io = capture();
  const code = await main(argv, { io });
  return { code, err: io.err() };
}

describe('a bundle is checked before it is copied', () => {
  const profileDir = join(work, 'profiles');
  mkdirSync(profileDir, { recursive: true });
  const profile = join(profileDir, 'system');
  const commands = (file: string): string[][] => [
    ['deploy', file, '--host', '127.0.0.1:9'],
    ['apply', file, '--profile', profile],
    ['diff', file, file],
  ];

  test('a valid head before a sparse terabyte: refused from the head, nothing copied (exit 3)', async () => {
    const file = join(work, 'sparse.nixplan');
    const bytes = await plan();
    writeFileSync(file, bytes);
    truncateSync(file, TiB);
    for (const argv of commands(file)) {
      const { code, err } = await run(argv);
      expect({ argv, code }).toEqual({ argv, code: 3 });
      expect(err).toContain(
        `plan bundle '${file}' is followed by extra bytes: the manifest says ${bytes.length} bytes, the file has ${TiB}`,
      );
    }
    expect(readdirSync(profileDir)).toEqual([]);
  });

  test('a manifest declaring a terabyte of compressed data, checksum recomputed: refused naming the field (exit 3)', async () => {
    // The file is as long as the forged manifest says (sparse), so the head alone does not refuse it.
    const forged = await plan({ compressedSize: TiB });
    const file = join(work, 'forged.nixplan');
    writeFileSync(file, forged);
    truncateSync(file, dataOffset(forged) + TiB);
    for (const argv of commands(file)) {
      const { code, err } = await run(argv);
      expect({ argv, code }).toEqual({ argv, code: 3 });
      expect(err).toMatch(
        new RegExp(
          `plan bundle '${file}': its manifest's stream.compressedSize \\(${TiB}\\) is more than zstd makes of \\d+ bytes`,
        ),
      );
    }
    expect(readdirSync(profileDir)).toEqual([]);
  });

  test('a FIFO planted as the bundle: refused at once, never waited on (exit 2)', async () => {
    const fifo = join(work, 'fifo.nixplan');
    execFileSync('mkfifo', [fifo]);
    for (const argv of commands(fifo)) {
      const { code, err } = await run(argv);
      expect({ argv, code }).toEqual({ argv, code: 2 });
      expect(err).toContain(`cannot read bundle '${fifo}': it is not a regular file`);
    }
    expect(existsSync(join(work, 'no-such-tmpdir'))).toBe(false);
  });

  test('verify and inspect, which read the file itself, refuse a FIFO or a directory at once too (exit 2)', async () => {
    const fifo = join(work, 'fifo-read.nixplan');
    execFileSync('mkfifo', [fifo]);
    for (const file of [fifo, work])
      for (const argv of [
        ['verify', file],
        ['inspect', file],
        ['inspect', file, '--contents'],
      ]) {
        const { code, err } = await run(argv);
        expect({ argv, code }).toEqual({ argv, code: 2 });
        expect(err).toContain(`cannot read bundle '${file}': it is not a regular file`);
      }
  });
});

describe('a plan in a shared directory (artifact-dir) is checked before it is copied', () => {
  test('a valid head before a sparse terabyte, planted by whoever shares the directory: refused (exit 3), nothing copied', async () => {
    const shared = join(work, 'shared');
    const bytes = await plan();
    const upload = join(work, 'upload.nixplan');
    writeFileSync(upload, bytes);
    await new LocalDirectoryTransport(shared, 7).upload(upload, 'plan.nixplan');
    // The forger rewrites the published file in place: its head stays, a sparse terabyte follows.
    truncateSync(join(shared, '7', 'plan.nixplan'), TiB);
    // Where the plan would be copied to lies under a file: anything done there before the refusal fails.
    const blocker = join(work, 'a-file');
    writeFileSync(blocker, '');
    const settings = {
      source: {
        kind: 'artifact' as const,
        name: 'plan.nixplan',
        runId: 7,
        repository: undefined,
        token: undefined,
        artifactDir: shared,
      },
      digest: `sha256:${'0'.repeat(64)}`,
      trustedKeys: [],
      noCheckSigs: false,
      maxAgeMs: undefined,
      maxAgeText: undefined,
    };
    const refused = fetchPlan(
      settings,
      () => new LocalDirectoryTransport(shared, 8),
      join(blocker, 'fetched'),
    );
    await expect(refused).rejects.toMatchObject({
      code: 'bundle',
      message: `plan bundle 'plan.nixplan' is followed by extra bytes: the manifest says ${bytes.length} bytes, the file has ${TiB}`,
    });
  });
});

describe("an action's `bundle:` file is checked before it is hashed", () => {
  test('a valid head before a sparse terabyte: refused from the head (exit 3)', async () => {
    const bytes = await plan();
    const file = join(work, 'bundle-input.nixplan');
    writeFileSync(file, bytes);
    truncateSync(file, TiB);
    const settings = {
      source: { kind: 'file' as const, path: file },
      digest: `sha256:${'0'.repeat(64)}`,
      trustedKeys: [],
      noCheckSigs: false,
      maxAgeMs: undefined,
      maxAgeText: undefined,
    };
    await expect(
      fetchPlan(
        settings,
        () => {
          throw new Error('no transport for a file');
        },
        join(work, 'unused'),
      ),
    ).rejects.toMatchObject({
      code: 'bundle',
      message: `plan bundle '${file}' is followed by extra bytes: the manifest says ${bytes.length} bytes, the file has ${TiB}`,
    });
  });
});

/** Where a bundle's data frame starts: after the skippable frame of its manifest (8-byte header). */
function dataOffset(bytes: Uint8Array): number {
  return 8 + Buffer.from(bytes).readUInt32LE(4);
}

describe('the private copy', () => {
  test('its digest is the sha256 of exactly the bytes copied, over several reads; a digest asked for is checked against it', async () => {
    // A head whose manifest declares 9 MiB more compressed data than its frame holds, followed by
    // that many random bytes: a file the head check lets through, copied in three reads.
    const real = await plan();
    const { manifest } = await readBundleHead(memorySource(real));
    const extra = 9 * 1024 * 1024 + 123;
    const head = await systemBundle(storeDir, 'web', {
      compressedSize: manifest.stream.compressedSize + extra,
      size: 64 * 1024 * 1024,
    });
    const bytes = Buffer.concat([head, randomBytes(extra)]);
    const file = join(work, 'several-reads.nixplan');
    writeFileSync(file, bytes);
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    const tmp = mkdtempSync(join(work, 'tmp-'));
    process.env['TMPDIR'] = tmp;

    const copy = await privateBundle(file, { digest: sha256.toUpperCase() });
    try {
      expect(copy.digest).toBe(`sha256:${sha256}`);
      expect(readFileSync(copy.path).equals(bytes)).toBe(true);
    } finally {
      await copy.dispose();
    }
    const wrong = `sha256:${createHash('sha256').update(bytes.subarray(1)).digest('hex')}`;
    await expect(privateBundle(file, { digest: wrong })).rejects.toMatchObject({
      code: 'bundle',
      message: `the bundle '${file}' has sha256:${sha256}, not the expected digest ${wrong}: it is not the plan that was published`,
    });
    await expect(privateBundle(file, { digest: 'sha256:abc' })).rejects.toMatchObject({ code: 'usage' });
    // Nothing is left behind, refused or not.
    expect(readdirSync(tmp)).toEqual([]);
  });
});

describe('the verified stream file', () => {
  test('holds every chunk in order once closed', () => {
    const file = new VerifiedStreamFile(join(mkdtempSync(join(work, 'vsf-')), 'export'));
    const chunks: Uint8Array[] = [];
    for (let i = 0; i < 200; i++) chunks.push(randomBytes(1 + ((i * 7919) % 65536)));
    for (let i = 0; i < 6; i++) chunks.push(randomBytes(5 * 1024 * 1024 + i));
    chunks.push(new Uint8Array(0));
    for (const c of chunks) file.write(c);
    file.close();
    expect(file.complete).toBe(true);
    expect(readFileSync(file.path).equals(Buffer.concat(chunks))).toBe(true);
  });

  test('an existing file is not overwritten', () => {
    const path = join(mkdtempSync(join(work, 'vsf-')), 'export');
    writeFileSync(path, 'x');
    expect(() => new VerifiedStreamFile(path)).toThrow(/EEXIST/);
  });
});

describe('the size limit checked before a plan is decompressed', () => {
  test('its advice names the option as each front end spells it, and never a flag in an action', async () => {
    const { manifest } = await readBundleHead(memorySource(await plan()));
    const limit = manifest.stream.size - 1;
    const refusal = (names?: OptionNames): Promise<unknown> =>
      checkRoom(manifest, work, limit, names).catch((e: unknown) => e);
    expect(await refusal()).toMatchObject({
      code: 'limit',
      message: expect.stringMatching(
        /more than the limit of \d+ bytes \(raise it with --max-size\)$/,
      ) as unknown,
    });
    const action = (await refusal(ACTION_OPTION_NAMES)) as Error;
    expect(action.message).toMatch(
      /more than the limit of \d+ bytes \(the limit keeps a plan from filling the runner's disk, and no input raises it\)$/,
    );
    expect(action.message).not.toContain('--');
    await expect(
      checkRoom(manifest, work, manifest.stream.size, ACTION_OPTION_NAMES),
    ).resolves.toBeUndefined();
  });
});
