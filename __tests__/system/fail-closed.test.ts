// Fail closed and sign only what was verified, at the command line and the actions' inputs: an empty or keyless key is a usage error, never "no keys".
import { afterAll, describe, expect, test } from '@jest/globals';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeployInput, FetchInput, PromoteInput, RealiseInput } from '../../src/action/constants.js';
import { parseDeploySettings } from '../../src/action/deploy-settings.js';
import { unpinnedWarning } from '../../src/action/fetch-settings.js';
import { InputError } from '../../src/action/inputs.js';
import { parsePromoteSettings, parseRealiseSettings } from '../../src/action/settings.js';
import { readKeys, readSecretKeyFile } from '../../src/cli/args.js';
import { ExitCode } from '../../src/cli/exit-codes.js';
import { main } from '../../src/cli/main.js';
import type { CliIo } from '../../src/cli/terminal.js';
import type { UseCases } from '../../src/cli/use-cases.js';
import { NixPlanError } from '../../src/core/errors.js';
import { generateKeyPair } from '../../src/core/signing.js';

const tmp = mkdtempSync(join(tmpdir(), 'nix-plan-fail-closed-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const p = join(tmp, name);
  writeFileSync(p, text);
  return p;
}

const ci = generateKeyPair('ci-1');
const empty = file('empty.pub', '');
const blank = file('blank.pub', '  \n\n\t\n');
const comments = file('comments.pub', '# the CI key goes here\n# (not yet)\n');
const garbage = file('garbage.pub', 'ci-1:not-a-key\n');
const good = file('good.pub', `# CI\n${ci.publicKey}\n`);
const secret = file('ci.sec', `${ci.secretKey}\n`);
const emptySecret = file('empty.sec', '\n');

async function usage(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    if (e instanceof NixPlanError && e.code === 'usage') return e.message;
    throw e;
  }
  throw new Error('accepted');
}

describe('--trusted-key fails closed', () => {
  test.each([
    ['an empty value (an unset variable)', '', /--trusted-key is empty \(an unset variable\?\)/],
    ['blank', '  ', /--trusted-key is empty/],
    ['an empty file', empty, /trusted key file '.*empty\.pub' holds no key/],
    ['a file of blank lines', blank, /holds no key/],
    ['a file of comments only', comments, /holds no key/],
    [
      'a file whose key is not one',
      garbage,
      /trusted key file '.*garbage\.pub': public key is not in Nix's NAME:base64 format|trusted key file '.*garbage\.pub': public key 'ci-1' is corrupt/,
    ],
    ['a literal that is not a key', 'ci-1:AAAA', /--trusted-key: public key 'ci-1' is corrupt/],
    ['a missing file', join(tmp, 'missing.pub'), /cannot read trusted key file/],
  ])('%s is a usage error', async (_name, value, message) => {
    expect(await usage(readKeys([value]))).toMatch(message);
  });
  test('keys from literals and files (comments allowed) are read', async () => {
    expect(await readKeys([ci.publicKey, good])).toEqual([ci.publicKey, ci.publicKey]);
  });
  test('an empty or keyless --sign-key file is a usage error that never echoes the file', async () => {
    expect(await usage(readSecretKeyFile(emptySecret))).toMatch(/secret key file '.*empty\.sec' is empty/);
    expect(await usage(readSecretKeyFile(''))).toMatch(/--sign-key is empty/);
    const leaky = file('leaky.sec', 'ci-1:c2VjcmV0LXNlY3JldA==\n');
    const message = await usage(readSecretKeyFile(leaky));
    expect(message).toMatch(/does not hold a usable secret key/);
    expect(message).not.toContain('c2VjcmV0');
    expect(await readSecretKeyFile(secret)).toBe(ci.secretKey);
  });
});

/** Captures what the CLI writes. */
function capture(): CliIo & { out: () => string; err: () => string } {
  let out = '';
  let err = '';
  return {
    stdout: { write: (s: string) => (out += s) },
    stderr: { write: (s: string) => (err += s) },
    now: () => 0,
    out: () => out,
    err: () => err,
  };
}

/** Use cases that must not run: a usage error comes first. */
const untouchable: Partial<UseCases> = Object.fromEntries(
  ['exportPlan', 'verifyPlan', 'importPlan', 'realisePlan', 'relocatePlan', 'applyPlan', 'withFreshness'].map(
    (n) => [n, () => Promise.reject(new Error(`${n} must not run`))],
  ),
);

