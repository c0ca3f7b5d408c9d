// The actions' settings parsers and the matrix fan-out: every bad input names itself and what it accepts.
import { describe, expect, test } from '@jest/globals';
import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateKeyPair } from '../../src/core/signing.js';
import { actionDefaults, REPO } from '../support/action-step.js';
import {
  FetchInput,
  PlanInput,
  PlanOutput,
  PromoteInput,
  PromoteOutput,
  RealiseInput,
  RealiseOutput,
} from '../../src/action/constants.js';
import { InputError, type InputReader } from '../../src/action/inputs.js';
import { parseDeploySettings } from '../../src/action/deploy-settings.js';
import {
  parsePlanSettings,
  parsePromoteSettings,
  parseRealiseSettings,
  promotedArtifactName,
} from '../../src/action/settings.js';
import {
  MATRIX_BUDGET,
  MAX_JOBS,
  parseShard,
  planMatrix,
  selectShard,
  type MatrixShape,
} from '../../src/action/matrix.js';

const DIGEST = `sha256:${'a'.repeat(64)}`;

const reader =
  (inputs: Record<string, string>): InputReader =>
  (name) =>
    inputs[name] ?? '';
const env = (vars: Record<string, string>) => (name: string) => vars[name];
const noEnv = env({});

/** The error a parse throws, for asserting on its message. */
function failure(parse: () => unknown): InputError {
  try {
    parse();
  } catch (e) {
    expect(e).toBeInstanceOf(InputError);
    return e as InputError;
  }
  throw new Error('expected the parser to throw');
}

