// The README is documentation a user acts on: its tables must list exactly what the code has.
import { describe, expect, test } from '@jest/globals';
import { existsSync, readFileSync } from 'node:fs';
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
import { ExitCode } from '../../src/cli/exit-codes.js';

const README = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');

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
