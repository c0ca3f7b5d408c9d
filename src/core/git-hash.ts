// Git hashing (Nix's experimental `git-hashing`, `outputHashMode = "git"`): a regular file is
// hashed as a git blob, `blob <size>\0<contents>`, whatever its executable bit (git keeps that
// in the tree, not in the blob). Directories and symlinks hash as git trees and blobs of their
// targets; nix-plan recognises only files, and says so for the rest.
import { hashBytes, type Hash } from './hash.js';

/** The hash algorithms git hashing takes (Nix refuses any other). */
export type GitHashAlgo = 'sha1' | 'sha256';

/** True for the algorithms Nix's git hashing accepts. */
export function isGitHashAlgo(algo: string): algo is GitHashAlgo {
  return algo === 'sha1' || algo === 'sha256';
}

/** The git blob hash of a regular file's contents. */
export function gitBlobHash(algo: GitHashAlgo, contents: Uint8Array): Hash {
  return hashBytes(algo, `blob ${contents.length}\0`, contents);
}
