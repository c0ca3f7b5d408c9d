// Importing as a user the nix-daemon does not trust: the binary-cache route, against real daemons.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { binaryCacheCopyImport, importViaBinaryCache } from '../../src/app/binary-cache.js';
import { exportPlan } from '../../src/app/export.js';
import { importPlan } from '../../src/app/import.js';
import { realisePlan } from '../../src/app/realise.js';
import { silentLogger } from '../../src/app/deps.js';
import { NixPlanError } from '../../src/core/errors.js';
import { generateKeyPair, parseSecretKey } from '../../src/core/signing.js';
import type { CommandRunner } from '../../src/nix/runner.js';
import { DaemonStore, ensureUntrustedUser, type TestUser } from '../support/daemon.js';
import { nixVersions, type ScratchStore } from '../support/nix.js';

const versions = nixVersions();

/** A closure with every kind of object: drvs, a toFile text, a flat and a directory source. */
const FIXTURE = `
let
  text = builtins.toFile "hello.txt" "hello";
  dep = builtins.derivation {
    name = "dep"; system = builtins.currentSystem; builder = "/bin/sh";
    args = [ "-c" "echo dep > $out" ];
  };
in builtins.derivation {
  name = "top"; system = builtins.currentSystem; builder = "/bin/sh";
  data = ./data.txt; tree = ./tree;
  args = [ "-c" "read x < \${dep}; read y < $data; echo $x $y \${text} > $out" ];
}
`;

function writeFixture(dir: string): string {
  mkdirSync(join(dir, 'fixture', 'tree', 'sub'), { recursive: true });
  writeFileSync(join(dir, 'fixture', 'data.txt'), 'data\n');
  writeFileSync(join(dir, 'fixture', 'tree', 'sub', 'f'), 'in a tree\n');
  writeFileSync(join(dir, 'fixture', 'default.nix'), FIXTURE);
  return join(dir, 'fixture', 'default.nix');
}

async function exportOf(store: ScratchStore, paths: readonly string[]): Promise<Buffer> {
  return (await store.run('nix-store', ['--export', ...paths])).stdout;
}

/** The stream in small pieces, as a decompressor hands it over. */
function chunks(bytes: Uint8Array, size = 1000): AsyncIterable<Uint8Array> {
  const pieces: Uint8Array[] = [];
  for (let i = 0; i < bytes.length; i += size) pieces.push(bytes.subarray(i, i + size));
  return Readable.from(pieces);
}

/** Exports `paths` (root, local), then deletes them so the store is as if it never had them. */
async function exportAndForget(store: ScratchStore, paths: readonly string[]): Promise<Buffer> {
  const bytes = await exportOf(store, paths);
  await store.run('nix-store', ['--delete', ...paths]);
  const valid = new Set(await store.validPaths());
  expect(paths.filter((p) => valid.has(p))).toEqual([]);
  return bytes;
}

