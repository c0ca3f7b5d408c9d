// The pure parts of the binary-cache import: narinfo text and which paths `nix copy` is given.
import { describe, expect, test } from '@jest/globals';
import fc from 'fast-check';
import { copyTargets, type CachedPath } from '../../src/app/binary-cache.js';
import { narinfoText } from '../../src/core/narinfo.js';

const DIR = '/nix/store';
const p = (i: number, name: string): string =>
  `${DIR}/${String(i)
    .padStart(32, '0')
    .replace(/[eotu]/g, 'a')}-${name}`;

describe('narinfoText', () => {
  test('writes the fields Nix reads, references as base names, optional lines only when present', () => {
    const text = narinfoText({
      path: p(1, 'top.drv'),
      url: 'nar/0.nar',
      narHash: new Uint8Array(32),
      narSize: 744,
      references: [p(2, 'dep.drv'), p(3, 'src')],
      deriver: '',
      ca: 'text:sha256:0000000000000000000000000000000000000000000000000000',
    });
    expect(text.split('\n')).toEqual([
      `StorePath: ${p(1, 'top.drv')}`,
      'URL: nar/0.nar',
      'Compression: none',
      `NarHash: sha256:${'0'.repeat(52)}`,
      'NarSize: 744',
      `References: ${p(2, 'dep.drv').slice(DIR.length + 1)} ${p(3, 'src').slice(DIR.length + 1)}`,
      'CA: text:sha256:0000000000000000000000000000000000000000000000000000',
      '',
    ]);
    const out = narinfoText({
      path: p(4, 'out'),
      url: 'nar/1.nar',
      narHash: new Uint8Array(32),
      narSize: 8,
      references: [],
      deriver: p(1, 'top.drv'),
      sig: 'k:c2ln',
    });
    expect(out).toContain(`\nReferences: \nDeriver: ${p(1, 'top.drv').slice(DIR.length + 1)}\nSig: k:c2ln\n`);
    expect(out).not.toContain('CA:');
  });
});

describe('copyTargets', () => {
  test('names only unreferenced paths, .drv files apart, and their closures cover everything', () => {
    // Random DAGs: path i may refer to any j < i, and to itself.
    const dag = fc
      .integer({ min: 1, max: 30 })
      .chain((n) =>
        fc.tuple(
          fc.array(fc.boolean(), { minLength: n, maxLength: n }),
          fc.array(fc.array(fc.nat(), { maxLength: 4 }), { minLength: n, maxLength: n }),
          fc.array(fc.boolean(), { minLength: n, maxLength: n }),
        ),
      );
    fc.assert(
      fc.property(dag, ([isDrv, refs, selfRef]) => {
        const paths = isDrv.map((d, i) => p(i, d ? `x${i}.drv` : `x${i}`));
        const cached: CachedPath[] = paths.map((path, i) => ({
          path,
          references: [
            ...new Set([
              ...(refs[i] ?? []).filter(() => i > 0).map((j) => paths[j % i] ?? ''),
              ...(selfRef[i] ? [path] : []),
            ]),
          ],
          ca: undefined,
        }));
        const { drvs, others } = copyTargets(cached);
        expect(drvs.every((d) => d.endsWith('.drv'))).toBe(true);
        expect(others.some((o) => o.endsWith('.drv'))).toBe(false);
        const byPath = new Map(cached.map((c) => [c.path, c]));
        const reached = new Set<string>();
        const walk = (x: string): void => {
          if (reached.has(x)) return;
          reached.add(x);
          for (const r of byPath.get(x)?.references ?? []) walk(r);
        };
        for (const t of [...drvs, ...others]) walk(t);
        expect(reached.size).toBe(paths.length);
        for (const t of [...drvs, ...others])
          expect(cached.some((c) => c.path !== t && c.references.includes(t))).toBe(false);
      }),
    );
  });
});