describe('root action settings', () => {
  test('defaults: drvs, plan.nixplan, upload, one job per root', () => {
    const s = parsePlanSettings(
      reader({ [PlanInput.Installables]: '.#hello\n\n# a comment\n  .#world  \n' }),
    );
    expect(s).toEqual({
      installables: ['.#hello', '.#world'],
      drvPaths: [],
      file: undefined,
      attributes: [],
      include: 'drvs',
      relocateTo: undefined,
      compressionLevel: undefined,
      signingKey: undefined,
      artifactName: 'plan.nixplan',
      retentionDays: undefined,
      upload: true,
      matrix: { kind: 'per-root' },
      artifactDir: undefined,
      noCheckSigs: false,
    });
  });

  test('separates .drv paths from installables and reads every option', () => {
    const key = generateKeyPair('ci-1').secretKey;
    const s = parsePlanSettings(
      reader({
        [PlanInput.Installables]: '/nix/store/0000000000000000000000000000000a-x.drv\n.#y',
        [PlanInput.Include]: 'sources',
        [PlanInput.RelocateTo]: '/beta/store',
        [PlanInput.CompressionLevel]: '19',
        [PlanInput.SigningKey]: key,
        [PlanInput.ArtifactName]: 'x86_64-linux.nixplan',
        [PlanInput.RetentionDays]: '7',
        [PlanInput.Upload]: 'False',
        [PlanInput.Matrix]: '16',
        [PlanInput.CompareTo]: 'latest',
        [PlanInput.NoCheckSigs]: 'true',
      }),
    );
    expect(s.drvPaths).toEqual(['/nix/store/0000000000000000000000000000000a-x.drv']);
    expect(s.installables).toEqual(['.#y']);
    expect(s).toMatchObject({
      include: 'sources',
      relocateTo: '/beta/store',
      compressionLevel: 19,
      signingKey: key,
      artifactName: 'x86_64-linux.nixplan',
      retentionDays: 7,
      upload: false,
      matrix: { kind: 'jobs', count: 16 },
      noCheckSigs: true,
    });
  });

  test('file and attributes (non-flake)', () => {
    const s = parsePlanSettings(
      reader({ [PlanInput.File]: 'default.nix', [PlanInput.Attributes]: 'a\nb.c' }),
    );
    expect(s).toMatchObject({ file: 'default.nix', attributes: ['a', 'b.c'], installables: [] });
  });

  test.each([
    [{}, PlanInput.Installables, /nothing to plan; accepted: "installables"/],
    [{ [PlanInput.Installables]: '.#a', [PlanInput.File]: 'x.nix' }, PlanInput.File, /not both/],
    [{ [PlanInput.Installables]: '.#a', [PlanInput.Attributes]: 'a' }, PlanInput.Attributes, /needs "file"/],
    [
      { [PlanInput.Installables]: '.#a', [PlanInput.Include]: 'all' },
      PlanInput.Include,
      /accepted: drvs, sources, outputs/,
    ],
    [
      { [PlanInput.Installables]: '.#a', [PlanInput.RelocateTo]: 'beta/store' },
      PlanInput.RelocateTo,
      /not absolute/,
    ],
    [
      { [PlanInput.Installables]: '.#a', [PlanInput.RelocateTo]: '/beta/store/' },
      PlanInput.RelocateTo,
      /slash/,
    ],
    // The writer's range: 20–22 would be refused only after the whole evaluation.
    [
      { [PlanInput.Installables]: '.#a', [PlanInput.CompressionLevel]: '20' },
      PlanInput.CompressionLevel,
      /from 1 to 19/,
    ],
    [
      { [PlanInput.Installables]: '.#a', [PlanInput.CompressionLevel]: 'max' },
      PlanInput.CompressionLevel,
      /from 1 to 19/,
    ],
    [
      { [PlanInput.Installables]: '.#a', [PlanInput.RetentionDays]: '0' },
      PlanInput.RetentionDays,
      /from 1 to 90/,
    ],
    [
      { [PlanInput.Installables]: '.#a', [PlanInput.Upload]: 'yes' },
      PlanInput.Upload,
      /accepted: true or false/,
    ],
    [
      { [PlanInput.Installables]: '.#a', [PlanInput.Matrix]: '257' },
      PlanInput.Matrix,
      /per-root, single, or a number of jobs from 1 to 256/,
    ],
    [
      { [PlanInput.Installables]: '.#a', [PlanInput.ArtifactName]: 'a/b' },
      PlanInput.ArtifactName,
      /not a valid artifact name/,
    ],
    [
      { [PlanInput.Installables]: '.#a', [PlanInput.ArtifactName]: 'a:b' },
      PlanInput.ArtifactName,
      /not a valid artifact name/,
    ],
    [
      { [PlanInput.Installables]: '.#a', [PlanInput.NoCheckSigs]: 'true' },
      PlanInput.NoCheckSigs,
      /goes with "compare-to"/,
    ],
  ])('%j fails naming %s', (inputs, input, message) => {
    const e = failure(() => parsePlanSettings(reader(inputs)));
    expect(e.input).toBe(input);
    expect(e.code).toBe('usage');
    expect(e.message).toMatch(new RegExp(`^input "${input}": `));
    expect(e.message).toMatch(message);
  });

  test('a bad signing key is refused without echoing any of it', () => {
    const key = generateKeyPair('ci-1').secretKey;
    const damaged = key.slice(0, -6) + 'AAAAA=';
    const e = failure(() =>
      parsePlanSettings(reader({ [PlanInput.Installables]: '.#a', [PlanInput.SigningKey]: damaged })),
    );
    expect(e.input).toBe(PlanInput.SigningKey);
    expect(e.message).toMatch(/nix-plan keygen/);
    expect(e.message).not.toContain(damaged.slice(damaged.indexOf(':') + 1, damaged.indexOf(':') + 12));
    expect(e.message).not.toContain('ci-1');
  });
});