describe('the command line: nothing runs with a key that is not one, or a signature over the unverified', () => {
  test.each([
    [['verify', 'p.nixplan', '--trusted-key', '']],
    [['verify', 'p.nixplan', '--trusted-key', empty]],
    [['import', 'p.nixplan', '--trusted-key', comments]],
    [['realise', 'p.nixplan', '--trusted-key', blank]],
    [['apply', 'p.nixplan', '--profile', '/p', '--trusted-key', '']],
    [['relocate', 'p.nixplan', '--to', '/b/s', '-o', join(tmp, 'o'), '--trusted-key', empty]],
    [['export', '-f', 'x.nix', '-o', join(tmp, 'o'), '--sign-key', emptySecret]],
  ])('%j is a usage error (exit 2)', async (argv) => {
    const io = capture();
    expect(await main(argv, { io, useCases: untouchable })).toBe(ExitCode.usage);
    expect(io.err()).toMatch(/error: .*(empty|no key)/);
  });

  test.each([
    [['import', 'p.nixplan', '--sign-key', secret]],
    [['realise', 'p.nixplan', '--sign-key', secret]],
    [['apply', 'p.nixplan', '--profile', '/p', '--sign-key', secret]],
    [['relocate', 'p.nixplan', '--to', '/b/s', '-o', join(tmp, 'o'), '--sign-key', secret]],
  ])('%j signs only what was verified: a usage error without --trusted-key', async (argv) => {
    const io = capture();
    expect(await main(argv, { io, useCases: untouchable })).toBe(ExitCode.usage);
    expect(io.err()).toContain('--sign-key signs only what was verified: give --trusted-key');
  });

  test('--no-check-sigs lets relocate sign an unverified input, warned, and passes the opt-out on', async () => {
    const io = capture();
    const seen: unknown[] = [];
    const code = await main(
      [
        'relocate',
        'p.nixplan',
        '--to',
        '/b/s',
        '-o',
        join(tmp, 'o'),
        '--sign-key',
        secret,
        '--no-check-sigs',
      ],
      {
        io,
        useCases: {
          withFreshness: (b, _o, _l, run) => run(b, b),
          relocatePlan: (b, options) => {
            seen.push(options);
            return Promise.reject(new NixPlanError('bundle', 'stop here'));
          },
        },
      },
    );
    expect(code).toBe(ExitCode.bundle);
    expect(io.err()).toContain('warning: --no-check-sigs: relocating a plan no trusted key vouches for');
    expect(seen).toEqual([
      expect.objectContaining({ noCheckSigs: true, trustedKeys: [], signingKeys: [ci.secretKey] }),
    ]);
  });

  test('--max-age must be a duration', async () => {
    const io = capture();
    expect(await main(['verify', 'p.nixplan', '--max-age', '7 days'], { io, useCases: untouchable })).toBe(
      ExitCode.usage,
    );
    expect(io.err()).toContain("--max-age '7 days' is not a duration");
  });
});

