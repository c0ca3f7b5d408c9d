// Manifest format version 2: createdAt, provenance and promotions, signed with the rest; version 1 still read; unsafe characters refused.
import { describe, expect, test } from '@jest/globals';
import { NixPlanError } from '../../../src/core/errors.js';
import { sha256, toHex } from '../../../src/core/hash.js';
import { makeTextPath } from '../../../src/core/store-path.js';
import { keyFingerprint, publicKeyOf, secretKeyFromSeed } from '../../../src/core/signing.js';
import {
  MANIFEST_FORMAT_VERSION,
  canonicalJson,
  encodeManifest,
  finaliseManifest,
  manifestChecksum,
  manifestSigners,
  parseManifest,
  verifyManifestSignatures,
  type BundleManifest,
  type Promotion,
} from '../../../src/core/bundle/manifest.js';

const STORE = '/nix/store';
const drv = makeTextPath('hello.drv', sha256('Derive()'), [], STORE);
const secret = secretKeyFromSeed('ci-1', sha256('manifest v2 seed'));
const pub = publicKeyOf(secret);
const COMMIT = 'a'.repeat(40);

function v2(): Omit<BundleManifest, 'checksum' | 'signatures'> {
  return {
    format: 'nix-plan',
    formatVersion: 2,
    tool: 'nix-plan 0.2.0',
    nixVersion: '2.34.8',
    createdAt: '2026-12-06T10:17:30Z',
    provenance: {
      repository: 'owner/name',
      commit: COMMIT,
      ref: 'refs/heads/main',
      dirty: false,
      workflow: 'owner/name/.github/workflows/ci.yml@refs/heads/main',
      runUrl: 'https://github.com/owner/name/actions/runs/42/attempts/1',
      runAttempt: 1,
      flake: {
        url: 'path:/src?lastModified=1&narHash=sha256-VMNimz3YnOO0p9wHe3Ak6pIkMDWbV/CYsqkL/MJQPSw=',
        inputs: [
          { name: 'flake-utils', url: 'github:numtide/flake-utils/' + 'b'.repeat(40) },
          {
            name: 'nixpkgs',
            url: 'github:NixOS/nixpkgs/' + 'c'.repeat(40),
            narHash: 'sha256-bZsJIso1URwbhSoVqrjnrnTw30qQQx3ZriTo15rlkyw=',
            lastModified: 1796553335,
          },
        ],
      },
    },
    storeDir: STORE,
    systems: ['x86_64-linux'],
    include: 'drvs',
    roots: [{ attribute: 'hello', drvPath: drv, outputs: { out: `${STORE}/${'1'.repeat(32)}-hello` } }],
    counts: { drv: 1, text: 0, source: 0, output: 0 },
    narBytes: { drv: 200, text: 0, source: 0, output: 0 },
    paths: 1,
    stream: {
      sha256: toHex(sha256('a')),
      size: 1000,
      compressedSha256: toHex(sha256('b')),
      compressedSize: 300,
    },
  };
}

const promotion: Promotion = {
  digest: `sha256:${'d'.repeat(64)}`,
  storeDir: STORE,
  checksum: 'e'.repeat(64),
  signedBy: [{ key: 'ci-1', fingerprint: keyFingerprint(pub) }],
  at: '2026-12-07T08:00:00Z',
};

const relocatedFrom = {
  storeDir: STORE,
  report: {
    objects: { drv: 1, text: 0, source: 0 },
    hashesRewritten: 0,
    bareHashRewrites: 0,
    bareStoreDirMentions: [],
    warnings: [],
  },
};

function promoted(): Omit<BundleManifest, 'checksum' | 'signatures'> {
  const beta = '/beta/store';
  return {
    ...v2(),
    storeDir: beta,
    roots: [
      { attribute: 'hello', drvPath: makeTextPath('hello.drv', sha256('Derive()'), [], beta), outputs: {} },
    ],
    relocatedFrom,
    promotions: [promotion],
  };
}

/** The error a crafted manifest (checksum recomputed, as a forger would) is refused with. */
function refusal(m: Record<string, unknown>): NixPlanError {
  const bytes = Buffer.from(
    canonicalJson({ ...m, checksum: manifestChecksum(m as unknown as BundleManifest) }),
  );
  try {
    parseManifest(bytes);
  } catch (e) {
    if (e instanceof NixPlanError) return e;
    throw e;
  }
  throw new Error('accepted');
}

