// The README and docs/cli.md are documentation a user acts on: their tables must list exactly what
// the code has, their defaults must be the ones the actions declare, and every workflow they show
// must use only inputs the actions take.
import { describe, expect, test } from '@jest/globals';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  DeployInput,
  DeployOutput,
  PlanInput,
  PlanOutput,
  PromoteInput,
  PromoteOutput,
  RealiseInput,
  RealiseOutput,
} from '../../src/action/constants.js';
import { assertSignable } from '../../src/app/signing-policy.js';
import { COMMON } from '../../src/cli/command.js';
import { COMMANDS } from '../../src/cli/commands.js';
import { ExitCode } from '../../src/cli/exit-codes.js';
import { splitShellWords } from '../../src/core/shell-words.js';
import { actionDefaults, REPO } from '../support/action-step.js';

const read = (file: string): string => readFileSync(new URL(`../../${file}`, import.meta.url), 'utf8');
const README = read('README.md');
const CLI_MD = read('docs/cli.md');

/** The text from `heading` to the next heading of the same or a higher level. */
function section(text: string, heading: string): string {
  const start = text.indexOf(`${heading}\n`);
  if (start < 0) throw new Error(`README has no heading '${heading}'`);
  const level = /^#+/.exec(heading)?.[0].length ?? 1;
  const rest = text.slice(start + heading.length + 1);
  const end = rest.search(new RegExp(`^#{1,${level}} `, 'm'));
  return end < 0 ? rest : rest.slice(0, end);
}

/** First-column entries of the markdown table rows in `text`, with backticks removed. */
function firstColumn(text: string): string[] {
  return [...text.matchAll(/^\| *`?([^`|]+?)`? *\|/gm)]
    .map((m) => m[1] ?? '')
    .filter((c) => !/^-+$/.test(c) && c !== 'input' && c !== 'output' && c !== 'code')
    .sort();
}

const names = (o: Record<string, string>): string[] => [...new Set(Object.values(o))].sort();

/** `input → default column` of a README inputs table. */
function documentedDefaults(table: string): Record<string, string> {
  return Object.fromEntries(
    [...table.matchAll(/^\| *`([a-z-]+)` *\| *([^|]*?) *\|/gm)].map((m) => [m[1] ?? '', m[2] ?? '']),
  );
}

const ACTION_FILES = {
  'OWNER/nix-plan@v1': 'action.yml',
  'OWNER/nix-plan/realise@v1': 'realise/action.yml',
  'OWNER/nix-plan/promote@v1': 'promote/action.yml',
  'OWNER/nix-plan/deploy@v1': 'deploy/action.yml',
} as const;

/** The inputs an action.yml declares. */
function declaredInputs(file: string): Set<string> {
  const block =
    read(file)
      .split(/^inputs:\n/m)[1]
      ?.split(/^\S/m)[0] ?? '';
  return new Set([...block.matchAll(/^ {2}([a-z-]+):/gm)].map((m) => m[1] ?? ''));
}

/** Each `uses: OWNER/nix-plan…` step in `text` with the `with:` keys it gives, and its line. */
function stepsIn(text: string): { action: string; inputs: string[]; line: number }[] {
  const lines = text.split('\n');
  const steps: { action: string; inputs: string[]; line: number }[] = [];
  lines.forEach((line, i) => {
    const uses = /^(\s*)(?:- )?uses: (OWNER\/nix-plan\S*)/.exec(line);
    if (uses === null) return;
    const step = { action: uses[2] ?? '', inputs: [] as string[], line: i + 1 };
    steps.push(step);
    // The step's keys are indented alike; its `with:` block is indented deeper.
    const keyIndent = line.indexOf('uses:');
    for (let j = i + 1; j < lines.length; j++) {
      const l = lines[j] ?? '';
      if (l.trim() === '' || l.trim().startsWith('#')) continue;
      const indent = l.length - l.trimStart().length;
      if (indent < keyIndent || (indent === keyIndent && l.trimStart().startsWith('- '))) break;
      if (indent === keyIndent && /^\s*with:\s*$/.test(l)) {
        for (let k = j + 1; k < lines.length; k++) {
          const w = lines[k] ?? '';
          if (w.trim() === '' || w.trim().startsWith('#')) continue;
          const wIndent = w.length - w.trimStart().length;
          if (wIndent <= keyIndent) break;
          const key = /^\s*([a-z-]+):/.exec(w);
          if (key !== null && wIndent === keyIndent + 2) step.inputs.push(key[1] ?? '');
        }
        break;
      }
    }
  });
  return steps;
}

describe('README', () => {
  test.each([
    ['### Plan: `OWNER/nix-plan@v1`', PlanInput, PlanOutput],
    ['### Realise: `OWNER/nix-plan/realise@v1`', RealiseInput, RealiseOutput],
    ['### Promote: `OWNER/nix-plan/promote@v1`', PromoteInput, PromoteOutput],
    ['### Deploy: `OWNER/nix-plan/deploy@v1`', DeployInput, DeployOutput],
  ])('%s documents every input and output, and no others', (heading, inputs, outputs) => {
    const action = section(README, heading);
    expect(firstColumn(section(action, '#### Inputs'))).toEqual(names(inputs));
    expect(firstColumn(section(action, '#### Outputs'))).toEqual(names(outputs));
  });

  test.each([
    ['### Plan: `OWNER/nix-plan@v1`', 'action.yml'],
    ['### Realise: `OWNER/nix-plan/realise@v1`', 'realise/action.yml'],
    ['### Promote: `OWNER/nix-plan/promote@v1`', 'promote/action.yml'],
    ['### Deploy: `OWNER/nix-plan/deploy@v1`', 'deploy/action.yml'],
  ])('%s states the defaults its action.yml declares', (heading, file) => {
    const documented = documentedDefaults(section(section(README, heading), '#### Inputs'));
    const declared = actionDefaults(join(REPO, file));
    for (const [input, value] of Object.entries(declared))
      expect({ input, documented: documented[input] }).toEqual({ input, documented: `\`${value}\`` });
    // A default in code font is the value the input takes when left out: action.yml declares it
    // (unless it is made from other values, `<name>-<realm>.nixplan`).
    for (const [input, value] of Object.entries(documented))
      if (value.startsWith('`') && !value.includes('<'))
        expect({ input, declared: declared[input] }).toEqual({ input, declared: value.slice(1, -1) });
  });

  test('every workflow shown uses only inputs the actions take', () => {
    const files = [
      'README.md',
      ...readdirSync(new URL('../../docs', import.meta.url))
        .filter((f) => f.endsWith('.md'))
        .map((f) => `docs/${f}`),
      ...readdirSync(new URL('../../docs/examples', import.meta.url))
        .filter((f) => f.endsWith('.yml'))
        .map((f) => `docs/examples/${f}`),
    ];
    const inputs = new Map(Object.entries(ACTION_FILES).map(([a, f]) => [a, declaredInputs(f)]));
    let steps = 0;
    for (const file of files)
      for (const step of stepsIn(read(file))) {
        steps++;
        const known = inputs.get(step.action);
        expect({ file, line: step.line, action: step.action, known: known !== undefined }).toEqual({
          file,
          line: step.line,
          action: step.action,
          known: true,
        });
        const unknown = step.inputs.filter((i) => known?.has(i) !== true);
        expect({ file, line: step.line, unknown }).toEqual({ file, line: step.line, unknown: [] });
      }
    expect(steps).toBeGreaterThan(10);
  });

  test('the exit code table is the one the CLI uses', () => {
    const rows = firstColumn(section(README, '### Exit codes')).map(Number);
    expect(rows.sort((a, b) => a - b)).toEqual(Object.values(ExitCode).sort((a, b) => a - b));
  });

  test('its opening commands name files that exist', () => {
    const opening = /```sh\n([\s\S]*?)```/.exec(README)?.[1] ?? '';
    const scripts = [...opening.matchAll(/^bash (\S+)/gm)].map((m) => m[1] ?? '');
    expect(scripts).toEqual(['examples/demo.sh', '.ci/run']);
    for (const s of scripts) expect(existsSync(new URL(`../../${s}`, import.meta.url))).toBe(true);
  });
});

