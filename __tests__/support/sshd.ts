// Test harness: a real OpenSSH server on 127.0.0.1 with generated host and user keys, one port per
// "host" (each port gives its sessions their own environment: a scratch store, PATH, TMPDIR), and a
// client config so tests reach a host as `ssh -F CONFIG NAME`. Started per test file (and by the
// bench), stopped by pid.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** The server binary: Debian's openssh-server (it must be started by absolute path). */
export const SSHD = '/usr/sbin/sshd';

/** One host the server stands in for. */
export interface SshHostSpec {
  /** The Host alias in the client config. */
  readonly name: string;
  /** Environment of its sessions (SetEnv): NIX_* of its store, PATH, TMPDIR… */
  readonly env: Readonly<Record<string, string>>;
}

/** Whether this machine can run the SSH tests (CI installs openssh-server). */
export function sshdAvailable(): boolean {
  if (existsSync(SSHD)) return true;
  if (process.env['CI'] === 'true') throw new Error(`CI needs ${SSHD}: .ci/run installs openssh-server`);
  return false;
}

/** A user who logs in over SSH and is not root (the deploy tests' `--use-sudo` login). */
export const LOGIN_USER = 'nixplan-deployer';

/** The sudo the `--use-sudo` test runs (Debian's `sudo`; .ci/run installs it). */
export const SUDO = '/usr/bin/sudo';

/**
 * Why the `--use-sudo` test cannot run here (not root, no sudo), or undefined when it can. CI
 * has both, so there a missing one is an error, not a skip.
 */
export function sudoProblem(): string | undefined {
  const why =
    process.getuid?.() !== 0
      ? 'tests are not running as root (the test adds a user and a sudoers rule)'
      : !existsSync(SUDO)
        ? `${SUDO} is missing (Debian package sudo)`
        : undefined;
  if (why !== undefined && process.env['CI'] === 'true') throw new Error(`CI needs sudo: ${why}`);
  return why;
}

/**
 * LOGIN_USER, created with `useradd` when missing (as the untrusted user of daemon.ts is): a
 * shell, no home, and a password field of `*` (no password, but not locked, so sshd lets its key
 * in). Returns its uid.
 */
export function ensureLoginUser(): number {
  const uid = (): number | undefined => {
    for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
      const [name, , id] = line.split(':');
      if (name === LOGIN_USER && id !== undefined) return Number(id);
    }
    return undefined;
  };
  if (uid() === undefined) {
    try {
      execFileSync(
        'useradd',
        [
          '--system',
          '--no-create-home',
          '--home-dir',
          '/nonexistent',
          '--user-group',
          '--shell',
          '/bin/sh',
          LOGIN_USER,
        ],
        { stdio: 'pipe' },
      );
    } catch {
      // another test file may have made it just now: checked below
    }
  }
  const id = uid();
  if (id === undefined) throw new Error(`cannot create the test user ${LOGIN_USER}`);
  execFileSync('usermod', ['-p', '*', LOGIN_USER], { stdio: 'pipe' });
  return id;
}

/**
 * A sudoers rule letting LOGIN_USER run anything as root without a password (`sudo -n`), keeping
 * the environment its SSH session set (the scratch store a test host stands for); checked with
 * visudo. Returns the function that removes it.
 */
export function allowSudo(): () => void {
  // sudo skips files in sudoers.d whose name has a dot: none here.
  const file = `/etc/sudoers.d/nix-plan-test-${process.pid}`;
  writeFileSync(
    file,
    [`Defaults:${LOGIN_USER} !env_reset, !secure_path`, `${LOGIN_USER} ALL=(root) NOPASSWD: ALL`, ''].join(
      '\n',
    ),
    { mode: 0o440 },
  );
  try {
    execFileSync('visudo', ['-c', '-q', '-f', file], { stdio: 'pipe' });
  } catch (e) {
    rmSync(file, { force: true });
    throw e;
  }
  return () => rmSync(file, { force: true });
}

async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
          const s = createServer();
          s.once('error', reject);
          s.listen(0, '127.0.0.1', () => resolve(s));
        }),
    ),
  );
  const ports = servers.map((s) => {
    const a = s.address();
    if (a === null || typeof a === 'string') throw new Error('no port');
    return a.port;
  });
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

/** sshd_config's SetEnv takes NAME=VALUE words; quote each for its tokenizer. */
const setEnvWord = (k: string, v: string): string => `"${k}=${v.replace(/["\\]/g, '\\$&')}"`;

