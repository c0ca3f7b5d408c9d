// Unit tests of the ATerm parser/serialiser: byte-exact round trips and typed errors on bad input.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import {
  derivationReferences,
  drvName,
  envGet,
  parseDerivation,
  parseDerivationHead,
  serialiseDerivation,
  type Derivation,
} from '../../src/core/derivation/index.js';
import { MalformedError } from '../../src/core/errors.js';
import { nixVersions, ScratchStore } from '../support/nix.js';
import {
  instantiatePlan,
  planStoreConf,
  readStoreFile,
  type InstantiatedPlan,
} from '../fixtures/plan/fixture.js';
import { derivationArb } from '../support/derivation-arb.js';

const enc = new TextEncoder();
const b = (s: string): Uint8Array => enc.encode(s);
const latin1 = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'latin1'));
const text = (u: Uint8Array): string => Buffer.from(u).toString('latin1');

const S = '/nix/store';
const OUT = `${S}/2d5spnsg1n1iwbk0w2ss5n3zjqwnqwzm-hello`;
const DEP = `${S}/0p2a4m1q2n4k0q9j7b5x2g9v4l2n8z6c-dep.drv`;
const SRC = `${S}/1c4qmmb2vknv7n9gxhkhy5yqq3jqw3i0-builder.sh`;

// Shaped exactly like a drv Nix writes (compare `nix-store --query --binding` output).
const SAMPLE =
  `Derive([("dev","${OUT}-dev","",""),("out","${OUT}","","")],` +
  `[("${DEP}",["lib","out"])],["${SRC}"],"x86_64-linux","/bin/sh",["-c","echo \\"hi\\"\\n\\tthere\\\\"],` +
  `[("builder","/bin/sh"),("dev","${OUT}-dev"),("name","hello"),("out","${OUT}"),("system","x86_64-linux")])`;

function expectMalformed(bytes: Uint8Array): MalformedError {
  try {
    parseDerivation(bytes);
  } catch (e) {
    expect(e).toBeInstanceOf(MalformedError);
    const m = e as MalformedError;
    expect(m.code).toBe('malformed');
    expect(m.offset).toBeGreaterThanOrEqual(0);
    expect(m.offset).toBeLessThanOrEqual(bytes.length);
    expect(m.message).toMatch(/at byte offset \d+/);
    // The head-only parse validates the same bytes the same way.
    expect(() => parseDerivationHead(bytes)).toThrow(m.message);
    return m;
  }
  throw new Error(`parsed without error: ${text(bytes).slice(0, 200)}`);
}

