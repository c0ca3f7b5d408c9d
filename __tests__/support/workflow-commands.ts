// What GitHub's runner would take for workflow commands in a step's output, read as the runner
// reads it (actions/runner, ActionCommandManager and ActionCommand): line by line, a line ending
// at `\n`, `\r\n` or `\r`; a line is a command when, after leading white space, it starts with
// `::NAME` followed by another `::`, or when it holds `##[NAME]` anywhere, for a NAME the runner
// knows (case-insensitive). `stop-commands` switches the rest off until its token comes back.

/** The commands a runner registers (and the deprecated ones it still parses). */
const COMMANDS = new Set([
  'add-mask',
  'add-matcher',
  'add-path',
  'debug',
  'echo',
  'endgroup',
  'error',
  'group',
  'notice',
  'remove-matcher',
  'save-state',
  'set-env',
  'set-output',
  'stop-commands',
  'warning',
]);

/** One command the runner would run. */
export interface WorkflowCommand {
  readonly command: string;
  readonly data: string;
}

/** A `::` command's data as the runner unescapes it. */
const unescapeData = (s: string): string =>
  s.replace(/%0D/g, '\r').replace(/%0A/g, '\n').replace(/%25/g, '%');

function parse(line: string, known: ReadonlySet<string>): WorkflowCommand | undefined {
  const v2 = line.replace(/^[\s\u0085]+/u, '');
  if (v2.startsWith('::')) {
    const end = v2.indexOf('::', 2);
    if (end >= 0) {
      const info = v2.slice(2, end);
      const name = (info.split(' ')[0] ?? '').toLowerCase();
      if (known.has(name)) return { command: name, data: unescapeData(v2.slice(end + 2)) };
    }
  }
  const at = line.indexOf('##[');
  if (at < 0) return undefined;
  const close = line.indexOf(']', at);
  if (close < 0) return undefined;
  const name = (line.slice(at + 3, close).split(' ')[0] ?? '').toLowerCase();
  return known.has(name) ? { command: name, data: line.slice(close + 1) } : undefined;
}

/** The commands the runner would act on in `output`, in order (stop-commands and its resume included). */
export function workflowCommands(output: string): WorkflowCommand[] {
  const known = new Set(COMMANDS);
  const found: WorkflowCommand[] = [];
  let stopToken: string | undefined;
  for (const line of output.split(/\r\n|\n|\r/)) {
    const command = parse(line, stopToken === undefined ? known : new Set([...known, stopToken]));
    if (command === undefined) continue;
    if (stopToken !== undefined) {
      if (command.command === stopToken) {
        found.push(command);
        stopToken = undefined;
      }
      continue;
    }
    found.push(command);
    if (command.command === 'stop-commands') stopToken = command.data.toLowerCase();
  }
  return found;
}
