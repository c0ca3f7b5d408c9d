// What git says about the worktree a plan is evaluated in: commit, branch, uncommitted changes,
// and the remote. Everything is optional: outside a repository, or without git, it says nothing.
import type { GitFacts } from '../core/provenance.js';
import type { CommandRunner } from './runner.js';

async function git(runner: CommandRunner, dir: string, args: string[]): Promise<string | undefined> {
  try {
    const r = await runner.run('git', ['-C', dir, ...args], { allowFailure: true });
    return r.code === 0 ? r.stdout.toString('utf8').trim() : undefined;
  } catch {
    return undefined; // no git on PATH
  }
}

/**
 * The git facts of the worktree holding `dir`, or an empty object when `dir` is not in one (or
 * git is not installed). `dirty` counts untracked files too: an evaluation can read them.
 */
export async function readGitFacts(runner: CommandRunner, dir: string): Promise<GitFacts> {
  const commit = await git(runner, dir, ['rev-parse', '--verify', '-q', 'HEAD']);
  if (commit === undefined || commit === '') return {};
  const [ref, status, remoteUrl] = await Promise.all([
    git(runner, dir, ['symbolic-ref', '-q', 'HEAD']),
    git(runner, dir, ['status', '--porcelain']),
    git(runner, dir, ['remote', 'get-url', 'origin']),
  ]);
  return {
    commit,
    ...(ref !== undefined && ref !== '' && { ref }),
    ...(status !== undefined && { dirty: status !== '' }),
    ...(remoteUrl !== undefined && remoteUrl !== '' && { remoteUrl }),
  };
}