describe('docs/cli.md', () => {
  test('its exit code table lists every code the CLI uses, each by its name in ExitCode', () => {
    // `| 1    | internal error | …`: the first word of the meaning is the code's name (ok: success).
    const rows = [...section(CLI_MD, '## Exit codes').matchAll(/^\| (\d+) +\| ([a-z]+)/gm)].map((m) => [
      Number(m[1]),
      m[2] ?? '',
    ]);
    const named = Object.entries(ExitCode).map(([name, code]) => [code, name === 'ok' ? 'success' : name]);
    expect(rows).toEqual(named);
  });

  const commandNames = COMMANDS.map((c) => c.name);
  const optionsOf = (name: string): string[] =>
    Object.keys(COMMANDS.find((c) => c.name === name)?.options ?? {}).filter((o) => !(o in COMMON));

  /** The markdown table that follows `intro` (its first line holding `intro`). */
  function tableAfter(intro: string): string {
    const start = CLI_MD.indexOf(intro);
    if (start < 0) throw new Error(`docs/cli.md has no '${intro}'`);
    const rest = CLI_MD.slice(start);
    const table = rest.slice(rest.indexOf('\n|'));
    return table.slice(0, table.search(/\n(?!\|)/));
  }

  /** option → the commands a shared table says take it. */
  function sharedOptions(): Map<string, string[]> {
    const shared = new Map<string, string[]>();
    // "Commands that run Nix (`export`, `realise`, `apply`) also take:" and its table.
    const nixIntro = /^Commands that run Nix \(([^)]*)\) also take:/m.exec(CLI_MD);
    const nixCommands = [...(nixIntro?.[1] ?? '').matchAll(/`([a-z]+)`/g)].map((m) => m[1] ?? '');
    for (const row of tableAfter('Commands that run Nix').matchAll(/^\| `--([a-z-]+)/gm))
      shared.set(row[1] ?? '', nixCommands);
    // "Options about trust and age": each row names its commands.
    for (const row of tableAfter('Options about trust and age').matchAll(
      /^\| `--([a-z-]+)[^|]*\|([^|]*)\|/gm,
    ))
      shared.set(
        row[1] ?? '',
        (row[2] ?? '').split(/[^a-z]+/).filter((w) => commandNames.includes(w)),
      );
    return shared;
  }

  test('its shared option tables name exactly the commands that take each option', () => {
    const shared = sharedOptions();
    expect([...shared.keys()].sort()).toEqual(
      ['allow-downgrade', 'log-format', 'max-age', 'nix-arg', 'no-check-sigs', 'trusted-key'].sort(),
    );
    for (const [option, documented] of shared) {
      const actual = commandNames.filter((c) => optionsOf(c).includes(option));
      expect({ option, commands: [...documented].sort() }).toEqual({ option, commands: actual.sort() });
    }
  });

  test.each(COMMANDS.map((c) => c.name))(
    '`%s` documents every option it takes, and its usage no other',
    (name) => {
      const text = section(CLI_MD, `## \`${name}\``);
      const shared = sharedOptions();
      const command = COMMANDS.find((c) => c.name === name);
      const missing = optionsOf(name).filter((o) => {
        if (shared.get(o)?.includes(name) === true) return false;
        const short = command?.options[o]?.short;
        const spelled = new RegExp(`(^|[^\\w-])(--${o}${short === undefined ? '' : `|-${short}`})(?![\\w-])`);
        return !spelled.test(text);
      });
      expect({ name, missing }).toEqual({ name, missing: [] });
      const usage = /```\n([\s\S]*?)```/.exec(text)?.[1] ?? '';
      expect(usage).toContain(`nix-plan ${name}`);
      const unknown = [...usage.matchAll(/(?<![\w-])--([a-z][a-z-]*)/g)]
        .map((m) => m[1] ?? '')
        .filter((o) => !(o in (command?.options ?? {})));
      expect({ name, unknown }).toEqual({ name, unknown: [] });
    },
  );
});

