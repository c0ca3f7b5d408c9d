// Whether a directory's file system has room for a file about to be written there: the one check
// made before a bundle or an artifact is copied, or a verified stream written, so a full disk is
// refused by name before anything is written rather than failing halfway.
import { statfs } from 'node:fs/promises';
import { LimitError } from '../core/errors.js';
import type { OptionNames } from '../core/option-names.js';

/** What a refusal for want of room in TMPDIR suggests on the command line. */
export const TMPDIR_ADVICE = 'free some, or point TMPDIR elsewhere';

/**
 * What a refusal for want of room in the temp dir suggests to the user of a front end (`names`:
 * its option names; undefined, the command line). An action runs in a job whose runner chose
 * the temp dir: its user can free room in an earlier step or pick a runner with a larger disk.
 */
export function tmpdirAdvice(names: OptionNames | undefined): string {
  if (names?.style !== 'input') return TMPDIR_ADVICE;
  return 'free some on the runner (a step before this one can delete what the job no longer needs), or run the job on a runner with a larger disk';
}

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
