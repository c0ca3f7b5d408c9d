// Unit tests of the bundle's framing (skippable frame, zstd frame scanner) and manifest (schema, canonical form, checksum, signatures).
import { describe, expect, test } from '@jest/globals';
import fc from 'fast-check';
import { constants, zstdCompressSync } from 'node:zlib';
import { MalformedError, NixPlanError } from '../../../src/core/errors.js';
import { sha256, toHex } from '../../../src/core/hash.js';
import { makeTextPath } from '../../../src/core/store-path.js';
import { outputsOf } from '../../../src/core/derivation/index.js';
import { generateKeyPair, parsePublicKey, parseSecretKey } from '../../../src/core/signing.js';
import {
  MANIFEST_FRAME_MAGIC,
  SKIPPABLE_HEADER_SIZE,
  ZstdFrameScanner,
  encodeSkippableFrame,
  parseSkippableHeader,
} from '../../../src/core/bundle/frame.js';
import {
  canonicalJson,
  encodeManifest,
  finaliseManifest,
  manifestChecksum,
  parseManifest,
  verifyManifestSignatures,
  type BundleManifest,
} from '../../../src/core/bundle/manifest.js';

const STORE = '/nix/store';
const drv = makeTextPath('hello.drv', sha256('Derive()'), [], STORE);
const out = `${STORE}/${'1'.repeat(32)}-hello`;

function draft(): Omit<BundleManifest, 'checksum' | 'signatures'> {
  return {
    format: 'nix-plan',
    formatVersion: 1,
    tool: 'nix-plan 0.1.0',
    nixVersion: '2.34.8',
    storeDir: STORE,
    systems: ['x86_64-linux'],
    include: 'drvs',
    roots: [{ attribute: 'hello', drvPath: drv, outputs: { out } }],
    counts: { drv: 1, text: 0, source: 2, output: 0 },
    narBytes: { drv: 200, text: 0, source: 400, output: 0 },
    paths: 3,
    stream: {
      sha256: toHex(sha256('a')),
      size: 1000,
      compressedSha256: toHex(sha256('b')),
      compressedSize: 300,
    },
  };
}

function codeOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    if (e instanceof NixPlanError) return e.code;
    throw e;
  }
  return 'accepted';
}

describe('skippable frame', () => {
  test('encodes the magic and little-endian size, and parses back', () => {
    const f = encodeSkippableFrame(new Uint8Array([1, 2, 3]));
    expect([...f.subarray(0, 8)]).toEqual([0x57, 0x2a, 0x4d, 0x18, 3, 0, 0, 0]);
    expect(parseSkippableHeader(f, 10)).toEqual({ magic: MANIFEST_FRAME_MAGIC, size: 3 });
  });
  test('refuses a plain zstd file, a non-zstd file, a short file and a huge size', () => {
    const plain = zstdCompressSync(Buffer.from('hello'));
    expect(() => parseSkippableHeader(plain, 100)).toThrow(/plain zstd file/);
    expect(() => parseSkippableHeader(new Uint8Array(8).fill(0x41), 100)).toThrow(MalformedError);
    expect(() => parseSkippableHeader(new Uint8Array(5), 100)).toThrow(/too short/);
    const huge = encodeSkippableFrame(new Uint8Array(0));
    new DataView(huge.buffer).setUint32(4, 0xffffffff, true);
    expect(() => parseSkippableHeader(huge, 1 << 20)).toThrow(NixPlanError);
  });
});

function frameOf(data: Uint8Array, windowLog = 17): Buffer {
  return zstdCompressSync(data, {
    params: { [constants.ZSTD_c_checksumFlag]: 1, [constants.ZSTD_c_windowLog]: windowLog },
  });
}

