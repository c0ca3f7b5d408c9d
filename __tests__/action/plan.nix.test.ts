// The plan action on real Nix, with its real exportPlan: a plan that depends on a build output
// evaluation read (import from derivation) is refused, and the refusal names the action's inputs
// (`include`, `signing-key`), never the command line's flags; nothing is written or published.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_ARTIFACT_NAME, PlanInput, RunnerEnv } from '../../src/action/constants.js';
import { run as runPlan } from '../../src/action/plan.js';
import { diffPlanSources } from '../../src/app/diff.js';
import { exportPlan } from '../../src/app/export.js';
import { NixPlanError } from '../../src/core/errors.js';
import { nixVersions, ScratchStore } from '../support/nix.js';
import { recordingIO } from '../support/recording-io.js';

const FIXTURE = fileURLToPath(new URL('../fixtures/fidelity/default.nix', import.meta.url));

describe.each(nixVersions())('the plan action on Nix $label', (version) => {
  let work: string;
  let store: ScratchStore;

  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'nix-plan-plan-action-'));
    store = new ScratchStore(version, { storeDir: join(work, 'store'), root: join(work, 'root') });
  });
  afterAll(() => {
    store.wipe();
    rmSync(work, { recursive: true, force: true });
  });

  /** Runs the step on the fixture's `ifdRef` with `inputs`; what it threw, and what it published. */
  async function refusal(
    inputs: Record<string, string>,
  ): Promise<{ error: NixPlanError; artifacts: string }> {
    const runnerTemp = join(work, `runner-${inputs[PlanInput.Include] ?? 'drvs'}`);
    const artifacts = join(work, `artifacts-${inputs[PlanInput.Include] ?? 'drvs'}`);
    const { io } = recordingIO(
      {
        [PlanInput.File]: FIXTURE,
        [PlanInput.Attributes]: 'ifdRef',
        [PlanInput.ArtifactDir]: artifacts,
        ...inputs,
      },
      { [RunnerEnv.RunnerTemp]: runnerTemp },
    );
    const refused = await runPlan({
      io,
      runner: store.runner,
      transport: () => {
        throw new Error('nothing may be published');
      },
      exportPlan,
      diffPlanSources,
    }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(NixPlanError);
    return { error: refused as NixPlanError, artifacts };
  }

  /** No `--flag` in the message: an action user has none to give. */
  const noFlag = /(^|[\s('"])--[a-z]/;

  test('a drvs plan that needs a build output names "include: sources" and "signing-key"', async () => {
    const { error, artifacts } = await refusal({});
    expect(error.code).toBe('closure');
    expect(error.message).toMatch(/-ifd-leaf is a build output of .*-ifd-leaf\.drv/);
    expect(error.message).toContain(
      `a 'drvs' bundle carries only what evaluation writes: give "include: sources" and "signing-key" to carry it`,
    );
    expect(error.message).not.toMatch(noFlag);
    expect(existsSync(join(artifacts, DEFAULT_ARTIFACT_NAME))).toBe(false);
  });

  test('an unsigned sources plan that carries a build output names "signing-key" and "trusted-keys"', async () => {
    const { error, artifacts } = await refusal({ [PlanInput.Include]: 'sources' });
    expect(error.code).toBe('closure');
    expect(error.message).toMatch(/-ifd-leaf is a build output of .*-ifd-leaf\.drv/);
    expect(error.message).toContain(
      'give "signing-key" (readers then give the public key with "trusted-keys")',
    );
    expect(error.message).not.toMatch(noFlag);
    expect(existsSync(join(artifacts, DEFAULT_ARTIFACT_NAME))).toBe(false);
  });
});
