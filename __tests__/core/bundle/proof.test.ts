// Proof before trust: which paths of a plan prove themselves, and what happens to the others.
import { describe, expect, test } from '@jest/globals';
import type { DeclaredOutput } from '../../../src/core/bundle/drv-outputs.js';
import { PathProofs, type ProofOptions } from '../../../src/core/bundle/proof.js';
import type { Include } from '../../../src/core/bundle/manifest.js';
import { NixPlanError } from '../../../src/core/errors.js';

const S = '/nix/store';
const drv = `${S}/${'d'.repeat(32)}-fetch.drv`;
const fod = `${S}/${'f'.repeat(32)}-src.tar.gz`;
const built = `${S}/${'b'.repeat(32)}-hello`;
const builder = `${S}/${'c'.repeat(32)}-hello.drv`;

const declared = new Map<string, DeclaredOutput[]>([
  [fod, [{ drvPath: drv, output: 'out', fixed: { hashAlgo: 'r:sha1', hash: '00' } }]],
  [built, [{ drvPath: builder, output: 'out' }]],
]);
const plan = new Set([drv, builder]);

/** Feeds entries, then finishes; the error code, or the unproven count when accepted. */
function run(
  options: Partial<ProofOptions> & { include: Include },
  entries: [string, 'drv' | 'output' | 'source', string][],
): string | number {
  const proofs = new PathProofs({ signed: false, noCheckSigs: false, ...options });
  try {
    for (const [p, kind, deriver] of entries) proofs.entry(p, kind, deriver);
    proofs.finish(
      (p) => declared.get(p) ?? [],
      (d) => plan.has(d),
    );
    return proofs.unproven;
  } catch (e) {
    if (e instanceof NixPlanError) return `${e.code}: ${e.message}`;
    throw e;
  }
}

describe('PathProofs', () => {
  test('content-addressed paths need nothing', () => {
    for (const include of ['drvs', 'sources', 'outputs'] as const)
      expect(
        run({ include }, [
          [drv, 'drv', ''],
          [fod, 'source', drv],
        ]),
      ).toBe(0);
  });

  test('a build output needs a trusted signature, or the explicit opt-out (counted)', () => {
    const outputs: [string, 'output', string][] = [[built, 'output', builder]];
    expect(run({ include: 'outputs' }, outputs)).toMatch(
      new RegExp(`^signature: '${built}' is a build output.*--no-check-sigs`),
    );
    expect(run({ include: 'outputs', signed: true }, outputs)).toBe(0);
    expect(run({ include: 'outputs', noCheckSigs: true }, outputs)).toBe(1);
    expect(run({ include: 'drvs', signed: true }, outputs)).toMatch(/^bundle: .*'drvs' bundle/);
  });

  test('a sources bundle carries no build output but outputs of its own .drvs', () => {
    // Declared as a fixed output (its hash one the verifier does not compute): proven only by a signature.
    expect(run({ include: 'sources' }, [[fod, 'output', drv]])).toMatch(/^signature: /);
    expect(run({ include: 'sources', signed: true }, [[fod, 'output', drv]])).toBe(0);
    // An input-addressed output of a .drv of the plan (import from derivation): only a signature
    // admits it, not the opt-out.
    expect(run({ include: 'sources', signed: true }, [[built, 'output', builder]])).toBe(0);
    for (const o of [{}, { noCheckSigs: true }])
      expect(run({ include: 'sources', ...o }, [[built, 'output', builder]])).toMatch(
        new RegExp(
          `^signature: '${built}' is a build output of '${builder}' that the plan's evaluation read.*does not cover it`,
        ),
      );
    // An output no .drv of the plan declares: refused whatever proves it, naming it.
    const stray = `${S}/${'g'.repeat(32)}-stray`;
    for (const o of [{}, { signed: true }, { noCheckSigs: true }])
      expect(run({ include: 'sources', ...o }, [[stray, 'output', '']])).toMatch(
        new RegExp(`^bundle: '${stray}' is a build output, but a 'sources' bundle`),
      );
  });

  test("an output's deriver, when the plan holds it, must declare it", () => {
    expect(run({ include: 'outputs', signed: true }, [[built, 'output', drv]])).toMatch(
      new RegExp(`^bundle: '${built}' names '${drv}' as its deriver`),
    );
    // A deriver outside the plan cannot be checked, as in Nix (it need not be valid).
    expect(
      run({ include: 'outputs', signed: true }, [[built, 'output', `${S}/${'e'.repeat(32)}-x.drv`]]),
    ).toBe(0);
    expect(run({ include: 'drvs' }, [[fod, 'source', builder]])).toMatch(/^bundle: .*as its deriver/);
  });
});
