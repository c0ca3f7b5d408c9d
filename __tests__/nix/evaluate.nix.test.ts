// One evaluation for all roots, on real Nix (2.8 and 2.34): several flake installables in one
// `nix` process and the attributes of a file in one `nix-instantiate`, each root mapped to exactly
// the installable or attribute it came from (checked against evaluating each one alone).
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  checkEvaluateRequest,
  type EvaluateRequest,
  evaluate,
  evaluationMessages,
  parseDryRunJson,
  parseEvalStrings,
} from '../../src/nix/evaluate.js';
import { NixStore } from '../../src/nix/store.js';
import { RecordingRunner } from '../support/cli-run.js';
import { nixVersions, ScratchStore, SYSTEM } from '../support/nix.js';

// Names sort differently from the order asked (zeta < alpha would be wrong), one attribute is
// empty, one is a list of two, one is a set of two, one a function of --arg.
const DEFAULT_NIX = `{ system ? builtins.currentSystem, suffix ? "" }:
let d = name: derivation { name = name + suffix; inherit system; builder = "/bin/sh"; args = [ "-c" "echo > $out" ]; };
in {
  zeta = d "zeta"; alpha = d "alpha"; mid = d "mid";
  none = { };
  pair = [ (d "p1") (d "p2") ];
  set = { x = d "x"; y = d "y"; };
  weird = { type = "not-a-derivation"; drvPath = "/nope.drv"; };
  source = ./default.nix;
}
`;
// Every value says something as it is evaluated, as an expression with warnings would.
const TRACED_NIX = `{ system ? builtins.currentSystem }:
let d = name: builtins.trace "evaluating \${name}" (derivation { inherit name system; builder = "/bin/sh"; args = [ "-c" "echo > $out" ]; });
in { web = d "web"; db = d "db"; api = d "api"; pair = [ (d "p1") (d "p2") ]; broken = builtins.throw "web needs a port"; }
`;
const FLAKE_NIX = `{ outputs = { self }: { packages.${SYSTEM} = import ./default.nix { system = "${SYSTEM}"; }; }; }
`;

describe('parsers of the evaluators’ output', () => {
  test('parseEvalStrings reads values with and without separators, and refuses non-strings', () => {
    expect(parseEvalStrings('"derivation""/s/a.drv"')).toEqual(['derivation', '/s/a.drv']);
    expect(parseEvalStrings('"a \\"q\\""\n"b"\n')).toEqual(['a "q"', 'b']);
    expect(parseEvalStrings('')).toEqual([]);
    expect(parseEvalStrings('"a"5')).toBeUndefined();
    expect(parseEvalStrings('{"a":1}')).toBeUndefined();
  });

  test('parseDryRunJson maps results to installables in order and refuses what is not a .drv', () => {
    const json = JSON.stringify([{ drvPath: '/s/b.drv', outputs: {} }, { path: '/s/a.drv' }]);
    expect(parseDryRunJson(json, ['.#b', '.#a'])).toEqual([
      { installable: '.#b', drvPath: '/s/b.drv' },
      { installable: '.#a', drvPath: '/s/a.drv' },
    ]);
    expect(() => parseDryRunJson(JSON.stringify([{ path: '/s/x-src' }]), ['.#src'])).toThrow(
      /'\.#src' evaluated to '\/s\/x-src', not a derivation/,
    );
    expect(() => parseDryRunJson(json, ['.#b'])).toThrow(/2 results for 1 installables/);
    expect(() => parseDryRunJson('warning: x', ['.#b'])).toThrow(/no JSON/);
  });
});

describe('what the evaluators say', () => {
  /** Feeds `text` to the filter in chunks of `size` bytes and returns what it passed on. */
  function filtered(text: string, size: number): string {
    const out: Buffer[] = [];
    const messages = evaluationMessages((c) => out.push(Buffer.from(c)));
    const bytes = Buffer.from(text);
    for (let at = 0; at < bytes.length; at += size) messages.write(bytes.subarray(at, at + size));
    messages.end();
    return Buffer.concat(out).toString('utf8');
  }

  test("passes every line on but Nix's lists of what a build would make, in chunks of any size", () => {
    const stderr =
      'trace: evaluating web\n' +
      'these 2 derivations will be built:\n  /s/a.drv\n  /s/b.drv\n' +
      "warning: Git tree '/src' is dirty\n" +
      "warning: you did not specify '--add-root'; the result might be removed by the garbage collector\n" +
      '  indented, but not under a list\n' +
      'this path will be fetched (0.01 MiB download, 0.05 MiB unpacked):\n  /s/c\n' +
      "don't know how to build these paths:\n  /s/d\n" +
      'trace: no newline at the end';
    const want =
      'trace: evaluating web\n' +
      "warning: Git tree '/src' is dirty\n" +
      '  indented, but not under a list\n' +
      'trace: no newline at the end';
    for (const size of [1, 2, 7, 64, stderr.length]) expect(filtered(stderr, size)).toBe(want);
  });

  test('a line without an end is passed on in pieces of at most 64 KiB, not held whole', () => {
    const out: number[] = [];
    const messages = evaluationMessages((c) => out.push(c.length));
    messages.write(Buffer.alloc(100 * 1024, 0x61));
    expect(out).toEqual([64 * 1024]);
    messages.end();
    expect(out).toEqual([64 * 1024, 36 * 1024]);
  });

  test("a long line's pieces go where its first piece went: under a list, dropped; else passed on", () => {
    const long = 'x'.repeat(150 * 1024);
    const stderr = `these 2 paths will be fetched:\n  /s/${long}\n  /s/b\ntrace: ${long}\nafter\n`;
    for (const size of [4096, stderr.length]) expect(filtered(stderr, size)).toBe(`trace: ${long}\nafter\n`);
  });
});

