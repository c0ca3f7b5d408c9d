// `apply -`: a plan read from standard input is whatever the sender chose, as a file is. Its head
// is checked before anything is written to TMPDIR, and no more than the length it declares is
// read: a stream of zeros, or a valid plan followed by more bytes, is refused at once, never
// copied whole (before, all of it went to TMPDIR first, however long it was).
import { describe, expect, test } from '@jest/globals';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { main } from '../../src/cli/main.js';
import { ExitCode } from '../../src/cli/exit-codes.js';
import type { UseCases } from '../../src/cli/use-cases.js';
import { bundleOf, encodeExport, FIXTURE_CREATED_AT } from '../support/bundle-fixtures.js';

const STORE = '/nix/store';

function planBundle(compressedSize?: number): Uint8Array {
  const draft = {
    tool: 'nix-plan test',
    nixVersion: 'test',
    createdAt: FIXTURE_CREATED_AT,
    provenance: {},
    storeDir: STORE,
    systems: ['x86_64-linux'],
    include: 'drvs' as const,
    roots: [
      {
        attribute: 'web',
        drvPath: `${STORE}/${'a'.repeat(32)}-nixos-system-web-24.05.drv`,
        outputs: { out: `${STORE}/${'b'.repeat(32)}-nixos-system-web-24.05` },
      },
    ],
    counts: { drv: 0, text: 0, source: 0, output: 0 },
    narBytes: { drv: 0, text: 0, source: 0, output: 0 },
    paths: 0,
  };
  const plain = bundleOf(draft, encodeExport([]));
  if (compressedSize === undefined) return plain.bytes;
  // The checksum recomputed over a manifest that declares another compressed size.
  return bundleOf(draft, encodeExport([]), {
    manifest: { stream: { ...plain.manifest.stream, compressedSize } },
  }).bytes;
}

/** A stream of `head`, then `tail` bytes (zeros) in 64 KiB chunks; counts what was read of it. */
function sender(head: Uint8Array, tail: number): { stream: Readable; pulled: () => number } {
  let pulled = 0;
  const chunk = new Uint8Array(64 * 1024);
  function* bytes(): Generator<Uint8Array> {
    pulled += head.length;
    yield head;
    for (let left = tail; left > 0; left -= chunk.length) {
      const piece = chunk.subarray(0, Math.min(chunk.length, left));
      pulled += piece.length;
      yield piece;
    }
  }
  return { stream: Readable.from(bytes(), { objectMode: false, highWaterMark: 1 }), pulled: () => pulled };
}

async function applyFrom(
  stdin: Readable,
  useCases?: Partial<UseCases>,
): Promise<{ code: number; err: string; seen: string | undefined }> {
  let err = '';
  let seen: string | undefined;
  const tmp = mkdtempSync(join(tmpdir(), 'nix-plan-stdin-test-'));
  const saved = process.env['TMPDIR'];
  process.env['TMPDIR'] = tmp;
  try {
    const code = await main(['apply', '-', '--profile', '/p'], {
      io: {
        stdout: { write: () => true },
        stderr: { write: (s: string | Uint8Array) => ((err += String(s)), true) },
        stdin,
      },
      useCases:
        useCases ??
        ({
          applyPlan: (bundle: string | undefined) => {
            seen = readFileSync(bundle ?? '').toString('hex');
            expect(statSync(bundle ?? '').mode & 0o777).toBe(0o600);
            return Promise.resolve({
              action: 'switch',
              systemPath: '/s',
              profile: '/p',
              profileChanged: true,
              generation: 1,
              output: '',
            });
          },
        } as unknown as UseCases),
    });
    // Nothing is left behind in TMPDIR, accepted or not.
    expect(readdirSync(tmp)).toEqual([]);
    return { code, err, seen };
  } finally {
    if (saved === undefined) delete process.env['TMPDIR'];
    else process.env['TMPDIR'] = saved;
    rmSync(tmp, { recursive: true, force: true });
  }
}

describe('apply - (a plan on standard input)', () => {
  test('a whole plan is copied to a private file, byte for byte, and removed afterwards', async () => {
    const bytes = planBundle();
    const { stream } = sender(bytes, 0);
    const r = await applyFrom(stream);
    expect(r.code).toBe(0);
    expect(r.seen).toBe(Buffer.from(bytes).toString('hex'));
  });

  test('a stream that is not a plan is refused from its first bytes, not copied to its end', async () => {
    const s = sender(new Uint8Array(0), 64 * 1024 * 1024);
    const r = await applyFrom(s.stream);
    expect(r.code).toBe(ExitCode.bundle);
    expect(r.err).toContain("plan bundle 'standard input': not a zstd skippable frame");
    expect(r.seen).toBeUndefined();
    expect(s.pulled()).toBeLessThan(1024 * 1024);
  });

  test('a plan followed by more bytes is refused once they come, having read no more than a chunk of them', async () => {
    const bytes = planBundle();
    const s = sender(bytes, 64 * 1024 * 1024);
    const r = await applyFrom(s.stream);
    expect(r.code).toBe(ExitCode.bundle);
    expect(r.err).toContain(
      `plan bundle 'standard input' is followed by extra bytes: the manifest says ${bytes.length} bytes`,
    );
    expect(r.seen).toBeUndefined();
    expect(s.pulled()).toBeLessThan(bytes.length + 1024 * 1024);
  });

  test('a truncated plan is refused', async () => {
    const bytes = planBundle();
    const s = sender(bytes.subarray(0, bytes.length - 3), 0);
    const r = await applyFrom(s.stream);
    expect(r.code).toBe(ExitCode.bundle);
    expect(r.err).toContain(
      `plan bundle 'standard input' is truncated: the manifest says ${bytes.length} bytes, the stream had ${bytes.length - 3}`,
    );
    expect(r.seen).toBeUndefined();
  });

  test('a manifest declaring a terabyte of compressed data is refused from its head', async () => {
    const head = planBundle(2 ** 40);
    const s = sender(head, 64 * 1024 * 1024);
    const r = await applyFrom(s.stream);
    expect(r.code).toBe(ExitCode.bundle);
    expect(r.err).toMatch(/standard input/);
    expect(r.seen).toBeUndefined();
    expect(s.pulled()).toBeLessThan(1024 * 1024);
  });

  test('messages after the copy name standard input, never the private copy', async () => {
    // The real applyPlan, with a realise that reports building another system than the plan's:
    // the error and the name realise was given for its own messages say what the user gave.
    let name: string | undefined;
    const r = await applyFrom(sender(planBundle(), 0).stream, {
      realisePlan: ((_bundle: string, options: { name?: string }) => {
        name = options.name;
        return Promise.resolve({ outPaths: { x: { out: `${STORE}/${'c'.repeat(32)}-other` } } });
      }) as unknown as UseCases['realisePlan'],
    });
    expect(name).toBe('standard input');
    expect(r.code).toBe(ExitCode.internal);
    expect(r.err).toContain("the plan built from 'standard input' is not the plan read");
    expect(r.err).not.toMatch(/nix-plan-stdin-|plan\.nixplan/);
  });
});
