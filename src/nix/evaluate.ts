// Evaluates once: flake installables via `nix path-info --derivation`, files via one
// `nix-instantiate`, or .drv paths given as they are. Each root keeps where it came from.
import { NixPlanError } from '../core/errors.js';
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

/** Flake commands need these on 2.8, where flakes are experimental; harmless on newer Nix. */
export const FLAKE_FEATURES = ['--extra-experimental-features', 'nix-command flakes'];

/** The directory of a store path (the realm it belongs to). */
export function storeDirOf(path: string): string {
  return path.slice(0, path.lastIndexOf('/'));
}

/**
 * Evaluates `request` against `store`, one evaluator process per installable and one for the file,
 * and returns the roots in the order asked (duplicates dropped) and the store dir they are in.
 */
export async function evaluate(
  request: EvaluateRequest,
  store: NixStore,
): Promise<{ roots: EvaluatedRoot[]; storeDir: string }> {
  const roots: EvaluatedRoot[] = [];
  const evalArgs = request.evalArgs ?? [];
  const attributes = request.attributes ?? [];
  if (attributes.length > 0 && request.file === undefined)
    throw new NixPlanError('usage', 'an attribute (-A) needs a file (-f FILE)');
  for (const installable of request.installables ?? []) {
    // One process per installable so each drv is known to come from its installable: with several
    // at once, `nix path-info` prints them sorted, not in the order given.
    const { stdout } = await store.runner.run('nix', [
      ...FLAKE_FEATURES,
      ...store.storeArgs(),
      'path-info',
      '--derivation',
      ...evalArgs,
      installable,
    ]);
    for (const drvPath of lines(stdout)) roots.push({ installable, drvPath });
  }
  if (request.file !== undefined) {
    const { stdout } = await store.runner.run('nix-instantiate', [
      ...store.storeArgs(),
      ...evalArgs,
      request.file,
      ...attributes.flatMap((a) => ['-A', a]),
    ]);
    const drvs = lines(stdout);
    // Nix prints each attribute's derivations in order; when every attribute gave exactly one,
    // the pairing is certain, otherwise the roots are recorded without their attribute.
    const paired = drvs.length === attributes.length;
    drvs.forEach((drvPath, i) => {
      const attribute = paired ? attributes[i] : undefined;
      roots.push(attribute === undefined ? { drvPath } : { attribute, drvPath });
    });
  }
  for (const drvPath of request.drvPaths ?? []) {
    if (!drvPath.endsWith('.drv'))
      throw new NixPlanError('usage', `'${drvPath}' is not a derivation (.drv) path`);
    roots.push({ drvPath });
  }
  if (roots.length === 0)
    throw new NixPlanError(
      'usage',
      'nothing to export: give an installable, -f FILE [-A ATTR], or --drv PATH',
    );
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
