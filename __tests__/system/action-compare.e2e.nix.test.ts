// `compare-to` end to end: the built dist/ entrypoints of plan and promote, run as the runner runs
// them, compare with the plan of an earlier successful run on the default branch (`latest`) found
// through the local artifact service, and their summaries tell a reviewer what changes, where
// each plan came from and who signed it, with a hostile root name escaped everywhere.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateKeyPair } from '../../src/core/signing.js';
import { promotedArtifactName } from '../../src/action/settings.js';
import { FakeArtifactServer } from '../support/artifact-server.js';
import { buildDist, REPO, runStep, succeeded } from '../support/action-step.js';
import { nixVersions, ScratchStore, type NixVersion } from '../support/nix.js';

const FIXTURE = join(REPO, '__tests__', 'fixtures', 'diff', 'default.nix');
/** A root name a forger would pick: HTML, a pipe, backticks, a mention, a link. */
const HOSTILE = '<img src=x onerror=alert(1)>|`@admin [x](https://evil.example)';
const ATTRIBUTE = `"${HOSTILE.replace(/"/g, '\\"')}"`;

/** The summary with every code span taken out: what GitHub would render as Markdown/HTML. */
const outsideCode = (md: string): string => md.replace(/(`+)[\s\S]*?\1/g, '');

/** Each table's rows must split into as many cells as its header (no value broke a row). */
function tablesAreWhole(md: string): void {
  let width: number | undefined;
  for (const line of md.split('\n')) {
    if (!line.startsWith('|')) {
      width = undefined;
      continue;
    }
    const cells = line.split(/(?<!\\)\|/).length;
    width ??= cells;
    expect(cells).toBe(width);
  }
}

describe('compare-to end to end', () => {
  const version = nixVersions()[0] as NixVersion;
  let server: FakeArtifactServer;
  let dist: string;
  let work: string;
  const stores: ScratchStore[] = [];

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'nix-plan-compare-e2e-'));
    dist = process.env['NIX_PLAN_E2E_DIST'] ?? join(work, 'dist');
    if (process.env['NIX_PLAN_E2E_DIST'] === undefined) buildDist(dist);
    server = await FakeArtifactServer.start();
  }, 600_000);

  afterAll(async () => {
    await (server as FakeArtifactServer | undefined)?.close();
    for (const s of stores) s.dispose();
    rmSync(work, { recursive: true, force: true });
  });

  test('plan and promote summaries against the latest successful run on the default branch', async () => {
    const context = { dist, work, server };
    const realm = join(mkdtempSync(join(work, 'realm-')), 'store');
    const beta = join(mkdtempSync(join(work, 'beta-')), 'store');
    const store = new ScratchStore(version, { storeDir: realm });
    stores.push(store);
    const ci = generateKeyPair('e2e-ci-1');
    const betaKey = generateKeyPair('e2e-beta-1');
    const file = (variant: string): string => {
      const path = join(work, `${variant}.nix`);
      writeFileSync(
        path,
        `let p = import ${FIXTURE} { variant = "${variant}"; }; in { app = p.app; ${ATTRIBUTE} = p.tools; }\n`,
      );
      return path;
    };
    const planInputs = (variant: string): Record<string, string> => ({
      file: file(variant),
      attributes: `app\n${ATTRIBUTE}`,
      'signing-key': ci.secretKey,
    });

    // An earlier run on main: planned, promoted to beta, and successful.
    const earlier = server.newRun();
    const first = await runStep(context, 'plan', planInputs('old'), earlier, store);
    succeeded(first);
    const promotedFirst = await runStep(
      context,
      'promote',
      { to: beta, 'trusted-keys': ci.publicKey, 'signing-key': betaKey.secretKey },
      earlier,
      store,
    );
    succeeded(promotedFirst);
    server.finishRun(earlier, 'success');
    // A later failed run on main: never compared with.
    const failed = server.newRun();
    succeeded(await runStep(context, 'plan', planInputs('new'), failed, store));
    server.finishRun(failed, 'failure');

    // This run: plan the new variant and compare with the latest successful one.
    const current = server.newRun();
    const token = server.apiToken();
    const plan = await runStep(
      context,
      'plan',
      { ...planInputs('new'), 'compare-to': 'latest', 'github-token': token, 'trusted-keys': ci.publicKey },
      current,
      store,
    );
    succeeded(plan);
    const md = plan.summary;
    expect(md).toContain(
      `### Changes against \`plan.nixplan\` from the latest successful run on \`main\`: [run ${earlier.runId}](https://github.com/${server.repository}/actions/runs/${earlier.runId})`,
    );
    expect(md).toContain(
      '**1 version change (1 upgrade), 1 added, 1 removed, 6 rebuilt**; derivations 9 → 9 (8 new, 8 gone).',
    );
    expect(md).toContain(
      '**To build**: on a host that realised the compared plan, the outputs of the 8 new derivations (built, or substituted where a binary cache has them); the other 1 it has already.',
    );
    expect(md).toContain('| `openssl` | ⬆ upgrade | `3.0.12 → 3.0.13` |  |');
    expect(md).toContain('<details><summary>Added and removed packages (2)</summary>');
    expect(md).toContain('| `tool` | rebuilt | `1.0` | `outputs dev, out → lib, out` |');
    expect(md).toContain('<details><summary>Rebuilt at the same version (an input changed) (6)</summary>');
    expect(md).toContain('| origin | this plan | compared plan |');
    expect(md).toContain(
      '| trust | signed in this job by `e2e-ci-1` | verified: signed by trusted key `e2e-ci-1` |',
    );
    // The hostile root name appears, but only inside code spans, and breaks no table.
    expect(md).toContain('\\|');
    expect(outsideCode(md)).not.toMatch(/<img|@admin|\]\(https:\/\/evil/);
    tablesAreWhole(md);
    expect(plan.outputs['changed']).toBe('true');
    expect(JSON.parse(plan.outputs['changes'] ?? '')).toMatchObject({
      upgrade: 1,
      added: 1,
      removed: 1,
      rebuilt: 6,
    });
    // The token never reaches the log in the clear.
    expect(
      plan.stdout
        .split('\n')
        .filter((l) => l.includes(token))
        .every((l) => l.startsWith('::add-mask::')),
    ).toBe(true);

    // The same plan against its own bundle: no changes.
    const same = await runStep(
      context,
      'plan',
      {
        ...planInputs('new'),
        'artifact-name': 'again.nixplan',
        'compare-to': plan.outputs['bundle-path'] ?? '',
      },
      current,
      store,
    );
    succeeded(same);
    expect(same.summary).toContain('**No changes**: the same 9 derivations and roots.');
    expect(same.outputs['changed']).toBe('false');

    // include: outputs and no signing-key: the build outputs this job realised are proven to no
    // one else, but the job is their author, so its plan is compared all the same and the
    // reviewer is told, in the Changes section and in this plan's trust row.
    const own = await runStep(
      context,
      'plan',
      {
        file: file('new'),
        attributes: ATTRIBUTE,
        include: 'outputs',
        'artifact-name': 'outputs.nixplan',
        'compare-to': plan.outputs['bundle-path'] ?? '',
      },
      current,
      store,
    );
    succeeded(own);
    const om = own.summary;
    // The root's output closure is its one output (the fixture's builds refer to nothing).
    expect(om).toContain('**NOT CHECKED: 1 unproven (built by this job)**: this plan carries 1 build output');
    expect(om).toContain(
      '| trust | unsigned; **NOT CHECKED: 1 unproven (built by this job)** | signatures: 1 (not verified) |',
    );
    expect(own.outputs['changed']).toBe('true');
    expect(om).toContain('<details><summary>Roots (1 of 2 changed)</summary>');
    expect(om).not.toContain('refused');
    expect(outsideCode(om)).not.toMatch(/<img|@admin|\]\(https:\/\/evil/);
    tablesAreWhole(om);

    // Promote this run's plan into beta, compared with the previous promotion into beta.
    const promoted = await runStep(
      context,
      'promote',
      {
        to: beta,
        'trusted-keys': ci.publicKey,
        'signing-key': betaKey.secretKey,
        'compare-to': 'latest',
        'github-token': token,
      },
      current,
      store,
    );
    succeeded(promoted);
    const pm = promoted.summary;
    expect(pm).toContain(
      `Promoted the artifact \`plan.nixplan\` of run ${current.runId} (this run) from \`${realm}\` into \`${beta}\`; the input was **verified**: signed by trusted key \`e2e-ci-1\`.`,
    );
    expect(pm).toContain(
      `### Changes against \`${promotedArtifactName('plan.nixplan', beta)}\` from the latest successful run on \`main\``,
    );
    expect(pm).toContain('| `openssl` | ⬆ upgrade | `3.0.12 → 3.0.13` |  |');
    // The previous promotion was signed with this realm's own key, which vouches for it.
    expect(pm).toContain(
      '| trust | signed in this job by `e2e-beta-1` | verified: signed by trusted key `e2e-beta-1` |',
    );
    expect(outsideCode(pm)).not.toMatch(/<img|@admin|\]\(https:\/\/evil/);
    tablesAreWhole(pm);
    expect(promoted.outputs['changed']).toBe('true');
  }, 600_000);

  test('a compare-to artifact that is not there fails the step naming it', async () => {
    const realm = join(mkdtempSync(join(work, 'missing-')), 'store');
    const store = new ScratchStore(version, { storeDir: realm });
    stores.push(store);
    const run = server.newRun();
    // A copy outside any git worktree: what this project's own clone holds must not matter.
    const closure = join(mkdtempSync(join(work, 'closure-')), 'closure.nix');
    copyFileSync(join(REPO, '.github', 'e2e', 'closure.nix'), closure);
    const result = await runStep(
      { dist, work, server },
      'plan',
      { file: closure, 'compare-to': 'nowhere.nixplan' },
      run,
      store,
    );
    expect(result.code).toBe(1);
    expect(result.errors[0]).toMatch(
      /^compare-to: finding artifact "nowhere\.nixplan" failed: not found: check the artifact name/,
    );
  }, 300_000);
});
