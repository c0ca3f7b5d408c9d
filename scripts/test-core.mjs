// `npm run test:core`: every test that does not need Nix (all but `*.nix.test.ts`), with no Nix
// to call. The Nix commands on PATH are replaced by stand-ins that fail, naming the command, and
// NIX_PLAN_TEST_CORE makes the scratch-store helpers refuse, so a test that runs Nix without the
// `.nix.test.ts` name fails loudly here instead of passing or skipping. Extra arguments go to jest.
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';

const NIX_COMMANDS = [
  'nix',
  'nix-build',
  'nix-channel',
  'nix-collect-garbage',
  'nix-copy-closure',
  'nix-daemon',
  'nix-env',
  'nix-hash',
  'nix-instantiate',
  'nix-prefetch-url',
  'nix-shell',
  'nix-store',
];

const shims = mkdtempSync(join(tmpdir(), 'nix-plan-test-core-'));
try {
  for (const cmd of NIX_COMMANDS) {
    const file = join(shims, cmd);
    writeFileSync(
      file,
      `#!/bin/sh\necho "test:core runs no Nix, but a test ran ${cmd}: name its file *.nix.test.ts" >&2\nexit 127\n`,
    );
    chmodSync(file, 0o755);
  }
  const env = {
    ...process.env,
    PATH: [shims, process.env.PATH ?? ''].join(delimiter),
    NIX_PLAN_TEST_CORE: '1',
    // Where the tests look for the second Nix: a directory that does not exist.
    NIX_PLAN_NIX_SID_BIN: join(shims, 'no-second-nix'),
  };
  const jest = [
    '--experimental-vm-modules',
    '--no-warnings=ExperimentalWarning',
    'node_modules/jest/bin/jest.js',
    ...process.argv.slice(2),
    // Last: the option takes every word after it as one more pattern.
    '--testPathIgnorePatterns',
    '\\.nix\\.test\\.ts$',
  ];
  const { status, signal } = spawnSync(process.execPath, jest, { stdio: 'inherit', env });
  process.exitCode = status ?? (signal === null ? 1 : 128);
} finally {
  rmSync(shims, { recursive: true, force: true });
}
