// Shell completions and the man page, generated from the command table: the bash script parses
// and completes (run in a real bash), zsh and fish parse where installed (always under CI), and
// the man page renders in groff without warnings and documents every command and option.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { COMMANDS } from '../../src/cli/commands.js';
import { completionScript, SHELLS, valueCompletion } from '../../src/cli/completions.js';
import { EXIT_CODE_MEANINGS } from '../../src/cli/exit-codes.js';
import { main } from '../../src/cli/main.js';
import { roff } from '../../src/cli/manpage.js';
import type { CliIo } from '../../src/cli/terminal.js';

async function run(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const io: CliIo = {
    stdout: { write: (s: string) => (out += s) },
    stderr: { write: (s: string) => (err += s) },
  };
  return { code: await main(argv, { io }), out, err };
}

/** Whether `program` is on PATH; under CI a missing one fails instead of skipping. */
function have(program: string): boolean {
  const found = spawnSync('sh', ['-c', `command -v ${program}`]).status === 0;
  if (!found && process.env['CI'] === 'true') throw new Error(`CI needs ${program}: run .ci/run`);
  return found;
}

describe('bash completion', () => {
  let dir: string;
  let script: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'nix-plan-completion-'));
    script = join(dir, 'nix-plan.bash');
    const r = await run(['completions', 'bash']);
    expect(r.code).toBe(0);
    writeFileSync(script, r.out);
    mkdirSync(join(dir, 'plans'));
    writeFileSync(join(dir, 'plans', 'web.nixplan'), '');
    writeFileSync(join(dir, 'plans', 'db.nixplan'), '');
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** What bash completes for the command line `words` (the last one is the word being completed). */
  function complete(...words: string[]): string[] {
    const program = [
      'set -e',
      `source ${JSON.stringify(script)}`,
      'COMP_WORDS=("$@")',
      'COMP_CWORD=$((${#COMP_WORDS[@]} - 1))',
      '_nix_plan',
      'printf "%s\\n" "${COMPREPLY[@]}"',
    ].join('\n');
    const r = spawnSync('bash', ['-c', program, 'bash', 'nix-plan', ...words], {
      cwd: dir,
      encoding: 'utf8',
    });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    return r.stdout
      .split('\n')
      .filter((l) => l !== '')
      .sort();
  }

  test('parses, and registers itself for nix-plan', () => {
    expect(spawnSync('bash', ['-n', script]).status).toBe(0);
    const r = spawnSync('bash', ['-c', `source ${JSON.stringify(script)}; complete -p nix-plan`], {
      encoding: 'utf8',
    });
    expect(r.stdout).toMatch(/-F _nix_plan nix-plan/);
  });

  test('completes commands, options, fixed values, files and help topics', () => {
    expect(complete('ex')).toEqual(['export']);
    expect(complete('re')).toEqual(['realise', 'relocate']);
    expect(complete('realise', 'plans/web.nixplan', '--meth')).toEqual(['--method']);
    expect(complete('realise', 'plans/web.nixplan', '--method', '')).toEqual(['auto', 'copy', 'import']);
    expect(complete('export', '--include', 's')).toEqual(['sources']);
    expect(complete('realise', '--log-format', 'internal')).toEqual(['internal-json']);
    expect(complete('apply', '--action', 'dry')).toEqual(['dry-activate']);
    expect(complete('inspect', 'plans/')).toEqual(['plans/db.nixplan', 'plans/web.nixplan']);
    expect(complete('export', '-o', 'plans/w')).toEqual(['plans/web.nixplan']);
    expect(complete('completions', '')).toEqual(['bash', 'fish', 'zsh']);
    expect(complete('help', 'exit')).toEqual(['exit-codes']);
    // A value with nothing to suggest completes to nothing, not to options.
    expect(complete('export', '--level', '')).toEqual([]);
  });

  test('every command and option of the table is in it', () => {
    const text = completionScript('bash', COMMANDS);
    for (const c of COMMANDS) {
      expect(text).toContain(`  ${c.name})`);
      for (const [name, spec] of Object.entries(c.options)) {
        expect(text).toContain(`--${name}`);
        if (spec.choices !== undefined) expect(text).toContain(`'${spec.choices.join(' ')}'`);
      }
    }
    expect(valueCompletion({ type: 'string', value: 'DIR', help: '' })).toBe('dir');
    expect(valueCompletion({ type: 'boolean', help: '' })).toBeUndefined();
  });
});

