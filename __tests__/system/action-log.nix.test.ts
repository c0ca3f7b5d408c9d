// The job log of a built action entrypoint, read as GitHub's runner reads it: a plan's labels and
// what a deploy host sends reach the log, and none of it may issue a workflow command (an error
// annotation, a mask, `stop-commands`, an output). The host here is a stand-in `ssh` on PATH that
// answers the probe as a host would, then fails noisily.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../../src/app/deps.js';
import { exportPlan } from '../../src/app/export.js';
import { fileDigest } from '../../src/app/files.js';
import { FakeArtifactServer } from '../support/artifact-server.js';
import { buildDist, runStep } from '../support/action-step.js';
import { forgeManifest } from '../support/craft.js';
import { nixVersions, ScratchStore } from '../support/nix.js';
import { systemNix } from '../support/nixos-fixture.js';
import { workflowCommands } from '../support/workflow-commands.js';

const versions = nixVersions();
const describeNix = versions.length > 0 ? describe : describe.skip;

/** A label a pull request could give its configuration: one line, no control character. */
const LABEL = '##[error]forged by the plan ##[stop-commands]x';

/**
 * `ssh` as a hostile host: the probe gets a well-formed answer (`store-dir` from the
 * environment); any other phase reads its input and fails, its stderr written to be commands.
 */
const FAKE_SSH = `#!/bin/sh
for last; do :; done
phase=$(printf '%s' "$last" | sed -n "s/.*nix-plan-host'\\{0,1\\} '\\{0,1\\}\\([a-z-]*\\).*/\\1/p" | tail -n 1)
if [ "$phase" = probe ]; then
  for l in 'protocol 1' 'uid 0' 'nix nix-store (Nix) 2.34.0' "store-dir \\"$FAKE_STORE_DIR\\"" 'systemd 0' 'zstd 0' end; do
    printf '@nix-plan %s\\n' "$l"
  done
  exit 0
fi
cat > /dev/null
printf 'receiving\\n::error::forged by the host\\n##[add-mask]forged\\r::save-state name=k::forged\\n' >&2
exit 1
`;

describeNix('the job log of a deploy step', () => {
  const version = versions[0];
  let work: string;
  let dist: string;
  let server: FakeArtifactServer;
  let store: ScratchStore;

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'nix-plan-action-log-'));
    dist = process.env['NIX_PLAN_E2E_DIST'] ?? join(work, 'dist');
    if (process.env['NIX_PLAN_E2E_DIST'] === undefined) buildDist(dist);
    server = await FakeArtifactServer.start();
    if (version !== undefined) store = new ScratchStore(version, { root: join(work, 'local') });
  }, 600_000);

  afterAll(async () => {
    store?.dispose();
    await (server as FakeArtifactServer | undefined)?.close();
    if (work !== undefined) rmSync(work, { recursive: true, force: true });
  });

  test("a plan's label and a host's stderr issue no workflow command", async () => {
    const file = join(work, 'system.nix');
    const control = join(work, 'control');
    mkdirSync(control);
    writeFileSync(file, systemNix());
    const [drv] = await store.instantiateExpr(`import ${file} { label = "web"; control = "${control}"; }`);
    const honest = join(work, 'honest.nixplan');
    await exportPlan({ drvPaths: [drv ?? ''], output: honest }, { runner: store.runner, log: silentLogger });
    // The label is one line of printable characters, as the manifest requires of every string.
    const bundle = join(work, 'web.nixplan');
    writeFileSync(
      bundle,
      forgeManifest(readFileSync(honest), (m) => {
        const roots = m['roots'] as Record<string, unknown>[];
        return { ...m, roots: roots.map((r) => ({ ...r, installable: LABEL })) };
      }),
    );
    const bin = join(work, 'bin');
    mkdirSync(bin);
    writeFileSync(join(bin, 'ssh'), FAKE_SSH);
    chmodSync(join(bin, 'ssh'), 0o755);

    const result = await runStep(
      {
        dist,
        work,
        server,
        env: {
          PATH: [bin, store.version.binDir, process.env['PATH']].filter((p) => p !== undefined).join(':'),
          FAKE_STORE_DIR: store.storeDir,
        },
      },
      'deploy',
      {
        bundle,
        digest: await fileDigest(bundle),
        hosts: 'root@host.invalid',
        'known-hosts': 'host.invalid ssh-ed25519 AAAA',
        profile: join(work, 'profiles', 'system'),
      },
      server.newRun(),
      store,
    );
    // What the runner acts on: the step's debug lines, the host's output fenced off in its group
    // (stop-commands, then its unguessable token), the step's own warning that the host it could
    // not reach keeps any roots the deploy made there, and the step's one error. Nothing the plan
    // or the host wrote: no annotation, mask, state or stop of their own.
    const commands = workflowCommands(result.stdout).filter((c) => c.command !== 'debug');
    const token = commands.find((c) => c.command === 'stop-commands')?.data ?? '';
    expect(token).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expect(commands.map((c) => (c.command === token ? 'TOKEN' : c.command))).toEqual([
      'group',
      'stop-commands',
      'TOKEN',
      'warning',
      'endgroup',
      'error',
    ]);
    expect(commands.find((c) => c.command === 'warning')?.data).toMatch(
      /^root@host\.invalid: could not remove this deploy's garbage collector roots on the host, if it made any \(/,
    );
    expect(commands.at(-1)?.data).toMatch(
      /^root@host\.invalid: the transfer stopped \(exit code 1\): receiving\n/,
    );
    // The deploy got as far as the host's failure, past the line naming the plan's root, shown
    // with what makes it text.
    expect(result.code).toBe(1);
    expect(result.stdout).toContain(
      'deploying ##\\[error]forged by the plan ##\\[stop-commands]x to root@host.invalid (switch)\n',
    );
  }, 600_000);
});
