// relocateClosure on closures built in memory: round trips, refusals and the report.
// (That the results are what Nix itself writes is proven in core/relocate.oracle.nix.test.ts.)
import { describe, expect, test } from '@jest/globals';
import fc from 'fast-check';
import {
  relocateClosure,
  relocateLazily,
  relocateRoot,
  type RelocatedObject,
  type RelocObject,
} from '../../src/core/relocate/index.js';
import { identifyContentAddress } from '../../src/core/content-address.js';
import { NixPlanError } from '../../src/core/errors.js';
import { sha256, toHex } from '../../src/core/hash.js';
import { nix32Encode } from '../../src/core/nix32.js';
import { compareStrings, hashPartOf, makeSourcePath } from '../../src/core/store-path.js';
import { Builder, enc } from '../support/closure-builder.js';

/** One closure with every kind of object and mention, built the same way in any store dir. */
async function sampleClosure(dir: string): Promise<{ b: Builder; root: string }> {
  const b = new Builder(dir);
  const src = await b.source('hello.txt', 'hello\n');
  const fetch = await b.drv('fetch', {
    fixed: { hashAlgo: 'sha256', hash: toHex(sha256('hello\n')) },
  });
  const lib = await b.drv('lib', { outputs: ['out', 'dev'], env: { src }, inputSrcs: [src] });
  const script = await b.text(
    'build.sh',
    () => `cat ${src} ${b.outPath(fetch)} # and ${b.outPath(lib, 'dev')} and ${lib}\n`,
    [src],
  );
  const root = await b.drv('app', {
    inputDrvs: [
      [lib, ['dev']],
      [fetch, ['out']],
    ],
    inputSrcs: [script],
    env: {
      script,
      deps: `${b.outPath(lib, 'dev')}:${b.outPath(fetch)}`,
      libDrv: lib,
      // a store hash cut out of a path, as builtins.substring relative to the store dir would
      libHash: hashPartOf(b.outPath(lib, 'dev')),
    },
  });
  return { b, root };
}

function codeOf(f: () => unknown): { code: string; message: string } {
  try {
    f();
  } catch (e) {
    if (e instanceof NixPlanError) return { code: e.code, message: e.message };
    throw e;
  }
  throw new Error('did not throw');
}

const storeDir = fc
  .array(fc.stringMatching(/^[a-z0-9][a-z0-9._+-]{0,12}$/), { minLength: 1, maxLength: 4 })
  .map((parts) => '/' + parts.join('/'));

