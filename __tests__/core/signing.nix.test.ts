// ed25519 keys and signatures in Nix's formats: unit tests, and interop with real Nix 2.8 and 2.34 in both directions.
import { afterAll, describe, expect, test } from '@jest/globals';
import fc from 'fast-check';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { NixPlanError } from '../../src/core/errors.js';
import { parseHash, sha256 } from '../../src/core/hash.js';
import {
  checkDetached,
  formatPublicKey,
  formatSecretKey,
  generateKeyPair,
  parsePublicKey,
  parseSecretKey,
  publicKeyOf,
  secretKeyFromSeed,
  signDetached,
} from '../../src/core/signing.js';
import { narinfoFingerprint, signNarinfo, verifyNarinfo, type NarInfoFacts } from '../../src/core/narinfo.js';
import { ScratchStore, SYSTEM, nixVersions } from '../support/nix.js';

describe('keys and detached signatures', () => {
  const pair = generateKeyPair('cache.example.org-1');
  const secret = parseSecretKey(pair.secretKey);
  const pub = parsePublicKey(pair.publicKey);

  test('generated keys are in Nix’s NAME:base64 layout and round-trip', () => {
    expect(pair.secretKey).toMatch(/^cache\.example\.org-1:[A-Za-z0-9+/]{86}==$/);
    expect(pair.publicKey).toMatch(/^cache\.example\.org-1:[A-Za-z0-9+/]{43}=$/);
    expect(formatSecretKey(secret)).toBe(pair.secretKey);
    expect(formatPublicKey(pub)).toBe(pair.publicKey);
    expect(publicKeyOf(secret)).toEqual(pub);
    // The second half of the 64-byte secret is the public key, as libsodium lays it out.
    expect(Buffer.from(pair.secretKey.split(':')[1] ?? '', 'base64').subarray(32)).toEqual(
      Buffer.from(pub.key),
    );
  });

  test('a signature verifies for its message only, and only under a trusted key of its name', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 200 }),
        fc.uint8Array({ minLength: 1, maxLength: 200 }),
        (m, other) => {
          const sig = signDetached(secret, m);
          expect(sig.startsWith('cache.example.org-1:')).toBe(true);
          expect(checkDetached(m, sig, [pub])).toBe('valid');
          if (Buffer.compare(Buffer.from(m), Buffer.from(other)) !== 0)
            expect(checkDetached(other, sig, [pub])).toBe('invalid');
        },
      ),
      { numRuns: 40 },
    );
    const sig = signDetached(secret, 'hello');
    expect(checkDetached('hello', sig, [])).toBe('untrusted');
    expect(checkDetached('hello', sig, [parsePublicKey(generateKeyPair('x').publicKey)])).toBe('untrusted');
    const impostor = parsePublicKey(generateKeyPair('cache.example.org-1').publicKey);
    expect(checkDetached('hello', sig, [impostor])).toBe('invalid');
    expect(checkDetached('hello', sig, [impostor, pub])).toBe('valid');
    expect(checkDetached('hello', 'cache.example.org-1:AAAA', [pub])).toBe('malformed');
    expect(checkDetached('hello', sig.replace(/.$/, '0'), [pub])).toBe('malformed');
  });

  test.each([
    ['no name', ':' + pair.publicKey.split(':')[1]],
    ['no colon', 'abc'],
    ['short key', 'k:' + Buffer.alloc(31).toString('base64')],
    ['not base64', 'k:' + '!'.repeat(44)],
    ['space in name', 'a b:' + pair.publicKey.split(':')[1]],
  ])('refuses a public key with %s', (_what, text) => {
    expect(() => parsePublicKey(text)).toThrow(NixPlanError);
  });

  test('a key from a seed is the key Nix’s 64-byte layout holds', () => {
    expect(secretKeyFromSeed(secret.name, secret.seed)).toEqual(secret);
    expect(() => secretKeyFromSeed('k', new Uint8Array(31))).toThrow(/32 bytes/);
  });

  test('refuses a secret key whose public half does not belong to its seed', () => {
    const raw = Buffer.from(pair.secretKey.split(':')[1] ?? '', 'base64');
    raw[40] = (raw[40] ?? 0) ^ 1;
    expect(() => parseSecretKey(`k:${raw.toString('base64')}`)).toThrow(/does not match its seed/);
    expect(() => generateKeyPair('bad:name')).toThrow(/cannot make a key/);
  });

  test('narinfo fingerprint: Nix’s layout, references sorted', () => {
    const narHash = sha256('nar');
    const facts: NarInfoFacts = {
      path: '/nix/store/' + 'b'.repeat(32) + '-x',
      narHash,
      narSize: 120,
      references: ['/nix/store/' + 'c'.repeat(32) + '-z', '/nix/store/' + 'a'.repeat(32) + '-y'],
    };
    expect(narinfoFingerprint(facts)).toBe(
      `1;${facts.path};sha256:${nix32(narHash)};120;/nix/store/${'a'.repeat(32)}-y,/nix/store/${'c'.repeat(32)}-z`,
    );
    expect(verifyNarinfo(facts, [signNarinfo(secret, facts)], [pub])).toBe(true);
    expect(verifyNarinfo({ ...facts, narSize: 121 }, [signNarinfo(secret, facts)], [pub])).toBe(false);
    expect(() => narinfoFingerprint({ ...facts, narSize: 0 })).toThrow(NixPlanError);
  });
});

