// Jest runs the TypeScript sources as native ESM through ts-jest (type-checking is `npm run typecheck`).
/** @type {import('jest').Config} */
export default {
  testEnvironment: 'node',
  extensionsToTreatAsEsm: ['.ts'],
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  transform: {
    '^.+\\.ts$': ['ts-jest', { useESM: true, tsconfig: 'tsconfig.json' }],
  },
  testMatch: ['<rootDir>/__tests__/**/*.test.ts'],
  reporters: ['default', '<rootDir>/scripts/jest-summary-reporter.js'],
  // The slowest files first, also in a fresh clone with no timings cached (see the file).
  testSequencer: '<rootDir>/scripts/jest-sequencer.js',
  testTimeout: 120000,
  maxWorkers: 2,
};
