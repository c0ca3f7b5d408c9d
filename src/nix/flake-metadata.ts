// The evaluated flake's locked inputs, from `nix flake metadata --json` (Nix 2.8 to 2.34).
import type { FlakeProvenance } from '../core/bundle/index.js';
import { flakeProvenance } from '../core/provenance.js';
import { FLAKE_FEATURES } from './evaluate.js';
import type { NixStore } from './store.js';

/**
 * The flake reference of an installable (`.#hello` → `.`, `github:o/r#x` → `github:o/r`), or
 * undefined for what is not a flake reference (a store path).
 */
export function flakeRefOf(installable: string): string | undefined {
  const hash = installable.indexOf('#');
  const ref = hash < 0 ? installable : installable.slice(0, hash);
  if (ref === '' || (ref.startsWith('/') && /\/[0-9a-z]{32}-[^/]+$/.test(ref))) return undefined;
  return ref.replace(/\^.*$/, '');
}

/**
 * The locked flake behind `installables`, asked after evaluation (so the lock Nix evaluated with
 * exists) with the evaluator's arguments (an `--override-input` changes the lock), without
 * writing a lock file. The reason instead when the installables are not one flake or Nix
 * cannot tell.
 */
export async function readFlakeMetadata(
  store: NixStore,
  installables: readonly string[],
  evalArgs: readonly string[] = [],
): Promise<{ flake: FlakeProvenance } | { reason: string }> {
  const refs = [...new Set(installables.map(flakeRefOf).filter((r): r is string => r !== undefined))];
  if (refs.length === 0) return { reason: 'no flake installable' };
  if (refs.length > 1)
    return { reason: `the installables come from ${refs.length} flakes; a plan records one` };
  const r = await store.runner.run(
    'nix',
    [
      ...FLAKE_FEATURES,
      ...store.storeArgs(),
      'flake',
      'metadata',
      '--json',
      '--no-write-lock-file',
      ...evalArgs,
      refs[0] ?? '',
    ],
    { allowFailure: true },
  );
  if (r.code !== 0)
    return { reason: `nix flake metadata failed: ${r.stderr.trim().split('\n').pop() ?? ''}` };
  let json: unknown;
  try {
    json = JSON.parse(r.stdout.toString('utf8'));
  } catch {
    return { reason: 'nix flake metadata printed no JSON' };
  }
  const flake = flakeProvenance(json);
  return flake === undefined ? { reason: 'nix flake metadata printed no locked URL' } : { flake };
}
