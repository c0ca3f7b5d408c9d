// Evaluates once: every flake installable of a plan in one `nix` process, every attribute of a file
// in one `nix-instantiate`, .drv paths taken as they are; each root keeps where it came from.
//
// Why these commands (read from Nix's sources, 2.8 to 2.34):
// - `nix path-info --derivation A B` gathers its results in one StorePathSet and prints it sorted
//   (2.8) or topologically sorted (2.34): which drv came from which installable is lost, so it is
//   used only for a single installable. `nix eval` takes one installable.
// - `nix build --dry-run --json A B …` appends each installable's result in the order given
//   (duplicates kept) and prints them as one JSON array: the one command that evaluates several
//   installables in one process and says which result is whose. Before printing it runs Nix's
//   printMissing (a walk over the closure that may ask substituters about outputs, and lists every
//   path on stderr); it builds, links and fetches nothing.
// - `nix-instantiate FILE -A a -A b` prints each attribute's derivations in order with nothing
//   between them: an attribute with none (`{}`) and one with two (`[d1 d2]`) look like one each.
//   `nix-instantiate --eval --json -A a.type -A a.drvPath …` prints exactly two values per
//   attribute, the drvPath attribute `nix-instantiate -A a` itself reads; `--read-write-mode`
//   writes the .drv files as plain instantiation does.
//
// What the evaluators say on stderr (warnings, `trace:` lines, a substituter out of reach) is the
// user's to see, as `nix-instantiate` shows it: it reaches `log` when one is given, line by line as
// it comes, without what is nix-plan's doing rather than the user's expression's: the list of every
// path a build would make that `nix build --dry-run` prints (Nix's printMissing), and
// `nix-instantiate`'s advice to give `--add-root` (the closure is read at once, and nix-plan has
// no root to add for the user).
import { access } from 'node:fs/promises';
import { NixPlanError } from '../core/errors.js';
import { lineSplitter, type LineSplitter } from '../core/lines.js';
import { NixCommandError } from './errors.js';
import { outputLines as lines, type NixStore } from './store.js';

/** What to evaluate: any mix of flake installables, one file with attributes, and .drv paths. */
export interface EvaluateRequest {
  /** Flake installables (`.#pkg`, `path:/dir#pkg`, `github:o/r#x`). */
  readonly installables?: readonly string[] | undefined;
  /** A Nix file for `nix-instantiate` (its attributes in `attributes`). */
  readonly file?: string | undefined;
  /** Attribute paths in `file` (`-A`); none: the file's value itself. */
  readonly attributes?: readonly string[] | undefined;
  /** Store paths of derivations that already exist in the store. */
  readonly drvPaths?: readonly string[] | undefined;
  /** Extra arguments for the evaluator (`--arg x 1`, `--argstr s v`, `--option …`). */
  readonly evalArgs?: readonly string[] | undefined;
}

/** One evaluated root: its .drv path and the installable or attribute it came from. */
export interface EvaluatedRoot {
  readonly installable?: string;
  readonly attribute?: string;
  readonly drvPath: string;
}

/** Where evaluation's messages go (the user's terminal, a job log group). */
export type EvaluationLog = (chunk: Uint8Array) => void;

/** The heading of Nix's printMissing lists (`these 12 derivations will be built:`, …). */
const MISSING_HEADING =
  /^(?:this|these [0-9]+) (?:derivations?|paths?) will be (?:built|fetched)\b.*:$|^don't know how to build these paths/;
/** Nix's warnings about how nix-plan called it, not about what it evaluated. */
const ABOUT_THE_CALL = /^warning: you did not specify '--add-root'/;
/**
 * A sink for an evaluator's stderr that passes each line on to `log` as it ends, except Nix's
 * printMissing lists (a heading and the indented paths under it) and its warnings about how it was
 * called; `end` passes on an unfinished last line. A line longer than the core's line splitter
 * holds is passed on in pieces as it comes, each piece going where its line's first one went.
 */
