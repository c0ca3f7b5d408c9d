// The verify use case's report, as `nix-plan verify --json` prints it: the verifier's findings and
// the plan's trust, never the verifier's working state.
import { afterAll, describe, expect, test } from '@jest/globals';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { verifyPlan } from '../../src/app/verify.js';
import { toJson } from '../../src/cli/format.js';
import { DerivationHasher, parseDerivation } from '../../src/core/derivation/index.js';
import { sha256 } from '../../src/core/hash.js';
import { makeTextPath } from '../../src/core/store-path.js';
import { bundleOf, draftFor, encodeExport, narOfFile } from '../support/bundle-fixtures.js';
import { SYSTEM } from '../support/nix.js';

const storeDir = '/a/s';
const tmp = mkdtempSync(join(tmpdir(), 'nix-plan-verify-plan-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A one-drv bundle, its .drv's output path as Nix computes it. */
async function oneDrvBundle(): Promise<{ bytes: Uint8Array; drvPath: string }> {
  const masked = `Derive([("out","","","")],[],[],"${SYSTEM}","/bin/sh",[],[("out","")])`;
  const filled = new DerivationHasher(storeDir, () => {
    throw new Error('no inputs');
  }).fillOutputs(parseDerivation(new TextEncoder().encode(masked)), 'x');
  const contents = Buffer.from(filled.bytes).toString('latin1');
  const drvPath = makeTextPath('x.drv', sha256(contents), [], storeDir);
  const exportBytes = encodeExport([
    { path: drvPath, references: [], deriver: '', nar: narOfFile(contents) },
  ]);
  const draft = await draftFor(exportBytes, storeDir, [
    { attribute: 'x', drvPath, outputs: { out: filled.paths[0]! } },
  ]);
  return { bytes: bundleOf(draft, exportBytes).bytes, drvPath };
}

describe('verifyPlan', () => {
  test('reports findings and trust, and --json prints nothing of the verifier inside', async () => {
    const { bytes } = await oneDrvBundle();
    const file = join(tmp, 'x.nixplan');
    writeFileSync(file, bytes);
    const report = await verifyPlan(file);
    expect(report.counts.drv).toBe(1);
    expect(report.paths).toBe(1);
    expect(report.trust.keysGiven).toBe(false);
    const json = JSON.parse(toJson(report)) as Record<string, unknown>;
    expect(Object.keys(json).sort()).toEqual(
      [
        'bundleBytes',
        'bundlePath',
        'counts',
        'frame',
        'manifest',
        'narBytes',
        'noCheckSigs',
        'paths',
        'storeReferences',
        'trust',
        'trustedSignatures',
        'unproven',
      ].sort(),
    );
  });
});
