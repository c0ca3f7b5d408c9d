// Kept so that imports of the module's old path keep working: relocation lives in relocate/.
export * from './relocate/index.js';
