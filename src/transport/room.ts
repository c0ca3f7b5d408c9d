// Whether a directory's file system has room for a file about to be written there: the one check
// made before a bundle or an artifact is copied, or a verified stream written, so a full disk is
// refused by name before anything is written rather than failing halfway.
import { statfs } from 'node:fs/promises';
import { LimitError } from '../core/errors.js';

/** What a refusal for want of room in TMPDIR suggests. */
export const TMPDIR_ADVICE = 'free some, or point TMPDIR elsewhere';

/**
 * Refuses (a LimitError) to write `bytes` bytes into `dir` when its file system has less room than
 * that for an unprivileged writer; says nothing when the room cannot be read (the write itself
 * then says what is wrong). The message is `<what>, but <dir> has room for <n>`, then `: <advice>`.
 */
export async function requireRoom(dir: string, bytes: number, what: string, advice?: string): Promise<void> {
  const fs = await statfs(dir).catch(() => undefined);
  if (fs === undefined) return;
  const room = fs.bavail * fs.bsize;
  if (room < bytes)
    throw new LimitError(
      `${what}, but ${dir} has room for ${room}${advice === undefined ? '' : `: ${advice}`}`,
    );
}
