// Running a program on a host: over the system `ssh` (the user's config, agent and known_hosts
// apply) or locally, as argv arrays, with standard input streamed and output handed on as it comes.
import { NixPlanError } from '../core/errors.js';
import { childEnv, FileInput, startChild, type CommandRunner, type NixEnvironment } from './runner.js';

/** Where to log in: `[USER@]HOST[:PORT]` (an IPv6 address in brackets: `[::1]:2222`). */
export interface SshTarget {
  readonly user?: string | undefined;
  readonly host: string;
  readonly port?: number | undefined;
}

const USER = /^[A-Za-z0-9._][A-Za-z0-9._-]*$/;
// A name or alias from ssh_config, or an IPv4/IPv6 address: nothing ssh could read as an option.
const HOST = /^[A-Za-z0-9_][A-Za-z0-9._-]*$|^[0-9A-Fa-f:.]*:[0-9A-Fa-f:.%A-Za-z]*$/;

/** Parses `[USER@]HOST[:PORT]`; a usage error names what is wrong. */
export function parseSshTarget(text: string): SshTarget {
  const bad = (why: string): NixPlanError =>
    new NixPlanError('usage', `bad host '${text}': ${why} (expected [USER@]HOST[:PORT])`);
  const at = text.lastIndexOf('@');
  const user = at < 0 ? undefined : text.slice(0, at);
  let rest = at < 0 ? text : text.slice(at + 1);
  if (user !== undefined && !USER.test(user)) throw bad('the user name has characters ssh would not accept');
  let port: number | undefined;
  let host: string;
  if (rest.startsWith('[')) {
    const close = rest.indexOf(']');
    if (close < 0) throw bad('an unclosed [');
    host = rest.slice(1, close);
    rest = rest.slice(close + 1);
    if (rest !== '' && !rest.startsWith(':')) throw bad('text after ]');
    if (rest !== '') port = parsePort(rest.slice(1), bad);
  } else {
    const colon = rest.indexOf(':');
    if (colon >= 0 && rest.indexOf(':', colon + 1) < 0) {
      port = parsePort(rest.slice(colon + 1), bad);
      host = rest.slice(0, colon);
    } else host = rest;
  }
  if (host === '' || !HOST.test(host)) throw bad('not a host name or address');
  return { user, host, port };
}

function parsePort(text: string, bad: (why: string) => NixPlanError): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < 1 || n > 65535) throw bad(`port '${text}' is not 1-65535`);
  return n;
}

/** `user@host:port` as a person writes it (for logs and tables). */
export function formatSshTarget(t: SshTarget): string {
  const host = t.host.includes(':') ? `[${t.host}]` : t.host;
  return `${t.user === undefined ? '' : `${t.user}@`}${host}${t.port === undefined ? '' : `:${t.port}`}`;
}

const SAFE_WORD = /^[A-Za-z0-9_/.,:@%+=-]+$/;

/**
 * One argument quoted for the remote login shell, which parses what ssh sends: a POSIX shell
 * (sh, bash, dash, zsh) or fish. Inside single quotes fish, unlike POSIX, reads `\\` as one
 * backslash, so quotes and backslashes are written outside the quotes, escaped, which both read
 * alike.
 */
export function shellQuote(arg: string): string {
  if (arg.includes('\0'))
    throw new NixPlanError('internal', 'an argument for the remote shell holds a NUL byte');
  if (SAFE_WORD.test(arg)) return arg;
  return `'${arg.replace(/['\\]/g, (c) => `'\\${c}'`)}'`;
}

/** ssh joins its command arguments with spaces for the remote shell: quote each so argv survives. */
export function remoteCommandLine(argv: readonly string[]): string {
  return argv.map(shellQuote).join(' ');
}

/** Standard input of a host command: bytes, chunks, or a file (handed to the child as its stdin). */
export type HostInput = Uint8Array | AsyncIterable<Uint8Array> | FileInput;

/** Options of one host command. */
export interface HostRunOptions {
  readonly input?: HostInput | undefined;
  /** Each chunk of standard output as it comes (it is still collected and returned). */
  readonly onStdout?: ((chunk: Uint8Array) => void) | undefined;
  /** Each chunk of standard error as it comes. */
  readonly onStderr?: ((chunk: Uint8Array) => void) | undefined;
  /** Stops the command (the ssh client or local process gets SIGTERM). */
  readonly signal?: AbortSignal | undefined;
  /** ssh only: force a connection of its own (no ControlMaster reuse), to prove new logins work. */
  readonly freshConnection?: boolean | undefined;
}

/** How a host command ended. */
export interface HostRunResult {
  /** Exit code; 255 from ssh itself means the connection failed. */
  readonly code: number;
  /** Set when the command was killed by a signal. */
  readonly signal?: string | undefined;
  readonly stdout: Buffer;
  /** The last 64 KiB of standard error. */
  readonly stderr: string;
}

