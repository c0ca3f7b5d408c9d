// Kept so that imports of the module's old path keep working: derivations live in derivation/.
export * from './derivation/index.js';
