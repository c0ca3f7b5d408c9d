// Test harness: a real nix-daemon serving a scratch store, and an unprivileged user it does not trust.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, openSync, readFileSync, closeSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  childEnv,
  ProcessRunner,
  type CommandRunner,
  type RunOptions,
  type RunResult,
} from '../../src/nix/runner.js';
import { ScratchStore, type NixVersion } from './nix.js';

/** The test user the daemons do not trust (created once; tests run as root). */
export const UNTRUSTED_USER = 'nixplan-untrusted';

/** A local user, by name and ids. */
export interface TestUser {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
}

/** Daemon configuration every test daemon gets: only root is trusted, everyone may connect. */
export const DAEMON_CONF = ['trusted-users = root', 'allowed-users = *', ''].join('\n');

/** The chroot a version's wrappers run Nix in (read from the wrapper), or undefined for the host's. */
export function chrootOf(version: NixVersion): string | undefined {
  if (version.binDir === undefined) return undefined;
  const wrapper = readFileSync(join(version.binDir, 'nix-daemon'), 'utf8');
  const m = /exec chroot (?:\S+ )?"([^"]+)"/.exec(wrapper);
  if (m?.[1] === undefined) throw new Error(`cannot find the chroot in ${version.binDir}/nix-daemon`);
  return m[1];
}

function lookUp(name: string, root = '/'): TestUser | undefined {
  const passwd = readFileSync(join(root, 'etc/passwd'), 'utf8');
  for (const line of passwd.split('\n')) {
    const [n, , uid, gid] = line.split(':');
    if (n === name && uid !== undefined && gid !== undefined)
      return { name, uid: Number(uid), gid: Number(gid) };
  }
  return undefined;
}

/**
 * The untrusted test user, created with `useradd` on the host when missing, and with the same
 * ids inside each version's chroot (where the 2.34 daemon asks who is connecting).
 */
export function ensureUntrustedUser(versions: readonly NixVersion[]): TestUser {
  // Test files may race to create the user: a failed useradd is fine if the user now exists.
  const tryRun = (cmd: string, args: string[]): void => {
    try {
      execFileSync(cmd, args, { stdio: 'pipe' });
    } catch {
      // checked by the lookups below
    }
  };
  if (lookUp(UNTRUSTED_USER) === undefined)
    tryRun('useradd', [
      '--system',
      '--no-create-home',
      '--user-group',
      '--shell',
      '/usr/sbin/nologin',
      UNTRUSTED_USER,
    ]);
  const user = lookUp(UNTRUSTED_USER);
  if (user === undefined) throw new Error(`cannot create the test user ${UNTRUSTED_USER} (tests need root)`);
  for (const v of versions) {
    const root = chrootOf(v);
    if (root === undefined) continue;
    if (lookUp(UNTRUSTED_USER, root) === undefined) {
      const groups = readFileSync(join(root, 'etc/group'), 'utf8');
      if (!groups.split('\n').some((l) => l.startsWith(`${UNTRUSTED_USER}:`)))
        tryRun('chroot', [root, '/usr/sbin/groupadd', '-g', String(user.gid), UNTRUSTED_USER]);
      tryRun('chroot', [
        root,
        '/usr/sbin/useradd',
        '-u',
        String(user.uid),
        '-g',
        String(user.gid),
        '-M',
        '-s',
        '/usr/sbin/nologin',
        UNTRUSTED_USER,
      ]);
    }
    const inside = lookUp(UNTRUSTED_USER, root);
    if (inside === undefined) throw new Error(`cannot create the test user ${UNTRUSTED_USER} in ${root}`);
    if (inside.uid !== user.uid || inside.gid !== user.gid)
      throw new Error(`${UNTRUSTED_USER} has other ids in ${root} than on the host`);
  }
  return user;
}

/** Runs commands as `user` through the runner of a Nix version (setpriv, or the chroot's userspec). */
class UserRunner implements CommandRunner {
  constructor(
    private readonly inner: ProcessRunner,
    private readonly version: NixVersion,
    private readonly user: TestUser,
    private readonly home: string,
  ) {}

  run(cmd: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    const opts = { cwd: this.home, ...options };
    // The 2.34 wrappers chroot, which needs root: they switch user themselves (NIX_SID_USERSPEC).
    if (this.version.binDir !== undefined) return this.inner.run(cmd, args, opts);
    const ids = [`--reuid=${this.user.uid}`, `--regid=${this.user.gid}`, '--clear-groups'];
    return this.inner.run('setpriv', [...ids, '--', cmd, ...args], opts);
  }
}

/** A scratch store served by its own nix-daemon on a private socket. */
export class DaemonStore {
  private exited = false;

