// The relocate use case on hand-made bundles (no Nix): what it leaves to relocation, and that a
// refusal leaves nothing behind.
import { afterAll, describe, expect, test } from '@jest/globals';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../../src/app/deps.js';
import { formatRelocate } from '../../src/cli/format.js';
import { RELOCATE_WINDOW_LOG } from '../../src/core/bundle/index.js';
import { relocatePlan } from '../../src/app/relocate.js';
import { memorySource } from '../../src/core/bundle/index.js';
import { verifyBundle } from '../../src/core/bundle/reader.js';
import { NixPlanError } from '../../src/core/errors.js';
import { DerivationHasher, parseDerivation } from '../../src/core/derivation/index.js';
import { sha256 } from '../../src/core/hash.js';
import { makeTextPath } from '../../src/core/store-path.js';
import { bundleOf, codeOf, draftFor, encodeExport, narOfFile } from '../support/bundle-fixtures.js';
import { SYSTEM } from '../support/nix.js';

const storeDir = '/a/s';
const tmp = mkdtempSync(join(tmpdir(), 'nix-plan-relocate-plan-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const noRunner = { run: () => Promise.reject(new Error('Nix must not run')) };
const deps = { runner: noRunner, log: silentLogger };

const out = `${storeDir}/${'1'.repeat(32)}-x`;

/**
 * A one-drv bundle whose .drv has `body` after its system; its path is the hash of its bytes, as
 * Nix names it. `inputSrcs` are named in the .drv but not given as references; `manifest` alters
 * the manifest's systems or its root's outputs.
 */
async function oneDrvBundle(
  body: string,
  options: { inputSrcs?: readonly string[]; manifest?: { systems?: readonly string[]; out?: string } } = {},
): Promise<Uint8Array> {
  const srcs = (options.inputSrcs ?? []).map((p) => `"${p}"`).join(',');
  let contents = `Derive([("out","${out}","","")],[],[${srcs}],"${SYSTEM}",${body})`;
  let outPath = out;
  // A well-formed .drv gets the output path its contents give, as Nix writes it (a malformed one
  // keeps the made-up one: it is refused before anyone looks).
  try {
    const drv = parseDerivation(new TextEncoder().encode(contents.replace(out, '')));
    const filled = new DerivationHasher(storeDir, () => {
      throw new Error('no inputs');
    }).fillOutputs(drv, 'x');
    contents = Buffer.from(filled.bytes).toString('latin1');
    outPath = filled.paths[0]!;
  } catch {
    // malformed: left as written
  }
  const path = makeTextPath('x.drv', sha256(contents), [], storeDir);
  const exportBytes = encodeExport([{ path, references: [], deriver: '', nar: narOfFile(contents) }]);
  const draft = await draftFor(exportBytes, storeDir, [
    { attribute: 'x', drvPath: path, outputs: { out: options.manifest?.out ?? outPath } },
  ]);
  return bundleOf({ ...draft, systems: [...(options.manifest?.systems ?? draft.systems)] }, exportBytes)
    .bytes;
}

let inputs = 0;
/** relocatePlan's error for `bytes` (it must fail), having checked that it wrote nothing. */
async function relocateError(bytes: Uint8Array): Promise<NixPlanError> {
  const dir = join(tmp, `case-${inputs++}`);
  mkdirSync(join(dir, 'out'), { recursive: true });
  const input = join(dir, 'in.nixplan');
  const output = join(dir, 'out', 'relocated.nixplan');
  writeFileSync(input, bytes);
  const error = await relocatePlan(input, { to: '/b/s', output }, deps).catch((e: unknown) => e);
  expect(error).toBeInstanceOf(NixPlanError);
  expect(readdirSync(join(dir, 'out'))).toEqual([]);
  return error as NixPlanError;
}

/** verifyBundle's error for `bytes` (it must fail). */
async function verifyError(bytes: Uint8Array): Promise<NixPlanError> {
  const error = await verifyBundle(memorySource(bytes, 'bad')).catch((e: unknown) => e);
  expect(error).toBeInstanceOf(NixPlanError);
  return error as NixPlanError;
}

describe('relocate', () => {
  test('a .drv malformed after its system is refused by relocation itself, and nothing is written', async () => {
    // Environment variables out of order: only a parse of the whole .drv sees it.
    const bytes = await oneDrvBundle('"/bin/sh",[],[("out","x"),("b","1")]');
    expect(await codeOf(verifyBundle(memorySource(bytes, 'bad')))).toBe('malformed');
    // The relocate use case leaves parsing the .drv files to relocation, which parses each whole.
    expect(await codeOf(verifyBundle(memorySource(bytes, 'bad'), { parseDerivations: false }))).toBe(
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

  // What the verifier checks of a .drv is checked when relocation parses it: the same refusal.
  test.each([
    [
      'references that are not its inputs',
      { inputSrcs: [`${storeDir}/${'2'.repeat(32)}-src`] },
      'references of',
    ],
    ['a system the manifest does not list', { manifest: { systems: ['other-system'] } }, 'lists the systems'],
    [
      'a root output the .drv does not give',
      { manifest: { out: `${storeDir}/${'3'.repeat(32)}-x` } },
      'gives output',
    ],
  ] as const)('a .drv with %s is refused as verify refuses it', async (_, options, message) => {
    const bytes = await oneDrvBundle('"/bin/sh",[],[("out","x")]', options);
    expect(await codeOf(verifyBundle(memorySource(bytes, 'bad'), { parseDerivations: false }))).toBe(
      'accepted',
    );
    const verify = await verifyError(bytes);
    expect(verify.code).toBe('bundle');
    expect(verify.message).toContain(message);
    const relocate = await relocateError(bytes);
    expect(relocate.code).toBe(verify.code);
    expect(relocate.message).toBe(verify.message);
  });

  test('with the .drv bytes kept in a scratch file, a malformed one is still refused', async () => {
    const bytes = await oneDrvBundle('"/bin/sh",[],[("out","x"),("b","1")]');
    const dir = join(tmp, 'scratch-bad');
    mkdirSync(dir);
    writeFileSync(join(dir, 'in.nixplan'), bytes);
    const output = join(dir, 'out.nixplan');
    const error = await relocatePlan(
      join(dir, 'in.nixplan'),
      { to: '/b/s', output, keepContentsUpTo: 0 },
      deps,
    ).catch((e: unknown) => e);
    expect((error as NixPlanError).code).toBe('malformed');
    expect(existsSync(output)).toBe(false);
  });

  test('the same bundle with a well-formed .drv relocates', async () => {
    const bytes = await oneDrvBundle('"/bin/sh",[],[("b","1"),("out","x")]');
    const input = join(tmp, 'good.nixplan');
    const output = join(tmp, 'good-relocated.nixplan');
    writeFileSync(input, bytes);
    // A fixed clock: the promotion's time is in the manifest, and the two runs must match.
    const now = (): Date => new Date('2026-12-06T10:17:30Z');
    const result = await relocatePlan(input, { to: '/b/s', output, now }, deps);
    expect(result.manifest.storeDir).toBe('/b/s');
    expect(result.report.objects.drv).toBe(1);
    expect(result.timings.verifyMs).toBeGreaterThanOrEqual(0);
    // What the command line prints of it: counts of one in the singular.
    expect(formatRelocate(result)).toMatch(
      /\n {2}1 drv, 0 texts, 0 sources; \d+ hash(es)? rewritten in strings\n/,
    );
    const verified = await verifyBundle(output);
    expect(verified.paths).toBe(1);
    // The default level compresses in a small window: the compressor holds a whole window.
    expect(verified.frame.windowSize).toBeLessThanOrEqual(2 ** RELOCATE_WINDOW_LOG);
    // The .drv bytes read back from a scratch file instead of memory: the very same bundle.
    const scratchy = join(tmp, 'good-relocated-scratch.nixplan');
    await relocatePlan(input, { to: '/b/s', output: scratchy, keepContentsUpTo: 0, now }, deps);
    expect(readFileSync(scratchy).equals(readFileSync(output))).toBe(true);
  });
});
