// The plan bundle: its manifest, its framing, writing one, and reading and verifying one.
// Outside the bundle folder, import from here.
export * from './manifest.js';
export * from './frame.js';
export * from './writer.js';
export * from './compression.js';
export * from './source.js';
export * from './decode.js';
export * from './limits.js';
export * from './closure-check.js';
export * from './policy.js';
export * from './trust-report.js';
export {
  verifyBundle,
  type CheckedEntry,
  type KnownDerivations,
  type VerifyOptions,
  type VerifyReport,
} from './reader.js';
export { DerivationOutputChecks } from './drv-outputs.js';