describe('zstd frame scanner', () => {
  const data = new Uint8Array(Buffer.from('x'.repeat(300_000) + Math.PI.toString().repeat(20_000)));
  const frame = frameOf(data);

  test('finds the end of a multi-block frame, however the input is chunked', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: frame.length }), { maxLength: 8 }), (cuts) => {
        const s = new ZstdFrameScanner(100);
        let at = 0;
        for (const c of [...cuts].sort((a, b) => a - b)) {
          s.push(frame.subarray(at, Math.max(at, c)));
          at = Math.max(at, c);
        }
        s.push(frame.subarray(at));
        const info = s.finish();
        expect(info.hasChecksum).toBe(true);
        expect(info.blocks).toBeGreaterThan(2);
        expect(info.boundaries[info.boundaries.length - 1]).toBe(frame.length);
      }),
      { numRuns: 50 },
    );
  });
  test('refuses a truncation at every offset', () => {
    for (let n = 0; n < frame.length; n++) {
      const s = new ZstdFrameScanner(0);
      s.push(frame.subarray(0, n));
      expect(() => s.finish()).toThrow(MalformedError);
    }
  });
  test('refuses trailing bytes and a second frame, naming the offset', () => {
    const s = new ZstdFrameScanner(100);
    expect(() => s.push(Buffer.concat([frame, frameOf(new Uint8Array([1]))]))).toThrow(
      `trailing bytes after the zstd data frame at byte offset ${100 + frame.length}`,
    );
  });
  test('refuses a skippable frame, reserved bits, dictionaries and oversized windows', () => {
    const scan = (b: Uint8Array): string => codeOf(() => new ZstdFrameScanner(0).push(b));
    expect(scan(encodeSkippableFrame(new Uint8Array(1)))).toBe('malformed');
    for (const bit of [0x08, 0x10, 0x01]) {
      const f = Buffer.from(frame);
      f[4] = (f[4] ?? 0) | bit;
      expect(scan(f)).toBe('malformed');
    }
    expect(scan(frameOf(new Uint8Array(10), 28))).toBe('accepted'); // tiny input: zstd shrinks the window
    const big = Buffer.from(frame);
    expect(big[4] === undefined || (big[4] & 0x20) !== 0).toBe(false); // has a window descriptor
    big[5] = (28 - 10) << 3;
    expect(scan(big)).toBe('limit');
  });
});