describe('relocateClosure', () => {
  test('gives what building the same closure in the target store dir gives, and round-trips', async () => {
    await fc.assert(
      fc.asyncProperty(storeDir, storeDir, async (a, bDir) => {
        fc.pre(a !== bDir);
        const { b: inA, root } = await sampleClosure(a);
        const { b: inB, root: rootB } = await sampleClosure(bDir);
        const r = relocateClosure(inA.objects, a, bDir);
        expect(r.pathMap.get(root)).toBe(rootB);
        expect(
          r.objects.map((o) => [
            o.path,
            o.kind,
            o.references,
            o.contents && Buffer.from(o.contents).toString('latin1'),
          ]),
        ).toEqual(
          inB.objects.map((o) => [
            o.path,
            o.kind,
            o.references,
            o.kind === 'source' ? undefined : Buffer.from(o.contents!).toString('latin1'),
          ]),
        );
        expect(r.report.objects).toEqual({ drv: 3, text: 1, source: 1 });
        expect(r.report.bareHashRewrites).toBe(1);
        // Back again: the original bytes.
        const again = relocateClosure(
          r.objects.map((o, i) => ({ ...inB.objects[i]!, path: o.path })),
          bDir,
          a,
        );
        expect(again.objects.map((o) => o.path)).toEqual(inA.objects.map((o) => o.path));
      }),
      { numRuns: 15 },
    );
  });

  test('keeps a dependency order even when the input is in reverse', async () => {
    const { b } = await sampleClosure('/a/store');
    const r = relocateClosure([...b.objects].reverse(), '/a/store', '/b/store');
    const seen = new Set<string>();
    for (const o of r.objects) {
      for (const ref of o.references) expect(seen.has(ref)).toBe(true);
      seen.add(o.path);
    }
    // build.sh mentions outputs of fetch and lib without referencing them: it must come after them.
    const order = r.objects.map((o) => o.oldPath);
    const at = (suffix: string): number => order.findIndex((p) => p.endsWith(suffix));
    expect(at('-build.sh')).toBeGreaterThan(at('-lib.drv'));
    expect(at('-build.sh')).toBeGreaterThan(at('-fetch.drv'));
  });

  test('relocates what a string mentions first when it comes later, counting each rewrite once', async () => {
    const { b } = await sampleClosure('/a/store');
    const byName = (suffix: string): RelocObject => b.objects.find((o) => o.path.endsWith(suffix))!;
    // A dependency order by references, but build.sh mentions outputs of fetch and lib (no
    // references to them), which come after it: it waits while they are relocated.
    const input = ['-hello.txt', '-build.sh', '-fetch.drv', '-lib.drv', '-app.drv'].map(byName);
    const natural = relocateClosure(b.objects, '/a/store', '/b/store');
    const r = relocateClosure(input, '/a/store', '/b/store');
    const order = r.objects.map((o) => o.oldPath);
    const at = (suffix: string): number => order.findIndex((p) => p.endsWith(suffix));
    expect(at('-build.sh')).toBeGreaterThan(at('-lib.drv'));
    expect(at('-build.sh')).toBeGreaterThan(at('-fetch.drv'));
    const sorted = (x: typeof r): RelocatedObject[] =>
      [...x.objects].sort((p, q) => compareStrings(p.path, q.path));
    expect(sorted(r)).toEqual(sorted(natural));
    expect(r.pathMap).toEqual(natural.pathMap);
    expect(r.report).toEqual(natural.report);

    // A .drv whose first strings are rewritten before one of its later ones has to wait.
    const c = new Builder('/a/store');
    const src = await c.source('src.txt', 'src\n');
    const later = await c.drv('later', {});
    const early = await c.drv('early', { env: { a: src, z: c.outPath(later) }, inputSrcs: [src] });
    const [s, l, e] = [src, later, early].map((p) => c.objects.find((o) => o.path === p)!);
    const waited = relocateClosure([s!, e!, l!], '/a/store', '/b/store');
    expect(waited.objects.map((o) => o.oldPath)).toEqual([src, later, early]);
    expect(waited.report).toEqual(relocateClosure([s!, l!, e!], '/a/store', '/b/store').report);
  });

  test('reports a bare store dir in a text file and a source that mentions the store dir', async () => {
    const b = new Builder('/a/store');
    await b.text('where.txt', (dir) => `the store is ${dir} (${dir}/.links too)\n`);
    const src = await b.source('mention.txt', 'built in /a/store/x\n');
    const r = relocateClosure(b.objects, '/a/store', '/b/store');
    const where = r.objects.find((o) => o.path.endsWith('-where.txt'))!;
    expect(Buffer.from(where.contents!).toString()).toBe('the store is /a/store (/a/store/.links too)\n');
    expect(r.report.bareStoreDirMentions).toEqual([{ path: where.path, count: 2 }]);
    expect(r.report.warnings).toEqual([
      expect.stringContaining(
        `${where.path} (was ${where.oldPath}) mentions the store dir /a/store on its own 2 time(s)`,
      ),
      expect.stringContaining(`(was ${src}) is a source whose bytes mention /a/store`),
    ]);
  });

  test('refuses what it cannot relocate faithfully, naming the object and why', async () => {
    const { b } = await sampleClosure('/a/store');
    const relocate = (objects: RelocObject[], to = '/b/store'): { code: string; message: string } =>
      codeOf(() => relocateClosure(objects, '/a/store', to));
    const src = b.objects.find((o) => o.kind === 'source')!;
    const text = b.objects.find((o) => o.kind === 'text')!;
    const drv = b.objects.find((o) => o.kind === 'drv')!;

    expect(relocate(b.objects, 'relative')).toEqual({
      code: 'realm',
      message: expect.stringContaining("'relative'"),
    });
    expect(relocate(b.objects, '/b/store/')).toMatchObject({ code: 'realm' });

    // A source with references (to itself: other references would be refused as outside the closure).
    const selfRef = makeSourcePath('hello.txt', src.narHash!, '/a/store', [], true);
    expect(relocate([{ ...src, path: selfRef, references: [selfRef] }]).message).toContain(
      `${selfRef}: it is a source with references`,
    );
    // Not content-addressed: a path that does not follow from the contents.
    const forged = { ...src, path: `/a/store/${'0'.repeat(32)}-hello.txt` };
    expect(relocate([forged])).toEqual({
      code: 'relocate',
      message: expect.stringContaining(`${forged.path}: it is not content-addressed`),
    });
    // Contents changed after the fact: the self-check fails.
    const tampered = { ...text, contents: enc('something else') };
    expect(relocate([src, tampered]).message).toContain(`${text.path}: it is not content-addressed`);
    // A reference outside the closure.
    expect(relocate(b.objects.filter((o) => o !== src)).message).toContain(`it references ${src.path}`);
    // A mention outside the closure (the text file mentions outputs of drvs left out).
    expect(relocate([src, text]).message).toMatch(
      /it mentions \/a\/store\/\w{32}, which is outside the closure/,
    );
    // Twice the same path; a path from another store.
    expect(relocate([src, src]).message).toContain('in the closure twice');
    expect(relocate([{ ...src, path: src.path.replace('/a/store', '/c/store') }]).message).toContain(
      'is not a store path in /a/store',
    );
    // Given as the wrong kind.
    const lone = new Builder('/a/store');
    await lone.text('lone.txt', () => 'no references\n');
    expect(relocate([{ ...lone.objects[0]!, kind: 'source' }]).message).toContain(
      'given as a source but its path says it is a text',
    );
    expect(drv.kind).toBe('drv');
  });

  test('refuses impure derivations and mutual mentions', async () => {
    const b = new Builder('/a/store');
    const impure = await b.drv('impure', { env: { __impure: '1' } });
    expect(codeOf(() => relocateClosure(b.objects, '/a/store', '/b')).message).toContain(
      `${impure}: it is an impure derivation`,
    );
    // A DrvWithVersion derivation is relocated (dynamic derivations: core/relocate.dynamic.nix.test.ts),
    // but not one whose output paths were made for other bytes.
    const c = new Builder('/a/store');
    const dyn = await c.drv('dyn', { version: 'xp-dyn-drv' });
    expect(relocateClosure(c.objects, '/a/store', '/b').objects.length).toBe(1);
    const d = new Builder('/a/store');
    const edited = await d.drv('dyn', { edit: (x) => (x.version = 'xp-dyn-drv') });
    expect(codeOf(() => relocateClosure(d.objects, '/a/store', '/b')).message).toContain(
      `${edited}: its output out is`,
    );
    expect(edited).not.toBe(dyn);
    // Two texts mentioning each other cannot exist in a real store: the self-check refuses them.
    const h1 = 'a'.repeat(32);
    const h2 = 'b'.repeat(32);
    const t1: RelocObject = {
      path: `/a/store/${h1}-x`,
      kind: 'text',
      references: [],
      contents: enc(`/a/store/${h2}-y`),
      narHash: new Uint8Array(32),
    };
    const t2 = { ...t1, path: `/a/store/${h2}-y`, contents: enc(`/a/store/${h1}-x`) };
    expect(codeOf(() => relocateClosure([t1, t2], '/a/store', '/b')).message).toContain(
      `${t1.path}: it is not content-addressed`,
    );
  });

  test('handles a target store dir that extends the source one, and the identity', async () => {
    const { b, root } = await sampleClosure('/s');
    const { root: rootB } = await sampleClosure('/s/store');
    expect(relocateClosure(b.objects, '/s', '/s/store').pathMap.get(root)).toBe(rootB);
    const same = relocateClosure(b.objects, '/s', '/s');
    expect(same.objects.map((o) => o.path)).toEqual(b.objects.map((o) => o.path));
    same.objects.forEach((o, i) => {
      if (o.contents) expect(Buffer.from(o.contents).equals(Buffer.from(b.objects[i]!.contents!))).toBe(true);
    });
  });
});