describe('the nix-plan commands the docs and --help show', () => {
  /** Every `nix-plan …` command line of the sh blocks in the README and docs (not measured history). */
  function shown(): { where: string; line: string }[] {
    const files = [
      'README.md',
      ...readdirSync(new URL('../../docs', import.meta.url))
        .filter((f) => f.endsWith('.md') && f !== 'performance.md')
        .map((f) => `docs/${f}`),
    ];
    const lines: { where: string; line: string }[] = [];
    for (const file of files)
      for (const block of read(file).matchAll(/```sh\n([\s\S]*?)```/g))
        for (const raw of (block[1] ?? '').split('\n')) {
          const m = /(?:^\s*|\|&? *|sudo )nix-plan (\S.*)$/.exec(raw);
          if (m !== null) lines.push({ where: file, line: m[1] ?? '' });
        }
    for (const c of COMMANDS)
      for (const example of c.examples) {
        const m = /(?:^|\| *)nix-plan (\S.*)$/.exec(example);
        if (m !== null) lines.push({ where: `nix-plan ${c.name} --help`, line: m[1] ?? '' });
      }
    return lines;
  }

  /** The words of one command: up to a comment, a pipe, `&&`, `||`, `;` or a redirection. */
  function words(line: string): string[] {
    const command = line.replace(/\s+#.*$/, '').split(/\s+(?:\|&?|&&|\|\||;|\d?>)(?:\s|$)/)[0] ?? '';
    return splitShellWords(command);
  }

  test('each names a command, parses, and signs only what it verified', () => {
    const lines = shown();
    expect(lines.length).toBeGreaterThan(60);
    for (const { where, line } of lines) {
      const [name = '', ...argv] = words(line);
      const command = COMMANDS.find((c) => c.name === name);
      let problem = command === undefined ? `no command '${name}'` : '';
      try {
        const args = command?.parse(argv);
        // --sign-key on a plan read (not export, which signs what it evaluated) needs the keys it
        // was verified with, or --no-check-sigs: the rule the commands apply before any work.
        if (args !== undefined && name !== 'export')
          assertSignable(
            args.values['sign-key'] !== undefined,
            args.values['trusted-key'] !== undefined,
            args.values['no-check-sigs'] === true,
          );
      } catch (e) {
        problem = e instanceof Error ? e.message : String(e);
      }
      expect({ where, line, problem }).toEqual({ where, line, problem: '' });
    }
  });
});
