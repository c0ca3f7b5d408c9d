// Removing store paths again: `nix-store --delete`, which removes valid paths nothing valid refers
// to and no GC root (or running process) holds, and refuses the others ("still alive").
import { NixCommandError } from './errors.js';
import { batchPaths, type NixStore } from './store.js';

/**
 * `nix-store --delete PATHS…` in one run (per command-line batch). Nix walks each path's referrers:
 * any outside `paths` keeps it (and that run fails); `keep-derivations` is turned off so a .drv
 * goes even when an output it built stays. A failure is a NixCommandError.
 */
export async function deletePaths(store: NixStore, paths: readonly string[]): Promise<void> {
  for (const batch of batchPaths(paths)) {
    const args = [...store.storeArgs(), '--option', 'keep-derivations', 'false', '--delete', ...batch];
    const result = await store.runner.run('nix-store', args, { allowFailure: true });
    NixCommandError.check('nix-store', args, result, { what: 'nix-store --delete' });
  }
}