describe('zsh and fish completion', () => {
  test.each([
    ['zsh', ['-n']],
    ['fish', ['--no-execute']],
  ] as const)('%s parses its script, which names every command', async (shell, check) => {
    const { code, out } = await run(['completions', shell]);
    expect(code).toBe(0);
    for (const c of COMMANDS) expect(out).toContain(c.name);
    if (!have(shell)) return;
    const dir = mkdtempSync(join(tmpdir(), 'nix-plan-completion-'));
    try {
      const file = join(dir, `nix-plan.${shell}`);
      writeFileSync(file, out);
      const r = spawnSync(shell, [...check, file], { encoding: 'utf8' });
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('fish completes commands and fixed values', async () => {
    if (!have('fish')) return;
    const { out } = await run(['completions', 'fish']);
    const dir = mkdtempSync(join(tmpdir(), 'nix-plan-completion-'));
    try {
      const file = join(dir, 'nix-plan.fish');
      writeFileSync(file, out);
      const complete = (line: string): string[] =>
        spawnSync('fish', ['--no-config', '-c', `source ${file}; complete -C ${JSON.stringify(line)}`], {
          encoding: 'utf8',
        })
          .stdout.split('\n')
          .map((l) => l.split('\t')[0] ?? '')
          .filter((l) => l !== '')
          .sort();
      expect(complete('nix-plan ex')).toEqual(['export']);
      expect(complete('nix-plan realise x.nixplan --method ')).toEqual(['auto', 'copy', 'import']);
      // `import` as a value does not make realise's options import's.
      expect(complete('nix-plan realise x.nixplan --method import --dry')).toEqual(['--dry-run']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('an unknown shell is a usage error', async () => {
    const r = await run(['completions', 'tcsh']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/SHELL must be one of bash, zsh, fish/);
    expect(SHELLS).toEqual(['bash', 'zsh', 'fish']);
  });
});

describe('the man page', () => {
  test('documents every command, option and exit code, escaped for roff', async () => {
    const { code, out } = await run(['man']);
    expect(code).toBe(0);
    expect(out).toMatch(/^\.TH NIX\\-PLAN 1 /);
    for (const c of COMMANDS) {
      expect(out).toContain(`.SS ${roff(c.name)}\n`);
      for (const name of Object.keys(c.options)) expect(out).toContain(`\\fB\\-\\-${roff(name)}\\fR`);
    }
    for (const [exit, meaning] of EXIT_CODE_MEANINGS) expect(out).toContain(`.B ${exit}\n${roff(meaning)}\n`);
    // No text line is read as a roff request.
    expect(
      out
        .split('\n')
        .filter((l) => /^[.'][a-z]/.test(l) && !/^\.(TH|SH|SS|PP|TP|B|I|RS|RE|nf|fi|br)\b/.test(l)),
    ).toEqual([]);
    expect(roff("-v .x\n.y 'z\n'q")).toBe("\\-v .x\n\\&.y 'z\n\\&'q");
    expect(roff('a … b → 𝄞')).toBe('a \\[u2026] b \\[u2192] \\[u1D11E]');
  });

  test('renders in groff without warnings', async () => {
    if (!have('groff')) return;
    const { out } = await run(['man']);
    const r = spawnSync('groff', ['-man', '-Tutf8', '-ww', '-z'], { input: out, encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    // Plain text: no SGR, no overstriking.
    const text = spawnSync('groff', ['-man', '-Tutf8', '-P', '-cbou'], {
      input: out,
      encoding: 'utf8',
    }).stdout;
    expect(text).toMatch(/nix-plan +- +evaluate a Nix configuration once/);
    expect(text).toMatch(/--nix-arg ARGS/);
    expect(text).toContain('…');
  });
});
