// Nix's machine-readable log (`--log-format internal-json`, the same on Nix 2.8 and 2.34): what
// was built and what was substituted, when each finished, and the human log Nix would have
// printed, written on from it. Each stderr line is `@nix {json}`: `msg` (level 0 error … 3 info),
// `start`/`stop` of activities (105 a build, fields [drvPath, …]; 108 a substitution, fields
// [storePath, substituter]), `result` (101 a build log line, 104 a post-build hook line).

/** Activity types Nix numbers in `start` events (libutil/logging.hh). */
const ACT_BUILD = 105;
const ACT_SUBSTITUTE = 108;
/** Result types (libutil/logging.hh). */
const RES_BUILD_LOG_LINE = 101;
const RES_POST_BUILD_LOG_LINE = 104;
/** Nix's default verbosity (lvlInfo): messages and activities above it are not shown. */
const LVL_INFO = 3;

/** What a realisation did, from its log. */
export interface BuildEvents {
  /** .drv paths Nix built (started), in order. */
  readonly built: string[];
  /** Store paths Nix substituted (started), in order. */
  readonly substituted: string[];
  /** .drv path or substituted store path → milliseconds after `start` when it finished. */
  readonly finished: Map<string, number>;
  /** Error messages (level 0), as Nix wrote them. */
  readonly errors: string[];
}

interface JsonEvent {
  action?: unknown;
  id?: unknown;
  level?: unknown;
  msg?: unknown;
  text?: unknown;
  type?: unknown;
  fields?: unknown;
}

const PREFIX = '@nix ';
/** Lines of the human log an error carries when it was not shown. */
const TAIL_LINES = 40;

/** Nix colours its messages in this log even when stderr is not a terminal; its plain log does not. */
// eslint-disable-next-line no-control-regex
const ANSI = /\x1b\[[0-9;]*[A-Za-z]/g;

/** Reads an internal-json log as it streams by; see the module comment. */
export class NixLogReader {
  readonly events: BuildEvents = { built: [], substituted: [], finished: new Map(), errors: [] };
  private readonly activities = new Map<string, string>(); // activity id → the path it is about
  private pending = '';
  private readonly started: number;
  /** The last lines of the human log, kept for an error when nothing was shown. */
  private readonly lastLines: string[] = [];

  /**
   * @param write where the human log goes (what Nix would print at its default verbosity)
   * @param now a millisecond clock (finish times are relative to when the reader was made)
   */
  constructor(
    private readonly sink: ((text: string) => void) | undefined,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.started = now();
  }

  /** The human log's last lines (at most TAIL_LINES), as text. */
  tail(): string {
    return this.lastLines.join('');
  }

  private write(text: string): void {
    this.lastLines.push(text);
    if (this.lastLines.length > TAIL_LINES) this.lastLines.shift();
    this.sink?.(text);
  }

  /** Takes a chunk of stderr. */
  push(chunk: Uint8Array): void {
    this.pending += Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength).toString('utf8');
    let nl = this.pending.indexOf('\n');
    while (nl >= 0) {
      this.line(this.pending.slice(0, nl));
      this.pending = this.pending.slice(nl + 1);
      nl = this.pending.indexOf('\n');
    }
  }

  /** Takes what is left after the last newline. */
  end(): void {
    if (this.pending !== '') this.line(this.pending);
    this.pending = '';
  }

  private line(line: string): void {
    if (!line.startsWith(PREFIX)) {
      this.write(`${line}\n`); // not Nix's JSON (a wrapper's message): passed on as it is
      return;
    }
    let e: JsonEvent;
    try {
      e = JSON.parse(line.slice(PREFIX.length)) as JsonEvent;
    } catch {
      this.write(`${line}\n`);
      return;
    }
    const level = typeof e.level === 'number' ? e.level : LVL_INFO;
    const id = typeof e.id === 'number' || typeof e.id === 'string' ? String(e.id) : '';
    const fields = Array.isArray(e.fields) ? (e.fields as unknown[]) : [];
    switch (e.action) {
      case 'msg': {
        if (typeof e.msg !== 'string') return;
        const msg = e.msg.replace(ANSI, '');
        if (level === 0) this.events.errors.push(msg);
        if (level <= LVL_INFO) this.write(`${msg}\n`);
        return;
      }
      case 'start': {
        const subject = typeof fields[0] === 'string' ? fields[0] : undefined;
        if (e.type === ACT_BUILD && subject !== undefined) {
          this.events.built.push(subject);
          this.activities.set(id, subject);
        } else if (e.type === ACT_SUBSTITUTE && subject !== undefined) {
          this.events.substituted.push(subject);
          this.activities.set(id, subject);
        }
        if (typeof e.text === 'string' && e.text !== '' && level <= LVL_INFO)
          this.write(`${e.text.replace(ANSI, '')}\n`);
        return;
      }
      case 'stop': {
        const subject = this.activities.get(id);
        if (subject !== undefined) {
          this.events.finished.set(subject, Math.max(0, this.now() - this.started));
          this.activities.delete(id);
        }
        return;
      }
      case 'result':
        if (
          (e.type === RES_BUILD_LOG_LINE || e.type === RES_POST_BUILD_LOG_LINE) &&
          typeof fields[0] === 'string'
        )
          this.write(`${fields[0]}\n`);
        return;
      default:
        return;
    }
  }
}

/** The arguments that make Nix log this way (unless the caller chose a log format itself). */
export function internalJsonArgs(extraArgs: readonly string[] = []): string[] {
  return extraArgs.includes('--log-format')
    ? [...extraArgs]
    : ['--log-format', 'internal-json', ...extraArgs];
}
