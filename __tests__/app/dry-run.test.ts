// realise --dry-run refuses roots that name none of the plan's from its manifest, as plain realise
// does, before the plan is read whole: a plan the verifier would refuse gets the roots' error.
import { afterAll, expect, test } from '@jest/globals';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dryRunRealise } from '../../src/app/dry-run.js';
import { NixPlanError } from '../../src/core/errors.js';
import type { CommandRunner } from '../../src/nix/runner.js';
import { bundleOf, encodeExport, FIXTURE_CREATED_AT } from '../support/bundle-fixtures.js';

const tmp = mkdtempSync(join(tmpdir(), 'nix-plan-dry-run-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const STORE = '/nix/store';

/** A plan whose root the bundle does not hold: the verifier refuses it once it reads it whole. */
function unreadablePlan(storeDir: string): string {
  const { bytes } = bundleOf(
    {
      tool: 'nix-plan test',
      nixVersion: 'test',
      createdAt: FIXTURE_CREATED_AT,
      provenance: {},
      storeDir,
      systems: ['x86_64-linux'],
      include: 'drvs',
      roots: [{ attribute: 'web', drvPath: `${storeDir}/${'a'.repeat(32)}-web.drv`, outputs: {} }],
      counts: { drv: 0, text: 0, source: 0, output: 0 },
      narBytes: { drv: 0, text: 0, source: 0, output: 0 },
      paths: 0,
    },
    encodeExport([]),
  );
  const path = join(tmp, `${storeDir.replaceAll('/', '_')}.nixplan`);
  writeFileSync(path, bytes);
  return path;
}

/** Nix that answers its store dir and is asked nothing else. */
function storeAt(storeDir: string): { runner: CommandRunner; asked: string[] } {
  const asked: string[] = [];
  return {
    asked,
    runner: {
      run: (cmd, args) => {
        asked.push([cmd, ...args].join(' '));
        if (args.includes('builtins.storeDir'))
          return Promise.resolve({ code: 0, stdout: Buffer.from(JSON.stringify(storeDir)), stderr: '' });
        return Promise.reject(new Error(`not asked in this test: ${cmd}`));
      },
    },
  };
}

/** A refusal that did not happen fails the test. */
const notRefused = (): never => {
  throw new Error('not refused');
};

const log = { info: () => undefined, warn: () => undefined, debug: () => undefined };

test('roots that name no root are refused before the plan is verified', async () => {
  const nix = storeAt(STORE);
  const e = await dryRunRealise(unreadablePlan(STORE), { roots: ['db'] }, { runner: nix.runner, log }).then(
    notRefused,
    (x: unknown) => x as NixPlanError,
  );
  expect(e).toBeInstanceOf(NixPlanError);
  expect(e.code).toBe('usage');
  expect(e.message).toBe("--roots 'db' matches no root of the bundle; its roots are: 0=web");
  expect(nix.asked).toHaveLength(1);
  // With roots that name one, the verifier reads the plan and refuses it.
  const read = await dryRunRealise(
    unreadablePlan(STORE),
    { roots: ['web'] },
    { runner: nix.runner, log },
  ).then(notRefused, (x: unknown) => x as NixPlanError);
  expect(read.code).not.toBe('usage');
  expect(read.message).toMatch(/is not in the bundle/);
});

test('a plan for another realm is refused for its realm whatever the roots say', async () => {
  const nix = storeAt('/other/store');
  const path = unreadablePlan(STORE);
  const e = await dryRunRealise(path, { roots: ['db'] }, { runner: nix.runner, log }).then(
    notRefused,
    (x: unknown) => x as NixPlanError,
  );
  expect(e.code).toBe('realm');
  expect(e.message).toMatch(
    /is a plan for the store dir \/nix\/store, but this store's dir is \/other\/store/,
  );
});