describe('parseDerivation', () => {
  test('reads every field of a Nix-shaped derivation', () => {
    const drv = parseDerivation(b(SAMPLE));
    expect(drv.version).toBeUndefined();
    expect(drv.outputs).toEqual([
      { name: 'dev', path: `${OUT}-dev`, hashAlgo: '', hash: '' },
      { name: 'out', path: OUT, hashAlgo: '', hash: '' },
    ]);
    expect(drv.inputDrvs).toEqual([{ path: DEP, outputs: ['lib', 'out'] }]);
    expect(drv.inputSrcs).toEqual([SRC]);
    expect(text(drv.system)).toBe('x86_64-linux');
    expect(text(drv.builder)).toBe('/bin/sh');
    expect(drv.args.map(text)).toEqual(['-c', 'echo "hi"\n\tthere\\']);
    expect(text(envGet(drv, 'name') ?? new Uint8Array())).toBe('hello');
    expect(envGet(drv, 'missing')).toBeUndefined();
    expect(serialiseDerivation(drv)).toEqual(b(SAMPLE));
  });

  test('keeps verbatim fields verbatim and escapes only the five characters Nix escapes', () => {
    const drv = parseDerivation(b(SAMPLE));
    drv.env = [{ key: b('k'), value: latin1('"\\\n\r\t\x00\x01\x7f\xe9\xff') }];
    drv.system = latin1('sys\ntem\xe9');
    const out = text(serialiseDerivation(drv));
    expect(out.endsWith(`[("k","\\"\\\\\\n\\r\\t\x00\x01\x7f\xe9\xff")])`)).toBe(true);
    expect(out).toContain(',"sys\ntem\xe9",');
    expect(parseDerivation(latin1(out))).toEqual(drv);
  });

  test('non-UTF-8 (latin-1) bytes round-trip unchanged', () => {
    const bytes = latin1(SAMPLE.replace('("name","hello")', '("name","caf\xe9 \x80\x9f")'));
    const drv = parseDerivation(bytes);
    expect(Array.from(envGet(drv, 'name') ?? [])).toEqual([0x63, 0x61, 0x66, 0xe9, 0x20, 0x80, 0x9f]);
    expect(serialiseDerivation(drv)).toEqual(bytes);
  });

  test('DrvWithVersion with dynamic outputs is kept verbatim', () => {
    const dyn =
      `DrvWithVersion("xp-dyn-drv",[("out","","r:sha256","")],` +
      `[("${DEP}",([],[("out",["out"])])),("${S}/1p2a4m1q2n4k0q9j7b5x2g9v4l2n8z6c-x.drv",(["dev"],[("a",(["b"],[("c",["out"])]))]))` +
      `,("${S}/2p2a4m1q2n4k0q9j7b5x2g9v4l2n8z6c-y.drv",["out"])],[],"x86_64-linux","/bin/sh",[],[])`;
    const drv = parseDerivation(b(dyn));
    expect(drv.version).toBe('xp-dyn-drv');
    expect(drv.inputDrvs[0]?.outputs).toEqual([]);
    expect(text(drv.inputDrvs[0]?.dynamicOutputs ?? new Uint8Array())).toBe('[("out",["out"])]');
    expect(drv.inputDrvs[1]?.outputs).toEqual(['dev']);
    expect(drv.inputDrvs[2]?.dynamicOutputs).toBeUndefined();
    expect(serialiseDerivation(drv)).toEqual(b(dyn));
  });

  test('the dynamic form is refused in a plain Derive', () => {
    expectMalformed(b(`Derive([],[("${DEP}",([],[("out",["out"])]))],[],"s","b",[],[])`));
  });

  test('output hash fields Nix cannot read, or reads differently, are refused as Nix would not write them', () => {
    const withOut = (o: string): Uint8Array =>
      b(`Derive([${o}],[],[],"x86_64-linux","/bin/sh",[],[("out","${OUT}")])`);
    // Nix refuses an unknown algorithm, whatever the kind of output ("unknown hash algorithm").
    for (const algo of ['r:sha257', 'nar:sha256', 'R:sha256', 'sha256 ', 'text:', 'r:r:sha256'])
      for (const [hash, path] of [
        ['', ''],
        ['impure', ''],
        ['00', OUT],
      ] as const)
        expect(expectMalformed(withOut(`("out","${path}","${algo}","${hash}")`)).message).toContain(
          `hash algorithm '${algo}'`,
        );
    // Without an algorithm Nix reads an input-addressed (or deferred) output and drops its hash,
    // so it would hash the .drv without it.
    for (const path of [OUT, ''])
      expect(expectMalformed(withOut(`("out","${path}","","abc")`)).message).toContain(
        "has the hash 'abc' but no hash algorithm",
      );
    // Every method and algorithm Nix 2.34 reads is read, with any hash (checked where it matters).
    for (const method of ['', 'r:', 'text:', 'git:'])
      for (const algo of ['md5', 'sha1', 'sha256', 'sha512', 'blake3'])
        for (const hash of ['', 'impure', 'abc'])
          expect(
            parseDerivation(withOut(`("out","","${method}${algo}","${hash}")`)).outputs[0]?.hashAlgo,
          ).toBe(method + algo);
  });

  test('truncation at every offset is a MalformedError', () => {
    const bytes = b(SAMPLE);
    for (let n = 0; n < bytes.length; n++) {
      const m = expectMalformed(bytes.subarray(0, n));
      expect(m.offset).toBeLessThanOrEqual(n);
    }
  });

  test.each([
    ['bad escape', SAMPLE.replace('\\"hi', '\\qhi')],
    ['raw newline in an escaped field', SAMPLE.replace('\\n\\tthere', '\n\\tthere')],
    ['raw tab in an escaped field', SAMPLE.replace('\\tthere', '\tthere')],
    ['missing comma', SAMPLE.replace('"x86_64-linux","/bin/sh"', '"x86_64-linux""/bin/sh"')],
    ['missing comma in a list', SAMPLE.replace('["lib","out"]', '["lib""out"]')],
    ['unsorted outputs', SAMPLE.replace('("dev",', '("pev",')],
    ['duplicate output names', SAMPLE.replace('["lib","out"]', '["out","out"]')],
    ['unsorted environment', SAMPLE.replace('("builder",', '("zzz",')],
    ['trailing bytes', SAMPLE + '\n'],
    ['wrong head', SAMPLE.replace('Derive(', 'Derivx(')],
    ['unterminated string at the end', 'Derive([],[],[],"s","b",[],[("a","b)])'],
    ['a backslash at the end', 'Derive([],[],[],"s","b\\'],
    ['empty input', ''],
    ['unbalanced list', 'Derive([],[],[],"s","b",[,],[])'],
  ])('%s is a MalformedError', (_name, input) => {
    expectMalformed(b(input));
  });

  test('huge inputs are handled without crashing', () => {
    const big = 'x'.repeat(8 * 1024 * 1024);
    const drv = parseDerivation(b(`Derive([],[],[],"s","b",["${big}"],[("k","${big}")])`));
    expect(drv.args[0]?.length).toBe(big.length);
    expectMalformed(b(`Derive([],[],[],"s","b",["${big}`));
    expectMalformed(b('Derive(' + '['.repeat(1_000_000)));
  });

  test('deeply nested dynamic outputs are refused, not a stack overflow', () => {
    const deep = '[("o",(['.repeat(10_000) + ']';
    expectMalformed(b(`DrvWithVersion("xp-dyn-drv",[],[("${DEP}",([],${deep}`));
  });
});

