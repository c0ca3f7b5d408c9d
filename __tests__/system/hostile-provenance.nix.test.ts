// The hostile author against the manifest half of the trust issue, on real Nix 2.8 and 2.34:
// keys that fail closed (item 3), signing only what was verified and the promotion record (4),
// signed provenance and freshness (7), and a display a bundle cannot forge (8). Every crafted
// bundle is self-consistent; each is refused with its documented exit code and a message naming
// the field, and the store is unchanged (`nix-store --dump-db` before and after).
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../../src/app/deps.js';
import { exportPlan } from '../../src/app/export.js';
import { recordPathFor } from '../../src/app/freshness.js';
import { planSummary, realiseSummary } from '../../src/action/summary.js';
import { ExitCode } from '../../src/cli/exit-codes.js';
import { main } from '../../src/cli/main.js';
import type { CliIo } from '../../src/cli/terminal.js';
import { parseManifest, trustReportOf, type BundleManifest } from '../../src/core/bundle/index.js';
import { sha256 } from '../../src/core/hash.js';
import {
  formatPublicKey,
  keyFingerprint,
  publicKeyOf,
  secretKeyFromSeed,
  formatSecretKey,
} from '../../src/core/signing.js';
import type { LastApplied } from '../../src/core/freshness.js';
import { originMarkdown } from '../../src/core/provenance-view.js';
import { bundleOf, encodeExport, narOfDirectory } from '../support/bundle-fixtures.js';
import { forgeFile, splitBundle } from '../support/craft.js';
import { nixVersions, ScratchStore, SYSTEM } from '../support/nix.js';

const ci = secretKeyFromSeed('ci-1', sha256('hostile provenance ci'));
const beta = secretKeyFromSeed('beta-1', sha256('hostile provenance beta'));
const forger = secretKeyFromSeed('ci-1', sha256('a forger who named his key ci-1'));
const CI_PUB = formatPublicKey(publicKeyOf(ci));
const BETA_PUB = formatPublicKey(publicKeyOf(beta));
const OLD = '2026-01-01T00:00:00Z';
const NEW = '2026-06-01T00:00:00Z';
const GITHUB: Record<string, string> = {
  GITHUB_ACTIONS: 'true',
  GITHUB_REPOSITORY: 'owner/name',
  GITHUB_SHA: 'a'.repeat(40),
  GITHUB_REF: 'refs/heads/main',
  GITHUB_WORKFLOW_REF: 'owner/name/.github/workflows/ci.yml@refs/heads/main',
  GITHUB_SERVER_URL: 'https://github.com',
  GITHUB_RUN_ID: '42',
  GITHUB_RUN_ATTEMPT: '1',
};

// Raw control characters a terminal would act on (escaped ones are printable text).
// eslint-disable-next-line no-control-regex
const RAW_CONTROL = /[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]/;

/** A package and a stand-in NixOS system whose switch-to-configuration logs how it ran. */
function fixtures(dir: string, log: string): { pkg: string; sys: string } {
  const pkg = join(dir, 'pkg.nix');
  writeFileSync(
    pkg,
    `{ tag }: builtins.derivation { name = "hello-\${tag}"; system = "${SYSTEM}"; builder = "/bin/sh"; args = [ "-c" "echo \${tag} > $out" ]; }`,
  );
  const sys = join(dir, 'sys.nix');
  writeFileSync(
    sys,
    `{ tag }: builtins.derivation {
      name = "nixos-system-\${tag}"; system = "${SYSTEM}"; builder = "/bin/sh";
      script = ''
        #!/bin/sh
        echo "\${tag} $*" >> ${log}
      '';
      args = [ "-c" ''
        /bin/mkdir -p $out/bin
        echo "$script" > $out/bin/switch-to-configuration
        /bin/chmod +x $out/bin/switch-to-configuration
      '' ];
    }`,
  );
  return { pkg, sys };
}