/**
 * A running sshd. `cut()` kills it and every connection it serves (the sessions' own children
 * live on, as after a network failure); `restart()` brings it back on the same ports.
 */
export class SshServer {
  private child: ChildProcess | undefined;
  readonly dir: string;
  readonly hosts: readonly SshHostSpec[];
  readonly ports: ReadonlyMap<string, number>;

  // No parameter properties: the bench loads this file with Node's type stripping.
  private constructor(dir: string, hosts: readonly SshHostSpec[], ports: number[]) {
    this.dir = dir;
    this.hosts = hosts;
    this.ports = new Map(hosts.map((h, i) => [h.name, ports[i] ?? 0]));
  }

  /** The client config: `ssh -F configFile NAME` logs in as root with the test key. */
  get configFile(): string {
    return join(this.dir, 'ssh_config');
  }

  /** A shell script that does what `cut()` does, for a fixture to run on "the host". */
  get cutScript(): string {
    return join(this.dir, 'cut.sh');
  }

  /** The commands sessions ran, one line each (the phase of the host program, or the command). */
  sessions(): string[] {
    const log = join(this.dir, 'sessions.log');
    return existsSync(log)
      ? readFileSync(log, 'utf8')
          .split('\n')
          .filter((l) => l !== '')
      : [];
  }

  /**
   * Lets users other than root log in: their sessions must reach the forced command (the server's
   * directory becomes searchable, its keys stay private) and log their phase.
   */
  openToOtherUsers(): void {
    chmodSync(this.dir, 0o711);
    const log = join(this.dir, 'sessions.log');
    if (!existsSync(log)) writeFileSync(log, '');
    chmodSync(log, 0o666);
  }

  /** Forgets the sessions logged so far. */
  clearSessions(): void {
    writeFileSync(join(this.dir, 'sessions.log'), '');
  }

  /** Generates keys and config and starts the server. */
  static async start(hosts: readonly SshHostSpec[]): Promise<SshServer> {
    const dir = mkdtempSync(join(tmpdir(), 'nix-plan-sshd-'));
    const server = new SshServer(dir, hosts, await freePorts(hosts.length));
    try {
      server.writeConfig();
      await server.launch();
    } catch (e) {
      server.stop();
      throw e;
    }
    return server;
  }

