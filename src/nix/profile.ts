// A Nix profile and a NixOS system, as nixos-rebuild drives them: the profile's generations
// (`nix-env --profile`), its links on disk, and a system's `bin/switch-to-configuration`.
import { access, readlink } from 'node:fs/promises';
import { constants } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { NixPlanError } from '../core/errors.js';
import { NixCommandError } from './errors.js';
import type { CommandRunner } from './runner.js';

/** The generation number of a profile link target like `system-42-link`. */
export function generationOf(linkTarget: string): number | undefined {
  const m = /-(\d+)-link$/.exec(basename(linkTarget));
  return m?.[1] === undefined ? undefined : Number(m[1]);
}

/** The generation numbers `nix-env --list-generations` prints, in its order. */
export function parseGenerations(text: string): number[] {
  return text
    .split('\n')
    .map((l) => /^\s*(\d+)\s/.exec(l)?.[1])
    .filter((n): n is string => n !== undefined)
    .map(Number);
}

/** A profile (e.g. `/nix/var/nix/profiles/system`) in a store (`--store`, or Nix's default). */
export class Profile {
  /** The profile's absolute path. */
  readonly path: string;
  private readonly storeArgs: string[];

  constructor(
    private readonly runner: CommandRunner,
    path: string,
    store?: string,
  ) {
    this.path = resolve(path);
    this.storeArgs = store === undefined ? [] : ['--store', store];
  }

  /** The current generation's link (`system-N-link`, absolute), or undefined if it has none. */
  async currentLink(): Promise<string | undefined> {
    try {
      return resolve(dirname(this.path), await readlink(this.path));
    } catch {
      return undefined;
    }
  }

  /** The store path of generation `n`. */
  async generationPath(n: number): Promise<string> {
    return linkTarget(`${this.path}-${n}-link`);
  }

  /** The generations `nix-env --list-generations` knows. */
  async generations(): Promise<number[]> {
    const { stdout } = await this.runner.run('nix-env', [
      ...this.storeArgs,
      '--profile',
      this.path,
      '--list-generations',
    ]);
    return parseGenerations(stdout.toString('utf8'));
  }

  /** Makes `storePath` the profile's new current generation (`nix-env --profile P --set`). */
  async set(storePath: string): Promise<void> {
    await this.runner.run('nix-env', [...this.storeArgs, '--profile', this.path, '--set', storePath]);
  }

  /** Makes the generation before the current one current (`nix-env --profile P --rollback`). */
  async rollback(): Promise<void> {
    await this.runner.run('nix-env', [...this.storeArgs, '--profile', this.path, '--rollback']);
  }
}

/** Where a link points, resolved against the link's directory. */
export async function linkTarget(link: string): Promise<string> {
  return resolve(dirname(link), await readlink(link));
}

/** A system's activation script, checked to exist so a non-NixOS plan fails with a clear message. */
export async function switchScript(systemPath: string): Promise<string> {
  const script = `${systemPath}/bin/switch-to-configuration`;
  try {
    await access(script, constants.X_OK);
  } catch {
    throw new NixPlanError(
      'usage',
      `'${systemPath}' is not a NixOS system: it has no executable bin/switch-to-configuration ` +
        '(export the system attribute, e.g. `nixosConfigurations.HOST.config.system.build.toplevel`)',
    );
  }
  return script;
}

/**
 * Runs `script ACTION` (a system's switch-to-configuration) and returns what it printed on
 * stdout; a failure is a NixCommandError, with `hint` (in parentheses) after its exit code.
 */
export async function switchToConfiguration(
  runner: CommandRunner,
  script: string,
  action: string,
  hint?: string,
): Promise<string> {
  const result = await runner.run(script, [action], { allowFailure: true });
  NixCommandError.check(script, [action], result, { what: `switch-to-configuration ${action}`, hint });
  return result.stdout.toString('utf8');
}
