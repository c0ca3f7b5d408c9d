// The pure core: bytes and values in, values out. No process, network or file IO.
export * from './errors.js';
export * from './nix32.js';
export * from './hash.js';
export * from './store-path.js';
export * from './wire.js';
export * from './content-address.js';
export * from './derivation.js';
export * from './derivation/hash.js';
export * from './closure.js';
export * from './nar.js';
export * from './export-stream.js';