describe.each(nixVersions())('one evaluation on Nix $label', (version) => {
  let s: ScratchStore;
  let dir: string;
  let flake: (attr: string) => string;
  beforeAll(() => {
    s = new ScratchStore(version);
    dir = mkdtempSync(join(tmpdir(), 'nix-plan-eval-'));
    writeFileSync(join(dir, 'default.nix'), DEFAULT_NIX);
    writeFileSync(join(dir, 'flake.nix'), FLAKE_NIX);
    flake = (attr) => `path:${dir}#${attr}`;
  });
  afterAll(() => {
    s.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  /** What evaluating one installable alone gives. */
  async function alone(installable: string): Promise<string> {
    const { stdout } = await s.run('nix', ['path-info', '--derivation', installable]);
    return stdout.toString('utf8').trim();
  }

  test('several installables: one nix process, each root mapped to its own installable', async () => {
    const counting = new RecordingRunner(s.runner);
    const asked = [flake('zeta'), flake('alpha'), flake('mid'), flake('alpha')];
    const { roots, storeDir } = await evaluate(
      await checkEvaluateRequest({ installables: asked }),
      new NixStore(counting),
    );
    expect(counting.commands).toHaveLength(1);
    expect(counting.commands[0]?.slice(0, 5)).toContain('build');
    expect(storeDir).toBe(s.storeDir);
    // The duplicate is dropped; the order is the order asked, not Nix's sorted set.
    expect(roots).toEqual([
      { installable: flake('zeta'), drvPath: await alone(flake('zeta')) },
      { installable: flake('alpha'), drvPath: await alone(flake('alpha')) },
      { installable: flake('mid'), drvPath: await alone(flake('mid')) },
    ]);
    expect(roots.map((r) => r.drvPath.replace(/^.*-/, ''))).toEqual(['zeta.drv', 'alpha.drv', 'mid.drv']);
  });

  test('one installable: nix path-info --derivation, as before', async () => {
    const counting = new RecordingRunner(s.runner);
    const { roots } = await evaluate(
      await checkEvaluateRequest({ installables: [flake('mid')] }),
      new NixStore(counting),
    );
    expect(counting.commands.map((c) => c.includes('path-info'))).toEqual([true]);
    expect(roots).toEqual([{ installable: flake('mid'), drvPath: await alone(flake('mid')) }]);
  });

  test('an installable that is not a derivation, or missing, fails naming it', async () => {
    const store = new NixStore(s.runner);
    await expect(
      evaluate(await checkEvaluateRequest({ installables: [flake('zeta'), flake('nope')] }), store),
    ).rejects.toMatchObject({
      code: 'nix',
      message: expect.stringMatching(/does not provide attribute .*'nope'/s),
    });
    // A path value: Nix 2.34 gives it as a store path, 2.8 refuses it itself.
    await expect(
      evaluate(await checkEvaluateRequest({ installables: [flake('zeta'), flake('source')] }), store),
    ).rejects.toMatchObject({
      code: 'nix',
      message: expect.stringMatching(/source/),
    });
  });

  test("a file's attributes: one nix-instantiate, each root labelled with its attribute", async () => {
    const counting = new RecordingRunner(s.runner);
    const file = join(dir, 'default.nix');
    const { roots } = await evaluate(
      await checkEvaluateRequest({
        file,
        attributes: ['zeta', 'alpha'],
        evalArgs: ['--argstr', 'suffix', '-s'],
      }),
      new NixStore(counting),
    );
    expect(counting.commands).toHaveLength(1);
    const withSuffix = (
      await s.run('nix-instantiate', [file, '--argstr', 'suffix', '-s', '-A', 'zeta', '-A', 'alpha'])
    ).stdout
      .toString('utf8')
      .trim()
      .split('\n');
    expect(roots).toEqual([
      { attribute: 'zeta', drvPath: withSuffix[0] },
      { attribute: 'alpha', drvPath: withSuffix[1] },
    ]);
    // The .drv files are in the store, as plain instantiation leaves them.
    expect(await new NixStore(s.runner).invalidPaths(withSuffix)).toEqual(new Set());
  });

  test('attributes that are not one derivation each: every derivation, none mislabelled', async () => {
    const file = join(dir, 'default.nix');
    for (const attributes of [
      ['none', 'pair'],
      ['set', 'zeta'],
      ['weird', 'zeta'],
    ]) {
      const { roots } = await evaluate(
        await checkEvaluateRequest({ file, attributes }),
        new NixStore(s.runner),
      );
      const plain = await s.instantiate(file, attributes);
      expect(roots.map((r) => r.drvPath)).toEqual(plain);
      expect(roots.every((r) => r.attribute === undefined)).toBe(true);
    }
  });

  test("the evaluators' messages reach the log once each, without the list of what a build would make", async () => {
    const traced = mkdtempSync(join(tmpdir(), 'nix-plan-eval-traced-'));
    try {
      writeFileSync(join(traced, 'default.nix'), TRACED_NIX);
      writeFileSync(join(traced, 'flake.nix'), FLAKE_NIX);
      const store = new NixStore(s.runner);
      const said = async (request: EvaluateRequest): Promise<string> => {
        const chunks: Buffer[] = [];
        await evaluate(await checkEvaluateRequest(request), store, (c) => chunks.push(Buffer.from(c)));
        return Buffer.concat(chunks).toString('utf8');
      };
      const traces = (text: string): string[] => text.split('\n').filter((l) => l.startsWith('trace: '));
      // Several installables: `nix build --dry-run` also lists the derivations it would build.
      const flakeSaid = await said({ installables: [`path:${traced}#web`, `path:${traced}#db`] });
      expect(traces(flakeSaid)).toEqual(['trace: evaluating web', 'trace: evaluating db']);
      expect(flakeSaid).not.toMatch(/will be built|\.drv|--add-root/);
      // One installable (not evaluated before: Nix's evaluation cache would answer without a word).
      expect(traces(await said({ installables: [`path:${traced}#api`] }))).toEqual(['trace: evaluating api']);
      // A file's attributes, one derivation each (Nix 2.34 evaluates each selected attribute on
      // its own, so it may say a thing twice), and attributes that are not.
      const file = join(traced, 'default.nix');
      expect(new Set(traces(await said({ file, attributes: ['db', 'web'] })))).toEqual(
        new Set(['trace: evaluating db', 'trace: evaluating web']),
      );
      const pairSaid = await said({ file, attributes: ['pair'] });
      expect(pairSaid).not.toMatch(/--add-root/);
      expect(traces(pairSaid)).toEqual(['trace: evaluating p1', 'trace: evaluating p2']);
      // Without a log nothing is passed on, and a failure's message carries Nix's words; with
      // one, the words are in the log and the message points there.
      await expect(
        evaluate(await checkEvaluateRequest({ installables: [`path:${traced}#broken`] }), store),
      ).rejects.toMatchObject({
        code: 'nix',
        message: expect.stringMatching(/web needs a port/),
      });
      const chunks: Buffer[] = [];
      const failed = evaluate(
        await checkEvaluateRequest({ installables: [`path:${traced}#web`, `path:${traced}#broken`] }),
        store,
        (c) => chunks.push(Buffer.from(c)),
      );
      await expect(failed).rejects.toMatchObject({
        code: 'nix',
        message: expect.stringMatching(/output is above/),
      });
      expect(Buffer.concat(chunks).toString('utf8')).toMatch(/web needs a port/);
    } finally {
      rmSync(traced, { recursive: true, force: true });
    }
  });

  test('a missing attribute is a Nix error naming it; a missing file a usage error before Nix runs', async () => {
    const counting = new RecordingRunner(s.runner);
    const store = new NixStore(counting);
    await expect(
      evaluate(
        await checkEvaluateRequest({ file: join(dir, 'default.nix'), attributes: ['zeta', 'nope'] }),
        store,
      ),
    ).rejects.toMatchObject({ code: 'nix', message: expect.stringMatching(/'nope'/) });
    counting.commands.length = 0;
    await expect(checkEvaluateRequest({ file: join(dir, 'missing.nix') })).rejects.toMatchObject({
      code: 'usage',
      message: expect.stringMatching(/missing\.nix': no such file/),
    });
    expect(counting.commands).toEqual([]);
  });
});