export function evaluationMessages(log: EvaluationLog): LineSplitter {
  let listing = false;
  let dropped = false;
  return lineSplitter((bytes, continued) => {
    if (continued) {
      if (!dropped) log(bytes);
      return;
    }
    dropped = true;
    if (listing && bytes[0] === 0x20 && bytes[1] === 0x20) return;
    const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('latin1').trimEnd();
    listing = MISSING_HEADING.test(text);
    dropped = listing || ABOUT_THE_CALL.test(text);
    if (!dropped) log(bytes);
  });
}

/**
 * Runs one evaluator command with its stderr passed through `evaluationMessages` to `log` (when
 * given); a failure's message then says its output is above rather than repeating it.
 */
async function runEvaluator(
  store: NixStore,
  cmd: string,
  args: readonly string[],
  log: EvaluationLog | undefined,
): Promise<Buffer> {
  if (log === undefined) return (await store.runner.run(cmd, args)).stdout;
  const messages = evaluationMessages(log);
  try {
    return (await store.runner.run(cmd, args, { onStderr: messages.write })).stdout;
  } finally {
    messages.end();
  }
}

/** Flake commands need these on 2.8, where flakes are experimental; harmless on newer Nix. */
export const FLAKE_FEATURES = ['--extra-experimental-features', 'nix-command flakes'];

/**
 * Refuses a file argument that does not exist before Nix is started, as a usage error naming it
 * (Nix would fail with its own message and nix-plan's exit code for a failed evaluation).
 * Lookup paths (`<nixpkgs>`) and URLs are Nix's to resolve.
 */
async function assertReadable(file: string): Promise<void> {
  if (file.startsWith('<') || /^[a-z][a-z0-9+.-]*:\/\//i.test(file)) return;
  try {
    await access(file);
  } catch (e) {
    const why = (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message;
    throw new NixPlanError('usage', `cannot read the file to evaluate '${file}': ${why}`);
  }
}

/** The directory of a store path (the realm it belongs to). */
export function storeDirOf(path: string): string {
  return path.slice(0, path.lastIndexOf('/'));
}

/**
 * The per-installable results of `nix build --dry-run --json`: one element per installable, in
 * order. An element is `{drvPath, outputs}` for a derivation (Nix 2.8 and later) or `{path}` for a
 * store path that is not built; anything but a .drv path is refused, naming its installable.
 */
export function parseDryRunJson(text: string, installables: readonly string[]): EvaluatedRoot[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new NixPlanError(
      'nix',
      `nix build --dry-run --json printed no JSON: '${text.trim().slice(0, 200)}'`,
    );
  }
  if (!Array.isArray(parsed) || parsed.length !== installables.length)
    throw new NixPlanError(
      'nix',
      `nix build --dry-run --json gave ${Array.isArray(parsed) ? parsed.length : 'no list of'} results for ${installables.length} installables`,
    );
  return installables.map((installable, i) => {
    const item: unknown = parsed[i];
    const fields = typeof item === 'object' && item !== null ? (item as Record<string, unknown>) : {};
    const path = typeof fields['drvPath'] === 'string' ? fields['drvPath'] : fields['path'];
    if (typeof path !== 'string' || !path.endsWith('.drv'))
      throw new NixPlanError(
        'nix',
        `'${installable}' evaluated to ${typeof path === 'string' ? `'${path}'` : 'no store path'}, not a derivation`,
      );
    return { installable, drvPath: path };
  });
}

/** One flake installable: `nix path-info --derivation` (no walk over the closure, nothing printed). */
async function evaluateOneInstallable(
  installable: string,
  evalArgs: readonly string[],
  store: NixStore,
  log: EvaluationLog | undefined,
): Promise<EvaluatedRoot[]> {
  const stdout = await runEvaluator(
    store,
    'nix',
    [...FLAKE_FEATURES, ...store.storeArgs(), 'path-info', '--derivation', ...evalArgs, installable],
    log,
  );
  return lines(stdout).map((drvPath) => ({ installable, drvPath }));
}

/** Several flake installables in one process (see the top of this file). */
async function evaluateInstallables(
  installables: readonly string[],
  evalArgs: readonly string[],
  store: NixStore,
  log: EvaluationLog | undefined,
): Promise<EvaluatedRoot[]> {
  const only = installables[0];
  if (installables.length === 1 && only !== undefined)
    return evaluateOneInstallable(only, evalArgs, store, log);
  const stdout = await runEvaluator(
    store,
    'nix',
    [
      ...FLAKE_FEATURES,
      ...store.storeArgs(),
      'build',
      '--dry-run',
      '--json',
      '--no-link',
      ...evalArgs,
      ...installables,
    ],
    log,
  );
  return parseDryRunJson(stdout.toString('utf8'), installables);
}

/**
 * The JSON values `nix-instantiate --eval --json` printed for its `-A`s, in order (Nix 2.8 writes
 * them without separators, newer Nix one a line). Undefined when a value is not a string.
 */
export function parseEvalStrings(text: string): string[] | undefined {
  const values: string[] = [];
  const token = /\s*("(?:[^"\\]|\\.)*")\s*/y;
  let at = 0;
  while (at < text.length) {
    token.lastIndex = at;
    const m = token.exec(text);
    if (m === null) return /^\s*$/.test(text.slice(at)) ? values : undefined;
    values.push(JSON.parse(m[1] ?? '""') as string);
    at = token.lastIndex;
  }
  return values;
}

