// The reader's size limits as pure rules: the zip-bomb ratio applies only above its floor, and
// what a writer checks before calling a bundle done.
import { describe, expect, test } from '@jest/globals';
import {
  DEFAULT_READER_LIMITS,
  checkSizeLimits,
  checkWritten,
  entryLimitProblem,
  type BundleManifest,
} from '../../../src/core/bundle/index.js';
import { LimitError } from '../../../src/core/errors.js';

function manifest(size: number, compressedSize: number, paths = 2): BundleManifest {
  return { paths, stream: { size, compressedSize } } as unknown as BundleManifest;
}

describe('reader size limits', () => {
  test('a very compressible stream is accepted up to the ratio floor, refused above it', () => {
    const floor = DEFAULT_READER_LIMITS.ratioFloor;
    expect(floor).toBe(2 ** 30);
    // A 256 MB attribute compresses some 10,000 times.
    expect(() => checkSizeLimits(manifest(256_000_000, 25_000), DEFAULT_READER_LIMITS)).not.toThrow();
    expect(() => checkSizeLimits(manifest(floor, 1), DEFAULT_READER_LIMITS)).not.toThrow();
    expect(() => checkSizeLimits(manifest(floor + 1, 1), DEFAULT_READER_LIMITS)).toThrow(/possible zip bomb/);
    // Above the floor an ordinary ratio passes.
    expect(() => checkSizeLimits(manifest(4 * floor, floor / 10), DEFAULT_READER_LIMITS)).not.toThrow();
    // The absolute size applies at any ratio.
    expect(() =>
      checkSizeLimits(manifest(1000, 1000), { ...DEFAULT_READER_LIMITS, maxStreamSize: 999 }),
    ).toThrow(LimitError);
  });

  test('a .drv is kept whole up to 512 MiB by default', () => {
    const limits = DEFAULT_READER_LIMITS;
    const drv = { path: '/s/x.drv', kind: 'drv' as const, references: [], narSize: 1 };
    expect(entryLimitProblem({ ...drv, fileSize: 256_000_300 }, limits)).toBeUndefined();
    expect(entryLimitProblem({ ...drv, fileSize: 2 ** 29 + 1 }, limits)).toMatch(
      /larger than the limit of 536870912 bytes for a \.drv/,
    );
    // Only a .drv must be kept: a big source streams.
    expect(
      entryLimitProblem({ ...drv, path: '/s/x', kind: 'source', fileSize: 2 ** 31 }, limits),
    ).toBeUndefined();
    expect(
      entryLimitProblem(
        { ...drv, references: ['a', 'b'], fileSize: 1 },
        { ...limits, export: { maxReferences: 1 } },
      ),
    ).toMatch(/2 references, more than the limit of 1/);
  });

  test('a writer refuses what its readers would refuse, saying so', () => {
    expect(() => checkWritten(manifest(1000, 10), DEFAULT_READER_LIMITS)).not.toThrow();
    expect(() => checkWritten(manifest(1000, 10), { ...DEFAULT_READER_LIMITS, maxStreamSize: 10 })).toThrow(
      /not written, as its readers would refuse it: .*more than the limit of 10 bytes/,
    );
    expect(() =>
      checkWritten(manifest(1000, 10, 5), { ...DEFAULT_READER_LIMITS, export: { maxPaths: 4 } }),
    ).toThrow(/5 paths, more than the limit of 4/);
    expect(() => checkWritten(manifest(1000, 10), DEFAULT_READER_LIMITS, ['one path is too big'])).toThrow(
      /refuse it: one path is too big/,
    );
  });
});
