// Freshness: --max-age and the last-applied record (downgrade protection), as pure rules and around a use case on real bundle files.
import { afterAll, describe, expect, test } from '@jest/globals';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { recordPathFor, withFreshness, writeLastApplied } from '../../src/app/freshness.js';
import type { Logger } from '../../src/app/deps.js';
import { checkFreshness } from '../../src/app/deploy/record.js';
import { fileDigest } from '../../src/app/files.js';
import { relocatePlan } from '../../src/app/relocate.js';
import { ProcessRunner } from '../../src/nix/runner.js';
import { NixPlanError } from '../../src/core/errors.js';
import {
  freshnessProblem,
  lastAppliedOf,
  parseDuration,
  parseLastApplied,
  type LastApplied,
} from '../../src/core/freshness.js';
import { sha256 } from '../../src/core/hash.js';
import { makeTextPath } from '../../src/core/store-path.js';
import type { BundleManifest, ManifestDraft } from '../../src/core/bundle/index.js';
import { bundleOf, v1Draft } from '../support/bundle-fixtures.js';

const tmp = mkdtempSync(join(tmpdir(), 'nix-plan-freshness-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const STORE = '/nix/store';
const drv = makeTextPath('hello.drv', sha256('Derive()'), [], STORE);

function draft(createdAt: string, tag = ''): ManifestDraft {
  return {
    tool: `nix-plan test${tag}`,
    nixVersion: 'test',
    createdAt,
    provenance: {},
    storeDir: STORE,
    systems: ['x86_64-linux'],
    include: 'drvs',
    roots: [{ drvPath: drv, outputs: {} }],
    counts: { drv: 1, text: 0, source: 0, output: 0 },
    narBytes: { drv: 100, text: 0, source: 0, output: 0 },
    paths: 1,
  };
}

/** A bundle file whose head is valid (freshness reads only the head). */
function bundleFile(name: string, d: ManifestDraft): { path: string; manifest: BundleManifest } {
  const { bytes, manifest } = bundleOf(d, new Uint8Array(200));
  const path = join(tmp, name);
  writeFileSync(path, bytes);
  return { path, manifest };
}

/** A refusal that did not happen fails the test. */
const notRefused = (): never => {
  throw new Error('not refused');
};

const at = (s: string): Date => new Date(s);
const DAY = 86_400_000;

describe('durations', () => {
  test.each([
    ['90s', 90_000],
    ['90m', 5_400_000],
    ['12h', 43_200_000],
    ['7d', 7 * DAY],
    ['2w', 14 * DAY],
    ['1d12h', 1.5 * DAY],
  ])('%s', (text, ms) => expect(parseDuration(text)).toBe(ms));
  test.each(['', '7', 'd', '7 d', '-1d', '0d', '1.5d', '7days', '1y'])('%j is refused', (text) => {
    expect(() => parseDuration(text)).toThrow(/is not a duration/);
  });
});

describe('the rules', () => {
  const plan = { formatVersion: 2 as const, createdAt: '2026-12-01T00:00:00Z', checksum: 'a'.repeat(64) };
  const record: LastApplied = {
    version: 1,
    createdAt: '2026-12-02T00:00:00Z',
    digest: `sha256:${'b'.repeat(64)}`,
    checksum: 'c'.repeat(64),
    storeDir: STORE,
    roots: [drv],
    appliedAt: '2026-12-02T01:00:00Z',
  };
  const last = { record, target: '/nix/var/nix/profiles/system' };
  const now = at('2026-12-06T00:00:00Z');

  test('older than the last applied is stale; the same age or newer is not', () => {
    const e = freshnessProblem(plan, { last }, now);
    expect(e?.code).toBe('stale');
    expect(e?.message).toMatch(
      /created at 2026-12-01T00:00:00Z, before the one \/nix\/var\/nix\/profiles\/system was last given a plan created at 2026-12-02T00:00:00Z .*--allow-downgrade/,
    );
    expect(freshnessProblem({ ...plan, createdAt: record.createdAt! }, { last }, now)).toBeUndefined();
    expect(freshnessProblem({ ...plan, createdAt: '2026-12-03T00:00:00Z' }, { last }, now)).toBeUndefined();
    expect(freshnessProblem(plan, { last, allowDowngrade: true }, now)).toBeUndefined();
  });
  test('the very plan applied before passes, whatever its age (re-applying is idempotent)', () => {
    expect(freshnessProblem({ ...plan, checksum: record.checksum }, { last }, now)).toBeUndefined();
  });
  test('a plan of unknown age is refused where a record exists, and by --max-age', () => {
    const v1 = { formatVersion: 1 as const, checksum: plan.checksum };
    expect(freshnessProblem(v1, { last }, now)?.message).toMatch(
      /no creation time \(a format 1 bundle\).*may be older/,
    );
    expect(freshnessProblem(v1, { last, allowDowngrade: true }, now)).toBeUndefined();
    expect(freshnessProblem(v1, { maxAgeMs: DAY, maxAgeText: '1d' }, now)?.message).toMatch(
      /cannot be shown to be younger than --max-age 1d/,
    );
    expect(freshnessProblem({ formatVersion: 2, checksum: plan.checksum }, {}, now)).toBeUndefined();
  });
  test('--max-age; --allow-downgrade does not waive it', () => {
    expect(freshnessProblem(plan, { maxAgeMs: 7 * DAY, maxAgeText: '7d' }, now)).toBeUndefined();
    const e = freshnessProblem(plan, { maxAgeMs: 3 * DAY, maxAgeText: '3d', allowDowngrade: true }, now);
    expect(e?.message).toBe(
      'the plan was created at 2026-12-01T00:00:00Z, 5 days ago: older than --max-age 3d allows',
    );
  });
  test('a record is read strictly', () => {
    expect(parseLastApplied(JSON.stringify(record), 'r')).toEqual(record);
    const { createdAt: _c, ...unknownAge } = record;
    expect(parseLastApplied(JSON.stringify(unknownAge), 'r')).toEqual(unknownAge);
    for (const bad of [
      '',
      '[]',
      '{"version":2}',
      JSON.stringify({ ...record, digest: 'x' }),
      JSON.stringify({ ...record, appliedAt: 'yesterday' }),
    ]) {
      let e: unknown;
      try {
        parseLastApplied(bad, '/p.nix-plan.json');
      } catch (x) {
        e = x;
      }
      expect((e as NixPlanError).code).toBe('stale');
      expect((e as NixPlanError).message).toMatch(/last-applied record '\/p\.nix-plan\.json' is unreadable/);
    }
  });
});

describe('around a use case', () => {
  const warnings: string[] = [];
  const log: Logger = { info: () => undefined, debug: () => undefined, warn: (m) => warnings.push(m) };
  const older = bundleFile('older.nixplan', draft('2026-12-01T00:00:00Z'));
  const newer = bundleFile('newer.nixplan', draft('2026-12-03T00:00:00Z'));
  const v1 = bundleFile('v1.nixplan', v1Draft(draft('2026-12-01T00:00:00Z')));
  const now = (): Date => at('2026-12-04T00:00:00Z');

  test('records the plan once the use case succeeded; refuses an older one before the use case runs', async () => {
    const target = join(tmp, 'result');
    const ran: string[] = [];
    const names: string[] = [];
    const run = (m: BundleManifest) => (bundle: string, name: string) => {
      ran.push(bundle);
      names.push(name);
      return Promise.resolve({ manifest: m });
    };
    await withFreshness(newer.path, { target, now }, log, run(newer.manifest));
    // The use case is handed a private copy, not the file named, and the name for its messages.
    expect(ran[0]).not.toBe(newer.path);
    expect(names[0]).toBe(newer.path);
    expect(existsSync(ran[0] ?? '')).toBe(false); // removed afterwards
    const record = JSON.parse(readFileSync(recordPathFor(target), 'utf8')) as LastApplied;
    expect(record).toEqual(
      lastAppliedOf(newer.manifest, await fileDigest(newer.path), '2026-12-04T00:00:00Z'),
    );
    expect(statSync(recordPathFor(target)).mode & 0o777).toBe(0o644);

    const refused = await withFreshness(older.path, { target, now }, log, run(older.manifest)).catch(
      (e: unknown) => e,
    );
    expect((refused as NixPlanError).code).toBe('stale');
    expect(ran).toHaveLength(1);
    expect(
      await withFreshness(v1.path, { target, now }, log, run(v1.manifest)).catch(
        (e: unknown) => (e as NixPlanError).code,
      ),
    ).toBe('stale');

    // --allow-downgrade: applied, warned, and the record now names the older plan.
    await withFreshness(older.path, { target, now, allowDowngrade: true }, log, run(older.manifest));
    expect(warnings.join('\n')).toMatch(
      /--allow-downgrade: applying anyway: the plan was created at 2026-12-01/,
    );
    expect((JSON.parse(readFileSync(recordPathFor(target), 'utf8')) as LastApplied).createdAt).toBe(
      '2026-12-01T00:00:00Z',
    );
  });

  test('nothing is recorded when the use case fails, or when asked not to (dry-activate)', async () => {
    const target = join(tmp, 'profile');
    await expect(
      withFreshness(newer.path, { target, now }, log, () =>
        Promise.reject(new NixPlanError('nix', 'build failed')),
      ),
    ).rejects.toThrow('build failed');
    expect(existsSync(recordPathFor(target))).toBe(false);
    await withFreshness(
      newer.path,
      { target, now },
      log,
      () => Promise.resolve({ manifest: newer.manifest }),
      false,
    );
    expect(existsSync(recordPathFor(target))).toBe(false);
  });

  test("a use case's refusal names the user's file, not the private copy it read", async () => {
    const damaged = readFileSync(newer.path);
    damaged[damaged.length - 1] = (damaged[damaged.length - 1] ?? 0) ^ 1;
    const file = join(tmp, 'damaged.nixplan');
    writeFileSync(file, damaged);
    const e = await withFreshness(file, { maxAgeMs: 7 * DAY, now }, log, (bundle, name) =>
      relocatePlan(
        bundle,
        { to: '/other/store', output: join(tmp, 'relocated.nixplan'), name },
        { log, runner: new ProcessRunner() },
      ),
    ).catch((x: unknown) => x);
    expect((e as NixPlanError).code).toBe('bundle');
    expect((e as NixPlanError).message).toContain(`'${file}'`);
    expect((e as NixPlanError).message).not.toMatch(/nix-plan-(fresh|relocate)-/);
  });

  test('the plan verified must be the plan checked', async () => {
    const e = await withFreshness(newer.path, { target: join(tmp, 'x'), now }, log, () =>
      Promise.resolve({ manifest: older.manifest }),
    ).catch((x: unknown) => x);
    expect((e as NixPlanError).message).toMatch(/not the plan whose age was checked/);
    expect(existsSync(recordPathFor(join(tmp, 'x')))).toBe(false);
  });

  test('a corrupt record refuses, naming it; --max-age alone needs no record', async () => {
    const target = join(tmp, 'corrupt');
    writeFileSync(recordPathFor(target), '{"version":1');
    const e = await withFreshness(newer.path, { target, now }, log, () =>
      Promise.resolve({ manifest: newer.manifest }),
    ).catch((x: unknown) => x);
    expect((e as NixPlanError).code).toBe('stale');
    expect((e as NixPlanError).message).toContain(`'${recordPathFor(target)}' is unreadable`);
    const old = await withFreshness(older.path, { maxAgeMs: DAY, maxAgeText: '1d', now }, log, () =>
      Promise.resolve({ manifest: older.manifest }),
    ).catch((x: unknown) => (x as NixPlanError).message);
    expect(old).toBe(
      'the plan was created at 2026-12-01T00:00:00Z, 3 days ago: older than --max-age 1d allows',
    );
  });

  test('a stale plan for another realm is refused for its realm: no --max-age makes it importable', async () => {
    const ran: string[] = [];
    const use = (): Promise<{ manifest: BundleManifest }> => {
      ran.push('use case');
      return Promise.resolve({ manifest: older.manifest });
    };
    const stale = { maxAgeMs: DAY, maxAgeText: '1d', now };
    const elsewhere = await withFreshness(
      older.path,
      { ...stale, storeDir: () => Promise.resolve('/other/store') },
      log,
      use,
    ).then(notRefused, (x: unknown) => x as NixPlanError);
    expect(elsewhere.code).toBe('realm');
    expect(elsewhere.message).toBe(
      `'${older.path}' is a plan for the store dir ${STORE}, but this store's dir is /other/store; ` +
        'relocate it first (nix-plan relocate --to /other/store)',
    );
    // In its own realm, the stale refusal stands; the store dir is asked only when refusing.
    let asked = 0;
    const here = await withFreshness(
      older.path,
      { ...stale, storeDir: () => Promise.resolve(STORE).finally(() => asked++) },
      log,
      use,
    ).then(notRefused, (x: unknown) => x as NixPlanError);
    expect(here.code).toBe('stale');
    expect(asked).toBe(1);
    await withFreshness(
      newer.path,
      { maxAgeMs: 7 * DAY, now, storeDir: () => Promise.reject(new Error('asked')) },
      log,
      () => Promise.resolve({ manifest: newer.manifest }),
    );
    expect(ran).toEqual([]);
  });

  test('the record replaces a link planted in its place instead of writing through it', async () => {
    const target = join(tmp, 'linked');
    const victim = join(tmp, 'victim');
    writeFileSync(victim, 'keep me');
    const { symlinkSync } = await import('node:fs');
    symlinkSync(victim, recordPathFor(target));
    await writeLastApplied(
      recordPathFor(target),
      lastAppliedOf(newer.manifest, `sha256:${'d'.repeat(64)}`, '2026-12-04T00:00:00Z'),
    );
    expect(readFileSync(victim, 'utf8')).toBe('keep me');
  });

  test('a plan from the future is applied with a warning about the clocks', async () => {
    warnings.length = 0;
    const future = bundleFile('future.nixplan', draft('2027-01-01T00:00:00Z'));
    await withFreshness(future.path, { target: join(tmp, 'future'), now }, log, () =>
      Promise.resolve({ manifest: future.manifest }),
    );
    expect(warnings.join('\n')).toMatch(/in the future by this machine's clock/);
    // apply and deploy check the plan against the record they read (beside the profile, on the
    // host) before they record it: the same warning, before a record would make every honest
    // plan after it look older.
    warnings.length = 0;
    checkFreshness(future.manifest, undefined, {}, 'web:/nix/var/nix/profiles/system', now(), log);
    expect(warnings).toEqual([
      "the plan says it was created at 2027-01-01T00:00:00Z, in the future by this machine's clock: " +
        'check the clocks of this machine and of the one that evaluated it',
    ]);
    // Ordinary skew says nothing.
    warnings.length = 0;
    const soon = bundleFile(
      'soon.nixplan',
      draft(new Date(now().getTime() + 60_000).toISOString().replace(/\.\d+Z$/, 'Z')),
    );
    checkFreshness(soon.manifest, undefined, {}, 'web:/nix/var/nix/profiles/system', now(), log);
    expect(warnings).toEqual([]);
  });

  test("a host's corrupt record refuses a plan; --allow-downgrade waives it, as its message says", () => {
    warnings.length = 0;
    const plan = bundleFile('corrupt-host.nixplan', draft('2026-12-03T00:00:00Z'));
    const bytes = new Uint8Array(Buffer.from('{"version":1'));
    const target = 'web:/nix/var/nix/profiles/system';
    expect(() => checkFreshness(plan.manifest, bytes, {}, target, now(), log)).toThrow(
      /is unreadable \(not JSON\).*or pass --allow-downgrade/,
    );
    checkFreshness(plan.manifest, bytes, { allowDowngrade: true }, target, now(), log);
    expect(warnings).toEqual([
      expect.stringMatching(
        /^--allow-downgrade: applying anyway: the last-applied record 'web:.*' is unreadable/,
      ),
    ]);
  });
});