  private constructor(
    /** Root's direct (local) access to the same store, for setting up and checking. */
    readonly scratch: ScratchStore,
    readonly socket: string,
    private readonly child: ChildProcess,
  ) {
    child.on('exit', () => {
      this.exited = true;
    });
  }

  /** Starts a daemon for a fresh scratch store; `extraConf` is added to its nix.conf. */
  static async start(
    version: NixVersion,
    options: { storeDir?: string; extraConf?: string } = {},
  ): Promise<DaemonStore> {
    const scratch = new ScratchStore(version, {
      ...options,
      extraConf: DAEMON_CONF + (options.extraConf ?? ''),
    });
    // Other users must reach the socket, the config and the store through the scratch root.
    chmodSync(scratch.root, 0o755);
    const socket = join(scratch.root, 'daemon.sock');
    // sockaddr_un holds 108 bytes with the NUL: a longer path cannot be listened on or reached.
    if (Buffer.byteLength(socket) > 107) {
      scratch.dispose();
      throw new Error(
        `the test daemon's socket ${socket} is ${Buffer.byteLength(socket)} bytes, over the 107 a Unix socket path may have: run the tests with a shorter TMPDIR`,
      );
    }
    // Create the store's database now, alone: the daemon's first connection (the readiness probe
    // below) forks a child that would create it while the test's first local command does, and
    // two Nix 2.34 processes creating one database at once can fail with "database is busy".
    await scratch.validPaths();
    const log = openSync(join(scratch.root, 'daemon.log'), 'a');
    // NIX_REMOTE=local: with the default ("auto") a daemon whose socket exists serves each
    // connection by connecting to itself, forking without end.
    const env = { ...scratch.env, NIX_REMOTE: 'local', NIX_DAEMON_SOCKET_PATH: socket };
    const child = spawn('nix-daemon', [], {
      env: childEnv({ binDir: version.binDir, env }),
      stdio: ['ignore', log, log],
    });
    closeSync(log);
    const daemon = new DaemonStore(scratch, socket, child);
    await daemon.waitReady();
    return daemon;
  }

  /** Resolves once the socket accepts connections; fails if the daemon dies first. */
  private async waitReady(): Promise<void> {
    for (let i = 0; i < 600; i++) {
      if (this.exited) throw new Error(`nix-daemon exited: ${this.log()}`);
      if (existsSync(this.socket) && (await canConnect(this.socket))) return;
      await sleep(50);
    }
    throw new Error(`nix-daemon did not listen on ${this.socket}: ${this.log()}`);
  }

  /** The daemon's log so far. */
  log(): string {
    try {
      return readFileSync(join(this.scratch.root, 'daemon.log'), 'utf8');
    } catch {
      return '';
    }
  }

  /** The environment of a Nix client of this daemon whose home is `home`. */
  clientEnv(home: string): Record<string, string> {
    return {
      NIX_STORE_DIR: this.scratch.storeDir,
      NIX_CONF_DIR: this.scratch.env['NIX_CONF_DIR'] ?? '',
      NIX_STATE_DIR: this.scratch.env['NIX_STATE_DIR'] ?? '',
      NIX_LOG_DIR: this.scratch.env['NIX_LOG_DIR'] ?? '',
      NIX_REMOTE: 'daemon',
      NIX_DAEMON_SOCKET_PATH: this.socket,
      HOME: home,
      XDG_CACHE_HOME: join(home, '.cache'),
      XDG_STATE_HOME: join(home, '.local/state'),
      XDG_CONFIG_HOME: join(home, '.config'),
      XDG_DATA_HOME: join(home, '.local/share'),
      TMPDIR: join(home, 'tmp'),
    };
  }

  /** A runner that runs Nix as `user` (with a home of its own), talking to this daemon. */
  runnerAs(user: TestUser): CommandRunner {
    const home = join(this.scratch.root, `home-${user.name}`);
    mkdirSync(join(home, 'tmp'), { recursive: true });
    chownSync(home, user.uid, user.gid);
    chownSync(join(home, 'tmp'), user.uid, user.gid);
    const env: Record<string, string> = {
      ...this.clientEnv(home),
      NIX_SID_USERSPEC: `${user.uid}:${user.gid}`,
      USER: user.name,
    };
    return new UserRunner(
      new ProcessRunner({ binDir: this.scratch.version.binDir, env }),
      this.scratch.version,
      user,
      home,
    );
  }

  /** Stops the daemon (connections end with their clients) and removes the store. */
  async stop(): Promise<void> {
    if (!this.exited) {
      const gone = new Promise((resolve) => this.child.once('exit', resolve));
      this.child.kill('SIGTERM');
      await gone;
    }
    this.scratch.dispose();
  }
}

function canConnect(socket: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(socket);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}
