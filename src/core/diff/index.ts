// Comparing plans: package names and versions as Nix reads them, the package-level difference of
// two closures, why two derivations differ, and the diff document with its schema.
export * from './drv-name.js';
export * from './graph.js';
export * from './packages.js';
export * from './sequence.js';
export * from './text.js';
export * from './derivation-diff.js';
export * from './plan-diff.js';
export * from './schema.js';
export * from './describe.js';
