// A key signs only what was verified: the rule every command that signs a plan it read applies.
import { NixPlanError } from '../core/errors.js';

/**
 * Refuses (a usage error, before any work) to sign an input that no trusted key vouched for:
 * signing makes a plan trusted downstream, so an unverified input would be laundered into a
 * trusted one. `--no-check-sigs` is the explicit opt-out, recorded in what is signed.
 */
export function assertSignable(
  signs: boolean,
  keysGiven: boolean,
  noCheckSigs: boolean,
  names: SigningOptionNames = CLI_NAMES,
): void {
  if (signs && !keysGiven && !noCheckSigs)
    throw new NixPlanError(
      'usage',
      `${names.sign} signs only what was verified: give ${names.trust} (the keys the input must be signed by), ` +
        `or ${names.optOut} to sign it unverified on purpose`,
    );
}

/** How the front end calls the options the rule is about, for its message. */
export interface SigningOptionNames {
  readonly sign: string;
  readonly trust: string;
  readonly optOut: string;
}

/** The command line's names. */
export const CLI_NAMES: SigningOptionNames = {
  sign: '--sign-key',
  trust: '--trusted-key',
  optOut: '--no-check-sigs',
};
