// What `inspect` and `inspect --contents` print, read as a terminal shows it: every column starts
// at the same place on each line, with many roots (an index of two digits) and with a name longer
// than its column (the row goes on below, in the columns, rather than pushing its cells right).
import { afterEach, beforeEach, describe, expect, test } from '@jest/globals';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tableRow } from '../../src/cli/diff-format.js';
import { main } from '../../src/cli/main.js';
import type { CliIo } from '../../src/cli/terminal.js';
import type { CommandRunner } from '../../src/nix/runner.js';
import { bundleOf, draftFor, encodeExport, fileEntries } from '../support/bundle-fixtures.js';
import { Builder } from '../support/closure-builder.js';
import { SYSTEM } from '../support/nix.js';

const STORE = '/nix/store';
const LONG = 'python3.12-a-package-whose-name-is-longer-than-the-name-column';

const noNix: CommandRunner = {
  run: () => Promise.reject(new Error('inspect ran Nix')),
};

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'nix-plan-format-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/**
 * A plan whose roots are `names` (the first with outputs out, dev and lib); with `under`, one root
 * whose closure holds the packages `names`. As a file.
 */
async function plan(names: readonly string[], under?: string): Promise<string> {
  const b = new Builder(STORE);
  const drvs: string[] = [];
  for (const [i, name] of names.entries())
    drvs.push(await b.drv(name, { system: SYSTEM, ...(i === 0 && { outputs: ['out', 'dev', 'lib'] }) }));
  const tops =
    under === undefined
      ? drvs
      : [
          await b.drv(under, {
            system: SYSTEM,
            inputDrvs: drvs.map((d): [string, string[]] => [d, ['out']]),
          }),
        ];
  const roots = tops.map((drvPath, i) => ({
    attribute: `root-${i}`,
    drvPath,
    outputs: { out: b.outPath(drvPath) },
  }));
  const exportBytes = encodeExport(fileEntries(b.objects));
  const file = join(dir, 'plan.nixplan');
  writeFileSync(file, bundleOf(await draftFor(exportBytes, STORE, roots, 'drvs'), exportBytes).bytes);
  return file;
}

async function cli(argv: string[]): Promise<string> {
  let out = '';
  const io: CliIo = {
    stdout: { write: (s: string | Uint8Array) => (out += s.toString()) },
    stderr: { write: () => true },
  };
  expect(await main(argv, { io, runner: noNix })).toBe(0);
  return out;
}

describe('inspect on a terminal', () => {
  test("eleven roots: each root's .drv and outputs line up under its label", async () => {
    const names = Array.from({ length: 11 }, (_, i) => `pkg${i}-1.${i}`);
    const out = await cli(['inspect', await plan(names)]);
    const lines = out.split('\n');
    for (const [i] of names.entries()) {
      const at = lines.findIndex((l) => l.endsWith(`  root-${i}`));
      expect(at).toBeGreaterThan(0);
      const column = lines[at]!.indexOf('root-');
      // The .drv path on the next line, then each output, start where the label starts.
      expect(lines[at + 1]!.indexOf(STORE)).toBe(column);
      expect(lines[at + 2]!.indexOf('out → ')).toBe(column);
    }
  });

  test('--contents: a name longer than its column goes on below, and every row keeps the columns', async () => {
    const out = await cli([
      'inspect',
      '--contents',
      await plan([`hello-2.12`, `${LONG}-1.0`, 'zlib-1.3'], 'system-1'),
    ]);
    const rows = out.split('\n').filter((l) => l.startsWith('  '));
    // Where each column starts on the ordinary rows.
    const hello = rows.find((l) => l.startsWith('  hello '))!;
    const versionAt = hello.indexOf('2.12');
    const outputsAt = hello.indexOf('dev,lib,out');
    const systemAt = hello.indexOf(SYSTEM);
    const zlib = rows.find((l) => l.startsWith('  zlib '))!;
    expect([zlib.indexOf('1.3'), zlib.indexOf('out'), zlib.indexOf(SYSTEM)]).toEqual([
      versionAt,
      outputsAt,
      systemAt,
    ]);
    // The long name whole on its line; its version, outputs and system below, in their columns.
    const long = rows.findIndex((l) => l.startsWith(`  ${LONG}`));
    expect(rows[long]).toBe(`  ${LONG}`);
    const rest = rows[long + 1]!;
    expect(rest.slice(0, versionAt).trim()).toBe('');
    expect([rest.indexOf('1.0'), rest.indexOf('out'), rest.indexOf(SYSTEM)]).toEqual([
      versionAt,
      outputsAt,
      systemAt,
    ]);
  });
});

describe('tableRow', () => {
  test('cells start at their columns; one wider than its column goes on below, in the columns', () => {
    expect(tableRow('  ', ['a', 'bb', 'c'], [3, 2])).toBe('  a    bb  c');
    // The middle cell overflows: the last one goes on below, at its own column.
    expect(tableRow('  ', ['a', 'bbbbbb', 'c'], [3, 2])).toBe('  a    bbbbbb\n' + ' '.repeat(11) + 'c');
    // The first one overflows by exactly its two spaces of room: it still breaks, never touching.
    expect(tableRow('> ', ['abcde', 'x'], [3])).toBe('> abcde\n       x');
    expect(tableRow('> ', ['abc', 'x'], [3])).toBe('> abc  x');
  });
});
