// Typed settings of the deploy action, parsed once from its inputs: where the plan comes from,
// the hosts, and the SSH identity and host keys (a secret key is validated without echoing it).
import {
  DEFAULT_PROFILE,
  DEPLOY_ACTIONS,
  type DeployAction,
  type BuildOn,
  type DeployHostSpec,
} from '../app/deploy/index.js';
import { NixPlanError } from '../core/errors.js';
import { parseHostOption } from '../app/deploy/hosts.js';
import { DEFAULT_ACTIVATION_TIMEOUT, DEFAULT_CONFIRM_TIMEOUT } from '../app/deploy/activation.js';
import { DEFAULT_ARTIFACT_NAME, DeployInput, FetchInput } from './constants.js';
import {
  InputError,
  parseBoolean,
  parseChoice,
  parseInteger,
  parseLines,
  type EnvReader,
  type InputReader,
} from './inputs.js';
import { parseFetch, type FetchSettings } from './fetch-settings.js';

/** Settings of `deploy`. */
export interface DeploySettings extends FetchSettings {
  readonly hosts: DeployHostSpec[];
  /** An OpenSSH private key (from a secret), or undefined to use the runner's ssh config/agent. */
  readonly sshPrivateKey: string | undefined;
  /** known_hosts lines; undefined only when unknown hosts are explicitly allowed. */
  readonly knownHosts: string | undefined;
  readonly allowUnknownHosts: boolean;
  /** Raw ssh arguments, one per line. */
  readonly sshOptions: string[];
  readonly action: DeployAction;
  readonly profile: string;
  readonly confirmTimeout: number;
  readonly activationTimeout: number;
  readonly buildOn: BuildOn;
  readonly jobs: number | undefined;
  readonly keepGoing: boolean;
  readonly useSudo: boolean;
  readonly allowDowngrade: boolean;
  /** Go back one generation on each host instead of deploying a plan (no plan is fetched). */
  readonly rollback: boolean;
  /** With `rollback`: the inputs about a plan that were given and are not used (said in the log). */
  readonly unusedInputs: string[];
}

/**
 * The inputs about the plan a deploy fetches, with the value each means when left out (the one
 * the runner passes as its default); a rollback fetches no plan and uses none of them.
 */
const PLAN_INPUTS: readonly (readonly [string, string])[] = [
  [FetchInput.Bundle, ''],
  [FetchInput.ArtifactName, DEFAULT_ARTIFACT_NAME],
  [FetchInput.ArtifactDir, ''],
  [FetchInput.RunId, ''],
  [FetchInput.Repository, ''],
  [FetchInput.GithubToken, ''],
  [FetchInput.Digest, ''],
  [FetchInput.TrustedKeys, ''],
  [FetchInput.NoCheckSigs, 'false'],
  [FetchInput.AllowUnpinnedSource, 'false'],
  [FetchInput.MaxAge, ''],
  [DeployInput.AllowDowngrade, 'false'],
  [DeployInput.BuildOn, 'host'],
];

/**
 * What a rollback takes of the plan inputs: nothing. They are not parsed, so they need no digest
 * or key to pin a plan that is never read; a token given is still kept, to be masked in the log.
 */
function noPlan(input: InputReader): FetchSettings {
  const token = input(FetchInput.GithubToken);
  return {
    source: {
      kind: 'artifact',
      name: DEFAULT_ARTIFACT_NAME,
      runId: undefined,
      repository: undefined,
      token: token === '' ? undefined : token,
      artifactDir: undefined,
    },
    digest: undefined,
    trustedKeys: [],
    noCheckSigs: false,
    maxAgeMs: undefined,
    maxAgeText: undefined,
  };
}

const KEY_BLOCK = /^-----BEGIN ([A-Z ]*)PRIVATE KEY-----\n[\s\S]+\n-----END \1PRIVATE KEY-----\n$/;