describe('realise and promote settings', () => {
  const ghEnv = env({ GITHUB_REPOSITORY: 'me/proj' });

  test('same run by artifact name (the default name), shard and trusted keys', () => {
    const pub = generateKeyPair('ci-1').publicKey;
    const s = parseRealiseSettings(
      reader({
        [RealiseInput.Shard]: '3/16',
        [RealiseInput.TrustedKeys]: `${pub}\n`,
        [RealiseInput.NixArgs]: '--max-jobs 2',
      }),
      ghEnv,
    );
    expect(s.source).toEqual({
      kind: 'artifact',
      name: 'plan.nixplan',
      runId: undefined,
      repository: undefined,
      token: undefined,
      artifactDir: undefined,
    });
    expect(s).toMatchObject({
      shard: { index: 3, count: 16 },
      trustedKeys: [pub],
      nixArgs: ['--max-jobs', '2'],
      roots: [],
    });
  });

  test('nix-args are split as a shell would: quoted values keep their spaces', () => {
    const s = parseRealiseSettings(
      reader({
        [RealiseInput.NixArgs]:
          '--option extra-substituters "https://a.example https://b.example"\n  --max-jobs 4',
      }),
      ghEnv,
    );
    expect(s.nixArgs).toEqual([
      '--option',
      'extra-substituters',
      'https://a.example https://b.example',
      '--max-jobs',
      '4',
    ]);
    const e = failure(() => parseRealiseSettings(reader({ [RealiseInput.NixArgs]: "--option x 'y" }), ghEnv));
    expect(e.input).toBe(RealiseInput.NixArgs);
    expect(e.message).toMatch(
      /input "nix-args": a ' quote is not closed; accepted: arguments as a shell would split them/,
    );
  });

  test('another run needs a token; the repository defaults to this one', () => {
    const e = failure(() => parseRealiseSettings(reader({ [FetchInput.RunId]: '42' }), ghEnv));
    expect(e.input).toBe(FetchInput.GithubToken);
    expect(e.message).toMatch(/actions: read/);
    const s = parseRealiseSettings(
      reader({ [FetchInput.RunId]: '42', [FetchInput.GithubToken]: 't', [FetchInput.Digest]: DIGEST }),
      ghEnv,
    );
    expect(s.source).toMatchObject({ kind: 'artifact', runId: 42, repository: 'me/proj', token: 't' });
  });

  test('a local bundle path', () => {
    const s = parseRealiseSettings(
      reader({ [FetchInput.Bundle]: '/tmp/p.nixplan', [FetchInput.Digest]: DIGEST }),
      noEnv,
    );
    expect(s.source).toEqual({ kind: 'file', path: '/tmp/p.nixplan' });
  });

  test.each([
    [{ [FetchInput.Bundle]: 'x', [FetchInput.ArtifactName]: 'y' }, FetchInput.Bundle, /not both/],
    [{ [FetchInput.RunId]: 'abc' }, FetchInput.RunId, /an integer from 1/],
    [{ [FetchInput.Repository]: 'nope', [FetchInput.RunId]: '1' }, FetchInput.Repository, /owner\/name/],
    [{ [FetchInput.Repository]: 'a/b' }, FetchInput.Repository, /needs "run-id"/],
    [{ [FetchInput.Digest]: 'md5:00' }, FetchInput.Digest, /sha256:<64 hex digits>/],
    [{ [FetchInput.TrustedKeys]: 'k:AAAA' }, FetchInput.TrustedKeys, /NAME:base64 keys/],
    [{ [RealiseInput.Shard]: '17/16' }, RealiseInput.Shard, /INDEX\/COUNT such as 3\/16/],
    [{ [RealiseInput.Shard]: '1/300' }, RealiseInput.Shard, /INDEX\/COUNT/],
  ])('realise %j fails naming %s', (inputs, input, message) => {
    const e = failure(() => parseRealiseSettings(reader(inputs), ghEnv));
    expect(e.input).toBe(input);
    expect(e.message).toMatch(message);
  });

  test('promote requires a valid realm and names the promoted artifact after it', () => {
    expect(failure(() => parsePromoteSettings(reader({}), noEnv)).input).toBe(PromoteInput.To);
    expect(
      failure(() => parsePromoteSettings(reader({ [PromoteInput.To]: 'relative' }), noEnv)).message,
    ).toMatch(/absolute path like \/beta\/store/);
    const s = parsePromoteSettings(reader({ [PromoteInput.To]: '/beta/store' }), noEnv);
    expect(s).toMatchObject({ to: '/beta/store', promotedName: 'plan-beta-store.nixplan', upload: true });
    expect(promotedArtifactName('web', '/prod/nix/store')).toBe('web-prod-nix-store.nixplan');
  });
});

