// The fidelity property: for random closures (sources, copies of sources named after what they
// copied, text files and derivations that mention each other with and without references, bare
// hashes, names that carry hashes), relocation either refuses by name, or no relocated object
// keeps a hash of the original store dir anywhere in its name or bytes unless the report says so
// for that object. And what relocates comes back exactly.
import { describe, expect, test } from '@jest/globals';
import fc from 'fast-check';
import { relocateClosure, type RelocObject, type Relocation } from '../../src/core/relocate/index.js';
import { NixPlanError } from '../../src/core/errors.js';
import { parseDerivation } from '../../src/core/derivation/index.js';
import { baseName, hashPartOf, makeSourcePath, nameOf } from '../../src/core/store-path.js';
import { Builder } from '../support/closure-builder.js';
import { asInput, fileNarHash } from '../fixtures/relocate/closure.js';

type Step =
  | { t: 'source'; text: string; mentions: number[]; bare: boolean }
  | { t: 'copy'; of: number; keep: boolean; filtered: boolean }
  | { t: 'text'; mentions: number[]; discard: boolean }
  | { t: 'drv'; inputs: number[]; mentions: number[]; bare: number[]; named: number | undefined };

const index = fc.nat({ max: 40 });
const stepArb: fc.Arbitrary<Step> = fc.oneof(
  fc.record({
    t: fc.constant('source' as const),
    text: fc.string({ maxLength: 20 }),
    mentions: fc.array(index, { maxLength: 2 }),
    bare: fc.boolean(),
  }),
  fc.record({ t: fc.constant('copy' as const), of: index, keep: fc.boolean(), filtered: fc.boolean() }),
  fc.record({
    t: fc.constant('text' as const),
    mentions: fc.array(index, { maxLength: 3 }),
    discard: fc.boolean(),
  }),
  fc.record({
    t: fc.constant('drv' as const),
    inputs: fc.array(index, { maxLength: 3 }),
    mentions: fc.array(index, { maxLength: 3 }),
    bare: fc.array(index, { maxLength: 2 }),
    named: fc.option(index, { nil: undefined }),
  }),
);

const DIRS = ['/b/s', '/a/store/x', '/a/much/longer/realm/store', '/q'];

/** A closure made from `steps` in store dir `dir`; every store hash it holds, in `hashes`. */
async function closureOf(
  steps: readonly Step[],
  dir: string,
): Promise<{ objects: RelocObject[]; hashes: Set<string> }> {
  const b = new Builder(dir);
  const paths: string[] = []; // every path made, in order (sources may be left out of the closure)
  const dropped = new Set<string>();
  const hashes = new Set<string>();
  const pick = (i: number): string | undefined => (paths.length === 0 ? undefined : paths[i % paths.length]);
  // What a string mentioning a path says: the path, or an output of a derivation.
  const mention = (p: string): string => (p.endsWith('.drv') ? b.outPath(p) : p);
  let n = 0;
  for (const s of steps) {
    n++;
    if (s.t === 'source') {
      // A file that mentions store paths (or their hashes): kept as it is, so it must be reported.
      const ms = s.mentions
        .map(pick)
        .filter((p): p is string => p !== undefined)
        .map(mention);
      const text = s.text + ms.map((p) => (s.bare ? hashPartOf(p) : p)).join(' ');
      paths.push(await b.source(`src${n}`, text));
    } else if (s.t === 'copy') {
      const of = pick(s.of);
      const original = of === undefined ? undefined : b.objects.find((o) => o.path === of);
      if (original === undefined || original.kind !== 'source') continue;
      // builtins.path of "${original}": named after it, with its bytes unless a filter changed them.
      const text = Buffer.from(original.contents!).toString('latin1') + (s.filtered ? ' (filtered)' : '');
      const name = baseName(original.path);
      if (name.length > 200) continue;
      paths.push(await b.source(name, text));
      if (!s.keep) dropped.add(original.path);
    } else if (s.t === 'text') {
      const ms = s.mentions.map(pick).filter((p): p is string => p !== undefined);
      const refs = s.discard ? [] : [...new Set(ms.filter((p) => !p.endsWith('.drv')))].sort();
      for (const r of refs) dropped.delete(r);
      paths.push(await b.text(`t${n}.txt`, () => ms.map((p) => `see ${p}\n`).join(''), refs));
    } else {
      const inputs = [...new Set(s.inputs.map(pick).filter((p): p is string => p !== undefined))];
      for (const i of inputs) dropped.delete(i);
      const named = s.named === undefined ? undefined : pick(s.named);
      const name = named === undefined ? `d${n}` : `${hashPartOf(named)}-d${n}`;
      if (named !== undefined) dropped.delete(named);
      const env: Record<string, string> = {};
      s.mentions.forEach((m, k) => {
        const p = pick(m);
        if (p !== undefined && inputs.includes(p)) env[`m${k}`] = mention(p);
      });
      s.bare.forEach((m, k) => {
        const p = pick(m);
        if (p !== undefined && inputs.includes(p)) env[`h${k}`] = hashPartOf(mention(p));
      });
      if (named !== undefined && !inputs.includes(named)) inputs.push(named);
      paths.push(
        await b.drv(name, {
          inputDrvs: inputs.filter((p) => p.endsWith('.drv')).map((p) => [p, ['out']]),
          inputSrcs: inputs.filter((p) => !p.endsWith('.drv')),
          env,
        }),
      );
    }
  }
  for (const o of b.objects) {
    hashes.add(hashPartOf(o.path));
    for (const part of nameOf(o.path).split('-')) if (/^[0-9a-z]{32}$/.test(part)) hashes.add(part);
    if (o.kind === 'drv')
      for (const out of parseDerivation(o.contents!).outputs)
        if (out.path !== '') hashes.add(hashPartOf(out.path));
  }
  // The same copy made twice is one path.
  const unique = [...new Map(b.objects.map((o) => [o.path, o])).values()];
  return { objects: unique.filter((o) => !dropped.has(o.path)), hashes };
}

