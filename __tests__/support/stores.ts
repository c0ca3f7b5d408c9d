// The stores the hostile-input tests work with: a throwaway one to make plans in, and the target
// a plan is imported into or refused by (a local store as root, or a daemon's store reached as an
// untrusted user), so each test file does not set them up again.
import { rmSync } from 'node:fs';
import type { CommandRunner } from '../../src/nix/runner.js';
import { DaemonStore, ensureUntrustedUser } from './daemon.js';
import { ScratchStore, nixVersions, type NixVersion } from './nix.js';

/**
 * Runs `make` with a scratch store at `storeDir` (its state under `root`, or a temp dir), then
 * removes the store and the store dir, so the target stores can use the same dir afterwards.
 */
export async function inThrowawayStore<T>(
  version: NixVersion,
  storeDir: string,
  root: string | undefined,
  make: (store: ScratchStore) => Promise<T>,
): Promise<T> {
  const maker = new ScratchStore(version, root === undefined ? { storeDir } : { storeDir, root });
  try {
    return await make(maker);
  } finally {
    maker.dispose();
    rmSync(storeDir, { recursive: true, force: true });
  }
}

/** How a test reaches its target store: directly as root, or through a daemon as an untrusted user. */
export type StoreMode = 'local' | 'daemon';

/** A target store and how the command line reaches it. */
export interface TargetStore {
  /** Root's local view of the store, for setting up and for snapshots. */
  readonly scratch: ScratchStore;
  /** What the command line runs Nix with. */
  readonly runner: CommandRunner;
  /** Stops the daemon (if any) and removes the store. */
  close(): Promise<void>;
}

/**
 * A target store at `storeDir`: `local`, a scratch store with its state under `root`; `daemon`, a
 * daemon's store reached as the untrusted test user (who needs signatures to import).
 */
export async function openTargetStore(
  mode: StoreMode,
  version: NixVersion,
  options: { storeDir: string; root: string },
): Promise<TargetStore> {
  if (mode === 'local') {
    const scratch = new ScratchStore(version, options);
    return { scratch, runner: scratch.runner, close: () => Promise.resolve(scratch.dispose()) };
  }
  const user = ensureUntrustedUser(nixVersions());
  const daemon = await DaemonStore.start(version, { storeDir: options.storeDir });
  return { scratch: daemon.scratch, runner: daemon.runnerAs(user), close: () => daemon.stop() };
}