describe('manifest version 2', () => {
  test('writers write version 2; createdAt, provenance and promotions round-trip', () => {
    expect(MANIFEST_FORMAT_VERSION).toBe(2);
    const m = finaliseManifest(promoted(), [secret]);
    const back = parseManifest(encodeManifest(m));
    expect(back).toEqual(m);
    expect(back.provenance?.flake?.inputs.map((i) => i.name)).toEqual(['flake-utils', 'nixpkgs']);
  });

  test('the signature covers createdAt, provenance and promotions; not the signature list', () => {
    const m = finaliseManifest(promoted(), [secret]);
    expect(verifyManifestSignatures(m, [pub])).toEqual(['ci-1']);
    for (const forged of [
      { ...m, createdAt: '2027-01-01T00:00:00Z' },
      { ...m, provenance: { ...m.provenance, commit: 'f'.repeat(40) } },
      { ...m, promotions: [{ ...promotion, signedBy: [] }] },
    ]) {
      const reparsed = parseManifest(encodeManifest({ ...forged, checksum: manifestChecksum(forged) }));
      expect(() => verifyManifestSignatures(reparsed, [pub])).toThrow(/does not verify/);
    }
    // Stripping the signatures changes no signed byte: the checksum is recomputed and it parses.
    const stripped = { ...m, signatures: [] };
    expect(() =>
      parseManifest(encodeManifest({ ...stripped, checksum: manifestChecksum(stripped) })),
    ).not.toThrow();
  });

  test('manifestSigners names the trusted keys that verified, with the fingerprint of the key bytes', () => {
    const m = finaliseManifest(v2(), [secret, secretKeyFromSeed('other', sha256('other seed'))]);
    const impostor = publicKeyOf(secretKeyFromSeed('ci-1', sha256('impostor')));
    expect(manifestSigners(m, [pub, impostor])).toEqual([{ key: 'ci-1', fingerprint: keyFingerprint(pub) }]);
    expect(keyFingerprint(pub)).toBe(`sha256:${toHex(sha256(pub.key))}`);
    expect(manifestSigners(m, [])).toEqual([]);
    // The list is not signed: a valid signature repeated (by anyone) still names its key once.
    const repeated = { ...m, signatures: Array.from({ length: 64 }, () => m.signatures[0]!) };
    expect(manifestSigners(repeated, [pub])).toEqual([{ key: 'ci-1', fingerprint: keyFingerprint(pub) }]);
  });

  test('version 1 is still read, and refuses the version-2 fields', () => {
    const { createdAt: _c, provenance: _p, ...rest } = v2();
    const one = finaliseManifest({ ...rest, formatVersion: 1 });
    expect(parseManifest(encodeManifest(one)).createdAt).toBeUndefined();
    expect(refusal({ ...one, createdAt: '2026-12-06T10:17:30Z' }).message).toMatch(
      /unknown field 'createdAt'/,
    );
    expect(refusal({ ...one, provenance: {} }).message).toMatch(/unknown field 'provenance'/);
  });

  const bad: [string, (m: Record<string, unknown>) => Record<string, unknown>, RegExp][] = [
    ['no provenance', ({ provenance: _p, ...m }) => m, /lacks the field 'provenance'/],
    ['no createdAt, never promoted', ({ createdAt: _c, ...m }) => m, /createdAt is missing/],
    [
      'createdAt with milliseconds',
      (m) => ({ ...m, createdAt: '2026-12-06T10:17:30.123Z' }),
      /createdAt must be an RFC 3339/,
    ],
    [
      'createdAt with an offset',
      (m) => ({ ...m, createdAt: '2026-12-06T10:17:30+01:00' }),
      /createdAt must be/,
    ],
    ['createdAt on 30 February', (m) => ({ ...m, createdAt: '2026-02-30T10:17:30Z' }), /createdAt must be/],
    ['createdAt as a number', (m) => ({ ...m, createdAt: 1796553335 }), /createdAt must be a string/],
    [
      'an unknown provenance field',
      (m) => prov(m, { signer: 'me' }),
      /provenance has an unknown field 'signer'/,
    ],
    [
      'a short commit',
      (m) => prov(m, { commit: 'abc123' }),
      /provenance\.commit has a forbidden character or format/,
    ],
    ['an upper-case commit', (m) => prov(m, { commit: 'A'.repeat(40) }), /provenance\.commit/],
    [
      'an http run URL',
      (m) => prov(m, { runUrl: 'http://github.com/o/r/actions/runs/1' }),
      /provenance\.runUrl/,
    ],
    ['a javascript: run URL', (m) => prov(m, { runUrl: 'javascript:alert(1)' }), /provenance\.runUrl/],
    [
      'run attempt 0',
      (m) => prov(m, { runAttempt: 0 }),
      /provenance\.runAttempt must be an integer of at least 1/,
    ],
    ['dirty as a string', (m) => prov(m, { dirty: 'yes' }), /provenance\.dirty must be true or false/],
    ['a ref with a space', (m) => prov(m, { ref: 'refs/heads/a b' }), /provenance\.ref/],
    [
      'unsorted flake inputs',
      (m) =>
        prov(m, {
          flake: {
            url: 'path:/x',
            inputs: [
              { name: 'b', url: 'x:' },
              { name: 'a', url: 'x:' },
            ],
          },
        }),
      /provenance\.flake\.inputs\[1\]\.name must come after/,
    ],
    [
      'a duplicate flake input',
      (m) =>
        prov(m, {
          flake: {
            url: 'path:/x',
            inputs: [
              { name: 'a', url: 'x:' },
              { name: 'a', url: 'y:' },
            ],
          },
        }),
      /inputs\[1\]\.name must come after/,
    ],
    [
      'a flake input narHash that is not SRI',
      (m) => prov(m, { flake: { url: 'path:/x', inputs: [{ name: 'a', url: 'x:', narHash: 'deadbeef' }] } }),
      /inputs\[0\]\.narHash/,
    ],
  ];
  test.each(bad)('refuses %s, naming the field', (_name, change, message) => {
    const e = refusal(change(JSON.parse(canonicalJson(finaliseManifest(v2()))) as Record<string, unknown>));
    expect(e.message).toMatch(message);
    expect(e.code).toBe('bundle');
  });

  const badPromotions: [string, (p: Record<string, unknown>) => unknown, RegExp][] = [
    ['an empty list', () => [], /promotions is empty/],
    ['a digest without its algorithm', (p) => [{ ...p, digest: 'd'.repeat(64) }], /promotions\[0\]\.digest/],
    [
      'a fingerprint of the wrong form',
      (p) => [{ ...p, signedBy: [{ key: 'ci-1', fingerprint: 'ci-1' }] }],
      /signedBy\[0\]\.fingerprint/,
    ],
    [
      'a key name with a colon',
      (p) => [{ ...p, signedBy: [{ key: 'a:b', fingerprint: promotion.signedBy[0]?.fingerprint }] }],
      /signedBy\[0\]\.key/,
    ],
    [
      'noCheckSigs with signers',
      (p) => [{ ...p, noCheckSigs: true }],
      /signedBy must be empty when the input was accepted with noCheckSigs/,
    ],
    [
      'noCheckSigs false',
      (p) => [{ ...p, signedBy: [], noCheckSigs: false }],
      /noCheckSigs must be true when present/,
    ],
    [
      'a promotion into its own store dir',
      (p) => [{ ...p, storeDir: '/beta/store' }],
      /promotions\[0\]\.storeDir equals the store dir it was promoted into/,
    ],
    ['a chain that does not move', (p) => [p, p], /promotions\[0\]\.storeDir equals/],
    [
      'a time without seconds',
      (p) => [{ ...p, at: '2026-12-07T08:00Z' }],
      /promotions\[0\]\.at must be an RFC 3339/,
    ],
  ];
  test.each(badPromotions)('refuses promotions with %s, naming the field', (_name, change, message) => {
    const m = JSON.parse(canonicalJson(finaliseManifest(promoted()))) as Record<string, unknown>;
    const e = refusal({ ...m, promotions: change(promotion as unknown as Record<string, unknown>) });
    expect(e.message).toMatch(message);
  });

  test('promotions must agree with relocatedFrom; createdAt may be absent only in a promoted plan', () => {
    const m = JSON.parse(canonicalJson(finaliseManifest(promoted()))) as Record<string, unknown>;
    expect(refusal({ ...m, relocatedFrom: undefined }).message).toMatch(
      /promotions is set, but relocatedFrom is not/,
    );
    expect(refusal({ ...m, relocatedFrom: { ...relocatedFrom, storeDir: '/gamma/store' } }).message).toMatch(
      /promotions\[0\]\.storeDir is \/nix\/store, but relocatedFrom\.storeDir is \/gamma\/store/,
    );
    const { createdAt: _c, ...unknownAge } = m;
    expect(() => refusal(unknownAge)).toThrow('accepted');
  });
});