/** The objects of a relocation that still carry a hash of `hashes` in their name or bytes. */
function leaks(
  r: Relocation,
  original: ReadonlyMap<string, RelocObject>,
  hashes: ReadonlySet<string>,
): string[] {
  const out: string[] = [];
  for (const o of r.objects) {
    const bytes = Buffer.from(o.contents ?? original.get(o.oldPath)!.contents ?? new Uint8Array(0)).toString(
      'latin1',
    );
    for (const h of hashes) if (baseName(o.path).includes(h) || bytes.includes(h)) out.push(o.path);
  }
  return [...new Set(out)];
}

describe('relocation keeps no hash of the original store dir unless it says so', () => {
  test('for random closures, every relocated name and byte is clean, reported, or the object refused', async () => {
    const seen = { refused: 0, relocated: 0, renamed: 0, reported: 0 };
    await fc.assert(
      fc.asyncProperty(
        fc.array(stepArb, { minLength: 1, maxLength: 14 }),
        fc.constantFrom(...DIRS),
        async (steps, to) => {
          const from = '/a/store';
          const { objects, hashes } = await closureOf(steps, from);
          let r: Relocation;
          try {
            r = relocateClosure(objects, from, to);
          } catch (e) {
            // Refusing is allowed, by name and with the relocation error code.
            expect(e).toBeInstanceOf(NixPlanError);
            expect((e as NixPlanError).code).toBe('relocate');
            expect((e as NixPlanError).message).toMatch(/^cannot relocate \/a\/store\//);
            seen.refused++;
            return;
          }
          seen.relocated++;
          if (r.objects.some((o) => nameOf(o.path) !== nameOf(o.oldPath))) seen.renamed++;
          const byPath = new Map(objects.map((o) => [o.path, o]));
          for (const path of leaks(r, byPath, hashes)) {
            const o = r.objects.find((x) => x.path === path)!;
            const said = r.report.warnings.some((w) => w.includes(path) || w.includes(o.oldPath));
            expect({ path, said }).toEqual({ path, said: true });
            seen.reported++;
          }
          // And back: exactly the original closure.
          const back = relocateClosure(await asInput(r.objects, byPath), to, from);
          expect(back.objects.map((o) => o.path).sort()).toEqual(objects.map((o) => o.path).sort());
        },
      ),
      { numRuns: 400 },
    );
    // The property was tried on every outcome, not only on easy closures.
    expect(seen.refused).toBeGreaterThan(5);
    expect(seen.relocated).toBeGreaterThan(20);
    expect(seen.renamed).toBeGreaterThan(5);
    expect(seen.reported).toBeGreaterThan(5);
  });

  test('the copy rule: an unfiltered copy of a source not in the closure is named from its own bytes', async () => {
    const b = new Builder('/a/store');
    const x = await b.source('x.txt', 'hello\n');
    const copy = await b.source(baseName(x), 'hello\n');
    const r = relocateClosure(
      b.objects.filter((o) => o.path === copy),
      '/a/store',
      '/b/s',
    );
    const inner = makeSourcePath('x.txt', await fileNarHash(Buffer.from('hello\n')), '/b/s');
    expect(nameOf(r.objects[0]!.path)).toBe(baseName(inner));
  });
});