/** An independent nix32 (bit by bit, as Nix's printHash32 does) so the test does not trust nix32.ts. */
function nix32(bytes: Uint8Array): string {
  const alphabet = '0123456789abcdfghijklmnpqrsvwxyz';
  let out = '';
  for (let n = Math.ceil((bytes.length * 8) / 5) - 1; n >= 0; n--) {
    let c = 0;
    for (let k = 0; k < 5; k++) {
      const bit = n * 5 + k;
      if (((bytes[bit >> 3] ?? 0) >> (bit & 7)) & 1) c |= 1 << k;
    }
    out += alphabet[c];
  }
  return out;
}

describe.each(nixVersions())('interop with Nix $label', (version) => {
  const store = new ScratchStore(version);
  afterAll(() => store.dispose());
  const expr = join(store.root, 'sig.nix');
  writeFileSync(
    expr,
    `let a = builtins.derivation { name = "sig-a"; system = "${SYSTEM}"; builder = "/bin/sh"; args = ["-c" "echo a > $out"]; };
     in builtins.derivation { name = "sig-b"; system = "${SYSTEM}"; builder = "/bin/sh"; args = ["-c" "echo \${a} > $out"]; }`,
  );

  async function build(): Promise<{ a: string; b: string }> {
    const { stdout } = await store.run('nix-build', ['--no-out-link', expr]);
    const b = stdout.toString().trim();
    const refs = (await store.run('nix-store', ['--query', '--references', b])).stdout.toString().trim();
    return { a: refs, b };
  }

  async function facts(path: string): Promise<NarInfoFacts> {
    const q = async (flag: string): Promise<string> =>
      (await store.run('nix-store', ['--query', flag, path])).stdout.toString().trim();
    const refs = await q('--references');
    return {
      path,
      narHash: parseHash(await q('--hash')).bytes,
      narSize: Number(await q('--size')),
      references: refs === '' ? [] : refs.split('\n'),
    };
  }

  async function signaturesOf(path: string): Promise<string[]> {
    const json = JSON.parse(
      (await store.run('nix', ['path-info', '--json', '--sigs', path])).stdout.toString(),
    ) as { path: string; signatures?: string[] }[] | Record<string, { signatures?: string[] }>;
    const info = Array.isArray(json) ? json.find((i) => i.path === path) : json[path];
    return info?.signatures ?? [];
  }

  test('keys made by nix-store --generate-binary-cache-key sign and verify with our code', async () => {
    const sec = join(store.root, 'nix.sec');
    const pubFile = join(store.root, 'nix.pub');
    await store.run('nix-store', ['--generate-binary-cache-key', 'nix-made-1', sec, pubFile]);
    const secret = parseSecretKey(readFileSync(sec, 'utf8'));
    const pub = parsePublicKey(readFileSync(pubFile, 'utf8'));
    expect(publicKeyOf(secret)).toEqual(pub);
    expect(formatSecretKey(secret)).toBe(readFileSync(sec, 'utf8').trim());
    const { a, b } = await build();
    const fb = await facts(b);
    expect(fb.references).toEqual([a]);
    expect(verifyNarinfo(fb, [signNarinfo(secret, fb)], [pub])).toBe(true);
    // Nix signs with its own key; our fingerprint must be the one Nix signed.
    await store.run('nix', ['store', 'sign', '--key-file', sec, b]);
    const sigs = await signaturesOf(b);
    expect(sigs.some((s) => s.startsWith('nix-made-1:'))).toBe(true);
    expect(verifyNarinfo(fb, sigs, [pub])).toBe(true);
    expect(verifyNarinfo({ ...fb, references: [] }, sigs, [pub])).toBe(false);
  });

  test('keys made by our keygen are accepted by nix store sign and nix store verify', async () => {
    const ours = generateKeyPair('ours-1');
    const sec = join(store.root, 'ours.sec');
    writeFileSync(sec, ours.secretKey);
    const { a } = await build();
    await store.run('nix', ['store', 'sign', '--key-file', sec, a]);
    const verifyWith = (key: string): Promise<{ code: number }> =>
      store.run(
        'nix',
        ['store', 'verify', '--no-contents', '--sigs-needed', '1', '--option', 'trusted-public-keys', key, a],
        { allowFailure: true },
      );
    expect((await verifyWith(ours.publicKey)).code).toBe(0);
    expect((await verifyWith(generateKeyPair('ours-1').publicKey)).code).not.toBe(0);
    expect(verifyNarinfo(await facts(a), await signaturesOf(a), [parsePublicKey(ours.publicKey)])).toBe(true);
  });

  test('narinfo signatures made by our code are accepted by nix copy with require-sigs', async () => {
    const { a, b } = await build();
    const cache = join(store.root, 'cache');
    await store.run('nix', ['copy', '--to', `file://${cache}`, b]);
    const ours = generateKeyPair('ours-2');
    const forger = generateKeyPair('ours-2');
    const signCache = (key: string): void => {
      const secret = parseSecretKey(key);
      for (const f of readdirSync(cache).filter((n) => n.endsWith('.narinfo'))) {
        const lines = readFileSync(join(cache, f), 'utf8')
          .split('\n')
          .filter((l) => l !== '' && !l.startsWith('Sig: '));
        const field = (k: string): string =>
          (lines.find((l) => l.startsWith(`${k}: `)) ?? '').slice(k.length + 2);
        const refs = field('References');
        const info: NarInfoFacts = {
          path: field('StorePath'),
          narHash: parseHash(field('NarHash')).bytes,
          narSize: Number(field('NarSize')),
          references: refs === '' ? [] : refs.split(' ').map((r) => `${store.storeDir}/${r}`),
        };
        writeFileSync(join(cache, f), [...lines, `Sig: ${signNarinfo(secret, info)}`, ''].join('\n'));
      }
    };
    // A chroot store (same logical store dir, files under `root`) stands in for a second host.
    const other = `local?root=${join(store.root, 'other')}`;
    const copy = (): Promise<{ code: number; stderr: string }> =>
      store.run(
        'nix',
        [
          'copy',
          '--from',
          `file://${cache}`,
          '--to',
          other,
          b,
          '--option',
          'require-sigs',
          'true',
          '--option',
          'trusted-public-keys',
          ours.publicKey,
        ],
        { allowFailure: true },
      );
    signCache(forger.secretKey);
    const refused = await copy();
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/lacks a (valid )?signature/);
    signCache(ours.secretKey);
    expect((await copy()).code).toBe(0);
    const valid = await store.run('nix-store', ['--store', other, '--check-validity', a, b], {
      allowFailure: true,
    });
    expect(valid.code).toBe(0);
  });
});