/** An OpenSSH/PEM private key, normalised (LF line ends, one final newline), never echoed. */
export function parseSshPrivateKey(value: string): string | undefined {
  if (value === '') return undefined;
  const key = `${value.replace(/\r\n?/g, '\n').trim()}\n`;
  if (!KEY_BLOCK.test(key))
    throw new InputError(
      DeployInput.SshPrivateKey,
      'is not a private key; accepted: the whole key file (-----BEGIN OPENSSH PRIVATE KEY----- … END …), passed from a secret',
    );
  return key;
}

/** Parses `deploy`'s inputs. */
export function parseDeploySettings(input: InputReader, env: EnvReader): DeploySettings {
  // The plan comes from where realise takes it (artifact, another run, a file, with a digest). A
  // rollback fetches none: the plan inputs are left alone, not required to pin what is never read
  // (a workflow can pass the same inputs to its deploy and its rollback); those given are named.
  const rollback = parseBoolean(DeployInput.Rollback, input(DeployInput.Rollback), false);
  const fetch = rollback ? noPlan(input) : parseFetch(input, env);
  const unusedInputs = rollback
    ? PLAN_INPUTS.filter(([name, unset]) => ![unset, ''].includes(input(name).trim())).map(([name]) => name)
    : [];
  const hostLines = parseLines(input(DeployInput.Hosts));
  if (hostLines.length === 0)
    throw new InputError(DeployInput.Hosts, 'is required; accepted: one [NAME=][USER@]HOST[:PORT] per line');
  const hosts = hostLines.map((line) => {
    try {
      return parseHostOption(line);
    } catch (e) {
      throw new InputError(DeployInput.Hosts, e instanceof NixPlanError ? e.message : String(e));
    }
  });
  const knownHosts = input(DeployInput.KnownHosts);
  const allowUnknownHosts = parseBoolean(
    DeployInput.AllowUnknownHosts,
    input(DeployInput.AllowUnknownHosts),
    false,
  );
  if (knownHosts === '' && !allowUnknownHosts)
    throw new InputError(
      DeployInput.KnownHosts,
      `is required: the hosts' public keys as known_hosts lines (ssh-keyscan HOST, checked once by hand), so a ` +
        `machine posing as a host gets nothing; "${DeployInput.AllowUnknownHosts}: true" opts out`,
    );
  const profile = input(DeployInput.Profile);
  const action = parseChoice(DeployInput.Action, input(DeployInput.Action), DEPLOY_ACTIONS, 'switch');
  if (rollback && action === 'push')
    throw new InputError(
      DeployInput.Action,
      'push sends a plan; a rollback sends none (switch, boot, test or dry-activate)',
    );
  return {
    ...fetch,
    hosts,
    sshPrivateKey: parseSshPrivateKey(input(DeployInput.SshPrivateKey)),
    knownHosts: knownHosts === '' ? undefined : `${knownHosts.replace(/\r\n?/g, '\n').trim()}\n`,
    allowUnknownHosts,
    sshOptions: parseLines(input(DeployInput.SshOptions)),
    action,
    profile: profile === '' ? DEFAULT_PROFILE : profile,
    confirmTimeout: parseInteger(
      DeployInput.ConfirmTimeout,
      input(DeployInput.ConfirmTimeout),
      0,
      86400,
      DEFAULT_CONFIRM_TIMEOUT,
    ),
    activationTimeout: parseInteger(
      DeployInput.ActivationTimeout,
      input(DeployInput.ActivationTimeout),
      0,
      86400,
      DEFAULT_ACTIVATION_TIMEOUT,
    ),
    buildOn: rollback
      ? 'host'
      : parseChoice(DeployInput.BuildOn, input(DeployInput.BuildOn), ['host', 'local'] as const, 'host'),
    jobs: parseInteger(DeployInput.Jobs, input(DeployInput.Jobs), 1, 1024, undefined),
    keepGoing: parseBoolean(DeployInput.KeepGoing, input(DeployInput.KeepGoing), false),
    useSudo: parseBoolean(DeployInput.UseSudo, input(DeployInput.UseSudo), false),
    allowDowngrade:
      !rollback && parseBoolean(DeployInput.AllowDowngrade, input(DeployInput.AllowDowngrade), false),
    rollback,
    unusedInputs,
  };
}