function capture(): CliIo & { out: () => string; err: () => string } {
  let out = '';
  let err = '';
  return {
    stdout: { write: (s: string | Uint8Array) => (out += s.toString()) },
    stderr: { write: (s: string | Uint8Array) => (err += s.toString()) },
    now: () => 0,
    out: () => out,
    err: () => err,
  };
}

const fileDigest = (path: string): string =>
  `sha256:${createHash('sha256').update(readFileSync(path)).digest('hex')}`;

describe.each(nixVersions().map((v) => [v.label, v] as const))(
  'hostile provenance, Nix %s',
  (_label, version) => {
    const tmp = mkdtempSync(join(tmpdir(), 'nix-plan-hostile-prov-'));
    const storeDir = join(tmp, 'store');
    const log = join(tmp, 'apply.log');
    const profile = join(tmp, 'profiles', 'system');
    const plans: Record<string, string> = {};
    const keyFiles: Record<string, string> = {};
    let target: ScratchStore;

    /** Runs the CLI against the target store. */
    async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
      const io = capture();
      const code = await main(argv, { io, runner: target.runner });
      return { code, out: io.out(), err: io.err() };
    }

    /** Runs `argv`, expecting `code`, with the store's database unchanged. */
    async function refused(code: number, ...argv: string[]): Promise<string> {
      const before = (await target.run('nix-store', ['--dump-db'])).stdout.toString();
      const r = await cli(...argv);
      expect({ code: r.code, err: r.err }).toEqual({ code, err: expect.any(String) });
      expect((await target.run('nix-store', ['--dump-db'])).stdout.toString()).toBe(before);
      expect(r.err).not.toMatch(RAW_CONTROL);
      return r.err;
    }

    beforeAll(async () => {
      mkdirSync(join(tmp, 'profiles'));
      const maker = new ScratchStore(version, { storeDir });
      const { pkg, sys } = fixtures(tmp, log);
      const deps = { runner: maker.runner, log: silentLogger };
      const make = async (
        name: string,
        file: string,
        tag: string,
        createdAt: string,
        signed: boolean,
      ): Promise<void> => {
        plans[name] = join(tmp, `${name}.nixplan`);
        await exportPlan(
          {
            file,
            evalArgs: ['--argstr', 'tag', tag],
            output: plans[name],
            signingKeys: signed ? [formatSecretKey(ci)] : [],
            provenance: { env: (n) => GITHUB[n] },
            now: () => new Date(createdAt),
          },
          deps,
        );
      };
      await make('old', pkg, 'old', OLD, true);
      await make('new', pkg, 'new', NEW, true);
      await make('unsigned', pkg, 'unsigned', NEW, false);
      await make('sysOld', sys, 'old', OLD, true);
      await make('sysNew', sys, 'new', NEW, true);
      maker.dispose();
      rmSync(storeDir, { recursive: true, force: true });
      target = new ScratchStore(version, { storeDir });
      for (const [name, text] of [
        ['empty.pub', ''],
        ['comments.pub', '# the CI key, once we have one\n'],
        ['ci.pub', `${CI_PUB}\n`],
        ['beta.pub', `${BETA_PUB}\n`],
        ['beta.sec', `${formatSecretKey(beta)}\n`],
      ] as const) {
        keyFiles[name] = join(tmp, name);
        writeFileSync(keyFiles[name], text);
      }
    }, 300_000);
    afterAll(() => {
      target?.dispose();
      rmSync(tmp, { recursive: true, force: true });
    });

    describe('item 3: asking for signatures never silently means none', () => {
      test('an empty or keyless --trusted-key is a usage error (exit 2), naming it; nothing changes', async () => {
        expect(await refused(ExitCode.usage, 'import', plans['unsigned']!, '--trusted-key', '')).toMatch(
          /--trusted-key is empty \(an unset variable\?\)/,
        );
        expect(
          await refused(
            ExitCode.usage,
            'import',
            plans['unsigned']!,
            '--trusted-key',
            keyFiles['empty.pub']!,
          ),
        ).toContain(`trusted key file '${keyFiles['empty.pub']}' holds no key`);
        const link = join(tmp, 'item3-result');
        expect(
          await refused(
            ExitCode.usage,
            'realise',
            plans['unsigned']!,
            '--out-link',
            link,
            '--trusted-key',
            keyFiles['comments.pub']!,
          ),
        ).toContain('holds no key');
        expect(existsSync(link)).toBe(false);
        expect(existsSync(recordPathFor(link))).toBe(false);
      });

      test('a signed plan verified without keys says it checked integrity only; with keys, who signed', async () => {
        const without = await cli('verify', plans['new']!);
        expect(without.code).toBe(0);
        expect(without.out).toMatch(/^integrity OK: /);
        expect(without.out).toContain(
          'integrity only: no --trusted-key given, so who made this plan was not checked (signatures: 1 (not verified))',
        );
        const inspect = await cli('inspect', plans['new']!);
        expect(inspect.out).toMatch(/^trust: +signatures: 1 \(not verified\)$/m);
        expect(inspect.out).not.toMatch(/signed by/);
        const withKey = await cli('verify', plans['new']!, '--trusted-key', keyFiles['ci.pub']!);
        expect(withKey.out).toMatch(/^OK: .*\n(?:.*\n)*trust: +verified: signed by trusted key ci-1\n$/);
        // Where the plan came from, beside the verdict, with or without keys.
        expect(without.out).toMatch(/^created: +\S/m);
        expect(withKey.out).toMatch(/^created: +\S/m);
      });
    });

    describe('item 4: a key signs only what was verified, and a promotion says what it came from', () => {
      test('import --sign-key without --trusted-key is refused (exit 2) before the store is touched', async () => {
        expect(
          await refused(
            ExitCode.usage,
            'import',
            plans['unsigned']!,
            '--method',
            'copy',
            '--sign-key',
            keyFiles['beta.sec']!,
          ),
        ).toContain('--sign-key signs only what was verified: give --trusted-key');
      });

      test('relocate --sign-key without --trusted-key is refused (exit 2) and writes nothing', async () => {
        const out = join(tmp, 'unverified-beta.nixplan');
        const r = await cli(
          'relocate',
          plans['unsigned']!,
          '--to',
          '/beta/store',
          '-o',
          out,
          '--sign-key',
          keyFiles['beta.sec']!,
        );
        expect(r.code).toBe(ExitCode.usage);
        expect(existsSync(out)).toBe(false);
      });

      test('a promoted plan records the input digest, store dir, checksum and the verifying key, under its signature', async () => {
        const out = join(tmp, 'new-beta.nixplan');
        const r = await cli(
          'relocate',
          plans['new']!,
          '--to',
          '/beta/store',
          '-o',
          out,
          '--trusted-key',
          keyFiles['ci.pub']!,
          '--sign-key',
          keyFiles['beta.sec']!,
        );
        expect(r.err).not.toMatch(/error/);
        expect(r.code).toBe(0);
        expect(r.out).toMatch(/^input verified: signed by trusted key ci-1\n/);
        const input = parseManifest(
          Buffer.from(JSON.stringify(splitBundle(readFileSync(plans['new']!)).manifest)),
        );
        const promoted = splitBundle(readFileSync(out)).manifest as unknown as BundleManifest;
        expect(promoted.createdAt).toBe(NEW);
        expect(promoted.provenance).toEqual(input.provenance);
        expect(promoted.provenance?.runUrl).toBe('https://github.com/owner/name/actions/runs/42/attempts/1');
        expect(promoted.promotions).toEqual([
          {
            digest: fileDigest(plans['new']!),
            storeDir,
            checksum: input.checksum,
            signedBy: [{ key: 'ci-1', fingerprint: keyFingerprint(publicKeyOf(ci)) }],
            at: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/),
          },
        ]);
        expect((await cli('verify', out, '--trusted-key', keyFiles['beta.pub']!)).code).toBe(0);
        const shown = await cli('inspect', out);
        expect(shown.out).toContain(`promotion 1: from ${storeDir} at `);
        // inspect checks no signature: the record is shown as what it is, a claim.
        expect(shown.out).toContain(
          `unverified claim: input verified by ci-1 (${keyFingerprint(publicKeyOf(ci))})`,
        );

        // A forger edits the record (or drops it) and recomputes the checksum: beta's signature fails.
        const forged: [
          string,
          (m: Record<string, unknown>) => Record<string, unknown>,
          { keys?: (typeof ci)[] },
        ][] = [
          [
            'unverified',
            (m) => ({
              ...m,
              promotions: [{ ...(m['promotions'] as object[])[0], signedBy: [], noCheckSigs: true }],
            }),
            {},
          ],
          ['dropped', ({ promotions: _p, ...m }) => ({ ...m, createdAt: NEW }), {}],
          [
            're-signed',
            (m) => ({ ...m, createdAt: '2027-01-01T00:00:00Z' }),
            { keys: [secretKeyFromSeed('beta-1', sha256('not beta'))] },
          ],
        ];
        for (const [name, change, opts] of forged) {
          const path = forgeFile(out, join(tmp, `forged-${name}.nixplan`), change, {
            keepSignatures: opts.keys === undefined,
            ...opts,
          });
          const v = await cli('verify', path, '--trusted-key', keyFiles['beta.pub']!);
          expect({ name, code: v.code }).toEqual({ name, code: ExitCode.signature });
          expect(v.err).toContain("the bundle's signature by key 'beta-1' does not verify");
        }
      });
    });

    describe("a promotion record is the promoter's word: shown as checked only under a trusted signature", () => {
      test("a forger's own key cannot make a plan read as promoted from one ci signed", async () => {
        // The forger writes the record a real promotion of a ci-signed plan would carry (ci's key
        // name and its true fingerprint) into a plan of their own, and signs it with their own key
        // under the name of the promoter the reader knows. Where no key is asked for (inspect, a
        // realise of this run's artifact, a compare-to baseline) a plan of .drv files is shown and
        // used: a recipe proves itself. What it must not do is say ci verified where it came from.
        const mallory = secretKeyFromSeed('beta-1', sha256('a forger who named his key beta-1'));
        const record = {
          digest: fileDigest(plans['new']!),
          storeDir,
          checksum: 'c'.repeat(64),
          signedBy: [{ key: 'ci-1', fingerprint: keyFingerprint(publicKeyOf(ci)) }],
          at: NEW,
        };
        // A real relocation of the forger's own plan, its record then rewritten and re-signed.
        const relocated = join(tmp, 'mallory-relocated.nixplan');
        const malloryKey = join(tmp, 'mallory.sec');
        writeFileSync(malloryKey, `${formatSecretKey(mallory)}\n`);
        const r = await cli(
          'relocate',
          plans['unsigned']!,
          '--to',
          '/beta/store',
          '-o',
          relocated,
          '--no-check-sigs',
          '--sign-key',
          malloryKey,
        );
        expect(r.code).toBe(0);
        const path = forgeFile(
          relocated,
          join(tmp, 'forged-promotion.nixplan'),
          (m) => ({ ...m, promotions: [record] }),
          { keys: [mallory] },
        );
        const before = (await target.run('nix-store', ['--dump-db'])).stdout.toString();
        // Where keys are asked for, it is refused: ci did not sign it.
        const v = await cli('verify', path, '--trusted-key', keyFiles['ci.pub']!);
        expect(v.code).toBe(ExitCode.signature);
        const claim = `unverified claim: input verified by ci-1 (${keyFingerprint(publicKeyOf(ci))})`;
        const shown = await cli('inspect', path);
        expect(shown.code).toBe(0);
        expect(shown.out).toContain(claim);
        expect(shown.out).not.toMatch(/, input verified by/);
        const manifest = splitBundle(readFileSync(path)).manifest as unknown as BundleManifest;
        const md = realiseSummary({
          manifest,
          label: 'plan.nixplan',
          shard: undefined,
          outPaths: {},
          timings: { fetchMs: 1, realiseMs: 2 },
          trust: trustReportOf(manifest, []),
        });
        expect(md).toContain('| trust | signatures: 1 (not verified) |');
        expect(md).toContain(', unverified claim: input verified by `ci-1` (`sha256:');
        expect(md).not.toMatch(/, input verified by/);
        // Signed by the promoter the reader trusts, the same record is the promoter's word.
        const vouched = forgeFile(
          relocated,
          join(tmp, 'vouched-promotion.nixplan'),
          (m) => ({ ...m, promotions: [record] }),
          { keys: [beta] },
        );
        const trusted = splitBundle(readFileSync(vouched)).manifest as unknown as BundleManifest;
        const ok = realiseSummary({
          manifest: trusted,
          label: 'plan.nixplan',
          shard: undefined,
          outPaths: {},
          timings: { fetchMs: 1, realiseMs: 2 },
          trust: trustReportOf(trusted, [publicKeyOf(beta)]),
        });
        expect(ok).toContain('| trust | verified: signed by trusted key `beta-1` |');
        expect(ok).toContain(', input verified by `ci-1` (`sha256:');
        expect(ok).not.toContain('claim');
        expect((await target.run('nix-store', ['--dump-db'])).stdout.toString()).toBe(before);
      });

      test('a key that signs a plan taken unproven does not make the records it copied read as checked', async () => {
        // The forger's plan, its record naming ci, reaches a promoter that takes it with
        // --no-check-sigs and signs the result with beta, a key the reader trusts. beta vouches that
        // it took an unproven input (its own record says so); the record before it is still only
        // what that input said, and must not read "input verified by ci" under beta's signature.
        const mallory = secretKeyFromSeed('beta-1', sha256('a forger who named his key beta-1'));
        const relocated = join(tmp, 'mallory-laundered-input.nixplan');
        const malloryKey = join(tmp, 'mallory-2.sec');
        writeFileSync(malloryKey, `${formatSecretKey(mallory)}\n`);
        const r = await cli(
          'relocate',
          plans['unsigned']!,
          '--to',
          '/beta/store',
          '-o',
          relocated,
          '--no-check-sigs',
          '--sign-key',
          malloryKey,
        );
        expect(r.code).toBe(0);
        const record = {
          digest: fileDigest(plans['new']!),
          storeDir,
          checksum: 'c'.repeat(64),
          signedBy: [{ key: 'ci-1', fingerprint: keyFingerprint(publicKeyOf(ci)) }],
          at: NEW,
        };
        const forged = forgeFile(
          relocated,
          join(tmp, 'forged-promotion-2.nixplan'),
          (m) => ({ ...m, promotions: [record] }),
          { keys: [mallory] },
        );
        const before = (await target.run('nix-store', ['--dump-db'])).stdout.toString();
        const laundered = join(tmp, 'laundered.nixplan');
        const promoted = await cli(
          'relocate',
          forged,
          '--to',
          '/gamma/store',
          '-o',
          laundered,
          '--no-check-sigs',
          '--sign-key',
          keyFiles['beta.sec']!,
        );
        expect(promoted.code).toBe(0);
        const v = await cli('verify', laundered, '--trusted-key', keyFiles['beta.pub']!);
        expect(v.code).toBe(0);
        expect(v.out).toContain('verified: signed by trusted key beta-1');
        const manifest = splitBundle(readFileSync(laundered)).manifest as unknown as BundleManifest;
        const md = realiseSummary({
          manifest,
          label: 'plan.nixplan',
          shard: undefined,
          outPaths: {},
          timings: { fetchMs: 1, realiseMs: 2 },
          trust: trustReportOf(manifest, [publicKeyOf(beta)]),
        });
        expect(md).toContain('| trust | verified: signed by trusted key `beta-1` |');
        expect(md).toContain(', unverified claim: input verified by `ci-1` (`sha256:');
        expect(md).toMatch(
          /\| promotion 2 \| from `\/beta\/store` at `[^`]*`, input `sha256:[0-9a-f]{64}`, accepted NOT CHECKED/,
        );
        expect(md).not.toMatch(/, input verified by/);
        // The promote job's own summary, of the plan it just signed: the same.
        const own = originMarkdown(manifest, undefined, { signedHere: true });
        expect(own).toContain(', unverified claim: input verified by `ci-1` (`sha256:');
        expect(own).not.toMatch(/, input verified by/);
        expect((await target.run('nix-store', ['--dump-db'])).stdout.toString()).toBe(before);
      });
    });

    describe('item 7: signed provenance and freshness', () => {
      const link = (): string => join(tmp, 'result');

      test('realise --out-link remembers the plan and refuses an older one (exit 11); the store and link stay', async () => {
        const first = await cli(
          'realise',
          plans['new']!,
          '--out-link',
          link(),
          '--trusted-key',
          keyFiles['ci.pub']!,
        );
        expect(first.code).toBe(0);
        expect(first.err).toContain('plan verified: signed by trusted key ci-1\n');
        const record = JSON.parse(readFileSync(recordPathFor(link()), 'utf8')) as LastApplied;
        expect(record).toMatchObject({
          version: 1,
          createdAt: NEW,
          digest: fileDigest(plans['new']!),
          storeDir,
        });
        const target1 = readlinkSync(link());

        const err = await refused(
          ExitCode.stale,
          'realise',
          plans['old']!,
          '--out-link',
          link(),
          '--trusted-key',
          keyFiles['ci.pub']!,
        );
        expect(err).toContain(
          `the plan was created at ${OLD}, before the one ${link()} was last given a plan created at ${NEW}`,
        );
        expect(err).toContain('--allow-downgrade');
        expect(readlinkSync(link())).toBe(target1);
        expect(JSON.parse(readFileSync(recordPathFor(link()), 'utf8'))).toEqual(record);

        // The very same plan again is fine (idempotent), and --allow-downgrade forces the old one.
        expect(
          (await cli('realise', plans['new']!, '--out-link', link(), '--trusted-key', keyFiles['ci.pub']!))
            .code,
        ).toBe(0);
        const forced = await cli(
          'realise',
          plans['old']!,
          '--out-link',
          link(),
          '--trusted-key',
          keyFiles['ci.pub']!,
          '--allow-downgrade',
        );
        expect(forced.code).toBe(0);
        expect(forced.err).toContain('warning: --allow-downgrade: applying anyway');
        expect((JSON.parse(readFileSync(recordPathFor(link()), 'utf8')) as LastApplied).createdAt).toBe(OLD);
        // Back to the newer plan for the tests below.
        expect(
          (await cli('realise', plans['new']!, '--out-link', link(), '--trusted-key', keyFiles['ci.pub']!))
            .code,
        ).toBe(0);
      });

      test('a forged creation time breaks the signature (exit 4); the store is unchanged', async () => {
        const kept = forgeFile(
          plans['old']!,
          join(tmp, 'fresh-looking.nixplan'),
          (m) => ({ ...m, createdAt: '2027-01-01T00:00:00Z' }),
          {
            keepSignatures: true,
          },
        );
        expect(
          await refused(
            ExitCode.signature,
            'realise',
            kept,
            '--out-link',
            link(),
            '--trusted-key',
            keyFiles['ci.pub']!,
          ),
        ).toContain("the bundle's signature by key 'ci-1' does not verify");
        const resigned = forgeFile(
          plans['old']!,
          join(tmp, 'fresh-resigned.nixplan'),
          (m) => ({ ...m, createdAt: '2027-01-01T00:00:00Z' }),
          {
            keys: [forger],
          },
        );
        await refused(ExitCode.signature, 'import', resigned, '--trusted-key', keyFiles['ci.pub']!);
        // So is forged provenance.
        const commit = forgeFile(
          plans['new']!,
          join(tmp, 'other-commit.nixplan'),
          (m) => ({
            ...m,
            provenance: { ...(m['provenance'] as object), commit: 'b'.repeat(40) },
          }),
          { keepSignatures: true },
        );
        await refused(ExitCode.signature, 'import', commit, '--trusted-key', keyFiles['ci.pub']!);
      });

      test('--max-age refuses an old plan (exit 11) before anything is imported', async () => {
        expect(
          await refused(
            ExitCode.stale,
            'import',
            plans['old']!,
            '--max-age',
            '1d',
            '--trusted-key',
            keyFiles['ci.pub']!,
          ),
        ).toMatch(
          /the plan was created at 2026-01-01T00:00:00Z, \d+ days ago: older than --max-age 1d allows/,
        );
        expect((await cli('verify', plans['old']!, '--max-age', '1d')).code).toBe(ExitCode.stale);
      });

      test('a format 1 plan (no creation time) is refused where a record exists, and by --max-age', async () => {
        const v1 = forgeFile(
          plans['old']!,
          join(tmp, 'v1.nixplan'),
          ({ createdAt: _c, provenance: _p, ...m }) => ({ ...m, formatVersion: 1 }),
          {
            keys: [ci],
          },
        );
        expect((await cli('inspect', v1)).out).toMatch(
          /^created: +unknown \(a format 1 bundle records no creation time\)$/m,
        );
        expect(
          await refused(
            ExitCode.stale,
            'realise',
            v1,
            '--out-link',
            link(),
            '--trusted-key',
            keyFiles['ci.pub']!,
          ),
        ).toContain('the plan records no creation time (a format 1 bundle)');
        expect(await refused(ExitCode.stale, 'import', v1, '--max-age', '3650d')).toContain(
          'cannot be shown to be younger than --max-age 3650d',
        );
      });

      test('apply remembers the system per profile and refuses an older one (exit 11): the profile and store stay', async () => {
        const applied = await cli(
          'apply',
          plans['sysNew']!,
          '--profile',
          profile,
          '--trusted-key',
          keyFiles['ci.pub']!,
        );
        expect(applied.err).not.toMatch(/error/);
        expect(applied.code).toBe(0);
        expect(readFileSync(log, 'utf8')).toBe('new switch\n');
        const generation = readlinkSync(profile);
        expect((JSON.parse(readFileSync(recordPathFor(profile), 'utf8')) as LastApplied).createdAt).toBe(NEW);

        const err = await refused(
          ExitCode.stale,
          'apply',
          plans['sysOld']!,
          '--profile',
          profile,
          '--trusted-key',
          keyFiles['ci.pub']!,
        );
        expect(err).toContain(`before the one ${profile} was last given a plan created at ${NEW}`);
        expect(readlinkSync(profile)).toBe(generation);
        expect(readFileSync(log, 'utf8')).toBe('new switch\n');
      });
    });

    describe('item 8: what a bundle says cannot pass for what nix-plan says', () => {
      test('control characters, C1 and bidi overrides in the manifest are refused (exit 3), naming the field', async () => {
        const cases: [string, (m: Record<string, unknown>) => Record<string, unknown>, RegExp][] = [
          [
            'esc',
            (m) => ({
              ...m,
              roots: (m['roots'] as object[]).map((r) => ({ ...r, installable: 'web\x1b[2K\rOK: verified' })),
            }),
            /roots\[0\]\.installable holds the character U\+001B/,
          ],
          ['csi', (m) => ({ ...m, tool: 'nix-plan\u009b2K' }), /tool holds the character U\+009B/],
          [
            'bidi',
            (m) => ({ ...m, provenance: { ...(m['provenance'] as object), ref: 'refs/heads/\u202eniam' } }),
            /provenance\.ref holds the character U\+202E/,
          ],
        ];
        for (const [name, change, message] of cases) {
          // Signed by the real CI key: even a key holder cannot get these through.
          const path = forgeFile(plans['new']!, join(tmp, `control-${name}.nixplan`), change, { keys: [ci] });
          expect((await cli('inspect', path)).err).toMatch(message);
          expect(
            await refused(ExitCode.bundle, 'import', path, '--trusted-key', keyFiles['ci.pub']!),
          ).toMatch(message);
        }
      });

      test('names from inside the stream reach an error message escaped, and nothing is imported', async () => {
        // A directory whose entries are out of order, named to move the cursor and reverse the line.
        const nar = narOfDirectory([
          ['b\u009b2K\r\x1b[32mOK\u202e', 'x'],
          ['a', 'y'],
        ]);
        const path = `${storeDir}/${'1'.repeat(32)}-evil`;
        const exportBytes = encodeExport([{ path, references: [], deriver: '', nar }]);
        const { bytes } = bundleOf(
          {
            tool: 'nix-plan test',
            nixVersion: 'test',
            createdAt: NEW,
            provenance: {},
            storeDir,
            systems: [],
            include: 'sources',
            roots: [{ drvPath: `${storeDir}/${'2'.repeat(32)}-evil.drv`, outputs: {} }],
            counts: { drv: 0, text: 0, source: 1, output: 0 },
            narBytes: { drv: 0, text: 0, source: nar.length, output: 0 },
            paths: 1,
          },
          exportBytes,
          { keys: [ci] },
        );
        const file = join(tmp, 'evil-names.nixplan');
        writeFileSync(file, bytes);
        const err = await refused(ExitCode.bundle, 'import', file, '--trusted-key', keyFiles['ci.pub']!);
        expect(err).toMatch(/not strictly sorted/);
        expect(err).toContain('\\x9b2K\\r');
        expect(err).toContain('\\u{202e}');
      });

      test('a valid but hostile label shows as text: escaped on the terminal, a code span in a summary', async () => {
        const label =
          '[OK](https://evil.example/) <img src=x onerror=alert(1)> :white_check_mark: **verified** @owner |';
        const path = forgeFile(
          plans['new']!,
          join(tmp, 'hostile-label.nixplan'),
          (m) => ({ ...m, roots: (m['roots'] as object[]).map((r) => ({ ...r, installable: label })) }),
          { keys: [ci] },
        );
        const shown = await cli('inspect', path);
        expect(shown.code).toBe(0);
        expect(shown.out).toContain(`  0  ${label}\n`);
        const manifest = splitBundle(readFileSync(path)).manifest as unknown as BundleManifest;
        const md = [
          planSummary({
            manifest,
            bundleBytes: 1,
            digest: fileDigest(path),
            artifactName: 'plan.nixplan',
            artifactUrl: undefined,
            timings: { evaluateMs: 1, exportMs: 1, uploadMs: undefined },
            realiseAction: './realise',
            jobs: 1,
          }),
          realiseSummary({
            manifest,
            label: 'plan.nixplan',
            shard: undefined,
            outPaths: {
              [manifest.roots[0]?.drvPath ?? '']: { out: manifest.roots[0]?.outputs['out'] ?? '' },
            },
            timings: { fetchMs: 1, realiseMs: 2 },
          }),
        ].join('\n');
        expect(md).toContain(label.replace('|', '\\|'));
        // Outside code spans nothing of the label remains: no link, image, emoji, emphasis or mention.
        const prose = md.replace(/(`+)[^`]*?\1/g, '');
        expect(prose).not.toMatch(/evil\.example|<img|:white_check_mark:|\*\*verified\*\*|@owner/);
        // Unchecked signatures are never called verified.
        expect(md).toContain('| trust | signatures: 1 (not verified) |');
        expect(md).toContain('Plan signatures: 1 (not verified).');
      });
    });
  },
);
