// The Nix adapter's failure type and refusal recogniser, without running Nix.
import { describe, expect, test } from '@jest/globals';
import { NixPlanError } from '../../src/core/errors.js';
import { NixCommandError, STDERR_TAIL, isSignatureRefusal } from '../../src/nix/errors.js';
import { parseGenerations } from '../../src/nix/profile.js';

describe('NixCommandError', () => {
  test('is a nix error naming the command, its exit code and the tail of stderr', () => {
    const e = new NixCommandError('nix-store', ['--store', 'x', '--import', 'more'], 1, '  oops\n');
    expect(e).toBeInstanceOf(NixPlanError);
    expect(e.code).toBe('nix');
    expect(e.message).toBe('nix-store --store x --import… failed with exit code 1:\noops');
    expect(e).toMatchObject({ command: 'nix-store', exitCode: 1, stderrTail: 'oops' });
  });

  test('keeps only the end of a long stderr, where Nix says why', () => {
    const stderr = 'x'.repeat(10_000) + 'error: the reason';
    const e = new NixCommandError('nix', [], 2, stderr, { what: 'nix copy' });
    expect(e.stderrTail).toHaveLength(STDERR_TAIL);
    expect(e.message.startsWith('nix copy failed with exit code 2:\n')).toBe(true);
    expect(e.message.endsWith('error: the reason')).toBe(true);
  });

  test('says a hint in parentheses after the exit code', () => {
    const e = new NixCommandError('/s/bin/switch-to-configuration', ['switch'], 3, 'bad', {
      what: 'switch-to-configuration switch',
      hint: 'the profile changed',
    });
    expect(e.message).toBe(
      'switch-to-configuration switch failed with exit code 3 (the profile changed):\nbad',
    );
  });

  test('check throws for a non-zero exit only', () => {
    expect(() => NixCommandError.check('nix', ['copy'], { code: 0, stderr: 'noise' })).not.toThrow();
    expect(() => NixCommandError.check('nix', ['copy'], { code: 1, stderr: 'no' })).toThrow(NixCommandError);
  });
});

describe('isSignatureRefusal', () => {
  // The texts Nix prints (LocalStore::addToStore, importPaths) on the versions we run.
  test.each([
    "error: cannot add path '/nix/store/abc-x' because it lacks a signature by a trusted key",
    "error: cannot import path '/nix/store/abc-x' because it lacks a valid signature",
    "error: cannot add path '/nix/store/abc-x' because it lacks a signature",
  ])('recognises %s', (stderr) => {
    expect(isSignatureRefusal(stderr)).toBe(true);
    expect(isSignatureRefusal(new NixCommandError('nix-store', ['--import'], 1, stderr))).toBe(true);
  });

  test('does not take other failures for one', () => {
    expect(isSignatureRefusal("error: path '/nix/store/abc-x' is not valid")).toBe(false);
    expect(isSignatureRefusal('error: unexpected end-of-file')).toBe(false);
  });
});

describe('parseGenerations', () => {
  test('reads the numbers of `nix-env --list-generations`, current one included', () => {
    const text = '   1   2026-12-01 10:00:00   \n   2   2026-12-02 11:00:00   (current)\n';
    expect(parseGenerations(text)).toEqual([1, 2]);
    expect(parseGenerations('')).toEqual([]);
  });
});
