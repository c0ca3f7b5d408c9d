// Benchmark plumbing: scratch Nix stores ("realms"), timed commands with their peak memory, medians
// and a description of the machine, so every figure can be set beside its baseline from one run.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';

/** GNU time, which reports a child's peak resident set size (`%M`, KiB) and CPU time (`%U`, `%S`). */
export const GNU_TIME = '/usr/bin/time';

/** One scratch store: its store dir and the environment that points Nix's tools at it. */
export interface Realm {
  readonly root: string;
  readonly storeDir: string;
  readonly env: Readonly<Record<string, string>>;
}

/** What the scratch stores run with: no sandbox, no build users, no substituters (as in the tests). */
const NIX_CONF = ['build-users-group =', 'sandbox = false', 'substituters =', 'warn-dirty = false', ''].join(
  '\n',
);

/** A realm under `root`, with its store at `root/store` unless `storeDir` says otherwise. */
export function makeRealm(root: string, storeDir: string = join(root, 'store')): Realm {
  const realm: Realm = {
    root,
    storeDir,
    env: {
      NIX_STORE_DIR: storeDir,
      NIX_STATE_DIR: join(root, 'var'),
      NIX_LOG_DIR: join(root, 'log'),
      NIX_CONF_DIR: join(root, 'conf'),
      NIX_REMOTE: '',
      HOME: join(root, 'home'),
      XDG_CACHE_HOME: join(root, 'cache'),
    },
  };
  resetRealm(realm);
  return realm;
}

/** Where resetRealm puts old stores until emptyTrash (see there). */
const trash: string[] = [];

/**
 * Moves `path`, if it exists, aside into the trash (a rename: no inode is freed), for a store
 * the next command must not see; emptyTrash deletes it later (see resetRealm for why).
 */
export function moveToTrash(path: string): void {
  if (!existsSync(path)) return;
  const aside = `${path}.trash-${trash.length}`;
  renameSync(path, aside);
  trash.push(aside);
}

/**
 * Empties a realm, so the next command sees a fresh host: no store paths, no database. The old
 * store is moved aside, not deleted: deleting tens of thousands of files right before a timed
 * import makes ext4 skip the just-freed inodes while Nix creates files, which slowed whichever
 * import came next by seconds. emptyTrash deletes them later, outside the timed rounds.
 */
export function resetRealm(realm: Realm): void {
  moveToTrash(realm.storeDir);
  moveToTrash(realm.root);
  mkdirSync(join(realm.root, 'conf'), { recursive: true });
  mkdirSync(join(realm.root, 'home'), { recursive: true });
  writeFileSync(join(realm.root, 'conf', 'nix.conf'), NIX_CONF);
}

/** Deletes every store resetRealm moved aside; call it between sizes, not between timed runs. */
export function emptyTrash(): void {
  for (const path of trash.splice(0)) removeTree(path);
}

/** `rm -rf`, also for a store's read-only directories when not running as root. */
export function removeTree(path: string): void {
  try {
    rmSync(path, { recursive: true, force: true });
  } catch {
    spawnSync('chmod', ['-R', 'u+w', path]);
    rmSync(path, { recursive: true, force: true });
  }
}

/** One timed run of a command. */
export interface Sample {
  /** Wall-clock seconds from spawn to exit. */
  readonly seconds: number;
  /** Peak resident set size in MiB of the command or its largest child; undefined without GNU time. */
  readonly rssMiB: number | undefined;
  /**
   * User + system CPU seconds of the command and its children (undefined without GNU time):
   * steadier than wall time on a shared machine, though blind to time spent waiting on disk.
   */
  readonly cpuSeconds: number | undefined;
  /** Phase timings (ms) a nix-plan command reports in its `--json` result, when it does. */
  readonly phases?: Readonly<Record<string, number>>;
}

/** How to run one command. */
export interface CommandSpec {
  readonly argv: readonly string[];
  /** Added to the inherited environment. */
  readonly env?: Readonly<Record<string, string>>;
  readonly cwd?: string;
  /** Directory put first in PATH (the second Nix's wrappers, for example). */
  readonly binDir?: string | undefined;
}

