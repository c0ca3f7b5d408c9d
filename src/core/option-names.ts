// How a message names what the user can change: the command line's options (`--profile`), or
// an action's inputs (`"profile"`), so a refusal tells each user what they can actually set.

/** The options a use case's messages may tell the user to give (or take back). */
export type OptionKey =
  | 'host'
  | 'profile'
  | 'useSudo'
  | 'action'
  | 'trustedKey'
  | 'noCheckSigs'
  | 'maxAge'
  | 'allowDowngrade'
  | 'allowAnyRoot'
  | 'roots'
  /** Where a plan is relocated to: `relocate --to DIR` on the command line, promote's `to` input. */
  | 'relocateTo'
  /** The secret key a plan is signed with, and what a plan carries (export). */
  | 'signKey'
  | 'include'
  /** The bound on a plan's uncompressed size (the command line's alone: no action has an input). */
  | 'maxSize';

/**
 * How one front end spells its options: flags (`--max-age 7d`) or action inputs
 * (`"max-age: 7d"`), by name; an option it does not have is left out.
 */
export interface OptionNames {
  readonly style: 'flag' | 'input';
  readonly names: Readonly<Partial<Record<OptionKey, string>>>;
}

/** The command line's flags. */
export const CLI_OPTION_NAMES: OptionNames = {
  style: 'flag',
  names: {
    host: 'host',
    profile: 'profile',
    useSudo: 'use-sudo',
    action: 'action',
    trustedKey: 'trusted-key',
    noCheckSigs: 'no-check-sigs',
    maxAge: 'max-age',
    allowDowngrade: 'allow-downgrade',
    allowAnyRoot: 'allow-any-root',
    roots: 'roots',
    relocateTo: 'to',
    signKey: 'sign-key',
    include: 'include',
    maxSize: 'max-size',
  },
};

/** Whether this front end has the option (`names` undefined: the command line's, which has all). */
export function offers(names: OptionNames | undefined, key: OptionKey): boolean {
  return (names ?? CLI_OPTION_NAMES).names[key] !== undefined;
}

/**
 * The option itself (`--profile`, `"profile"`); `names` undefined: the command line's. An option
 * the front end does not have (ask `offers` first) is named as the command line names it.
 */
export function optionName(names: OptionNames | undefined, key: OptionKey): string {
  const { style, name } = spelling(names, key);
  return style === 'flag' ? `--${name}` : `"${name}"`;
}

/**
 * The option given `value` (`--action push`, `"action: push"`), or a switch turned on when no
 * value is given (`--allow-downgrade`, `"allow-downgrade: true"`).
 */
export function optionSet(names: OptionNames | undefined, key: OptionKey, value?: string): string {
  const { style, name } = spelling(names, key);
  if (style === 'flag') return value === undefined ? `--${name}` : `--${name} ${value}`;
  return `"${name}: ${value ?? 'true'}"`;
}

function spelling(
  names: OptionNames | undefined,
  key: OptionKey,
): { style: OptionNames['style']; name: string } {
  const chosen = names ?? CLI_OPTION_NAMES;
  const name = chosen.names[key];
  if (name !== undefined) return { style: chosen.style, name };
  return { style: 'flag', name: CLI_OPTION_NAMES.names[key] ?? key };
}

/**
 * How the user relocates a plan into `storeDir`: the command line's `nix-plan relocate --to DIR`,
 * or, for an action user (who has no command to run), the promote action and its input.
 */
export function relocateAdvice(names: OptionNames | undefined, storeDir: string): string {
  if (names?.style !== 'input') return `nix-plan relocate ${optionSet(names, 'relocateTo', storeDir)}`;
  return `the promote action, ${optionSet(names, 'relocateTo', storeDir)}`;
}

/**
 * How the user gets a plan that carries `include`: the command line exports one with
 * `--include KIND`; an action user sets the plan action's input (no other action makes a plan).
 */
export function includeAdvice(names: OptionNames | undefined, include: string): string {
  if (names?.style !== 'input') return `export with ${optionSet(names, 'include', include)}`;
  return `make the plan with the plan action's ${optionSet(names, 'include', include)}`;
}

/**
 * What a refusal of a build output nothing proves offers: the trusted key that signed the plan,
 * or accepting it unproven. The command line's text also names the actions' inputs, as it
 * always has; an action's names only its own inputs.
 */
export function proofAdvice(names: OptionNames | undefined): string {
  if (names?.style !== 'input')
    return (
      'give the public key that signed the plan with --trusted-key (the actions: trusted-keys), ' +
      'or accept it unproven with --no-check-sigs (the actions: no-check-sigs)'
    );
  return (
    `give the public key that signed the plan in ${optionName(names, 'trustedKey')}, ` +
    `or accept it unproven with ${optionSet(names, 'noCheckSigs')}`
  );
}
