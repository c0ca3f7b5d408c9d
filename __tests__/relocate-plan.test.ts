// The relocate use case on hand-made bundles (no Nix): what it leaves to relocation, and that a
// refusal leaves nothing behind.
import { afterAll, describe, expect, test } from '@jest/globals';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../src/app/deps.js';
import { relocatePlan } from '../src/app/relocate.js';
import { memorySource, verifyBundle } from '../src/core/bundle/reader.js';
import { NixPlanError } from '../src/core/errors.js';
import { sha256 } from '../src/core/hash.js';
import { makeTextPath } from '../src/core/store-path.js';
import { bundleOf, codeOf, draftFor, encodeExport, narOfFile } from './support/bundle-fixtures.js';
import { SYSTEM } from './support/nix.js';

const storeDir = '/a/s';
const tmp = mkdtempSync(join(tmpdir(), 'nix-plan-relocate-plan-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const noRunner = { run: () => Promise.reject(new Error('Nix must not run')) };
const deps = { runner: noRunner, log: silentLogger };

/** A one-drv bundle whose .drv has `body` after its system; its path is the hash of its bytes, as Nix names it. */
async function oneDrvBundle(body: string): Promise<Uint8Array> {
  const out = `${storeDir}/${'1'.repeat(32)}-x`;
  const contents = `Derive([("out","${out}","","")],[],[],"${SYSTEM}",${body})`;
  const path = makeTextPath('x.drv', sha256(contents), [], storeDir);
  const exportBytes = encodeExport([{ path, references: [], deriver: '', nar: narOfFile(contents) }]);
  const draft = await draftFor(exportBytes, storeDir, [{ attribute: 'x', drvPath: path, outputs: { out } }]);
  return bundleOf(draft, exportBytes).bytes;
}

describe('relocate', () => {
  test('a .drv malformed after its system is refused by relocation itself, and nothing is written', async () => {
    // Environment variables out of order: only a parse of the whole .drv sees it.
    const bytes = await oneDrvBundle('"/bin/sh",[],[("out","x"),("b","1")]');
    expect(await codeOf(verifyBundle(memorySource(bytes, 'bad')))).toBe('malformed');
    // The relocate use case leaves the bodies to relocation, which parses every .drv whole.
    expect(await codeOf(verifyBundle(memorySource(bytes, 'bad'), { checkDerivationBodies: false }))).toBe(
      'accepted',
    );
    const input = join(tmp, 'bad.nixplan');
    const output = join(tmp, 'out', 'relocated.nixplan');
    writeFileSync(input, bytes);
    mkdirSync(join(tmp, 'out'));
    const error = await relocatePlan(input, { to: '/b/s', output }, deps).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(NixPlanError);
    expect((error as NixPlanError).code).toBe('malformed');
    expect((error as Error).message).toContain('environment variable out of order');
    expect(existsSync(output)).toBe(false);
    expect(readdirSync(join(tmp, 'out'))).toEqual([]);
  });

  test('the same bundle with a well-formed .drv relocates', async () => {
    const bytes = await oneDrvBundle('"/bin/sh",[],[("b","1"),("out","x")]');
    const input = join(tmp, 'good.nixplan');
    const output = join(tmp, 'good-relocated.nixplan');
    writeFileSync(input, bytes);
    const result = await relocatePlan(input, { to: '/b/s', output }, deps);
    expect(result.manifest.storeDir).toBe('/b/s');
    expect(result.report.objects.drv).toBe(1);
    expect(result.timings.verifyMs).toBeGreaterThanOrEqual(0);
    await expect(verifyBundle(output)).resolves.toMatchObject({ paths: 1 });
  });
});