describe('manifest', () => {
  const keys = generateKeyPair('test-1');
  const other = generateKeyPair('test-1');
  const secret = parseSecretKey(keys.secretKey);
  const pub = parsePublicKey(keys.publicKey);

  test('round-trips through its canonical bytes, and the checksum covers everything', () => {
    const m = finaliseManifest(draft());
    const bytes = encodeManifest(m);
    expect(parseManifest(bytes)).toEqual(m);
    expect(Buffer.from(bytes).toString()).toBe(canonicalJson(JSON.parse(Buffer.from(bytes).toString())));
    expect(m.checksum).toBe(manifestChecksum(m));
  });

  test('outputs named like Object.prototype members are kept as the names they are', () => {
    // Nix allows an output named `__proto__`: written, read and handed on like any other, never
    // dropped on the way (assigning that key sets a prototype) or read from the prototype.
    const named = (n: string): string => `${STORE}/${'2'.repeat(32)}-hello-${n.replace(/_/g, '')}`;
    const outputs = Object.fromEntries(
      ['__proto__', 'constructor', 'out', 'toString'].map((n) => [n, named(n)]),
    );
    const m = finaliseManifest({ ...draft(), roots: [{ drvPath: drv, outputs }] });
    const read = parseManifest(encodeManifest(m));
    expect(Object.keys(read.roots[0]?.outputs ?? {})).toEqual([
      '__proto__',
      'constructor',
      'out',
      'toString',
    ]);
    expect(Object.getPrototypeOf(read.roots[0]?.outputs)).toBe(Object.prototype);
    expect(read.roots[0]?.outputs['__proto__']).toBe(named('__proto__'));
    expect(
      outputsOf({ outputs: ['__proto__', 'out'].map((name) => ({ name, path: named(name) })) as never }),
    ).toEqual(
      Object.fromEntries([
        ['__proto__', named('__proto__')],
        ['out', named('out')],
      ]),
    );
  });

  test('every single-bit flip anywhere in the stored manifest is refused with a typed error', () => {
    const bytes = encodeManifest(finaliseManifest(draft(), [secret]));
    const codes = new Map<string, number>();
    for (let i = 0; i < bytes.length; i++)
      for (let bit = 0; bit < 8; bit++) {
        const b = Uint8Array.from(bytes);
        b[i] = (b[i] ?? 0) ^ (1 << bit);
        const code = codeOf(() => parseManifest(b));
        codes.set(code, (codes.get(code) ?? 0) + 1);
      }
    expect(codes.get('accepted')).toBeUndefined();
    expect([...codes.keys()].sort()).toEqual(['bundle', 'malformed']);
  });

  test('signatures: a trusted key verifies; another key, a forged field and no signature are refused', () => {
    const m = finaliseManifest(draft(), [secret]);
    expect(verifyManifestSignatures(m, [pub])).toEqual(['test-1']);
    expect(() => verifyManifestSignatures(m, [parsePublicKey(other.publicKey)])).toThrow(/does not verify/);
    expect(() =>
      verifyManifestSignatures(m, [parsePublicKey(generateKeyPair('elsewhere').publicKey)]),
    ).toThrow(/not signed by a trusted key.*signed by: 'test-1'/);
    // A forger changes the roots and recomputes the checksum: parsing passes, the signature does not.
    const forged = { ...m, counts: { ...m.counts, drv: 2 }, paths: 4 };
    const reparsed = parseManifest(encodeManifest({ ...forged, checksum: manifestChecksum(forged) }));
    expect(() => verifyManifestSignatures(reparsed, [pub])).toThrow(NixPlanError);
    expect(() => verifyManifestSignatures(finaliseManifest(draft()), [pub])).toThrow(/signed by: nobody/);
    // Re-signing by the same key name replaces the old signature instead of piling them up.
    expect(finaliseManifest(m, [secret]).signatures).toHaveLength(1);
  });

  test('a newer format version asks the user to upgrade; other versions and formats are refused', () => {
    const m = JSON.parse(canonicalJson(finaliseManifest(draft()))) as Record<string, unknown>;
    const enc = (v: unknown): Uint8Array => Buffer.from(JSON.stringify(v));
    expect(() => parseManifest(enc({ ...m, formatVersion: 3, future: true }))).toThrow(
      /written by nix-plan 0.1.0 in bundle format version 3; .*reads versions 1 and 2: upgrade nix-plan/,
    );
    expect(() => parseManifest(enc({ ...m, formatVersion: '1' }))).toThrow(/formatVersion must be 1 or 2/);
    expect(() => parseManifest(enc({ ...m, formatVersion: 0 }))).toThrow(/formatVersion must be 1 or 2/);
    expect(() => parseManifest(enc({ ...m, format: 'nario' }))).toThrow(/not a nix-plan bundle manifest/);
    expect(() => parseManifest(enc([m]))).toThrow(/not a nix-plan bundle manifest/);
  });

  const variants: [string, (m: Record<string, unknown>) => unknown, RegExp][] = [
    ['unknown field', (m) => ({ ...m, extra: 1 }), /unknown field 'extra'.*upgrade/],
    ['missing field', ({ tool: _t, ...m }) => m, /lacks the field 'tool'/],
    [
      'relative store dir',
      (m) => ({ ...m, storeDir: 'nix/store' }),
      /not a store directory: it is not absolute/,
    ],
    [
      'root outside the store dir',
      (m) => ({ ...m, roots: [{ drvPath: '/other/store/' + drv.slice(11), outputs: {} }] }),
      /roots\[0\]\.drvPath is not a valid store path in \/nix\/store/,
    ],
    ['root not a .drv', (m) => ({ ...m, roots: [{ drvPath: out, outputs: {} }] }), /must be a \.drv path/],
    [
      '.. in an output path',
      (m) => ({ ...m, roots: [{ drvPath: drv, outputs: { out: STORE + '/../etc/passwd' } }] }),
      /outputs\.out is not a valid store path/,
    ],
    [
      'negative count',
      (m) => ({ ...m, counts: { drv: -1, text: 0, source: 2, output: 0 } }),
      /counts\.drv must be a non-negative integer/,
    ],
    [
      'fractional size',
      (m) => ({ ...m, stream: { ...(m['stream'] as object), size: 1000.5 } }),
      /stream\.size must be/,
    ],
    ['paths not the sum', (m) => ({ ...m, paths: 4 }), /paths is not the sum of counts/],
    [
      'outputs in a drvs bundle',
      (m) => ({
        ...m,
        counts: { drv: 1, text: 0, source: 2, output: 1 },
        narBytes: { drv: 200, text: 0, source: 400, output: 9 },
        paths: 4,
      }),
      /must be 0 in a 'drvs' bundle/,
    ],
    ['control character', (m) => ({ ...m, tool: 'nix-plan\x1b[2J' }), /tool holds the character U\+001B/],
    ['bad include', (m) => ({ ...m, include: 'everything' }), /include must be one of/],
    ['no roots', (m) => ({ ...m, roots: [] }), /roots is empty/],
    [
      'uppercase hex',
      (m) => ({ ...m, stream: { ...(m['stream'] as object), sha256: toHex(sha256('a')).toUpperCase() } }),
      /stream\.sha256 has a forbidden character/,
    ],
    [
      'size below its contents',
      (m) => ({ ...m, stream: { ...(m['stream'] as object), size: 100 } }),
      /stream\.size is smaller/,
    ],
    [
      'relocated from itself',
      (m) => ({
        ...m,
        relocatedFrom: {
          storeDir: STORE,
          report: {
            objects: { drv: 0, text: 0, source: 0 },
            hashesRewritten: 0,
            bareHashRewrites: 0,
            bareStoreDirMentions: [],
            warnings: [],
          },
        },
      }),
      /equals storeDir/,
    ],
  ];
  test.each(variants)('refuses %s with a message naming the field', (_name, change, message) => {
    const m = JSON.parse(canonicalJson(finaliseManifest(draft()))) as Record<string, unknown>;
    const changed = change(m) as BundleManifest;
    // Recompute the checksum, as a forger would, so that only the schema can refuse it.
    const bytes = Buffer.from(canonicalJson({ ...changed, checksum: manifestChecksum(changed) }));
    expect(() => parseManifest(bytes)).toThrow(message);
    expect(codeOf(() => parseManifest(bytes))).toBe('bundle');
  });

  test('non-canonical JSON (whitespace, key order, escapes, duplicate keys) is refused', () => {
    const text = Buffer.from(encodeManifest(finaliseManifest(draft()))).toString();
    for (const altered of [
      JSON.stringify(JSON.parse(text), null, 1),
      text.replace('"format":"nix-plan",', '').replace('{', '{"format":"nix-plan",'),
      text.replace('"nix-plan 0.1.0"', '"nix-plan 0\\u002e1.0"'),
      text.replace('{', '{"tool":"x",'),
    ])
      expect(() => parseManifest(Buffer.from(altered))).toThrow(/canonical form/);
  });

  test('deeply nested JSON is refused as a bad bundle (exit 3), not a stack overflow', () => {
    for (const open of ['[', '{"a":'])
      for (const depth of [17, 100_000]) {
        const text = open.repeat(depth) + (open === '[' ? ']' : '1}').repeat(depth);
        const e = codeOf(() => parseManifest(Buffer.from(text)));
        expect([open, depth, e]).toEqual([open, depth, 'bundle']);
      }
    // Brackets inside strings do not count.
    const quoted = Buffer.from(`{"a":"${'['.repeat(100)}\\"${'{'.repeat(100)}"}`);
    expect(() => parseManifest(quoted)).not.toThrow(/nested deeper/);
  });

  test('the writer refuses a manifest its reader would refuse for its size', () => {
    const m = finaliseManifest(draft());
    expect(() => encodeManifest(m, 100)).toThrow(/more than the 100 bytes a reader accepts/);
    expect(codeOf(() => encodeManifest(m, 100))).toBe('bundle');
    expect(parseManifest(encodeManifest(m))).toEqual(m);
  });

  test('size limit and invalid UTF-8', () => {
    expect(() => parseManifest(new Uint8Array(2000), 1000)).toThrow(/exceeds the limit/);
    expect(codeOf(() => parseManifest(new Uint8Array(2000), 1000))).toBe('bundle');
    expect(codeOf(() => parseManifest(new Uint8Array([0x7b, 0xff, 0x7d])))).toBe('malformed');
    expect(SKIPPABLE_HEADER_SIZE).toBe(8);
  });
});