describe('the actions: a plan from where anyone could put it must be proven', () => {
  const reader =
    (inputs: Record<string, string>) =>
    (name: string): string =>
      inputs[name] ?? '';
  const env = (name: string): string | undefined => ({ GITHUB_REPOSITORY: 'me/proj' })[name];
  const digest = `sha256:${'a'.repeat(64)}`;
  const origins: [string, Record<string, string>][] = [
    ['a bundle file', { [FetchInput.Bundle]: '/tmp/p.nixplan' }],
    ['another run', { [FetchInput.RunId]: '42', [FetchInput.GithubToken]: 't' }],
    ['a shared directory', { [FetchInput.ArtifactDir]: '/srv/plans' }],
  ];
  /** Every fetching action's settings parser, given the inputs it needs besides the plan's source. */
  const parsers: [string, (inputs: Record<string, string>) => { unpinned?: string | undefined }][] = [
    ['realise', (inputs) => parseRealiseSettings(reader(inputs), env)],
    [
      'promote',
      (inputs) => parsePromoteSettings(reader({ ...inputs, [PromoteInput.To]: '/beta/store' }), env),
    ],
    [
      'deploy',
      (inputs) =>
        parseDeploySettings(
          reader({
            ...inputs,
            [DeployInput.Hosts]: 'root@h',
            [DeployInput.KnownHosts]: 'h ssh-ed25519 AAAA',
          }),
          env,
        ),
    ],
  ];
  const refusal = (parse: () => unknown): InputError => {
    try {
      parse();
    } catch (e) {
      expect(e).toBeInstanceOf(InputError);
      return e as InputError;
    }
    throw new Error('accepted');
  };
  test.each(origins)(
    '%s without digest or trusted-keys is refused by realise, promote and deploy',
    (_name, inputs) => {
      for (const [, parse] of parsers) {
        const error = refusal(() => parse(inputs));
        expect(error.input).toBe(FetchInput.TrustedKeys);
        expect(error.message).toMatch(/nothing proves that a plan from .* is the plan your workflow made/);
        expect(error.code).toBe('usage');
      }
    },
  );
  // no-check-sigs says build outputs need no signature: a plan of .drv files proves its own bytes
  // without one, but not that it is the plan the workflow made. It must not also unpin the source,
  // or whoever can write the shared directory chooses what is built and activated.
  test.each(origins)(
    '%s with only no-check-sigs is still refused, naming allow-unpinned-source',
    (_name, inputs) => {
      for (const [, parse] of parsers) {
        const error = refusal(() => parse({ ...inputs, [FetchInput.NoCheckSigs]: 'true' }));
        expect(error.input).toBe(FetchInput.TrustedKeys);
        expect(error.message).toContain(
          '"allow-unpinned-source: true" to take whatever plan is there on purpose',
        );
        expect(error.message).toContain('"no-check-sigs" does not');
      }
    },
  );
  test.each(origins)('%s is accepted with a digest or trusted keys, pinned', (_name, inputs) => {
    for (const extra of [
      { [FetchInput.Digest]: digest },
      { [FetchInput.TrustedKeys]: ci.publicKey },
    ] as Record<string, string>[])
      for (const [, parse] of parsers) {
        // allow-unpinned-source beside a proof changes nothing: the plan is pinned, nothing is warned.
        for (const allow of [{}, { [FetchInput.AllowUnpinnedSource]: 'true' }] as Record<string, string>[]) {
          const s = parse({ ...inputs, ...extra, ...allow });
          expect(s.unpinned).toBeUndefined();
          expect(unpinnedWarning(s)).toBeUndefined();
        }
      }
  });
  test.each(origins)(
    '%s is taken unpinned only with allow-unpinned-source: true, warned',
    (_name, inputs) => {
      for (const [, parse] of parsers) {
        expect(() => parse({ ...inputs, [FetchInput.AllowUnpinnedSource]: 'false' })).toThrow(
          /nothing proves that a plan from/,
        );
        const s = parse({ ...inputs, [FetchInput.AllowUnpinnedSource]: 'true' });
        expect(s.unpinned).toMatch(/^(a bundle file|another workflow run|a shared directory) \("[a-z-]+"\)$/);
        expect(unpinnedWarning(s)).toBe(
          `allow-unpinned-source: taking the plan from ${s.unpinned} with neither "digest" nor "trusted-keys": whoever can write there chooses the plan`,
        );
      }
      expect(() =>
        parseRealiseSettings(reader({ ...inputs, [FetchInput.AllowUnpinnedSource]: 'yes please' }), env),
      ).toThrow(/input "allow-unpinned-source": "yes please" is not a boolean/);
    },
  );
  test('an artifact of this run needs nothing more (only its jobs can upload it)', () => {
    const s = parseRealiseSettings(reader({}), env);
    expect(s.source).toMatchObject({ kind: 'artifact', runId: undefined });
    expect(s.unpinned).toBeUndefined();
  });
  test('trusted-keys holding only comments is refused; comments beside keys are fine', () => {
    expect(() =>
      parseRealiseSettings(reader({ [FetchInput.TrustedKeys]: '# ci key\n# to do' }), env),
    ).toThrow(/input "trusted-keys": holds no key/);
    expect(
      parseRealiseSettings(reader({ [FetchInput.TrustedKeys]: `# ci\n${ci.publicKey} # the CI key` }), env)
        .trustedKeys,
    ).toEqual([ci.publicKey]);
  });
  test('promote signs only what it verified: signing-key needs trusted-keys (a digest is not enough)', () => {
    const base = { [PromoteInput.To]: '/beta/store', [PromoteInput.SigningKey]: ci.secretKey };
    expect(() => parsePromoteSettings(reader({ ...base, [FetchInput.Digest]: digest }), env)).toThrow(
      /input "signing-key": signs only what was verified: give "trusted-keys"/,
    );
    expect(() =>
      parsePromoteSettings(reader({ ...base, [FetchInput.TrustedKeys]: ci.publicKey }), env),
    ).not.toThrow();
    expect(parsePromoteSettings(reader({ ...base, [FetchInput.NoCheckSigs]: 'true' }), env).noCheckSigs).toBe(
      true,
    );
  });
  test('max-age and allow-downgrade', () => {
    const s = parseRealiseSettings(
      reader({ [FetchInput.MaxAge]: '2w', [RealiseInput.AllowDowngrade]: 'true' }),
      env,
    );
    expect(s).toMatchObject({ maxAgeMs: 14 * 86_400_000, maxAgeText: '2w', allowDowngrade: true });
    expect(() => parseRealiseSettings(reader({ [FetchInput.MaxAge]: 'soon' }), env)).toThrow(
      /input "max-age": "soon" is not a duration/,
    );
  });
});
