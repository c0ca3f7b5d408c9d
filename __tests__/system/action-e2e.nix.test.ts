// End to end: the built dist/ entrypoints run as the runner runs them (INPUT_* variables,
// GITHUB_OUTPUT, the step summary, a runtime token), with real Nix, the plan travelling through
// a local artifact service that the real @actions/artifact client talks to.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateKeyPair } from '../../src/core/signing.js';
import { promotedArtifactName } from '../../src/action/settings.js';
import { FakeArtifactServer, type FakeRun } from '../support/artifact-server.js';
import {
  buildDist,
  checkout,
  REPO,
  runStep,
  succeeded,
  type ActionEntry,
  type StepResult,
} from '../support/action-step.js';
import { nixVersions, ScratchStore, type NixVersion } from '../support/nix.js';
import { SwitchControl, systemNix } from '../support/nixos-fixture.js';
import { sshdAvailable, SshServer } from '../support/sshd.js';

/** The e2e closure as committed in this repository; the jobs evaluate a checkout of it (see `checkout`). */
const CLOSURE_SOURCE = join(REPO, '.github', 'e2e', 'closure.nix');
const ROOT_NAMES = ['alpha', 'beta', 'gamma'];

const sha256File = (path: string): string =>
  `sha256:${createHash('sha256').update(readFileSync(path)).digest('hex')}`;

/** Empties a realm's store dir (its files are read-only, like a real store's), as a new machine would have it. */
function wipe(storeDir: string): void {
  rmSync(storeDir, { recursive: true, force: true });
}