/** Selection paths that fail only because an attribute is not one derivation (a list, a plain set). */
const NOT_ONE_DERIVATION = /selection path '[^']*\.(type|drvPath)'/;

/**
 * Each attribute's .drv, when every attribute is one derivation: one `nix-instantiate --eval`
 * selecting `a.type` and `a.drvPath` for each. Undefined when some attribute is not a derivation
 * (Nix says so about a `.type`/`.drvPath` selection path); any other failure is thrown.
 */
async function evaluateAttributes(
  file: string,
  attributes: readonly string[],
  evalArgs: readonly string[],
  store: NixStore,
  log: EvaluationLog | undefined,
): Promise<EvaluatedRoot[] | undefined> {
  const args = [
    ...store.storeArgs(),
    '--eval',
    '--json',
    '--read-write-mode',
    ...evalArgs,
    file,
    ...attributes.flatMap((a) => ['-A', `${a}.type`, '-A', `${a}.drvPath`]),
  ];
  const result = await store.runner.run('nix-instantiate', args, { allowFailure: true });
  if (result.code !== 0 && NOT_ONE_DERIVATION.test(result.stderr)) return undefined;
  NixCommandError.check('nix-instantiate', args, result, { what: `nix-instantiate ${file}` });
  const values = parseEvalStrings(result.stdout.toString('utf8'));
  if (values?.length !== attributes.length * 2) return undefined;
  // Said once the evaluation is taken: one that falls back to the plain one below says it there.
  const said = (): void => {
    if (log === undefined) return;
    const messages = evaluationMessages(log);
    messages.write(Buffer.from(result.stderr));
    messages.end();
  };
  const roots: EvaluatedRoot[] = [];
  for (const [i, attribute] of attributes.entries()) {
    const type = values[2 * i];
    const drvPath = values[2 * i + 1] ?? '';
    if (type !== 'derivation') return undefined;
    roots.push({ attribute, drvPath });
  }
  said();
  return roots;
}