describe('relocateLazily', () => {
  test('yields, step by step, exactly what relocateClosure returns', async () => {
    const { b } = await sampleClosure('/a/store');
    const eager = relocateClosure(b.objects, '/a/store', '/beta/store');
    const { relocation, steps } = relocateLazily(b.objects, '/a/store', '/beta/store');
    const lazy = [...steps];
    expect(lazy).toEqual(eager.objects);
    expect(relocation.pathMap).toEqual(eager.pathMap);
    expect(relocation.report).toEqual(eager.report);
  });
});

describe('contents read when they are needed', () => {
  test('give the same relocation as contents held, in reverse order too, each read when used', async () => {
    const { b } = await sampleClosure('/a/store');
    for (const objects of [b.objects, [...b.objects].reverse()]) {
      const held = relocateClosure(objects, '/a/store', '/beta/store');
      const reads = new Map<string, number>();
      const lazy = objects.map((o) => {
        if (o.kind === 'source') return o;
        const { contents, ...rest } = o;
        const copy = Uint8Array.from(contents!);
        return {
          ...rest,
          readContents: (): Uint8Array => {
            reads.set(o.path, (reads.get(o.path) ?? 0) + 1);
            return copy.slice(); // a fresh array each time, as a file read gives
          },
        };
      });
      const read = relocateClosure(lazy, '/a/store', '/beta/store');
      expect(read.objects).toEqual(held.objects);
      expect(read.pathMap).toEqual(held.pathMap);
      expect(read.report).toEqual(held.report);
      // Every drv and text was read: when indexed (a drv), when relocated, again after waiting.
      for (const o of objects.filter((x) => x.kind !== 'source'))
        expect(reads.get(o.path)).toBeGreaterThan(0);
      for (const n of reads.values()) expect(n).toBeLessThanOrEqual(3);
    }
  });
});

