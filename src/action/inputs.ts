// Reading one action input: the reader types, the error that names the input and what it
// accepts, and one parser per kind of value (booleans, integers, choices, names, store dirs, keys).
import { NixPlanError } from '../core/errors.js';
import { parsePublicKey, parseSecretKey } from '../core/signing.js';
import { splitShellWords } from '../core/shell-words.js';
import { storeDirProblem } from '../core/store-path.js';
import { MAX_JOBS, type MatrixShape } from './matrix.js';

/** Reads one input as `core.getInput` does: trimmed, '' when not given. */
export type InputReader = (name: string) => string;
/** Reads one variable of the runner's environment. */
export type EnvReader = (name: string) => string | undefined;

/** An action input with a value the action cannot use. */
export class InputError extends NixPlanError {
  override readonly name = 'InputError';
  constructor(
    readonly input: string,
    detail: string,
  ) {
    super('usage', `input "${input}": ${detail}`);
  }
}

const TRUE = ['true', 'True', 'TRUE'];
const FALSE = ['false', 'False', 'FALSE'];
// Characters GitHub refuses in artifact names (NTFS-safe names), plus path separators.
const BAD_NAME_CHARS = /["<>|*?:\r\n\\/]/;

/** One value per line; blank lines and `#` comments dropped. */
export function parseLines(value: string): string[] {
  return value
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
}

/** A YAML 1.2 boolean (what `core.getBooleanInput` accepts), or `fallback` when empty. */
export function parseBoolean(input: string, value: string, fallback: boolean): boolean {
  if (value === '') return fallback;
  if (TRUE.includes(value)) return true;
  if (FALSE.includes(value)) return false;
  throw new InputError(input, `"${value}" is not a boolean; accepted: true or false`);
}

/** An integer in [min, max], or `fallback` when empty. */
export function parseInteger<T extends number | undefined>(
  input: string,
  value: string,
  min: number,
  max: number,
  fallback: T,
): number | T {
  if (value === '') return fallback;
  if (!/^-?\d+$/.test(value) || Number(value) < min || Number(value) > max) {
    throw new InputError(input, `"${value}" is not accepted; accepted: an integer from ${min} to ${max}`);
  }
  return Number(value);
}

/** A workflow run's id (a positive integer), or undefined when empty. */
export function parseRunId(input: string, value: string): number | undefined {
  return parseInteger(input, value, 1, Number.MAX_SAFE_INTEGER, undefined);
}

/** One of `choices`, or `fallback` when empty. */
export function parseChoice<T extends string>(
  input: string,
  value: string,
  choices: readonly T[],
  fallback: T,
): T {
  if (value === '') return fallback;
  const found = choices.find((c) => c === value);
  if (found === undefined)
    throw new InputError(input, `"${value}" is not accepted; accepted: ${choices.join(', ')}`);
  return found;
}

/** An artifact name GitHub accepts (and that is safe as a file name). */
export function parseArtifactName(input: string, value: string, fallback: string): string {
  const name = value === '' ? fallback : value;
  if (BAD_NAME_CHARS.test(name) || name === '.' || name === '..' || name.length > 255) {
    throw new InputError(
      input,
      `"${name}" is not a valid artifact name; accepted: up to 255 characters without " : < > | * ? \\ / or newlines`,
    );
  }
  return name;
}

/** A store dir (a realm such as /beta/store), or undefined when empty. */
export function parseStoreDir(input: string, value: string): string | undefined {
  if (value === '') return undefined;
  const problem = storeDirProblem(value);
  if (problem !== undefined) {
    throw new InputError(
      input,
      `"${value}" is not a store dir (${problem}); accepted: an absolute path like /beta/store`,
    );
  }
  return value;
}

/** A Nix secret key (`NAME:base64`), validated without ever echoing it. */
export function parseSigningKey(input: string, value: string): string | undefined {
  if (value === '') return undefined;
  try {
    parseSecretKey(value);
  } catch (e) {
    const why = e instanceof NixPlanError ? e.message.replace(/'[^']*'/g, '(hidden)') : 'unreadable';
    throw new InputError(
      input,
      `not a usable Nix secret key (${why}); accepted: the contents of a key file from ` +
        '`nix-plan keygen NAME` or `nix-store --generate-binary-cache-key`, passed from a secret',
    );
  }
  return value;
}

/**
 * Public keys (`NAME:base64`), one per line or separated by spaces, `#` comments allowed. A
 * value that holds no key (only comments) is refused: asking for signatures never means none.
 * (An empty input cannot be told from an absent one: the fetching actions' origin rule covers it.)
 */
export function parseTrustedKeys(input: string, value: string): string[] {
  const keys = value
    .split('\n')
    .map((l) => l.replace(/#.*$/, ''))
    .flatMap((l) => l.split(/\s+/))
    .filter((k) => k !== '');
  if (keys.length === 0 && value.trim() !== '')
    throw new InputError(input, 'holds no key; accepted: public keys (NAME:base64), one per line');
  for (const key of keys) {
    try {
      parsePublicKey(key);
    } catch (e) {
      throw new InputError(
        input,
        `"${key}" is not a public key (${e instanceof Error ? e.message : String(e)}); accepted: NAME:base64 keys as in trusted-public-keys`,
      );
    }
  }
  return keys;
}

/** The matrix fan-out: `per-root` (one job per root), `single`, or a number of jobs up to 256. */
export function parseMatrixShape(input: string, value: string): MatrixShape {
  if (value === '' || value === 'per-root') return { kind: 'per-root' };
  if (value === 'single') return { kind: 'single' };
  if (/^\d+$/.test(value) && Number(value) >= 1 && Number(value) <= MAX_JOBS) {
    return { kind: 'jobs', count: Number(value) };
  }
  throw new InputError(
    input,
    `"${value}" is not accepted; accepted: per-root, single, or a number of jobs from 1 to ${MAX_JOBS}`,
  );
}
/** Extra Nix arguments split as a shell would (`--option extra-substituters "a b"`), nothing expanded. */
export function parseNixArgs(input: string, value: string): string[] {
  try {
    return splitShellWords(value);
  } catch (e) {
    throw new InputError(
      input,
      `${e instanceof Error ? e.message.replace(/^the arguments: /, '') : String(e)}; accepted: arguments as a shell would split them (quotes and backslashes, no expansion)`,
    );
  }
}
