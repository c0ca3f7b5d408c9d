// How a host is named on the command line and in the action's `hosts` input.
import { NixPlanError } from '../../core/errors.js';
import { parseSshTarget } from '../../nix/ssh.js';
import type { DeployHostSpec } from './types.js';

/** One host: `[NAME=][USER@]HOST[:PORT]` (NAME picks the plan's root for it). */
export function parseHostOption(text: string): DeployHostSpec {
  const eq = text.indexOf('=');
  const name = eq < 0 ? undefined : text.slice(0, eq);
  if (name !== undefined && !/^[A-Za-z0-9_][A-Za-z0-9._-]*$/.test(name))
    throw new NixPlanError(
      'usage',
      `host '${text}': the name before '=' must be a plain word (letters, digits, . _ -)`,
    );
  return { name, target: parseSshTarget(eq < 0 ? text : text.slice(eq + 1)) };
}