/** A file's derivations: labelled by attribute when each is one derivation, else in Nix's order. */
async function evaluateFile(
  file: string,
  attributes: readonly string[],
  evalArgs: readonly string[],
  store: NixStore,
  log: EvaluationLog | undefined,
): Promise<EvaluatedRoot[]> {
  if (attributes.length > 0) {
    const labelled = await evaluateAttributes(file, attributes, evalArgs, store, log);
    if (labelled !== undefined) return labelled;
  }
  // The file's value itself, or attributes that are lists or sets of derivations: every
  // derivation, recorded without an attribute (Nix prints nothing between the attributes).
  const stdout = await runEvaluator(
    store,
    'nix-instantiate',
    [...store.storeArgs(), ...evalArgs, file, ...attributes.flatMap((a) => ['-A', a])],
    log,
  );
  return lines(stdout).map((drvPath) => ({ drvPath }));
}

/**
 * Evaluates `request` (checked: see `checkEvaluateRequest`) against `store`: one evaluator process
 * for all flake installables and one for the file, and returns the roots in the order asked
 * (duplicates dropped) and the store dir they are in. The evaluators' messages reach `log` when
 * one is given.
 */
export async function evaluate(
  request: CheckedEvaluateRequest,
  store: NixStore,
  log?: EvaluationLog,
): Promise<{ roots: EvaluatedRoot[]; storeDir: string }> {
  const roots: EvaluatedRoot[] = [];
  const evalArgs = request.evalArgs ?? [];
  const attributes = request.attributes ?? [];
  const installables = request.installables ?? [];
  if (installables.length > 0)
    roots.push(...(await evaluateInstallables(installables, evalArgs, store, log)));
  if (request.file !== undefined)
    roots.push(...(await evaluateFile(request.file, attributes, evalArgs, store, log)));
  for (const drvPath of request.drvPaths ?? []) roots.push({ drvPath });
  if (roots.length === 0)
    throw new NixPlanError('usage', 'nothing to export: the evaluation gave no derivations');
  for (const r of roots)
    if (!r.drvPath.startsWith('/') || !r.drvPath.endsWith('.drv'))
      throw new NixPlanError('nix', `the evaluator returned '${r.drvPath}', which is not a .drv path`);
  const dirs = new Set(roots.map((r) => storeDirOf(r.drvPath)));
  if (dirs.size !== 1)
    throw new NixPlanError('realm', `the roots are in different store dirs: ${[...dirs].join(', ')}`);
  const storeDir = [...dirs][0] ?? '';
  const seen = new Set<string>();
  const unique = roots.filter((r) => !seen.has(r.drvPath) && seen.add(r.drvPath) !== undefined);
  return { roots: unique, storeDir };
}

declare const CHECKED: unique symbol;

/**
 * A request `checkEvaluateRequest` accepted: the only kind `evaluate` takes, so its checks are made
 * once, by whoever asks for the evaluation, as early as they like (export: before it says it
 * evaluates), and never skipped.
 */
export type CheckedEvaluateRequest = EvaluateRequest & { readonly [CHECKED]: true };

/**
 * The checks of a request that need no Nix: what to evaluate is given, `-A` has its file, `--drv`
 * paths are `.drv` paths and the file exists. Usage errors (exit 2), made before any Nix starts;
 * returns the request, for `evaluate`.
 */
export async function checkEvaluateRequest(request: EvaluateRequest): Promise<CheckedEvaluateRequest> {
  const attributes = request.attributes ?? [];
  const installables = request.installables ?? [];
  if (attributes.length > 0 && request.file === undefined)
    throw new NixPlanError('usage', 'an attribute (-A) needs a file (-f FILE)');
  for (const drvPath of request.drvPaths ?? [])
    if (!drvPath.endsWith('.drv'))
      throw new NixPlanError('usage', `'${drvPath}' is not a derivation (.drv) path`);
  if (installables.length === 0 && request.file === undefined && (request.drvPaths ?? []).length === 0)
    throw new NixPlanError(
      'usage',
      'nothing to export: give an installable, -f FILE [-A ATTR], or --drv PATH',
    );
  if (request.file !== undefined) await assertReadable(request.file);
  return request as CheckedEvaluateRequest;
}