describe('deploy settings', () => {
  const hosts = { hosts: 'root@h', 'known-hosts': 'h ssh-ed25519 AAAA' };

  test('a rollback fetches no plan: plan inputs need no digest to pin it, and are named as unused', () => {
    const given = { ...hosts, 'artifact-dir': '/shared/plans', 'run-id': '7', 'max-age': 'soon' };
    // Without rollback the same inputs are refused: nothing pins a plan from a shared directory.
    expect(() => parseDeploySettings(reader(given), noEnv)).toThrow(/trusted-keys/);
    const s = parseDeploySettings(reader({ ...given, rollback: 'true' }), noEnv);
    expect(s.rollback).toBe(true);
    expect(s.unusedInputs).toEqual(['artifact-dir', 'run-id', 'max-age']);
    expect(s.source).toMatchObject({ kind: 'artifact', artifactDir: undefined, runId: undefined });
    expect(s.digest).toBeUndefined();
    expect(s.unpinned).toBeUndefined();
  });

  test('the defaults the runner passes for plan inputs are not named as unused; a token is kept to be masked', () => {
    const s = parseDeploySettings(
      reader({
        ...hosts,
        rollback: 'true',
        'artifact-name': 'plan.nixplan',
        'no-check-sigs': 'false',
        'allow-unpinned-source': 'false',
        'allow-downgrade': 'false',
        'build-on': 'host',
        'github-token': 'ghs_secret',
      }),
      noEnv,
    );
    expect(s.unusedInputs).toEqual(['github-token']);
    expect(s.source).toMatchObject({ kind: 'artifact', token: 'ghs_secret' });
    expect(parseDeploySettings(reader({ ...hosts, rollback: 'true' }), noEnv).unusedInputs).toEqual([]);
  });
});