describe('splicing the strings of a .drv as written', () => {
  // Env values with mentions of everything in the closure, escapes (the n and r of \\n and \\r
  // are nix32 digits), quotes, non-UTF-8 bytes, and the drv's own output paths.
  const fragment = fc.oneof(
    fc.constantFrom('\n', '\r', '\t', '\\', '"', '\\n', 'n', ' ', '\u00ff', '-'),
    fc.stringMatching(/^[0-9a-z]{0,6}$/),
    fc.nat(50).map((i) => ({ mention: i })),
  );
  const envValue = fc.array(fragment, { maxLength: 8 });

  test('gives exactly what parsing and serialising every .drv again gives', async () => {
    let rewritten = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.array(envValue, { maxLength: 3 }), { minLength: 1, maxLength: 4 }),
        async (drvs) => {
          const b = new Builder('/a/store');
          const src = await b.source('src.txt', 'hello\n');
          const made: string[] = [src];
          for (const [n, values] of drvs.entries()) {
            const mentions: string[] = [];
            const text = (v: (string | { mention: number })[]): string =>
              v
                .map((f) => {
                  if (typeof f === 'string') return f;
                  const p = made[f.mention % made.length]!;
                  if (!p.endsWith('.drv')) return p;
                  mentions.push(p);
                  return f.mention % 3 === 0 ? hashPartOf(b.outPath(p)) : b.outPath(p);
                })
                .join('');
            const env = Object.fromEntries(values.map((v, i) => [`v${i}`, text(v)]));
            const drv = await b.drv(`d${n}`, {
              outputs: n % 2 === 0 ? ['out'] : ['dev', 'out'],
              env,
              inputSrcs: [src],
              inputDrvs: [...new Set(mentions)].map((p) => [p, ['out']]),
            });
            made.push(drv);
          }
          const spliced = relocateClosure(b.objects, '/a/store', '/bb/store');
          const reference = relocateClosure(b.objects, '/a/store', '/bb/store', { splice: false });
          expect(spliced).toEqual(reference);
          rewritten += spliced.report.hashesRewritten;
        },
      ),
      { numRuns: 60 },
    );
    expect(rewritten).toBeGreaterThan(0);
  });
});

