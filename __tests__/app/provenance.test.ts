// Provenance from facts: the GitHub Actions run, git, and `nix flake metadata --json` as Nix 2.8 and 2.34 print it.
import { describe, expect, test } from '@jest/globals';
import {
  combineProvenance,
  flakeProvenance,
  gitProvenance,
  githubProvenance,
  lockedUrl,
  rfc3339,
  withoutCredentials,
} from '../../src/core/provenance.js';
import { localFlakeDir, sameRepository, worktreeOf } from '../../src/app/provenance.js';

const SHA = '0123456789abcdef0123456789abcdef01234567';

describe('GitHub Actions', () => {
  const env: Record<string, string> = {
    GITHUB_ACTIONS: 'true',
    GITHUB_REPOSITORY: 'owner/name',
    GITHUB_SHA: SHA,
    GITHUB_REF: 'refs/heads/main',
    GITHUB_WORKFLOW_REF: 'owner/name/.github/workflows/ci.yml@refs/heads/main',
    GITHUB_SERVER_URL: 'https://github.com',
    GITHUB_RUN_ID: '123456',
    GITHUB_RUN_ATTEMPT: '2',
  };
  test('the run, with its attempt in the URL', () => {
    expect(combineProvenance(githubProvenance((n) => env[n])).provenance).toEqual({
      repository: 'owner/name',
      commit: SHA,
      ref: 'refs/heads/main',
      workflow: 'owner/name/.github/workflows/ci.yml@refs/heads/main',
      runUrl: 'https://github.com/owner/name/actions/runs/123456/attempts/2',
      runAttempt: 2,
    });
  });
  test('nothing outside Actions', () => {
    expect(githubProvenance((n) => ({ ...env, GITHUB_ACTIONS: undefined })[n])).toEqual({});
  });
  test('values that do not fit are dropped and named', () => {
    const odd = { ...env, GITHUB_SHA: 'not-a-sha', GITHUB_REF: 'refs/heads/a b' };
    const { provenance, dropped } = combineProvenance(githubProvenance((n) => odd[n as keyof typeof odd]));
    expect(provenance.commit).toBeUndefined();
    expect(provenance.ref).toBeUndefined();
    expect(dropped.join('\n')).toMatch(/^commit \(provenance\.commit .*\nref \(provenance\.ref/);
  });
});

describe('git', () => {
  test('credentials never reach the manifest', () => {
    expect(withoutCredentials('https://x-access-token:ghs_secret@github.com/o/r.git')).toBe(
      'https://github.com/o/r.git',
    );
    expect(withoutCredentials('ssh://git@host:22/o/r')).toBe('ssh://host:22/o/r');
    expect(withoutCredentials('git@github.com:o/r.git')).toBe('git@github.com:o/r.git');
    expect(gitProvenance({ commit: SHA, dirty: true, remoteUrl: 'https://tok@h/o/r' })).toMatchObject({
      repository: 'https://h/o/r',
      dirty: true,
    });
  });
  test('the first source wins; later ones fill gaps', () => {
    const { provenance } = combineProvenance(
      { commit: SHA },
      { commit: 'f'.repeat(40), ref: 'refs/x' },
      { dirty: false },
    );
    expect(provenance).toEqual({ commit: SHA, ref: 'refs/x', dirty: false });
  });
  test('a worktree of the run repository, or another', () => {
    expect(sameRepository('https://github.com/Owner/Name.git', 'owner/name')).toBe(true);
    expect(sameRepository('git@github.com:owner/name.git', 'owner/name')).toBe(true);
    expect(sameRepository('https://github.com/owner/other', 'owner/name')).toBe(false);
    expect(sameRepository(undefined, 'owner/name')).toBe(true);
  });
});

describe('flakes', () => {
  // `nix flake metadata --json` of a path flake with a flake and a non-flake input (Nix 2.8.0).
  const metadata28 = {
    lastModified: 1796553335,
    locked: {
      lastModified: 1796553335,
      narHash: 'sha256-VMNimz3YnOO0p9wHe3Ak6pIkMDWbV/CYsqkL/MJQPSw=',
      path: '/src',
      type: 'path',
    },
    locks: {
      nodes: {
        dep: {
          locked: {
            lastModified: 1,
            narHash: 'sha256-bZsJIso1URwbhSoVqrjnrnTw30qQQx3ZriTo15rlkyw=',
            path: './dep',
            type: 'path',
          },
          original: { path: './dep', type: 'path' },
        },
        nixpkgs: {
          locked: {
            lastModified: 1700000000,
            narHash: 'sha256-bZsJIso1URwbhSoVqrjnrnTw30qQQx3ZriTo15rlkyw=',
            owner: 'NixOS',
            repo: 'nixpkgs',
            rev: 'c'.repeat(40),
            type: 'github',
          },
        },
        other: {
          flake: false,
          locked: { path: './dep', type: 'path' },
          original: { path: './dep', type: 'path' },
        },
        root: { inputs: { dep: 'dep', nixpkgs: 'nixpkgs', other: 'other' } },
      },
      root: 'root',
      version: 7,
    },
    originalUrl: 'path:/src',
    path: '/nix/store/zcl8vl5p00gx8yivgnkc54c04njkx95s-source',
    url: 'path:/src?lastModified=1796553335&narHash=sha256-VMNimz3YnOO0p9wHe3Ak6pIkMDWbV%2fCYsqkL%2fMJQPSw=',
  };
  test('every locked node but the root, sorted, with hashes and times', () => {
    expect(flakeProvenance(metadata28)).toEqual({
      url: metadata28.url,
      inputs: [
        {
          name: 'dep',
          url: 'path:./dep',
          narHash: 'sha256-bZsJIso1URwbhSoVqrjnrnTw30qQQx3ZriTo15rlkyw=',
          lastModified: 1,
        },
        {
          name: 'nixpkgs',
          url: `github:NixOS/nixpkgs/${'c'.repeat(40)}`,
          narHash: 'sha256-bZsJIso1URwbhSoVqrjnrnTw30qQQx3ZriTo15rlkyw=',
          lastModified: 1700000000,
        },
        { name: 'other', url: 'path:./dep' },
      ],
    });
    expect(combineProvenance({ flake: flakeProvenance(metadata28) }).dropped).toEqual([]);
  });
  test('locked URLs of the common types, without credentials', () => {
    expect(lockedUrl({ type: 'git', url: 'https://tok@host/r.git', rev: SHA, ref: 'main' })).toBe(
      `git+https://host/r.git?ref=main&rev=${SHA}`,
    );
    expect(lockedUrl({ type: 'tarball', url: 'https://host/a.tar.gz', narHash: 'sha256-x' })).toBe(
      'tarball+https://host/a.tar.gz',
    );
    expect(lockedUrl({ type: 'indirect', id: 'nixpkgs', ref: 'nixos-24.05' })).toBe(
      'flake:nixpkgs/nixos-24.05',
    );
    expect(lockedUrl({ type: 'gitlab', owner: 'o', repo: 'r', rev: SHA, host: 'git.example' })).toBe(
      `gitlab:o/r/${SHA}?host=git.example`,
    );
    expect(lockedUrl({ type: 'weird', x: 1 })).toBe('weird:?x=1');
    expect(lockedUrl({ owner: 'o' })).toBeUndefined();
  });
  test('not metadata', () => {
    expect(flakeProvenance({})).toBeUndefined();
    expect(flakeProvenance([])).toBeUndefined();
  });
});

test('rfc3339 writes whole seconds in UTC', () => {
  expect(rfc3339(new Date('2026-12-06T10:17:30.999+01:00'))).toBe('2026-12-06T09:17:30Z');
});

describe('which worktree was evaluated', () => {
  test.each([
    [{ file: 'sub/default.nix' }, '/w/sub'],
    [{ installables: ['.#hello'] }, '/w'],
    [{ installables: ['./sub#x', '.#y'] }, '/w/sub'],
    [{ installables: ['path:/src?dir=x#pkg'] }, '/src'],
    [{ installables: ['git+file:///repo?ref=main#pkg'] }, '/repo'],
    [{ installables: ['github:owner/name#pkg'] }, undefined],
    [{ installables: ['.#a', 'nixpkgs#hello'] }, undefined],
    [{ installables: [] }, '/w'],
    [{}, '/w'],
  ])('%j → %s', (request, dir) => {
    expect(worktreeOf(request, '/w')).toBe(dir);
  });
  test('local flake references', () => {
    expect(localFlakeDir('.', '/w')).toBe('/w');
    expect(localFlakeDir('flake:nixpkgs', '/w')).toBeUndefined();
  });
});
