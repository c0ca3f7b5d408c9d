// The compression levels and settings of plan bundles, in one place: what the writer accepts
// and its default, and the tuned settings export and relocation use unless a level is given.
import { constants as zc } from 'node:zlib';

/** Default zstd level: most of level 19's ratio at a fraction of its time (see docs/bundle-format.md). */
export const DEFAULT_LEVEL = 12;
/** Lowest level accepted. */
export const MIN_LEVEL = 1;
/** Highest level accepted; zstd's "ultra" levels above it want windows beyond the default decoder limit. */
export const MAX_LEVEL = 19;

/**
 * Export's default compression: level 10's search with a bigger hash table (hashLog 23), matches
 * of 6+ bytes, and long-distance matches of 256+ bytes only (zstd's default 64 makes many short
 * long-distance matches that cost more to encode than they save in drv files full of repeated
 * store paths), in a 64 MiB window. Measured on the bench closures' export streams (node:zlib):
 * 10,000 drvs (72 MB) 15.6× (0.389× of gzip -9), 30,000 drvs (217 MB) 15.3× (0.395×), where
 * plain level 12 with a 128 MiB window gives 15.2× (0.400×) and 15.1× (0.400×) with more CPU.
 * The window halves zstd's memory (-72 MB at 30,000 drvs) for 0.2% of size. An explicit
 * `--level N` is that level's own search in the writer's default window.
 */
export const EXPORT_COMPRESSION = {
  level: 10,
  windowLog: 26,
  params: { [zc.ZSTD_c_hashLog]: 23, [zc.ZSTD_c_minMatch]: 6, [zc.ZSTD_c_ldmMinMatch]: 256 },
} as const;

/**
 * Default zstd level of a relocated bundle, used without long-distance matching: relocation is a
 * step in a promotion pipeline, where time matters more than the last megabyte (measurements in
 * docs/cli.md, `relocate`). An explicit level compresses as `export` does (matching on).
 */
export const RELOCATE_LEVEL = 3;

/**
 * log2 of the zstd window of a relocated bundle at the default level: 16 MiB. The compressor
 * holds (and touches) a whole window: the 128 MiB an explicit level gets cost ~110 MB of memory
 * at 30,000 drvs to make the bundle about 1% smaller (docs/cli.md, `relocate`).
 */
export const RELOCATE_WINDOW_LOG = 24;