describe('round trips (property)', () => {
  test('serialise then parse gives the same derivation, and the same bytes again', () => {
    fc.assert(
      fc.property(derivationArb, (drv) => {
        const bytes = serialiseDerivation(drv);
        const back = parseDerivation(bytes);
        expect(back.version).toBe(drv.version);
        expect(back.outputs).toEqual(drv.outputs);
        expect(back.inputDrvs).toEqual(drv.inputDrvs);
        expect(back.inputSrcs).toEqual(drv.inputSrcs);
        expect(Array.from(back.system)).toEqual(Array.from(drv.system));
        expect(Array.from(back.builder)).toEqual(Array.from(drv.builder));
        expect(back.args.map((a) => Array.from(a))).toEqual(drv.args.map((a) => Array.from(a)));
        expect(back.env.map((e) => [Array.from(e.key), Array.from(e.value)])).toEqual(
          drv.env.map((e) => [Array.from(e.key), Array.from(e.value)]),
        );
        expect(serialiseDerivation(back)).toEqual(bytes);
        const { version, outputs, inputDrvs, inputSrcs, system } = back;
        expect(parseDerivationHead(bytes)).toEqual({ version, outputs, inputDrvs, inputSrcs, system });
      }),
      { numRuns: 300 },
    );
  });

  test('short verbatim fields (made once and shared) read right for every byte, past the ones kept', () => {
    // One-, two- and three-byte output names, a thousand more than the parser keeps, and empty hashes.
    const names: string[] = [];
    for (let c = 1; c < 256; c++) if (c !== 0x22) names.push(String.fromCharCode(c));
    const chars = Array.from({ length: 200 }, (_, k) => String.fromCharCode(0x23 + k));
    for (const x of chars.slice(0, 60)) for (const y of chars.slice(100, 180)) names.push(x + y);
    for (const x of chars.slice(150, 155)) for (const y of chars.slice(0, 40)) names.push(x + y + x);
    const sorted = names.sort();
    expect(new Set(sorted).size).toBe(254 + 60 * 80 + 5 * 40); // more than the 4,096 kept
    const drv = `Derive([${sorted.map((n) => `("${n}","","","")`).join(',')}],[],[],"x","b",[],[])`;
    for (let round = 0; round < 2; round++) {
      const parsed = parseDerivation(latin1(drv));
      expect(parsed.outputs.map((o) => o.name)).toEqual(sorted);
      expect(parsed.outputs.every((o) => o.hashAlgo === '' && o.hash === '')).toBe(true);
      expect(text(serialiseDerivation(parsed))).toBe(drv);
    }
  });

  test('every byte value 0–255 in an escaped field round-trips', () => {
    const all = new Uint8Array(256).map((_, i) => i);
    const drv = parseDerivation(b(SAMPLE));
    drv.builder = all;
    drv.args = [all, all.slice().reverse()];
    drv.env = [{ key: all, value: all }];
    const back = parseDerivation(serialiseDerivation(drv));
    expect(back.builder).toEqual(all);
    expect(back.args[1]).toEqual(all.slice().reverse());
    expect(back.env[0]?.key).toEqual(all);
  });

  test('any mutation of a valid drv is either refused with MalformedError or re-serialises exactly', () => {
    const base = b(SAMPLE);
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(base.length - 1), fc.integer({ min: 0, max: 255 })), {
          minLength: 1,
          maxLength: 3,
        }),
        (edits) => {
          const bytes = base.slice();
          for (const [at, v] of edits) bytes[at] = v;
          let drv: Derivation;
          try {
            drv = parseDerivation(bytes);
          } catch (e) {
            expect(e).toBeInstanceOf(MalformedError);
            return;
          }
          expect(serialiseDerivation(drv)).toEqual(bytes);
        },
      ),
      { numRuns: 2000 },
    );
  });
});