describe('matrix fan-out', () => {
  const root = (i: number): { drvPath: string } => ({
    drvPath: `/nix/store/${i.toString(32).padStart(32, '0')}-pkg-${i}.drv`,
  });

  test('shards are contiguous, disjoint, cover every root in order, and sizes differ by at most one', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 3000 }), fc.integer({ min: 1, max: MAX_JOBS }), (n, count) => {
        const items = Array.from({ length: n }, (_, i) => i);
        const shards = Array.from({ length: count }, (_, k) => selectShard(items, { index: k + 1, count }));
        expect(shards.flat()).toEqual(items);
        const sizes = shards.map((s) => s.length);
        expect(Math.max(...sizes) - Math.min(...sizes)).toBeLessThanOrEqual(1);
      }),
    );
  });

  test('never more than 256 jobs, never an empty job, and the JSON stays within budget', () => {
    const shapes = fc.oneof(
      fc.constant<MatrixShape>({ kind: 'per-root' }),
      fc.constant<MatrixShape>({ kind: 'single' }),
      fc.integer({ min: 1, max: MAX_JOBS }).map((count): MatrixShape => ({ kind: 'jobs', count })),
    );
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 20000 }), shapes, (n, shape) => {
        const roots = Array.from({ length: n }, (_, i) => root(i));
        const matrix = planMatrix(roots, shape);
        const jobs = matrix.include.length;
        expect(jobs).toBeLessThanOrEqual(MAX_JOBS);
        expect(jobs).toBe(
          shape.kind === 'single' ? 1 : Math.min(n, shape.kind === 'jobs' ? shape.count : n, MAX_JOBS),
        );
        expect(Buffer.byteLength(JSON.stringify(matrix))).toBeLessThanOrEqual(MATRIX_BUDGET);
        // Each entry's shard, parsed back, selects a non-empty slice; listed roots match it.
        for (const entry of matrix.include) {
          const mine = selectShard(roots, parseShard(entry.shard));
          expect(mine.length).toBeGreaterThan(0);
          if (entry.roots !== undefined) expect(entry.roots.split('\n')).toEqual(mine.map((r) => r.drvPath));
        }
      }),
      { numRuns: 40 },
    );
  });

  test('names jobs after the first root, by installable, attribute or derivation name', () => {
    const m = planMatrix([{ drvPath: root(1).drvPath, attribute: 'hello' }, root(2), root(3)], {
      kind: 'jobs',
      count: 2,
    });
    expect(m.include.map((e) => [e.shard, e.name])).toEqual([
      ['1/2', 'hello'],
      ['2/2', 'pkg-2 +1'],
    ]);
    const both = planMatrix([{ drvPath: root(1).drvPath, installable: '.#hello', attribute: 'hello' }], {
      kind: 'single',
    });
    expect(both.include[0]?.name).toBe('.#hello');
  });

  test('lists roots while they fit, and drops them (keeping shards) when they would not', () => {
    expect(planMatrix([root(0)], { kind: 'per-root' }).include[0]?.roots).toBe(root(0).drvPath);
    const many = Array.from({ length: 20000 }, (_, i) => root(i));
    const m = planMatrix(many, { kind: 'per-root' });
    expect(m.include).toHaveLength(MAX_JOBS);
    expect(m.include.every((e) => e.roots === undefined)).toBe(true);
  });
});

describe('action.yml', () => {
  test("every action names the package's author", () => {
    const read = (file: string): string => readFileSync(new URL(`../../${file}`, import.meta.url), 'utf8');
    const { author } = JSON.parse(read('package.json')) as { author: string };
    expect(author).not.toBe('nix-plan');
    for (const file of ['action.yml', 'realise/action.yml', 'promote/action.yml', 'deploy/action.yml'])
      expect({ file, author: /^author: (.*)$/m.exec(read(file))?.[1] }).toEqual({ file, author });
  });

  test('each action declares exactly the inputs and outputs the code names', () => {
    const declared = (file: string, section: 'inputs' | 'outputs'): string[] => {
      const text = readFileSync(new URL(`../../${file}`, import.meta.url), 'utf8');
      const block = text.split(new RegExp(`^${section}:\\n`, 'm'))[1]?.split(/^\S/m)[0] ?? '';
      return [...block.matchAll(/^ {2}([a-z-]+):/gm)].map((m) => m[1] ?? '').sort();
    };
    const names = (o: Record<string, string>): string[] => [...new Set(Object.values(o))].sort();
    expect(declared('action.yml', 'inputs')).toEqual(names(PlanInput));
    expect(declared('realise/action.yml', 'inputs')).toEqual(names(RealiseInput));
    expect(declared('promote/action.yml', 'inputs')).toEqual(names(PromoteInput));
    expect(declared('action.yml', 'outputs')).toEqual(names(PlanOutput));
    expect(declared('realise/action.yml', 'outputs')).toEqual(names(RealiseOutput));
    expect(declared('promote/action.yml', 'outputs')).toEqual(names(PromoteOutput));
  });
});

