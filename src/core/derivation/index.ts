// Derivations (.drv files) in Nix's ATerm text, byte-exact: their parts (types.ts), the escapes
// (aterm.ts), parsing (parse.ts), writing and splicing (write.ts), what they say (fields.ts,
// scan.ts), their kind (kind.ts), and the hashes and paths that follow from them (hash.ts).
export * from './types.js';
export * from './parse.js';
export * from './write.js';
export * from './fields.js';
export * from './scan.js';
export * from './kind.js';
export * from './hash.js';
export * from './requirements.js';