function prov(m: Record<string, unknown>, change: Record<string, unknown>): Record<string, unknown> {
  return { ...m, provenance: { ...(m['provenance'] as object), ...change } };
}

describe('characters no manifest string may hold', () => {
  const unsafe: [string, string][] = [
    ['ESC', '\x1b[2K\rOK'],
    ['carriage return', 'a\rOK'],
    ['a C1 CSI', 'a\u009b2Kb'],
    ['a C1 OSC', 'a\u009d8;;https://x\u009c'],
    ['right-to-left override', 'evil\u202etxt.exe'],
    ['first strong isolate', 'a\u2068b'],
    ['arabic letter mark', 'a\u061cb'],
    ['line separator', 'a\u2028b'],
    ['a lone surrogate', 'a\ud800b'],
  ];
  test.each(unsafe)('refuses %s in any string field, naming the field and the code point', (_name, text) => {
    const m = JSON.parse(canonicalJson(finaliseManifest(promoted()))) as Record<string, unknown>;
    const roots = m['roots'] as Record<string, unknown>[];
    const cases: [Record<string, unknown>, string][] = [
      [{ ...m, tool: text }, 'tool'],
      [{ ...m, roots: [{ ...roots[0], installable: text }] }, 'roots[0].installable'],
      [prov(m, { workflow: text }), 'provenance.workflow'],
      [prov(m, { repository: text }), 'provenance.repository'],
    ];
    for (const [changed, field] of cases) {
      const e = refusal(changed);
      expect(e.message).toContain(`bundle manifest: ${field} holds the character U+`);
    }
  });

  test('ordinary Unicode is fine (names, emoji, accents)', () => {
    const m = finaliseManifest({ ...v2(), tool: 'nix-plan ✓ Zoë 日本 🚀' });
    expect(parseManifest(encodeManifest(m)).tool).toBe('nix-plan ✓ Zoë 日本 🚀');
  });
});