describe('helpers', () => {
  test('derivationReferences is the sorted set of inputSrcs and inputDrvs', () => {
    const drv = parseDerivation(b(SAMPLE));
    drv.inputSrcs = [DEP, SRC];
    expect(derivationReferences(drv)).toEqual([DEP, SRC].sort());
  });
  test('derivationReferences merges sorted lists and sorts unsorted ones, each path once', () => {
    const paths = fc.uniqueArray(fc.stringMatching(/^\/s\/[a-z]{1,3}$/), { maxLength: 8 });
    fc.assert(
      fc.property(paths, paths, fc.boolean(), (srcs, drvs, sort) => {
        const s = sort ? [...srcs].sort() : srcs;
        const d = (sort ? [...drvs].sort() : drvs).map((path) => ({ path, outputs: ['out'] }));
        expect(derivationReferences({ inputSrcs: s, inputDrvs: d })).toEqual(
          [...new Set([...srcs, ...drvs])].sort(),
        );
      }),
    );
  });
  test('drvName strips the hash and .drv', () => {
    expect(drvName(DEP)).toBe('dep');
    expect(() => drvName(OUT)).toThrow(/not a derivation path/);
  });
});

describe.each(nixVersions())('drvs written by Nix $label', (version) => {
  let store: ScratchStore;
  let plan: InstantiatedPlan;
  const drvs = new Map<string, Uint8Array>();
  beforeAll(async () => {
    store = new ScratchStore(version, { extraConf: planStoreConf(version) });
    plan = await instantiatePlan(store);
    for (const p of plan.drvs) drvs.set(p, readStoreFile(p));
  });
  afterAll(() => store.dispose());

  const named = (suffix: string): Derivation => {
    const entry = [...drvs].find(([p]) => p.endsWith(suffix));
    if (entry === undefined) throw new Error(`no drv ending in ${suffix}`);
    return parseDerivation(entry[1]);
  };

  test('every drv in the closure re-serialises byte for byte (also when read as a Buffer)', () => {
    expect(drvs.size).toBeGreaterThan(20);
    for (const [p, bytes] of drvs) {
      expect([
        p,
        Buffer.from(serialiseDerivation(parseDerivation(bytes))).equals(Buffer.from(bytes)),
      ]).toEqual([p, true]);
      const fromBuffer = parseDerivation(readFileSync(p));
      expect(Object.getPrototypeOf(fromBuffer.builder)).toBe(Uint8Array.prototype);
      expect(Buffer.from(serialiseDerivation(fromBuffer)).equals(Buffer.from(bytes))).toBe(true);
    }
  });

  test('values mean what Nix meant: latin-1 bytes, escapes in keys and values, structured attrs', () => {
    const latin1Drv = named('-latin1.drv');
    const want = new Uint8Array(readFileSync(new URL('../fixtures/plan/src/latin1.txt', import.meta.url)));
    expect(envGet(latin1Drv, 'latin1Value')).toEqual(want);
    expect(want.includes(0xe9)).toBe(true);
    const esc = named('-escapes.drv');
    expect(text(envGet(esc, 'controls') ?? new Uint8Array())).toBe('line1\nline2\ttabbed\rcarriage');
    expect(text(envGet(esc, 'backslashes') ?? new Uint8Array())).toBe('a\\b\\\\c\\');
    expect(envGet(esc, 'key with "quotes" and\nnewline')).toEqual(b('value'));
    expect(Buffer.from(envGet(esc, 'unicode') ?? []).toString('utf8')).toBe('héllo wörld ✓ 🎉 日本');
    const json = JSON.parse(
      Buffer.from(envGet(named('-structured.drv'), '__json') ?? []).toString('utf8'),
    ) as {
      nested: { a: string };
    };
    expect(json.nested.a).toBe('x\ny');
    const multi = named('-multi-partial.drv');
    expect(multi.inputDrvs.map((i) => i.outputs)).toEqual([['dev']]);
  });

  test('every truncation of every real drv is a MalformedError', () => {
    let checked = 0;
    for (const bytes of drvs.values())
      for (let n = 0; n < bytes.length; n++) {
        let error: unknown;
        try {
          parseDerivation(bytes.subarray(0, n));
        } catch (e) {
          error = e;
        }
        if (!(error instanceof MalformedError) || (error.offset ?? -1) > n)
          throw new Error(`prefix ${n}: ${String(error)}`);
        checked++;
      }
    expect(checked).toBeGreaterThan(10_000);
  });
});
