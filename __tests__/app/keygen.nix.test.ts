// keygen: key files with the right modes, which real Nix reads, signs with and verifies against.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { keygen, writeKeyPair } from '../../src/app/keygen.js';
import { NixPlanError } from '../../src/core/errors.js';
import { parseHash } from '../../src/core/hash.js';
import { signNarinfo } from '../../src/core/narinfo.js';
import { formatPublicKey, parseSecretKey, publicKeyOf } from '../../src/core/signing.js';
import { NixStore } from '../../src/nix/store.js';
import { nixVersions, ScratchStore } from '../support/nix.js';

describe('keygen files', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'nix-plan-keygen-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test('the secret is 0600, the public key 0644, both exactly the key text', async () => {
    const pair = keygen('host-1');
    const files = { secretFile: join(dir, 'a.sec'), publicFile: join(dir, 'a.pub') };
    await writeKeyPair(pair, files);
    expect(statSync(files.secretFile).mode & 0o777).toBe(0o600);
    // Created 0644 less the umask (a user with umask 077 keeps even the public key private).
    const umask = process.umask();
    expect(statSync(files.publicFile).mode & 0o777).toBe(0o644 & ~umask);
    expect(readFileSync(files.secretFile, 'utf8')).toBe(pair.secretKey);
    expect(readFileSync(files.publicFile, 'utf8')).toBe(pair.publicKey);
    expect(pair.publicKey).toBe(formatPublicKey(publicKeyOf(parseSecretKey(pair.secretKey))));
  });

  test('an existing file is never overwritten', async () => {
    const files = { secretFile: join(dir, 'b.sec'), publicFile: join(dir, 'b.pub') };
    writeFileSync(files.secretFile, 'precious');
    const error = await writeKeyPair(keygen('host-2'), files).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(NixPlanError);
    expect((error as NixPlanError).code).toBe('usage');
    expect(readFileSync(files.secretFile, 'utf8')).toBe('precious');
  });

  test('an existing public key file is refused before the secret is written', async () => {
    const files = { secretFile: join(dir, 'c.sec'), publicFile: join(dir, 'c.pub') };
    writeFileSync(files.publicFile, 'precious');
    await expect(writeKeyPair(keygen('host-3'), files)).rejects.toMatchObject({
      code: 'usage',
      message: expect.stringContaining("c.pub' exists"),
    });
    expect(existsSync(files.secretFile)).toBe(false);
    expect(readFileSync(files.publicFile, 'utf8')).toBe('precious');
  });

  test('a name Nix cannot use is refused', () => {
    expect(() => keygen('has:colon')).toThrow(NixPlanError);
    expect(() => keygen('')).toThrow(NixPlanError);
  });
});

describe.each(nixVersions().map((v) => [v.label, v] as const))('keygen keys in Nix %s', (_label, version) => {
  let store: ScratchStore;
  let path: string;
  beforeAll(async () => {
    store = new ScratchStore(version);
    // A build output: input-addressed, so only a signature can vouch for it (Nix trusts content-
    // addressed paths without one, which would make the checks below pass vacuously).
    const [drv = ''] = await store.instantiateExpr(
      'builtins.derivation { name = "signed"; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" "echo signed > $out" ]; }',
    );
    path = (await store.run('nix-store', ['--realise', drv])).stdout.toString('utf8').trim();
  });
  afterAll(() => store?.dispose());

  const nix = (args: string[], allowFailure = false): ReturnType<ScratchStore['run']> =>
    store.run('nix', ['--extra-experimental-features', 'nix-command', ...args], { allowFailure });

  test('Nix signs with our secret key, the same signature we compute, and verifies it with our public key', async () => {
    const ours = keygen('nix-plan-keygen-1');
    const other = keygen('nix-plan-keygen-1'); // same name, different key: must not verify
    const files = { secretFile: join(store.root, 'k.sec'), publicFile: join(store.root, 'k.pub') };
    await writeKeyPair(ours, files);
    await nix(['store', 'sign', '--key-file', files.secretFile, path]);

    const { stdout } = await nix(['path-info', '--sigs', path]);
    const sigs = stdout.toString('utf8').match(/nix-plan-keygen-1:[A-Za-z0-9+/=]+/g) ?? [];
    const [info] = (await new NixStore(store.runner).pathInfos([path])).values();
    const facts = {
      path,
      narHash: parseHash(`sha256:${info?.narHash ?? ''}`).bytes,
      narSize: info?.narSize ?? 0,
      references: info?.references ?? [],
    };
    // ed25519 is deterministic: equal signatures mean equal keys and equal fingerprints.
    expect(sigs).toEqual([signNarinfo(parseSecretKey(ours.secretKey), facts)]);

    // Verified from a binary cache: the local store trusts its own paths ("ultimate") unsigned.
    const cache = `file://${join(store.root, 'cache')}`;
    await nix(['copy', '--to', cache, path]);
    const verify = (key: string): Promise<{ code: number }> =>
      nix(
        [
          'store',
          'verify',
          '--store',
          cache,
          '--sigs-needed',
          '1',
          '--option',
          'trusted-public-keys',
          key,
          path,
        ],
        true,
      );
    expect((await verify(ours.publicKey)).code).toBe(0);
    expect((await verify(other.publicKey)).code).not.toBe(0);
  });

  test('keys from nix-store --generate-binary-cache-key have the same format', async () => {
    const sec = join(store.root, 'nix.sec');
    const pub = join(store.root, 'nix.pub');
    await store.run('nix-store', ['--generate-binary-cache-key', 'made-by-nix-1', sec, pub]);
    const secret = parseSecretKey(readFileSync(sec, 'utf8'));
    expect(formatPublicKey(publicKeyOf(secret))).toBe(readFileSync(pub, 'utf8'));
    expect(readFileSync(sec, 'utf8')).toMatch(/^made-by-nix-1:[A-Za-z0-9+/]{86}==$/);
    expect(keygen('made-by-us-1').secretKey).toMatch(/^made-by-us-1:[A-Za-z0-9+/]{86}==$/);
    expect(keygen('made-by-us-1').publicKey).toMatch(/^made-by-us-1:[A-Za-z0-9+/]{43}=$/);
  });
});
