// Relocation of a plan's closure to another store dir: the entry (closure.ts), what it takes and
// reports (types.ts), its refusals (checks.ts), the relocator (relocator.ts), the .drv path
// (drv.ts) and the rewriter of store hashes (rewrite.ts).
export * from './types.js';
export { relocateClosure, relocateLazily, relocateRoot } from './closure.js';
export { StoreRewriter, rewriteStoreHashes, type Mentions, type RewriteResult } from './rewrite.js';
export { downstreamPlaceholder } from '../store-path.js';