describe.each(versions.map((v) => [v.label, v] as const))('untrusted import, Nix %s', (_label, version) => {
  let user: TestUser;
  beforeAll(() => {
    user = ensureUntrustedUser(versions);
  });

  describe('a drvs closure', () => {
    let daemon: DaemonStore;
    let asUser: CommandRunner;
    let drv: string;
    let closure: string[];
    let original: Buffer;

    beforeAll(async () => {
      daemon = await DaemonStore.start(version);
      asUser = daemon.runnerAs(user);
      [drv = ''] = await daemon.scratch.instantiate(writeFixture(daemon.scratch.root));
      closure = await daemon.scratch.requisites([drv]);
      original = await exportAndForget(daemon.scratch, closure);
    });
    afterAll(async () => {
      await daemon?.stop();
    });

    test('nix-store --import as the user is refused by the daemon (it enforces trust)', async () => {
      const result = await asUser.run('nix-store', ['--import'], { input: original, allowFailure: true });
      expect(result.code).not.toBe(0);
      expect(result.stderr).toMatch(/lacks a (valid )?signature/);
      const valid = new Set(await daemon.scratch.validPaths());
      expect(closure.filter((p) => valid.has(p))).toEqual([]);
    });

    test('the binary-cache route adds every path, byte for byte, and is idempotent', async () => {
      const deps = { runner: asUser, log: silentLogger };
      const first = await importViaBinaryCache(chunks(original), { storeDir: daemon.scratch.storeDir }, deps);
      expect(first.paths).toEqual(closure);
      expect(first.imported).toBe(closure.length);
      expect(first.alreadyValid).toBe(0);
      expect(first.contentAddressed).toBe(closure.length);
      // The store now exports exactly the stream that went in: same NARs, references, derivers.
      expect(Buffer.compare(await exportOf(daemon.scratch, closure), original)).toBe(0);
      const again = await importViaBinaryCache(chunks(original), { storeDir: daemon.scratch.storeDir }, deps);
      expect(again.imported).toBe(0);
      expect(again.alreadyValid).toBe(closure.length);
    });

    test('the user can then build the plan (the daemon builds it)', async () => {
      const { stdout } = await asUser.run('nix-store', ['--realise', drv]);
      const out = stdout.toString('utf8').trim();
      const text = closure.find((p) => p.endsWith('-hello.txt'));
      expect(readFileSync(out, 'utf8')).toBe(`dep data ${text}\n`);
    });
  });

  describe('a plan bundle, through importPlan and realisePlan', () => {
    let daemon: DaemonStore;
    let asUser: CommandRunner;

    beforeAll(async () => {
      daemon = await DaemonStore.start(version);
      asUser = daemon.runnerAs(user);
    });
    afterAll(async () => {
      await daemon?.stop();
    });

    test('an untrusted user imports and builds a drvs bundle', async () => {
      const [drv = ''] = await daemon.scratch.instantiate(writeFixture(daemon.scratch.root));
      const closure = await daemon.scratch.requisites([drv]);
      const bundle = join(daemon.scratch.root, 'plan.nixplan');
      await exportPlan(
        { drvPaths: [drv], output: bundle },
        { runner: daemon.scratch.runner, log: silentLogger },
      );
      await exportAndForget(daemon.scratch, closure);
      const deps = { runner: asUser, log: silentLogger, copyImport: binaryCacheCopyImport() };
      const imported = await importPlan(bundle, {}, deps);
      expect(imported.method).toBe('copy');
      expect(imported.imported).toBe(closure.length);
      const realised = await realisePlan(bundle, {}, deps);
      expect(realised.import.method).toBe('none');
      const out = realised.outPaths[drv]?.['out'] ?? '';
      const text = closure.find((p) => p.endsWith('-hello.txt'));
      expect(readFileSync(out, 'utf8')).toBe(`dep data ${text}\n`);
    });
  });

  describe('a closure of build outputs', () => {
    const trusted = generateKeyPair('nix-plan-test-trusted-1');
    const other = generateKeyPair('nix-plan-test-other-1');
    let daemon: DaemonStore;
    let asUser: CommandRunner;
    let closure: string[];
    let original: Buffer;

    beforeAll(async () => {
      daemon = await DaemonStore.start(version, {
        extraConf: `trusted-public-keys = ${trusted.publicKey}\n`,
      });
      asUser = daemon.runnerAs(user);
      const [drv = ''] = await daemon.scratch.instantiate(writeFixture(daemon.scratch.root));
      const { stdout } = await daemon.scratch.run('nix-store', ['--realise', drv]);
      const out = stdout.toString('utf8').trim();
      closure = await daemon.scratch.requisites([out]);
      original = await exportOf(daemon.scratch, closure);
      // Forget the whole plan too: its drvs and sources keep the outputs' references alive.
      const { stdout: all } = await daemon.scratch.run('nix-store', ['-qR', '--include-outputs', drv]);
      const everything = all.toString('utf8').trim().split('\n');
      const rest = everything.filter((p) => !closure.includes(p));
      await daemon.scratch.run('nix-store', ['--delete', ...rest, ...closure]);
      const valid = new Set(await daemon.scratch.validPaths());
      expect(everything.filter((p) => valid.has(p))).toEqual([]);
    });
    afterAll(async () => {
      await daemon?.stop();
    });

    const storeDir = (): string => daemon.scratch.storeDir;

    test('is refused without a signature, before anything is copied, saying what to do', async () => {
      const deps = { runner: asUser, log: silentLogger };
      const error = await importViaBinaryCache(chunks(original), { storeDir: storeDir() }, deps).catch(
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(NixPlanError);
      expect((error as NixPlanError).code).toBe('signature');
      expect((error as NixPlanError).message).toMatch(/trusted-public-keys/);
      const valid = new Set(await daemon.scratch.validPaths());
      expect(closure.filter((p) => valid.has(p))).toEqual([]);
    });

    test('is refused by the daemon when signed by a key it does not trust, naming the key to add', async () => {
      const deps = { runner: asUser, log: silentLogger };
      const key = parseSecretKey(other.secretKey);
      const error = await importViaBinaryCache(
        chunks(original),
        { storeDir: storeDir(), signingKey: key },
        deps,
      ).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(NixPlanError);
      expect((error as NixPlanError).code).toBe('signature');
      expect((error as NixPlanError).message).toContain(other.publicKey);
      const outputs = closure.filter((p) => !p.endsWith('-hello.txt'));
      const valid = new Set(await daemon.scratch.validPaths());
      expect(outputs.filter((p) => valid.has(p))).toEqual([]);
    });

    test('is accepted when signed by a key in trusted-public-keys', async () => {
      const deps = { runner: asUser, log: silentLogger };
      const key = parseSecretKey(trusted.secretKey);
      const result = await importViaBinaryCache(
        chunks(original),
        { storeDir: storeDir(), signingKey: key },
        deps,
      );
      expect(result.paths).toEqual(closure);
      expect(result.imported + result.alreadyValid).toBe(closure.length);
      expect(Buffer.compare(await exportOf(daemon.scratch, closure), original)).toBe(0);
    });
  });
});
