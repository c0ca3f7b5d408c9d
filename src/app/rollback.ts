// Rolling back an import that failed or was interrupted: the paths it made valid are removed again,
// so the store's valid paths are what they were before it started.
//
// An import adds paths in dependency order, and a path it added can only be referred to by paths
// added after it (Nix registers references to valid paths only), so those paths are new and
// unreferenced from outside: `nix-store --delete` removes them all, newest first. A path another
// process started using meanwhile (a concurrent build, a GC root) is kept, and said so.
import { NixPlanError } from '../core/errors.js';
import { deletePaths } from '../nix/gc.js';
import type { NixStore } from '../nix/store.js';

/** What rolling back did. */
export interface RollbackResult {
  /** Paths this import had made valid, now removed again. */
  readonly removed: readonly string[];
  /** Paths it had made valid that could not be removed (something else holds them now). */
  readonly kept: readonly string[];
  /** Why the first of `kept` stayed (Nix's message), when any did. */
  readonly reason?: string | undefined;
}

/**
 * Removes again those of `added` (the paths that were not valid before the import, in its order)
 * that are valid now. `store` must run on a runner that still works after an interruption.
 */
export async function rollBack(store: NixStore, added: readonly string[]): Promise<RollbackResult> {
  if (added.length === 0) return { removed: [], kept: [] };
  const invalid = await store.invalidPaths(added);
  const valid = added.filter((p) => !invalid.has(p)).reverse();
  if (valid.length === 0) return { removed: [], kept: [] };
  let reason: string | undefined;
  try {
    await deletePaths(store, valid);
  } catch (e) {
    // One that stays alive stops the run: remove the others one at a time, newest first.
    reason = firstLine(e);
    for (const p of valid)
      await deletePaths(store, [p]).catch((f: unknown) => {
        reason ??= firstLine(f);
      });
  }
  const still = await store.invalidPaths(valid);
  const kept = valid.filter((p) => !still.has(p));
  return { removed: valid.filter((p) => still.has(p)), kept, ...(kept.length > 0 && { reason }) };
}

function firstLine(e: unknown): string {
  const text = e instanceof Error ? e.message : String(e);
  const lines = text.split('\n').filter((l) => /error|alive|cannot/i.test(l));
  return (lines[lines.length - 1] ?? text).trim();
}

/** What a failure message adds about the rollback. */
export function rollbackNote(result: RollbackResult): string {
  if (result.removed.length === 0 && result.kept.length === 0)
    return 'no path had been added, the store is unchanged';
  if (result.kept.length === 0)
    return `the ${result.removed.length} path${result.removed.length === 1 ? '' : 's'} it had added ${result.removed.length === 1 ? 'was' : 'were'} removed again, the store is as it was`;
  return (
    `${result.removed.length} of the paths it had added were removed again, but ${result.kept.length} could not be ` +
    `(e.g. '${result.kept[0]}': ${result.reason ?? 'still in use'}); remove them with nix-store --delete once nothing uses them`
  );
}

/** `error` with what the rollback did added to its message (the same error: its class and code stay). */
export function withRollbackNote(error: unknown, result: RollbackResult): unknown {
  if (error instanceof NixPlanError) error.message = `${error.message}\n(${rollbackNote(result)})`;
  return error;
}