describe('action.yml defaults', () => {
  const reader =
    (values: Record<string, string>): InputReader =>
    (name) =>
      values[name] ?? '';
  const env = (): undefined => undefined;

  // Every input whose absence means a value states that value as `default:`, and the parser
  // gives the same settings for it as for the input left out.
  test.each([
    ['action.yml', ['include', 'artifact-name', 'upload', 'matrix', 'no-check-sigs']],
    ['realise/action.yml', ['artifact-name', 'no-check-sigs', 'allow-unpinned-source', 'allow-downgrade']],
    ['promote/action.yml', ['artifact-name', 'upload', 'no-check-sigs', 'allow-unpinned-source']],
    [
      'deploy/action.yml',
      [
        'allow-unknown-hosts',
        'action',
        'confirm-timeout',
        'activation-timeout',
        'build-on',
        'keep-going',
        'use-sudo',
        'no-check-sigs',
        'allow-unpinned-source',
        'allow-downgrade',
        'rollback',
        'artifact-name',
        'profile',
      ],
    ],
  ])('%s states %j as defaults, the values the code falls back to', (file, expected) => {
    const declared = actionDefaults(join(REPO, file));
    expect(Object.keys(declared).sort()).toEqual([...expected].sort());
    const base: Record<string, string> =
      file === 'action.yml'
        ? { installables: '.#a' }
        : file.startsWith('promote')
          ? { to: '/b/store' }
          : file.startsWith('deploy')
            ? {
                hosts: 'root@h',
                'known-hosts': 'h ssh-ed25519 AAAA',
                'trusted-keys': `ci:${'A'.repeat(43)}=`,
              }
            : {};
    const parse = (values: Record<string, string>): unknown =>
      file === 'action.yml'
        ? parsePlanSettings(reader(values))
        : file.startsWith('realise')
          ? parseRealiseSettings(reader(values), env)
          : file.startsWith('deploy')
            ? parseDeploySettings(reader(values), env)
            : parsePromoteSettings(reader(values), env);
    expect(parse({ ...declared, ...base })).toEqual(parse(base));
  });

  test('a rollback names no plan input as unused when the runner passes deploy/action.yml defaults', () => {
    // The runner passes every declared default; the code's own list of plan inputs and their
    // unset values must agree with action.yml, or each rollback would log a notice for nothing.
    const declared = actionDefaults(join(REPO, 'deploy/action.yml'));
    const base = { hosts: 'root@h', 'known-hosts': 'h ssh-ed25519 AAAA', rollback: 'true' };
    expect(parseDeploySettings(reader({ ...declared, ...base }), env).unusedInputs).toEqual([]);
    expect(
      parseDeploySettings(reader({ ...declared, ...base, 'build-on': 'local', 'max-age': '1d' }), env)
        .unusedInputs,
    ).toEqual(['max-age', 'build-on']);
  });

  test('a local bundle goes with the default artifact-name the runner passes', () => {
    const s = parseRealiseSettings(
      reader({ bundle: 'x.nixplan', 'artifact-name': 'plan.nixplan', digest: `sha256:${'0'.repeat(64)}` }),
      env,
    );
    expect(s.source).toEqual({ kind: 'file', path: 'x.nixplan' });
  });
});

describe('the workflows', () => {
  // A tag can be moved to other code after review; a commit cannot. The comment names the release.
  test('pin every action outside this repository to a full commit, with its version beside it', () => {
    const uses = ['ci.yml', 'e2e.yml'].flatMap((f) =>
      [
        ...readFileSync(new URL(`../../.github/workflows/${f}`, import.meta.url), 'utf8').matchAll(
          /^\s*(?:- )?uses:\s*(\S+)(.*)$/gm,
        ),
      ].map((m) => ({ ref: m[1] ?? '', comment: (m[2] ?? '').trim() })),
    );
    const remote = uses.filter((u) => !u.ref.startsWith('./'));
    expect(remote.length).toBeGreaterThan(0);
    for (const u of remote) {
      expect(u.ref).toMatch(/^[\w.-]+\/[\w./-]+@[0-9a-f]{40}$/);
      expect(u.comment).toMatch(/^# v\d+(\.\d+)*$/);
    }
  });
});