/** Somewhere commands run: a host over SSH, or this machine. */
export interface HostShell {
  /** Names the host in messages. */
  readonly label: string;
  /** Whether a failure to run means the connection failed (ssh's exit 255). */
  readonly remote: boolean;
  /** Runs `argv` there (argv[0] is looked up in the host's PATH). */
  run(argv: readonly string[], options?: HostRunOptions): Promise<HostRunResult>;
}

/**
 * Spawns `cmd args`, feeding `input` and handing output on as it comes. Never throws for a
 * non-zero exit; throws a `host` error only when the program cannot be started at all.
 */
export async function runStreaming(
  cmd: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv,
  options: HostRunOptions = {},
): Promise<HostRunResult> {
  const started = startChild(cmd, args, { env }, options);
  const { child } = started;
  const onAbort = (): void => {
    child.kill('SIGTERM');
  };
  if (options.signal?.aborted === true) onAbort();
  options.signal?.addEventListener('abort', onAbort, { once: true });
  const exited = new Promise<{ code: number; signal?: string }>((resolve, reject) => {
    child.on('error', (e) =>
      reject(new NixPlanError('host', `cannot run ${cmd}: ${e.message}`, { cause: e })),
    );
    child.on('close', (code, signal) =>
      resolve(signal === null ? { code: code ?? 1 } : { code: 128, signal }),
    );
  });
  try {
    const { code, signal } = await exited;
    return { code, signal, stdout: started.stdout(), stderr: started.stderr() };
  } finally {
    options.signal?.removeEventListener('abort', onAbort);
  }
}

/** Options of an SSH host. */
export interface SshOptions {
  /** Raw arguments for `ssh`, in order, before nix-plan's own (ssh keeps the first value of an option). */
  readonly sshOptions?: readonly string[] | undefined;
  /** The ssh program (default `ssh` from PATH). */
  readonly program?: string | undefined;
  /** Environment for ssh (default: inherited). */
  readonly env?: NixEnvironment | undefined;
}

/**
 * Options nix-plan adds after the user's: no password prompts (a deploy runs unattended), no
 * terminal, and keep-alives so a host that drops off the network ends the session within a
 * minute instead of never. ssh takes the first value given for an option, so the user's
 * `--ssh-option`s (and their ssh_config) can override every one.
 */
export const DEFAULT_SSH_ARGS: readonly string[] = [
  '-T',
  '-o',
  'BatchMode=yes',
  '-o',
  'ConnectTimeout=20',
  '-o',
  'ServerAliveInterval=15',
  '-o',
  'ServerAliveCountMax=4',
];

/** A host reached with the system `ssh`. */
export class SshHost implements HostShell {
  readonly remote = true;
  readonly label: string;

  constructor(
    readonly target: SshTarget,
    private readonly options: SshOptions = {},
  ) {
    this.label = formatSshTarget(target);
  }

  /** The full `ssh` argv for running `argv` on the host. */
  sshArgs(argv: readonly string[], fresh = false): string[] {
    return [
      // A fresh connection must not ride on a multiplexed master: it proves the host still
      // accepts logins. These come first so nothing in the user's options overrides them.
      ...(fresh ? ['-o', 'ControlMaster=no', '-o', 'ControlPath=none'] : []),
      ...(this.options.sshOptions ?? []),
      ...DEFAULT_SSH_ARGS,
      ...(this.target.port === undefined ? [] : ['-p', String(this.target.port)]),
      ...(this.target.user === undefined ? [] : ['-l', this.target.user]),
      '--',
      this.target.host,
      remoteCommandLine(argv),
    ];
  }

  async run(argv: readonly string[], options: HostRunOptions = {}): Promise<HostRunResult> {
    return runStreaming(
      this.options.program ?? 'ssh',
      this.sshArgs(argv, options.freshConnection === true),
      childEnv(this.options.env ?? {}),
      options,
    );
  }
}

/**
 * This machine, for `apply`: the same host program, run by the local `sh` through a
 * CommandRunner (so it gets the runner's Nix environment); `env` adds variables (e.g. NIX_REMOTE
 * for `--store`) with `env NAME=VALUE`.
 */
export class LocalHost implements HostShell {
  readonly remote = false;
  readonly label = 'localhost';

  constructor(
    private readonly runner: CommandRunner,
    private readonly env: Readonly<Record<string, string>> = {},
  ) {}

  async run(argv: readonly string[], options: HostRunOptions = {}): Promise<HostRunResult> {
    const vars = Object.entries(this.env).map(([k, v]) => `${k}=${v}`);
    const [cmd, ...args] = vars.length === 0 ? argv : ['env', ...vars, ...argv];
    if (cmd === undefined) throw new NixPlanError('internal', 'no command to run');
    const out: Buffer[] = [];
    const result = await this.runner.run(cmd, args, {
      ...(options.input !== undefined && { input: options.input }),
      allowFailure: true,
      onStdout: (c) => {
        out.push(Buffer.from(c));
        options.onStdout?.(c);
      },
      onStderr: options.onStderr,
    });
    return { code: result.code, stdout: Buffer.concat(out), stderr: result.stderr };
  }
}