describe('a content address the verifier already computed', () => {
  test("is taken for a .drv or text file, checked against a source's path", async () => {
    const { b } = await sampleClosure('/a/store');
    const caOf = (o: RelocObject): string => {
      const file = o.contents === undefined ? undefined : { executable: false, contents: o.contents };
      const ca = identifyContentAddress({ ...o, narHash: o.narHash!, file }, '/a/store');
      if (ca === undefined) throw new Error(`${o.path} is not content-addressed`);
      return ca.ca;
    };
    const withCa = b.objects.map((o) => ({ ...o, ca: caOf(o) }));
    const plain = relocateClosure(b.objects, '/a/store', '/b/store');
    expect(relocateClosure(withCa, '/a/store', '/b/store')).toEqual(plain);
    const at = (kind: RelocObject['kind']): number => withCa.findIndex((o) => o.kind === kind);
    const withCaAt = (i: number, ca: string): RelocObject[] =>
      withCa.map((o, j) => (j === i ? { ...o, ca } : o));
    const refusal = (objects: RelocObject[]): unknown =>
      codeOf(() => relocateClosure(objects, '/a/store', '/b/store'));
    const source = withCa[at('source')]!;
    const other = `fixed:r:sha256:${'0'.repeat(52)}`;
    // A source's new path is made from its content address: one that is not its own is refused.
    expect(refusal(withCaAt(at('source'), other))).toEqual({
      code: 'relocate',
      message: expect.stringContaining(`${source.path}: it is not content-addressed`),
    });
    for (const kind of ['drv', 'text'] as const) {
      const i = at(kind);
      // Of the wrong kind: refused.
      expect(refusal(withCaAt(i, source.ca))).toEqual({
        code: 'relocate',
        message: expect.stringContaining(withCa[i]!.path),
      });
      // Text-addressed: vouched for by the caller, and no part of relocating it.
      expect(relocateClosure(withCaAt(i, `text:sha256:${'0'.repeat(52)}`), '/a/store', '/b/store')).toEqual(
        plain,
      );
    }
  });

  test('needs no NAR hash for a .drv or text file, and refuses a source without one', async () => {
    const { b } = await sampleClosure('/a/store');
    const plain = relocateClosure(b.objects, '/a/store', '/b/store');
    const files = b.objects.map((o) => (o.kind === 'source' ? o : { ...o, narHash: undefined }));
    expect(relocateClosure(files, '/a/store', '/b/store')).toEqual(plain);
    const source = b.objects.find((o) => o.kind === 'source')!;
    const withCa = (o: RelocObject): RelocObject => ({
      ...o,
      ca: `fixed:r:sha256:${nix32Encode(o.narHash!)}`,
    });
    for (const given of [source, withCa(source)]) {
      const without = b.objects.map((o) => (o === source ? { ...given, narHash: undefined } : o));
      expect(codeOf(() => relocateClosure(without, '/a/store', '/b/store'))).toEqual({
        code: 'relocate',
        message: expect.stringContaining(source.path),
      });
      expect(codeOf(() => relocateClosure(without, '/a/store', '/b/store')).message).toContain(
        'without its NAR hash',
      );
    }
  });
});

test('rewrites every string of a derivation, even its system and env names', async () => {
  const build = async (dir: string): Promise<Builder> => {
    const b = new Builder(dir);
    const src = await b.source('tool', '#!/bin/sh\n');
    await b.drv('odd', { system: `${src}-system`, inputSrcs: [src], env: { [`${src}-name`]: 'x' } });
    return b;
  };
  const inA = await build('/a/store');
  const inB = await build('/bb/store');
  const r = relocateClosure(inA.objects, '/a/store', '/bb/store');
  expect(r.objects.map((o) => o.path)).toEqual(inB.objects.map((o) => o.path));
  expect(Buffer.from(r.objects[1]!.contents!).equals(Buffer.from(inB.objects[1]!.contents!))).toBe(true);
});

describe('relocateRoot', () => {
  test('maps the drv path and outputs, keeps deferred outputs empty, refuses unknown paths', async () => {
    const { b, root } = await sampleClosure('/a/store');
    const r = relocateClosure(b.objects, '/a/store', '/b/store');
    const mapped = relocateRoot(
      { attribute: 'app', drvPath: root, outputs: { out: b.outPath(root), later: '' } },
      r.pathMap,
    );
    expect(mapped).toEqual({
      attribute: 'app',
      drvPath: r.pathMap.get(root),
      outputs: { out: r.pathMap.get(b.outPath(root)), later: '' },
    });
    expect(mapped.outputs['out']).toMatch(/^\/b\/store\/\w{32}-app$/);
    expect(() => relocateRoot({ drvPath: '/a/store/x', outputs: {} }, r.pathMap)).toThrow(
      /not in the relocated closure/,
    );
  });
});
