// Import from derivation, found in a plan's closure: build outputs evaluation read (an output in
// the closure itself) and copies of them evaluation made (`builtins.path`, `filterSource` of an
// output: a source named `<hash>-<output's base name>`). A plan that depends on a build output is
// not what evaluation alone writes: export says so by name, and `--include sources` carries the
// derivations that built them, which relocation needs to name the copies in another store dir.
import { NixPlanError } from '../core/errors.js';
import { HASH_PART_LENGTH, isHashPart, nameOf } from '../core/store-path.js';
import type { ObjectKind } from '../core/bundle/manifest.js';
import type { NixStore } from './store.js';

/** A build output a plan's evaluation read. */
export interface BuiltInput {
  /** The object of the closure that came from the build: the output itself, or a copy of it. */
  readonly path: string;
  /** The build output evaluation read (`path` itself when the output is in the closure). */
  readonly output: string;
  /** The derivation that built it, as the store registered it ("" when it does not know). */
  readonly deriver: string;
}

/** What `findBuiltInputs` needs of a closure member. */
export interface ClosureMember {
  readonly path: string;
  readonly kind: ObjectKind;
  readonly deriver: string;
}

/** The store paths a source's name says it was copied from, outermost first (`<hash>-<rest>`). */
export function copiedFrom(path: string, storeDir: string): string[] {
  const out: string[] = [];
  let name = nameOf(path);
  while (
    name.length > HASH_PART_LENGTH + 1 &&
    name.charCodeAt(HASH_PART_LENGTH) === 0x2d &&
    isHashPart(name.slice(0, HASH_PART_LENGTH))
  ) {
    out.push(`${storeDir}/${name}`);
    name = name.slice(HASH_PART_LENGTH + 1);
  }
  return out;
}

/**
 * The build outputs the closure's evaluation read: every `output` member (with `include` other
 * than `outputs`, where outputs are what the bundle is for), and every build output a source's
 * name says it was copied from, as the store registered it (one validity query and one
 * `--dump-db` for all the names).
 */
export async function findBuiltInputs(
  store: NixStore,
  storeDir: string,
  members: Iterable<ClosureMember>,
): Promise<BuiltInput[]> {
  const found: BuiltInput[] = [];
  const copies = new Map<string, string>(); // a path a source was copied from → the source
  for (const m of members) {
    if (m.kind === 'output') found.push({ path: m.path, output: m.path, deriver: m.deriver });
    else if (m.kind === 'source')
      for (const p of copiedFrom(m.path, storeDir)) if (!copies.has(p)) copies.set(p, m.path);
  }
  if (copies.size === 0) return found;
  const invalid = await store.invalidPaths([...copies.keys()]);
  const valid = [...copies.keys()].filter((p) => !invalid.has(p));
  const infos = await store.pathInfos(valid);
  for (const p of valid) {
    const info = infos.get(p);
    if (info === undefined) throw new NixPlanError('internal', `no registration for '${p}'`);
    if (info.deriver !== '') found.push({ path: copies.get(p)!, output: p, deriver: info.deriver });
  }
  return found;
}

/** One sentence naming a build output the plan depends on, and where it came from. */
export function describeBuiltInput(b: BuiltInput): string {
  const by = b.deriver === '' ? 'a derivation the store does not name' : b.deriver;
  return b.path === b.output
    ? `${b.output} is a build output of ${by} that evaluation read (import from derivation, or builtins.storePath)`
    : `${b.path} was copied while evaluating from ${b.output}, a build output of ${by} (import from derivation)`;
}