/** A finished, timed command. */
export interface Timed {
  readonly sample: Sample;
  readonly stdout: string;
}

/** A command that exited non-zero; carries its stderr so the report can say why. */
// (No parameter properties: Node runs these files by stripping types, which cannot rewrite them.)
export class CommandFailed extends Error {
  readonly argv: readonly string[];
  readonly code: number | null;
  readonly stderr: string;
  constructor(argv: readonly string[], code: number | null, stderr: string) {
    super(`${argv.join(' ')} exited with ${code}: ${stderr.trim().split('\n').slice(-5).join('\n')}`);
    this.name = 'CommandFailed';
    this.argv = argv;
    this.code = code;
    this.stderr = stderr;
  }
}

/**
 * Runs a command to completion, timing it and (with GNU time) recording its peak RSS. The
 * command runs synchronously: the benchmark measures one thing at a time on purpose.
 */
export function timeCommand(spec: CommandSpec, rssFile: string): Timed {
  const env: NodeJS.ProcessEnv = { ...process.env, ...spec.env };
  if (spec.binDir !== undefined) env['PATH'] = `${spec.binDir}:${env['PATH'] ?? ''}`;
  const gnuTime = existsSync(GNU_TIME);
  const argv = gnuTime ? [GNU_TIME, '-f', '%M %U %S', '-o', rssFile, ...spec.argv] : [...spec.argv];
  // Flush what earlier commands wrote (a whole store, a deleted store), so its writeback is not
  // charged to this one.
  spawnSync('sync');
  const started = performance.now();
  const r = spawnSync(argv[0] as string, argv.slice(1), {
    env,
    cwd: spec.cwd,
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const seconds = (performance.now() - started) / 1000;
  if (r.error) throw r.error;
  if (r.status !== 0) throw new CommandFailed(spec.argv, r.status, r.stderr);
  let rssMiB: number | undefined;
  let cpuSeconds: number | undefined;
  if (gnuTime) {
    // The last line: GNU time puts "Command exited with non-zero status" lines before it.
    const [kib, user, sys] = (readFileSync(rssFile, 'utf8').trim().split('\n').pop() ?? '')
      .split(' ')
      .map(Number);
    if (kib !== undefined && Number.isFinite(kib)) rssMiB = kib / 1024;
    if (user !== undefined && sys !== undefined && Number.isFinite(user + sys)) cpuSeconds = user + sys;
  }
  return { sample: { seconds, rssMiB, cpuSeconds }, stdout: r.stdout };
}

/** The median of a non-empty list (the mean of the middle two for an even count). */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

/** The machine a run was measured on. */
export interface MachineInfo {
  readonly cores: number;
  readonly cpuModel: string;
  readonly memoryGiB: number;
  readonly nixVersion: string;
  readonly nodeVersion: string;
  readonly platform: string;
  /** 1-minute load average when the run started: how busy the machine was. */
  readonly loadAverage: number;
  readonly gnuTime: boolean;
  readonly zstdVersion: string;
}

/** Describes this machine and the Nix (with `binDir` first in PATH) the benchmark runs. */
export function machineInfo(binDir: string | undefined): MachineInfo {
  const env = { ...process.env };
  if (binDir !== undefined) env['PATH'] = `${binDir}:${env['PATH'] ?? ''}`;
  const nix = spawnSync('nix-store', ['--version'], { env, encoding: 'utf8' });
  const zstd = spawnSync('zstd', ['--version'], { encoding: 'utf8' });
  return {
    cores: availableParallelism(),
    cpuModel: cpus()[0]?.model.trim() ?? 'unknown',
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    nixVersion: (nix.stdout ?? '').trim() || 'unknown',
    nodeVersion: process.version,
    platform: `${process.platform}-${process.arch}`,
    loadAverage: loadavg()[0] ?? 0,
    gnuTime: existsSync(GNU_TIME),
    zstdVersion:
      (zstd.stdout ?? '')
        .trim()
        .replace(/^\*\*\* /, '')
        .split(',')[0] ?? 'unknown',
  };
}