  private writeConfig(): void {
    const d = this.dir;
    const keygen = (file: string): void => {
      execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'nix-plan-test', '-f', file]);
    };
    keygen(join(d, 'host_key'));
    keygen(join(d, 'id_ed25519'));
    writeFileSync(join(d, 'authorized_keys'), readFileSync(join(d, 'id_ed25519.pub')));
    const hostKey = readFileSync(join(d, 'host_key.pub'), 'utf8').split(' ').slice(0, 2).join(' ');
    writeFileSync(
      join(d, 'known_hosts'),
      [...this.ports.values()].map((p) => `[127.0.0.1]:${p} ${hostKey}\n`).join(''),
    );
    // Records which phase each session ran, then runs the command as sshd would have: without
    // SSH_ORIGINAL_COMMAND in its environment, which a host has only under a ForceCommand. (Nix's
    // garbage collector takes every store path in a process's environment as a root: left there,
    // the command's arguments would be kept alive for the whole session as on no real host.)
    writeFileSync(
      join(d, 'session.sh'),
      [
        '#!/bin/sh',
        `phase=$(printf '%s\\n' "$SSH_ORIGINAL_COMMAND" | grep -o 'nix-plan-host [a-z-]*' | tail -n 1)`,
        `printf '%s\\n' "\${phase:-$SSH_ORIGINAL_COMMAND}" >> ${d}/sessions.log`,
        'cmd=$SSH_ORIGINAL_COMMAND',
        'unset SSH_ORIGINAL_COMMAND',
        'exec "$SHELL" -c "$cmd"',
        '',
      ].join('\n'),
    );
    chmodSync(join(d, 'session.sh'), 0o755);
    // Kills the server and the sshd processes of its connections (found by walking /proc), not
    // the programs the sessions started: as when the host's network goes away.
    writeFileSync(
      join(d, 'cut.sh'),
      [
        '#!/bin/sh',
        `master=$(cat ${d}/sshd.pid 2>/dev/null) || exit 0`,
        'pids=" $master "',
        'changed=1',
        'while [ $changed = 1 ]; do',
        '  changed=0',
        '  for st in /proc/[0-9]*/stat; do',
        '    read -r pid comm _ ppid _ < "$st" 2>/dev/null || continue',
        '    case $pids in *" $pid "*) continue ;; esac',
        '    case $comm in "(sshd"*) ;; *) continue ;; esac',
        '    case $pids in *" $ppid "*) pids="$pids$pid "; changed=1 ;; esac',
        '  done',
        'done',
        'kill -9 $pids 2>/dev/null',
        'exit 0',
        '',
      ].join('\n'),
    );
    chmodSync(join(d, 'cut.sh'), 0o755);
    const config = [
      'ListenAddress 127.0.0.1',
      `HostKey ${d}/host_key`,
      `PidFile ${d}/sshd.pid`,
      `AuthorizedKeysFile ${d}/authorized_keys`,
      'StrictModes no',
      'UsePAM no',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'PermitRootLogin prohibit-password',
      'MaxStartups 100',
      'MaxSessions 50',
      `ForceCommand ${d}/session.sh`,
      ...this.hosts.flatMap((h) => [
        `Match LocalPort ${this.ports.get(h.name)}`,
        `  SetEnv ${Object.entries(h.env)
          .map(([k, v]) => setEnvWord(k, v))
          .join(' ')}`,
      ]),
      '',
    ];
    writeFileSync(join(d, 'sshd_config'), config.join('\n'));
    writeFileSync(
      this.configFile,
      this.hosts
        .map((h) =>
          [
            `Host ${h.name}`,
            '  HostName 127.0.0.1',
            `  Port ${this.ports.get(h.name)}`,
            '  User root',
            `  IdentityFile ${d}/id_ed25519`,
            '  IdentitiesOnly yes',
            `  UserKnownHostsFile ${d}/known_hosts`,
            '  StrictHostKeyChecking yes',
            '  LogLevel ERROR',
            '',
          ].join('\n'),
        )
        .join(''),
    );
  }

  private async launch(): Promise<void> {
    // Debian's sshd wants its privilege separation directory.
    mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
    // The log goes to a file, not a pipe: a caller blocked in spawnSync (the bench) cannot drain
    // a pipe, and a full one would stall sshd.
    const log = join(this.dir, 'sshd.log');
    writeFileSync(log, '');
    const args = ['-D', '-f', join(this.dir, 'sshd_config'), '-E', log];
    for (const p of this.ports.values()) args.push('-p', String(p));
    const child = spawn(SSHD, args, { stdio: 'ignore' });
    this.child = child;
    let exited: number | null | undefined;
    child.on('exit', (code) => (exited = code));
    const deadline = Date.now() + 20_000;
    for (;;) {
      const text = readFileSync(log, 'utf8');
      if ([...this.ports.values()].every((p) => text.includes(`Server listening on 127.0.0.1 port ${p}.`)))
        return;
      if (exited !== undefined) throw new Error(`sshd exited (${exited}):\n${text}`);
      if (Date.now() > deadline) throw new Error(`sshd did not start:\n${text}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /** The server's log, for diagnosing a failing test. */
  get log(): string {
    const file = join(this.dir, 'sshd.log');
    return existsSync(file) ? readFileSync(file, 'utf8') : '';
  }

  /** Drops the server and every connection, as a network failure would. */
  cut(): void {
    execFileSync('sh', [this.cutScript]);
    this.child = undefined;
  }

  /** Starts the server again after `cut()`. */
  async restart(): Promise<void> {
    const pid = this.child?.pid;
    if (pid !== undefined && this.child?.exitCode === null && this.child.signalCode === null) {
      try {
        process.kill(pid, 0);
        return;
      } catch {
        // gone: start it again
      }
    }
    await this.launch();
  }

  /** Stops the server (by its pid) and removes its directory (sshd may still be exiting). */
  stop(): void {
    const pid = this.child?.pid;
    if (pid !== undefined && this.child?.exitCode === null) {
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        // already gone
      }
    }
    this.child = undefined;
    removeDir(this.dir);
  }
}

/**
 * Removes `dir` and everything in it, also while a process still removes files there (sshd its pid
 * file as it exits): Node's rmSync takes an entry that vanishes during its walk for a directory
 * that is gone and returns early without an error, leaving the rest behind. So: until it is gone.
 */
export function removeDir(dir: string): void {
  for (let attempt = 1; existsSync(dir); attempt++) {
    if (attempt > 50) throw new Error(`cannot remove ${dir}`);
    rmSync(dir, { recursive: true, force: true });
    if (existsSync(dir)) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
  }
}
