// Test harness: scratch Nix stores on each Nix version under test (Debian's 2.8 and sid's 2.34).
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, mkdirSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ProcessRunner, type RunOptions, type RunResult } from '../../src/nix/runner.js';

/** One Nix installation the integration tests run against. */
export interface NixVersion {
  /** Short label used in test names: '2.8' or '2.34'. */
  readonly label: string;
  /** Directory prepended to PATH (undefined: the Nix on PATH). */
  readonly binDir: string | undefined;
}

/** Where .ci/run puts the wrappers of the second Nix; NIX_PLAN_NIX_SID_BIN overrides it. */
export const DEFAULT_SID_BIN = '/var/lib/nix-plan-sid-shims';

/**
 * The Nix versions to test. The host's Nix is always used; the sid chroot's when its wrappers
 * exist. Under CI both are required, so a missing install fails loudly instead of skipping.
 */
export function nixVersions(): NixVersion[] {
  refuseUnderTestCore();
  const sid = process.env['NIX_PLAN_NIX_SID_BIN'] ?? DEFAULT_SID_BIN;
  const versions: NixVersion[] = [{ label: '2.8', binDir: undefined }];
  if (existsSync(join(sid, 'nix-store'))) versions.push({ label: '2.34', binDir: sid });
  else if (process.env['CI'] === 'true') throw new Error(`CI needs the second Nix at ${sid}: run .ci/run`);
  return versions;
}

/**
 * `npm run test:core` runs the tests that need no Nix; one that reaches for a Nix store there
 * fails, naming the convention, instead of passing or skipping.
 */
export function refuseUnderTestCore(): void {
  if (process.env['NIX_PLAN_TEST_CORE'] === '1')
    throw new Error('this test runs Nix, which npm run test:core does not: name its file *.nix.test.ts');
}

/** nix.conf for scratch stores: no build users, no sandbox, no substituters, the features tests use. */
export const SCRATCH_NIX_CONF = [
  'build-users-group =',
  'sandbox = false',
  'substituters =',
  'experimental-features = nix-command flakes ca-derivations',
  'warn-dirty = false',
  '',
].join('\n');

/**
 * An isolated store: its own store dir, state, logs and config, so tests never touch /nix and
 * can choose the realm (`storeDir`) freely. `run` runs any Nix tool against it.
 */
export class ScratchStore {
  readonly root: string;
  readonly storeDir: string;
  readonly env: Record<string, string>;
  readonly runner: ProcessRunner;

  constructor(
    readonly version: NixVersion,
    options: { storeDir?: string; root?: string; extraConf?: string } = {},
  ) {
    refuseUnderTestCore();
    this.root = options.root ?? mkdtempSync(join(tmpdir(), 'nix-plan-test-'));
    this.storeDir = options.storeDir ?? join(this.root, 'store');
    mkdirSync(join(this.root, 'conf'), { recursive: true });
    writeFileSync(join(this.root, 'conf', 'nix.conf'), SCRATCH_NIX_CONF + (options.extraConf ?? ''));
    this.env = {
      NIX_STORE_DIR: this.storeDir,
      NIX_STATE_DIR: join(this.root, 'var'),
      NIX_LOG_DIR: join(this.root, 'log'),
      NIX_CONF_DIR: join(this.root, 'conf'),
      NIX_REMOTE: '',
      HOME: join(this.root, 'home'),
      XDG_CACHE_HOME: join(this.root, 'cache'),
    };
    mkdirSync(this.env['HOME'] ?? '', { recursive: true });
    this.runner = new ProcessRunner({ binDir: version.binDir, env: this.env });
  }

  /** Runs a Nix tool against this store; throws with stderr on failure unless allowFailure. */
  run(cmd: string, args: readonly string[], options?: RunOptions): Promise<RunResult> {
    return this.runner.run(cmd, args, options);
  }

  /** `nix-instantiate FILE [-A ATTR]`: the .drv paths, one per line. */
  async instantiate(file: string, attrs: readonly string[] = []): Promise<string[]> {
    const args = [file, ...attrs.flatMap((a) => ['-A', a])];
    const { stdout } = await this.run('nix-instantiate', args);
    return stdout
      .toString('utf8')
      .trim()
      .split('\n')
      .filter((l) => l !== '');
  }

  /** `nix-instantiate -E EXPR`. */
  async instantiateExpr(expr: string): Promise<string[]> {
    const { stdout } = await this.run('nix-instantiate', ['-E', expr]);
    return stdout
      .toString('utf8')
      .trim()
      .split('\n')
      .filter((l) => l !== '');
  }

  /** `nix-store --query --requisites`: the closure of the given paths. */
  async requisites(paths: readonly string[]): Promise<string[]> {
    const { stdout } = await this.run('nix-store', ['--query', '--requisites', ...paths]);
    return stdout
      .toString('utf8')
      .trim()
      .split('\n')
      .filter((l) => l !== '');
  }

  /** Every valid path in this store. */
  async validPaths(): Promise<string[]> {
    return [...(await this.dumpDb()).keys()].sort();
  }

  /** `nix-store --dump-db [paths…]`, parsed: what the store's database says of each path. */
  async dumpDb(paths: readonly string[] = []): Promise<Map<string, DumpDbRecord>> {
    const { stdout } = await this.run('nix-store', ['--dump-db', ...paths]);
    return parseDumpDb(stdout.toString('utf8'));
  }

  /** Removes the scratch store (its files are read-only, as in a real store). */
  dispose(): void {
    rmSync(this.root, { recursive: true, force: true, maxRetries: 2 });
  }

  /**
   * Removes the scratch store and its store dir, which may lie outside its root (as when several
   * stores share one store dir in turn), made writable first: what Nix builds is read-only.
   */
  wipe(): void {
    if (existsSync(this.root)) {
      chmodSync(this.root, 0o755);
      execFileSync('chmod', ['-R', 'u+w', this.root]);
    }
    this.dispose();
    if (existsSync(this.storeDir)) {
      execFileSync('chmod', ['-R', 'u+w', this.storeDir]);
      rmSync(this.storeDir, { recursive: true, force: true });
    }
  }
}

/** One path's record in `nix-store --dump-db`, as Nix prints it. */
export interface DumpDbRecord {
  readonly narHash: string;
  readonly narSize: number;
  readonly deriver: string;
  readonly refs: string[];
}

/** `nix-store --dump-db` records by path: path, NAR hash, NAR size, deriver, reference count, references. */
export function parseDumpDb(text: string): Map<string, DumpDbRecord> {
  const lines = text.split('\n');
  const out = new Map<string, DumpDbRecord>();
  for (let i = 0; i + 4 < lines.length && lines[i] !== '';) {
    const n = Number(lines[i + 4]);
    out.set(lines[i] ?? '', {
      narHash: lines[i + 1] ?? '',
      narSize: Number(lines[i + 2]),
      deriver: lines[i + 3] ?? '',
      refs: lines.slice(i + 5, i + 5 + n),
    });
    i += 5 + n;
  }
  return out;
}

/** The system string Nix reports (for fixtures that set `system`). */
export const SYSTEM = process.arch === 'arm64' ? 'aarch64-linux' : 'x86_64-linux';