describe('the actions end to end', () => {
  let server: FakeArtifactServer;
  let dist: string;
  let work: string;

  /** Runs one entrypoint as a step of a job of `run`, against `store`'s Nix and state. */
  /** The closure in a checkout of the run's repository, as actions/checkout leaves it in the workspace. */
  let CLOSURE: string;
  /** The checkout's commit (the run's `GITHUB_SHA`). */
  let commit: string;

  const step = (
    entry: ActionEntry,
    inputs: Record<string, string>,
    run: FakeRun,
    store: ScratchStore,
  ): Promise<StepResult> =>
    runStep({ dist, work, server, env: { GITHUB_SHA: commit } }, entry, inputs, run, store);

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'nix-plan-e2e-'));
    // NIX_PLAN_E2E_DIST reuses a build while iterating; by default the sources are built afresh.
    dist = process.env['NIX_PLAN_E2E_DIST'] ?? join(work, 'dist');
    if (process.env['NIX_PLAN_E2E_DIST'] === undefined) buildDist(dist);
    server = await FakeArtifactServer.start();
    // The plan records the commit and remote of the worktree it evaluated, so evaluate a checkout
    // of the run's repository (not this project's own clone, whose remote is wherever it came from).
    const co = checkout(work, server.repository, { 'closure.nix': readFileSync(CLOSURE_SOURCE) });
    CLOSURE = join(co.dir, 'closure.nix');
    commit = co.commit;
  }, 600_000);

  afterAll(async () => {
    // undefined when the build failed before the server started
    await (server as FakeArtifactServer | undefined)?.close();
    rmSync(work, { recursive: true, force: true });
  });

  describe.each(nixVersions())('Nix $label', (version: NixVersion) => {
    test('plan → realise one shard → promote → realise in the new realm from another run', async () => {
      const run = server.newRun();
      const ciKey = generateKeyPair('e2e-ci-1');
      const betaKey = generateKeyPair('e2e-beta-1');
      const realm = join(mkdtempSync(join(work, 'realm-')), 'store');
      const stores: ScratchStore[] = [];
      const store = (storeDir: string): ScratchStore => {
        const s = new ScratchStore(version, { storeDir });
        stores.push(s);
        return s;
      };
      try {
        // Job 1: evaluate once, publish the plan.
        const planner = store(realm);
        const plan = await step(
          'plan',
          { file: CLOSURE, matrix: '2', 'signing-key': ciKey.secretKey },
          run,
          planner,
        );
        succeeded(plan);
        expect(plan.stdout).toMatch(/^\[command\]\S*nix-instantiate .*closure\.nix$/m);
        const out = plan.outputs;
        const bundle = out['bundle-path'] ?? '';
        expect(out['digest']).toBe(sha256File(bundle));
        expect(Number(out['bytes'])).toBe(readFileSync(bundle).length);
        expect(out['artifact-name']).toBe('plan.nixplan');
        const [stored] = server.artifacts(run);
        expect(stored?.blob?.equals(readFileSync(bundle))).toBe(true);
        expect(out['artifact-id']).toBe(String(stored?.id));
        expect(out['artifact-url']).toBe(
          `https://github.com/${server.repository}/actions/runs/${run.runId}/artifacts/${stored?.id}`,
        );
        const drvPaths = JSON.parse(out['drv-paths'] ?? '') as string[];
        expect([...drvPaths].sort()).toEqual((await planner.instantiate(CLOSURE)).sort());
        expect(Object.keys(JSON.parse(out['out-paths'] ?? '') as object).sort()).toEqual(
          [...drvPaths].sort(),
        );
        expect(Number(out['paths'])).toBeGreaterThanOrEqual(drvPaths.length + 1);
        const matrix = JSON.parse(out['matrix'] ?? '') as { include: { shard: string; roots: string }[] };
        expect(matrix.include.map((e) => e.shard)).toEqual(['1/2', '2/2']);
        expect(matrix.include.flatMap((e) => e.roots.split('\n'))).toEqual(drvPaths);
        expect(plan.summary).toContain('## nix-plan: `plan.nixplan`');
        expect(plan.summary).toContain('### How to realise this plan');
        expect(plan.summary).toContain(out['digest']);
        // Where the plan came from, signed with it, and shown to whoever approves the next job.
        expect(plan.summary).toContain(`| repository | \`${server.repository}\` |`);
        expect(plan.summary).toContain(`| commit | \`${commit}\` |`);
        expect(plan.summary).toContain(
          `| run | [run ${run.runId}, attempt 1](https://github.com/${server.repository}/actions/runs/${run.runId}/attempts/1) |`,
        );
        expect(plan.summary).toContain('| trust | signed in this job by `e2e-ci-1` |');
        // The secret is only ever printed as the mask command that hides it.
        const secretLines = plan.stdout
          .split('\n')
          .filter((l) => l.includes(ciKey.secretKey.split(':')[1] ?? '!'));
        expect(secretLines.every((l) => l.startsWith('::add-mask::'))).toBe(true);
        expect(plan.summary).not.toContain(ciKey.secretKey);

        // Job 2, another machine: a fresh store in the same realm builds shard 1/2 without evaluating.
        wipe(realm);
        const builder = store(realm);
        const realise = await step(
          'realise',
          { digest: out['digest'] ?? '', shard: '1/2', 'trusted-keys': ciKey.publicKey },
          run,
          builder,
        );
        succeeded(realise);
        const built = JSON.parse(realise.outputs['out-paths'] ?? '') as Record<
          string,
          Record<string, string>
        >;
        expect(Object.keys(built)).toEqual(matrix.include[0]?.roots.split('\n'));
        const valid = await builder.validPaths();
        for (const path of Object.values(built).flatMap((o) => Object.values(o))) {
          expect(valid).toContain(path);
          expect(readFileSync(path, 'utf8')).toMatch(new RegExp(`^(${ROOT_NAMES.join('|')})`));
        }
        expect(realise.summary).toContain('(shard 1/2)');
        // Both what proved it (the key) and what pinned its bytes (the digest) are said.
        expect(realise.summary).toContain(
          `Plan **verified**: signed by trusted key \`e2e-ci-1\`; its bytes are the ones \`digest\` pins (\`${out['digest'] ?? ''}\`).`,
        );
        // Nix's build log reaches the job log, inside a window where workflow commands are off.
        const printed = realise.stdout.indexOf('::warning::printed by a build');
        const stop = /^::stop-commands::([0-9a-f-]{36})$/m.exec(realise.stdout);
        expect(printed).toBeGreaterThan(-1);
        expect(stop?.index).toBeLessThan(printed);
        const resumed = realise.stdout.indexOf(`::${stop?.[1]}::`, printed);
        expect(resumed).toBeGreaterThan(printed);
        // …in a collapsible group, opened before commands stop and closed after they resume.
        expect(realise.stdout.lastIndexOf('::group::Nix build log', stop?.index)).toBeGreaterThan(-1);
        expect(realise.stdout.indexOf('::endgroup::', resumed)).toBeGreaterThan(resumed);
        // Every Nix command went through @actions/exec, which prints its [command] line; the
        // streamed import through the streaming runner prints the same.
        expect(realise.stdout).toMatch(/^\[command\]\S*nix-store --realise /m);
        expect(realise.stdout).toMatch(/^\[command\]\S*nix-store --check-validity /m);
        expect(realise.stdout).toMatch(/^\[command\]nix-store --import$/m);

        // Job 3 (behind an environment): relocate into a new realm, re-sign, publish.
        const betaRealm = join(mkdtempSync(join(work, 'beta-')), 'store');
        const promote = await step(
          'promote',
          { to: betaRealm, 'trusted-keys': ciKey.publicKey, 'signing-key': betaKey.secretKey },
          run,
          builder,
        );
        succeeded(promote);
        const promotedName = promotedArtifactName('plan.nixplan', betaRealm);
        expect(promote.outputs['artifact-name']).toBe(promotedName);
        expect(promote.outputs['digest']).toBe(sha256File(promote.outputs['bundle-path'] ?? ''));
        const betaDrvs = JSON.parse(promote.outputs['drv-paths'] ?? '') as string[];
        expect(betaDrvs.every((p) => p.startsWith(`${betaRealm}/`))).toBe(true);
        expect(promote.summary).toContain(`### Relocation \`${realm}\` → \`${betaRealm}\``);
        // The promoted plan says, under the beta key, what it came from and who had signed that.
        expect(promote.summary).toContain(`| promotion 1 | from \`${realm}\` at `);
        expect(promote.summary).toMatch(/, input verified by `e2e-ci-1` \(`sha256:[0-9a-f]{64}`\) \|/);

        // A later run realises the promoted plan in the new realm, fetching it across runs.
        const later = server.newRun();
        const beta = store(betaRealm);
        const final = await step(
          'realise',
          {
            'artifact-name': promotedName,
            'run-id': String(run.runId),
            'github-token': server.apiToken(),
            repository: server.repository,
            digest: promote.outputs['digest'] ?? '',
            'trusted-keys': betaKey.publicKey,
          },
          later,
          beta,
        );
        succeeded(final);
        const betaBuilt = JSON.parse(final.outputs['out-paths'] ?? '') as Record<
          string,
          Record<string, string>
        >;
        expect(Object.keys(betaBuilt).sort()).toEqual([...betaDrvs].sort());
        for (const path of Object.values(betaBuilt).flatMap((o) => Object.values(o))) {
          expect(path.startsWith(`${betaRealm}/`)).toBe(true);
          expect(existsSync(path)).toBe(true);
        }
        // The promoted plan is what evaluating natively in that realm gives.
        expect((await beta.instantiate(CLOSURE)).sort()).toEqual([...betaDrvs].sort());

        // The next stage accepts only what beta signed, and relocates a relocated plan faithfully.
        const prodKey = generateKeyPair('e2e-prod-1');
        const prodRealm = join(mkdtempSync(join(work, 'prod-')), 'store');
        const refused = await step(
          'promote',
          { 'artifact-name': promotedName, to: prodRealm, 'trusted-keys': prodKey.publicKey },
          run,
          beta,
        );
        expect(refused.code).toBe(1);
        expect(refused.errors).toHaveLength(1);
        expect(refused.errors[0]).toMatch(
          /not signed by a trusted key \(trusted: 'e2e-prod-1'; signed by: 'e2e-beta-1'\)/,
        );
        // Its summary says so too, for whoever reads the run's summaries.
        expect(refused.summary).toMatch(
          /^## nix-plan promote: failed\n\n\*\*This step failed\*\* \(signature\): `[^`]*not signed by a trusted key/,
        );
        expect(server.artifacts(run).map((a) => a.name)).not.toContain(
          promotedArtifactName(promotedName, prodRealm),
        );
        const prod = await step(
          'promote',
          {
            'artifact-name': promotedName,
            to: prodRealm,
            'trusted-keys': betaKey.publicKey,
            'signing-key': prodKey.secretKey,
            'promoted-artifact-name': 'prod.nixplan',
          },
          run,
          beta,
        );
        succeeded(prod);
        expect(prod.outputs['artifact-name']).toBe('prod.nixplan');
        const prodDrvs = JSON.parse(prod.outputs['drv-paths'] ?? '') as string[];
        expect((await store(prodRealm).instantiate(CLOSURE)).sort()).toEqual([...prodDrvs].sort());
      } finally {
        for (const s of stores) s.dispose();
      }
      // Six action runs, builds in two realms and three evaluations: more than the default
      // 120 s leaves room for on a busy 2-core machine.
    }, 300_000);
  });

  test('self-hosted: plan and realise through a shared directory, and upload: false publishes nothing', async () => {
    const version = nixVersions()[0] as NixVersion;
    const run = server.newRun();
    const shared = mkdtempSync(join(work, 'shared-'));
    const realm = join(mkdtempSync(join(work, 'selfhosted-')), 'store');
    const planner = new ScratchStore(version, { storeDir: realm });
    let builder: ScratchStore | undefined;
    try {
      const local = await step('plan', { file: CLOSURE, upload: 'false' }, run, planner);
      succeeded(local);
      expect(local.outputs['artifact-name']).toBeUndefined();
      expect(existsSync(local.outputs['bundle-path'] ?? '')).toBe(true);
      // Its summary says how to realise it from where it is, not from an artifact that is not there.
      expect(local.summary).toContain('It was not published (`upload: false`)');
      expect(local.summary).toContain('bundle: ${{ steps.');
      expect(local.summary).toContain(`nix-plan realise ${local.outputs['bundle-path'] ?? ''}\n`);
      expect(local.summary).not.toContain('artifact-name:');
      // A local bundle realises without any transport (and the inputs' defaults do not get in the way).
      const fromFile = await step(
        'realise',
        { bundle: local.outputs['bundle-path'] ?? '', digest: local.outputs['digest'] ?? '', roots: '0' },
        run,
        planner,
      );
      succeeded(fromFile);
      expect(Object.keys(JSON.parse(fromFile.outputs['out-paths'] ?? '') as object)).toHaveLength(1);
      const plan = await step('plan', { file: CLOSURE, 'artifact-dir': shared }, run, planner);
      succeeded(plan);
      // The snippet fetches from the directory, with the inputs the realise steps below are given.
      expect(plan.summary).toContain(
        `    artifact-dir: ${JSON.stringify(shared)}\n    artifact-name: plan.nixplan\n    digest: ${plan.outputs['digest'] ?? ''}\n`,
      );
      expect(plan.summary).toContain(`nix-plan realise ${join(shared, String(run.runId), 'plan.nixplan')}\n`);
      expect(server.artifacts(run)).toEqual([]); // nothing went to the artifact service
      wipe(realm);
      builder = new ScratchStore(version, { storeDir: realm });
      // no-check-sigs is about build outputs, not where a plan comes from: without digest or
      // trusted-keys the shared directory is unpinned, and the step fails before reading it.
      const loose = await step(
        'realise',
        { 'artifact-dir': shared, 'no-check-sigs': 'true', roots: 'gamma' },
        run,
        builder,
      );
      expect(loose.code).toBe(1);
      expect(loose.errors[0]).toMatch(/^input "trusted-keys": .*"allow-unpinned-source: true"/);
      expect(await builder.validPaths()).toEqual([]);
      // A shared directory is writable by others: the plan's digest proves it is this one.
      const realise = await step(
        'realise',
        { 'artifact-dir': shared, digest: plan.outputs['digest'] ?? '', roots: 'gamma' },
        run,
        builder,
      );
      succeeded(realise);
      const built = JSON.parse(realise.outputs['out-paths'] ?? '') as Record<string, Record<string, string>>;
      expect(Object.keys(built)).toHaveLength(1);
      expect(readFileSync(Object.values(built)[0]?.['out'] ?? '', 'utf8')).toBe('gamma\n');
      // allow-unpinned-source takes whatever is there, on purpose: warned in the log and the summary.
      const unpinned = await step(
        'realise',
        { 'artifact-dir': shared, 'allow-unpinned-source': 'true', roots: 'gamma' },
        run,
        builder,
      );
      succeeded(unpinned);
      expect(unpinned.stdout).toContain(
        '::warning::allow-unpinned-source: taking the plan from a shared directory ("artifact-dir") with neither',
      );
      expect(unpinned.summary).toContain('**NOT PINNED (allow-unpinned-source)**');
      expect(realise.summary).not.toContain('NOT PINNED');
    } finally {
      planner.dispose();
      builder?.dispose();
    }
  });

  (sshdAvailable() ? test : test.skip)(
    'deploy: plan on CI, then deploy over SSH to a host with only Nix; the key never reaches the log',
    async () => {
      const version = nixVersions()[0] as NixVersion;
      const run = server.newRun();
      const ciKey = generateKeyPair('e2e-deploy-ci-1');
      const root = mkdtempSync(join(work, 'deploy-'));
      const realm = join(root, 'store');
      const control = new SwitchControl(join(root, 'control'));
      mkdirSync(control.dir);
      const profile = join(root, 'profiles', 'system');
      writeFileSync(join(root, 'system.nix'), systemNix());
      writeFileSync(
        join(root, 'host.nix'),
        `import ./system.nix { label = "e2e"; control = "${control.dir}"; profile = "${profile}"; }`,
      );
      const planner = new ScratchStore(version, { storeDir: realm });
      let host: ScratchStore | undefined;
      let sshd: SshServer | undefined;
      try {
        const plan = await step(
          'plan',
          { file: join(root, 'host.nix'), 'signing-key': ciKey.secretKey, 'artifact-name': 'host.nixplan' },
          run,
          planner,
        );
        succeeded(plan);
        // The host: an empty store in the realm, reached only over SSH.
        wipe(realm);
        host = new ScratchStore(version, { storeDir: realm, root: join(root, 'host') });
        const tmp = join(root, 'host-tmp');
        mkdirSync(tmp);
        sshd = await SshServer.start([
          { name: 'host', env: { ...host.env, PATH: '/usr/bin:/bin:/usr/sbin:/sbin', TMPDIR: tmp } },
        ]);
        const port = sshd.ports.get('host') ?? 0;
        const key = readFileSync(join(sshd.dir, 'id_ed25519'), 'utf8');
        const knownHosts = readFileSync(join(sshd.dir, 'known_hosts'), 'utf8');
        const inputs = {
          'artifact-name': 'host.nixplan',
          digest: plan.outputs['digest'] ?? '',
          'trusted-keys': ciKey.publicKey,
          hosts: `e2e=root@127.0.0.1:${port}`,
          'ssh-private-key': key,
          profile,
          'confirm-timeout': '10',
        };

        // Without host keys (and no explicit opt-out) nothing happens.
        const noKeys = await step('deploy', inputs, run, planner);
        expect(noKeys.code).toBe(1);
        expect(noKeys.errors[0]).toMatch(/^input "known-hosts": is required/);
        expect(sshd.sessions()).toEqual([]);

        const deployed = await step('deploy', { ...inputs, 'known-hosts': knownHosts }, run, planner);
        succeeded(deployed);
        const result = JSON.parse(deployed.outputs['result'] ?? '') as {
          ok: boolean;
          hosts: Record<string, unknown>[];
        };
        expect(result.ok).toBe(true);
        expect(result.hosts[0]).toMatchObject({
          name: 'e2e',
          outcome: 'switched',
          generation: 1,
          confirmed: true,
        });
        expect(control.calls()).toEqual([`e2e switch ok system-1-link`]);
        expect(deployed.summary).toContain('## nix-plan deploy: `host.nixplan`');
        expect(deployed.summary).toMatch(/\| e2e \| 1 \| ✅ switched \|/);
        // What changed on the host: nothing to compare with on its first generation, said so.
        expect(deployed.summary).toContain('### Changes on `e2e` (switch)');
        expect(deployed.summary).toMatch(/^no generation yet → `.*-nixos-system-e2e-1\.0`$/m);
        expect(deployed.summary).toMatch(/^first deployment: the profile has no generation to compare with/m);
        // …and that there is nothing before it to go back to (a rollback would be refused).
        expect(deployed.summary).toMatch(
          /^### To undo\n\n`e2e` has the first generation of its profile: there is none before it to roll back to\.$/m,
        );
        expect(deployed.summary).not.toContain('on a new generation now');
        // Who signed the plan and the run that made it, for whoever approved this job.
        expect(deployed.summary).toContain('**verified**: signed by trusted key `e2e-deploy-ci-1`');
        expect(deployed.summary).toContain(`| repository | \`${server.repository}\` |`);
        // switch-to-configuration's output reaches the job log.
        expect(deployed.stdout).toContain('e2e: switch-to-configuration switch');
        // …and nothing after it that reads as a switch that was killed.
        expect(deployed.stdout).not.toMatch(/^Terminated$/m);
        // The key is only ever printed inside the mask commands, and its file is gone.
        const keyLines = key.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('-----'));
        for (const line of keyLines) {
          const printed = deployed.stdout.split('\n').filter((l) => l.includes(line));
          expect(printed.every((l) => l === `::add-mask::${line}`)).toBe(true);
        }
        expect(deployed.summary).not.toContain(keyLines[0] ?? '!');
        const jobTemps = readdirSync(work)
          .filter((d) => d.startsWith('deploy-'))
          .map((d) => join(work, d, 'temp', 'nix-plan'));
        for (const t of jobTemps.filter((t) => existsSync(t)))
          expect(readdirSync(t).filter((d) => d.startsWith('ssh-'))).toEqual([]);

        // A host key that is not the host's: refused by ssh, nothing sent, nothing changed.
        const other = readFileSync(join(sshd.dir, 'id_ed25519.pub'), 'utf8').split(' ').slice(0, 2).join(' ');
        sshd.clearSessions();
        const impostor = await step(
          'deploy',
          { ...inputs, 'known-hosts': `[127.0.0.1]:${port} ${other}\n` },
          run,
          planner,
        );
        expect(impostor.code).toBe(1);
        expect(impostor.errors[0]).toMatch(
          /Host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED/,
        );
        expect(sshd.sessions()).toEqual([]);
        expect(readlinkSync(profile)).toBe('system-1-link');

        // rollback: true fetches no plan and takes the host back one generation. A second
        // generation of the same system, made by hand, is enough to go back from.
        symlinkSync(readlinkSync(`${profile}-1-link`), `${profile}-2-link`);
        rmSync(profile);
        symlinkSync('system-2-link', profile);
        control.reset();
        const rolled = await step(
          'deploy',
          { ...inputs, 'known-hosts': knownHosts, rollback: 'true', 'artifact-name': 'nothing-there' },
          run,
          planner,
        );
        succeeded(rolled);
        expect(JSON.parse(rolled.outputs['result'] ?? '')).toMatchObject({
          rollback: true,
          ok: true,
          hosts: [{ name: 'e2e', outcome: 'switched', generation: 1, rollback: { from: 2, to: 1 } }],
        });
        expect(readlinkSync(profile)).toBe('system-1-link');
        expect(control.calls()).toEqual(['e2e switch ok system-1-link']);
        expect(rolled.summary).toContain(`## nix-plan deploy: rollback of \`${profile}\``);
        expect(rolled.summary).toContain('- `e2e`: rolled back from generation 2 to 1 (switch)');
        expect(rolled.summary).toMatch(/\| e2e \| 1 \(was 2\) \| ✅ switched \|/);
        expect(rolled.summary).toContain('the host already runs this system: no package changes');
        expect(rolled.summary).not.toContain('### To undo');

        // build-on: local builds the system on the runner, from the verified plan, and sends the
        // host its outputs: the runner's store (which only evaluated) ends up holding the system.
        const system = readlinkSync(`${profile}-1-link`);
        expect(await planner.validPaths()).not.toContain(system);
        control.reset();
        const local = await step(
          'deploy',
          { ...inputs, 'known-hosts': knownHosts, 'build-on': 'local' },
          run,
          planner,
        );
        succeeded(local);
        expect(JSON.parse(local.outputs['result'] ?? '')).toMatchObject({
          ok: true,
          hosts: [{ name: 'e2e', outcome: 'switched', confirmed: true }],
        });
        expect(await planner.validPaths()).toContain(system);
        expect(control.calls()).toEqual([`e2e switch ok ${readlinkSync(profile)}`]);
        expect(local.summary).toMatch(/\| e2e \| 2 \(was 1\) \| ✅ switched \|/);

        // A new system whose switch fails: the host goes back to generation 2 and re-activates it,
        // and the step fails saying so, with the host's own words in its summary.
        writeFileSync(
          join(root, 'host-next.nix'),
          `import ./system.nix { label = "e2e"; control = "${control.dir}"; profile = "${profile}"; packages = { hello = "2.0"; }; }`,
        );
        const next = await step(
          'plan',
          {
            file: join(root, 'host-next.nix'),
            'signing-key': ciKey.secretKey,
            'artifact-name': 'next.nixplan',
          },
          run,
          planner,
        );
        succeeded(next);
        const working = readlinkSync(`${profile}-2-link`);
        control.reset();
        control.mode('e2e', 'fail-once');
        const failed = await step(
          'deploy',
          {
            ...inputs,
            'known-hosts': knownHosts,
            'artifact-name': 'next.nixplan',
            digest: next.outputs['digest'] ?? '',
          },
          run,
          planner,
        );
        expect(failed.code).toBe(1);
        expect(failed.errors).toHaveLength(1);
        expect(failed.errors[0]).toMatch(
          /^switch-to-configuration switch exited with 1: re-activated the previous generation 2 and removed system-3-link; the current generation is 2/,
        );
        // The new generation's switch failed and the previous one's succeeded: the host runs it again.
        expect(control.calls()).toEqual([
          'e2e switch fail-once system-3-link',
          'e2e switch ok system-2-link',
        ]);
        expect(readlinkSync(profile)).toBe('system-2-link');
        expect(readlinkSync(`${profile}-2-link`)).toBe(working);
        expect(existsSync(`${profile}-3-link`)).toBe(false);
        expect(failed.stdout).toContain('e2e: a unit failed to start');
        const outcome = JSON.parse(failed.outputs['result'] ?? '') as {
          ok: boolean;
          hosts: Record<string, unknown>[];
        };
        expect(outcome.ok).toBe(false);
        expect(outcome.hosts).toHaveLength(1);
        expect(outcome.hosts[0]).toMatchObject({
          name: 'e2e',
          outcome: 'rolled-back',
          previousGeneration: 2,
          currentSystem: working,
          error: { code: 'activation' },
        });
        expect(failed.summary).toContain('## nix-plan deploy: `next.nixplan`');
        // The row names the system the host runs now (the old one), never the plan's.
        const row = failed.summary.split('\n').find((l) => l.startsWith('| e2e |')) ?? '';
        expect(row).toMatch(/^\| e2e \| 2 \| ❌ failed, rolled back to 2 \| /);
        expect(row).toContain(working);
        expect(row).not.toContain(String(outcome.hosts[0]?.['system']));
        expect(failed.summary).toMatch(
          /^### Failures\n\n- `e2e`: `switch-to-configuration switch exited with 1: re-activated the previous generation 2 and removed system-3-link/m,
        );
        // Nothing to undo: the host is where it was before this deploy.
        expect(failed.summary).not.toContain('### To undo');
      } finally {
        sshd?.stop();
        planner.dispose();
        host?.dispose();
      }
    },
    300_000,
  );

  describe('faults', () => {
    const version = nixVersions()[0] as NixVersion;
    let run: FakeRun;
    let realm: string;
    let digest: string;
    const stores: ScratchStore[] = [];

    beforeAll(async () => {
      run = server.newRun();
      realm = join(mkdtempSync(join(work, 'faults-')), 'store');
      const planner = new ScratchStore(version, { storeDir: realm });
      stores.push(planner);
      // A 5xx from the service, then success: the client retries and the step succeeds.
      server.inject({ kind: 'twirp-5xx', times: 1, method: 'CreateArtifact' });
      const seen = server.requests.length;
      const plan = await step('plan', { file: CLOSURE, 'artifact-name': 'faults.nixplan' }, run, planner);
      succeeded(plan);
      expect(server.requests.slice(seen).filter((r) => r.status === 500)).toHaveLength(1);
      digest = plan.outputs['digest'] ?? '';
      wipe(realm);
    }, 300_000);

    afterAll(() => {
      server.clearFaults();
      for (const s of stores) s.dispose();
    });

    /** Realises the plan on a fresh machine under a fault; it must fail and import nothing. */
    async function failsCleanly(
      inputs: Record<string, string>,
      message: RegExp,
      runOf: FakeRun = run,
    ): Promise<void> {
      const builder = new ScratchStore(version, { storeDir: realm });
      stores.push(builder);
      try {
        const result = await step(
          'realise',
          { 'artifact-name': 'faults.nixplan', ...inputs },
          runOf,
          builder,
        );
        expect(result.code).toBe(1);
        expect(result.errors).toHaveLength(1);
        expect(result.errors[0]).toMatch(message);
        expect(result.outputs['out-paths']).toBeUndefined();
        expect(result.summary).toMatch(/^## nix-plan realise: failed\n/);
        expect(await builder.validPaths()).toEqual([]);
      } finally {
        server.clearFaults();
        wipe(realm);
      }
    }

    test('an artifact name already used in the run fails the second plan step, naming artifact-name', async () => {
      const planner = new ScratchStore(version, { storeDir: realm });
      stores.push(planner);
      const again = await step('plan', { file: CLOSURE, 'artifact-name': 'faults.nixplan' }, run, planner);
      expect(again.code).toBe(1);
      expect(again.errors[0]).toMatch(
        /already uploaded in this run: give each plan job its own artifact-name/,
      );
      expect(server.artifacts(run).filter((a) => a.name === 'faults.nixplan')).toHaveLength(1);
      wipe(realm);
    });

    test.each([
      [
        'alter-download',
        /"faults.nixplan" arrived damaged: its digest is sha256:\w+ but sha256:\w+ was expected/,
      ],
      ['truncate-download', /"faults.nixplan" arrived damaged/],
    ] as const)('%s: the step fails and nothing is imported', async (kind, message) => {
      server.inject({ kind });
      await failsCleanly({}, message);
    });

    test('a damaged download is caught by the pinned digest too', async () => {
      server.inject({ kind: 'alter-download' });
      await failsCleanly({ digest }, /arrived damaged/);
    });

    test('an expired runtime token: the step fails with a token hint and nothing is imported', async () => {
      server.inject({ kind: 'expired-token' });
      await failsCleanly({}, /token was refused/);
    });

    test('an expired API token for a cross-run download fails the same way', async () => {
      server.inject({ kind: 'expired-token' });
      await failsCleanly(
        { 'run-id': String(run.runId), 'github-token': server.apiToken(), digest },
        /token was refused/,
        server.newRun(),
      );
    });

    test('a dead signed URL: the step fails after the client gives up, and nothing is imported', async () => {
      server.inject({ kind: 'dead-signed-url' });
      await failsCleanly({}, /downloading artifact "faults.nixplan" failed: the storage URL kept failing/);
    }, 120_000);

    test('a bad input fails before any work, naming the input and the accepted values', async () => {
      await failsCleanly({ shard: '3/2' }, /^input "shard": .*accepted: INDEX\/COUNT/);
    });
  });
});
