// The one check for room on a disk before a bundle, an artifact or a verified stream is written:
// against the real file system of this machine's temp dir.
import { describe, expect, test } from '@jest/globals';
import { statfsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LimitError } from '../../src/core/errors.js';
import { requireRoom } from '../../src/transport/room.js';

describe('requireRoom', () => {
  const dir = tmpdir();
  const free = (): number => {
    const fs = statfsSync(dir);
    return fs.bavail * fs.bsize;
  };

  test('more than the file system has is refused by name, with the room there is and the advice', async () => {
    const error = await requireRoom(dir, free() + 2 ** 40, 'the plan is 9 bytes', 'free some').catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(LimitError);
    expect((error as Error).message).toMatch(
      new RegExp(
        `^the plan is 9 bytes, but ${dir.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} has room for \\d+: free some$`,
      ),
    );
    // Without advice, the message ends with the room.
    await expect(requireRoom(dir, free() + 2 ** 40, 'the artifact "x" is 9 bytes')).rejects.toThrow(
      /has room for \d+$/,
    );
  });

  test('what fits passes, and a directory whose room cannot be read is left to the write', async () => {
    await expect(requireRoom(dir, 0, 'nothing')).resolves.toBeUndefined();
    await expect(requireRoom(dir, 1, 'one byte')).resolves.toBeUndefined();
    await expect(
      requireRoom(join(dir, 'no-such-dir-for-room'), 2 ** 60, 'far too much'),
    ).resolves.toBeUndefined();
  });
});
