// The names of every input, output and state of the three actions, spelled once (action.yml must match).
import type { OptionNames } from '../core/option-names.js';

/** Inputs of the root action (`uses: OWNER/nix-plan@v1`): evaluate once and publish the plan. */
export const PlanInput = {
  Installables: 'installables',
  File: 'file',
  Attributes: 'attributes',
  Include: 'include',
  RelocateTo: 'relocate-to',
  CompressionLevel: 'compression-level',
  SigningKey: 'signing-key',
  ArtifactName: 'artifact-name',
  RetentionDays: 'retention-days',
  Upload: 'upload',
  Matrix: 'matrix',
  ArtifactDir: 'artifact-dir',
  CompareTo: 'compare-to',
  CompareRunId: 'compare-run-id',
  GithubToken: 'github-token',
  TrustedKeys: 'trusted-keys',
  NoCheckSigs: 'no-check-sigs',
} as const;

/** Outputs of every action that publishes a plan (the root action, promote). */
export const PublishOutput = {
  BundlePath: 'bundle-path',
  ArtifactId: 'artifact-id',
  ArtifactName: 'artifact-name',
  ArtifactUrl: 'artifact-url',
  Digest: 'digest',
  DrvPaths: 'drv-paths',
  Paths: 'paths',
  Bytes: 'bytes',
  Changed: 'changed',
  Changes: 'changes',
} as const;

/** Outputs of the root action. */
export const PlanOutput = {
  ...PublishOutput,
  OutPaths: 'out-paths',
  Matrix: 'matrix',
} as const;

/** Inputs shared by the actions that fetch a published plan (realise, promote). */
export const FetchInput = {
  ArtifactName: 'artifact-name',
  RunId: 'run-id',
  GithubToken: 'github-token',
  Repository: 'repository',
  Bundle: 'bundle',
  Digest: 'digest',
  TrustedKeys: 'trusted-keys',
  ArtifactDir: 'artifact-dir',
  NoCheckSigs: 'no-check-sigs',
  AllowUnpinnedSource: 'allow-unpinned-source',
  MaxAge: 'max-age',
} as const;

/** Inputs of `realise`: fetch, verify, import and build a plan (or one shard of it). */
export const RealiseInput = {
  ...FetchInput,
  Roots: 'roots',
  Shard: 'shard',
  OutLink: 'out-link',
  NixArgs: 'nix-args',
  AllowDowngrade: 'allow-downgrade',
} as const;

/** Outputs of `realise`. */
export const RealiseOutput = {
  OutPaths: 'out-paths',
  BundlePath: 'bundle-path',
} as const;

/** Inputs of `promote`: fetch, verify, relocate into another realm, re-sign, publish. */
export const PromoteInput = {
  ...FetchInput,
  To: 'to',
  SigningKey: 'signing-key',
  PromotedName: 'promoted-artifact-name',
  RetentionDays: 'retention-days',
  Upload: 'upload',
  CompareTo: 'compare-to',
  CompareRunId: 'compare-run-id',
} as const;

/** Outputs of `promote` (the promoted plan, as the root action describes its plan). */
export const PromoteOutput = PublishOutput;

/** Inputs of `deploy`: fetch a plan and deploy it over SSH to hosts that need only Nix. */
export const DeployInput = {
  ...FetchInput,
  Hosts: 'hosts',
  SshPrivateKey: 'ssh-private-key',
  KnownHosts: 'known-hosts',
  AllowUnknownHosts: 'allow-unknown-hosts',
  SshOptions: 'ssh-options',
  Action: 'action',
  Profile: 'profile',
  ConfirmTimeout: 'confirm-timeout',
  ActivationTimeout: 'activation-timeout',
  BuildOn: 'build-on',
  Jobs: 'jobs',
  KeepGoing: 'keep-going',
  UseSudo: 'use-sudo',
  AllowDowngrade: 'allow-downgrade',
  Rollback: 'rollback',
} as const;

/**
 * How the use cases' messages name what an action user can set: the input, never the command
 * line's flag (`"profile"`, `"action: push"`). One table for the fetching actions, which spell a
 * shared input alike; `allow-any-root` has no input, so no message offers it. A plan is relocated
 * with the promote action, so a refusal that asks for one names promote's `to`.
 */
export const ACTION_OPTION_NAMES: OptionNames = {
  style: 'input',
  names: {
    host: DeployInput.Hosts,
    profile: DeployInput.Profile,
    useSudo: DeployInput.UseSudo,
    action: DeployInput.Action,
    trustedKey: FetchInput.TrustedKeys,
    noCheckSigs: FetchInput.NoCheckSigs,
    maxAge: FetchInput.MaxAge,
    allowDowngrade: DeployInput.AllowDowngrade,
    roots: RealiseInput.Roots,
    relocateTo: PromoteInput.To,
    signKey: PlanInput.SigningKey,
    include: PlanInput.Include,
  },
};

/** Outputs of `deploy`. */
export const DeployOutput = {
  Result: 'result',
  BundlePath: 'bundle-path',
} as const;

/** The default artifact name of a plan (a name can be uploaded once per run). */
export const DEFAULT_ARTIFACT_NAME = 'plan.nixplan';

/** The runner's environment variables the actions read (through `ActionEnv`, never directly). */
export const RunnerEnv = {
  Repository: 'GITHUB_REPOSITORY',
  RunId: 'GITHUB_RUN_ID',
  ServerUrl: 'GITHUB_SERVER_URL',
  Workspace: 'GITHUB_WORKSPACE',
  RunnerTemp: 'RUNNER_TEMP',
  ActionRef: 'GITHUB_ACTION_REF',
  ActionRepository: 'GITHUB_ACTION_REPOSITORY',
  ApiUrl: 'GITHUB_API_URL',
  WorkflowRef: 'GITHUB_WORKFLOW_REF',
  /** The id of the step running (`__run`, `__owner_repo`, … for a step without `id:`). */
  StepId: 'GITHUB_ACTION',
} as const;
