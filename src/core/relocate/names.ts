// Store path names that carry a store hash, and how native evaluation in another store dir names
// them. `builtins.path` and `builtins.filterSource` name a copy after the base name of what they
// copy (Nix's `addPath`, `path.baseName()`); for a store path that is `<hash>-<name>`, so the copy
// is `<hash2>-<hash>-<name>`, and `<hash>` is the copied path's hash in the store dir evaluation
// ran with. Relocation must give such a name the hash the copied path has in the target.
import { NixPlanError } from '../errors.js';
import { includeAdvice, type OptionNames } from '../option-names.js';
import { sha256 } from '../hash.js';
import { regularFileNar } from '../nar-write.js';
import {
  HASH_PART_LENGTH,
  baseName,
  hashPartOf,
  isHashPart,
  makeFixedOutputPath,
  makeSourcePath,
  makeTextPath,
  nameOf,
} from '../store-path.js';

/** What the name rule asks of the closure being relocated. */
export interface NameIndex {
  /**
   * The path in the source store dir whose hash part is `hash`: an object of the closure or an
   * output of one of its derivations; undefined for any other hash.
   */
  ownerOf(hash: string): string | undefined;
  /** True when `path` (an `ownerOf` result) is an output of a derivation, not an object. */
  isOutput(path: string): boolean;
}

/** What a store object holds, as far as naming it needs: what its copy would hash. */
export interface NamedContent {
  /** sha256 of its NAR. */
  readonly narHash?: Uint8Array | undefined;
  /** Its bytes, when it is one regular file. */
  readonly file?: { readonly contents: Uint8Array; readonly executable: boolean } | undefined;
}

/** How a copy of an object whose bytes are this object's bytes was named: the ways Nix adds a path. */
export type CopyRule = 'source' | 'flat' | 'text';

/** One store hash at the start of a name (or of what is left of it after earlier ones). */
export type NameStep =
  /** The hash of `owner`, a path of the closure; the name goes on with its name. */
  | { readonly hash: string; readonly owner: string; readonly output: boolean }
  /**
   * The hash of a path outside the closure that had this object's bytes, added the `rule` way
   * under the name that follows: an unfiltered copy of a store path not in the plan.
   */
  | { readonly hash: string; readonly copied: CopyRule };

/** How an object's name is made from store hashes; `steps` is empty for a name without any. */
export interface NamePlan {
  readonly name: string;
  readonly steps: readonly NameStep[];
}

function refuse(message: string): never {
  throw new NixPlanError('relocate', message);
}

/** True when `name` starts with what Nix's `baseName` of a store path gives: a hash and a dash. */
function startsWithHash(name: string): boolean {
  return (
    name.length > HASH_PART_LENGTH + 1 &&
    name.charCodeAt(HASH_PART_LENGTH) === 0x2d && // '-'
    isHashPart(name.slice(0, HASH_PART_LENGTH))
  );
}

/** The offset of the first hash of the closure anywhere in `name`, or -1. */
function knownHashIn(name: string, index: NameIndex): number {
  for (let i = 0; i + HASH_PART_LENGTH <= name.length; i++) {
    const window = name.slice(i, i + HASH_PART_LENGTH);
    if (isHashPart(window) && index.ownerOf(window) !== undefined) return i;
  }
  return -1;
}

/** The path the `rule` way of adding an object with `content` under `name` gives in `storeDir`. */
function copyPath(rule: CopyRule, name: string, content: NamedContent, storeDir: string): string | undefined {
  const { file } = content;
  switch (rule) {
    case 'source': {
      const narHash =
        content.narHash ??
        (file === undefined ? undefined : sha256(...regularFileNar(file.contents, file.executable)));
      return narHash === undefined ? undefined : makeSourcePath(name, narHash, storeDir);
    }
    case 'flat':
      return file === undefined
        ? undefined
        : makeFixedOutputPath(name, { algo: 'sha256', bytes: sha256(file.contents) }, 'flat', storeDir);
    case 'text':
      return file === undefined || file.executable
        ? undefined
        : makeTextPath(name, sha256(file.contents), [], storeDir);
  }
}

const RULES: readonly CopyRule[] = ['source', 'flat', 'text'];

/** What the name rule may hash of an object: its NAR hash, and its bytes when it is one file. */
export function namedContent(obj: {
  readonly kind: string;
  readonly narHash?: Uint8Array | undefined;
  readonly contents?: Uint8Array | undefined;
}): NamedContent {
  const contents = obj.kind === 'source' ? obj.contents : undefined;
  return {
    narHash: obj.narHash,
    file: contents === undefined ? undefined : { contents, executable: false },
  };
}

/**
 * How the name of `obj` (an object of the closure being relocated out of `from`) is made from
 * store hashes, checked against what the object holds. Refuses (a 'relocate' error naming the
 * object) a name that carries a store hash by a rule relocation cannot know: a hash of the
 * closure anywhere but at the start of the name (or of what follows an earlier hash), a hash of
 * the closure followed by anything but the name of the path it belongs to, a hash at the start
 * that belongs to no path of the closure and that no unfiltered copy of this object's bytes has
 * (a filtered copy, or an output built while evaluating that the plan does not carry), and any
 * store hash at the start of the name of a .drv or text file (only copies are named that way by
 * Nix itself: anything else computed its name from a path string).
 */
export function planName(
  obj: { readonly path: string; readonly kind: string },
  content: NamedContent,
  from: string,
  index: NameIndex,
  names?: OptionNames,
): NamePlan {
  const { path } = obj;
  const name = nameOf(path);
  if (obj.kind !== 'source' && startsWithHash(name)) {
    const hash = name.slice(0, HASH_PART_LENGTH);
    const owner = index.ownerOf(hash);
    refuse(
      `cannot relocate ${path}: its name starts with the store hash ${hash}` +
        (owner === undefined ? '' : ` of ${owner}`) +
        ' (an expression computed the name from a path string), and only copies of store paths ' +
        '(builtins.path, builtins.filterSource) are renamed, so the name native evaluation gives it ' +
        'in the target store dir cannot be known',
    );
  }
  const steps: NameStep[] = [];
  let rest = name;
  while (startsWithHash(rest)) {
    const hash = rest.slice(0, HASH_PART_LENGTH);
    const after = rest.slice(HASH_PART_LENGTH + 1);
    const owner = index.ownerOf(hash);
    if (owner !== undefined) {
      if (nameOf(owner) !== after)
        refuse(
          `cannot relocate ${path}: its name holds the hash of ${owner} followed by '${after}', not by ` +
            `that path's name, so how evaluation made the name cannot be known`,
        );
      steps.push({ hash, owner, output: index.isOutput(owner) });
      return { name, steps };
    }
    const rule = RULES.find((r) => {
      const p = copyPath(r, after, content, from);
      return p !== undefined && hashPartOf(p) === hash;
    });
    if (rule === undefined)
      refuse(
        `cannot relocate ${path}: its name starts with the hash of ${from}/${rest}, a store path that is ` +
          'not in the plan (builtins.path or builtins.filterSource of a store path, or an output built ' +
          'while evaluating) and whose bytes this copy does not have (a filter changed them), so its ' +
          'hash in the target store dir cannot be known; give the copy a name (builtins.path { name = …; }) ' +
          `or ${includeAdvice(names, 'sources')} if it was built while evaluating`,
      );
    steps.push({ hash, copied: rule });
    rest = after;
  }
  const at = knownHashIn(rest, index);
  if (at >= 0) {
    const hash = rest.slice(at, at + HASH_PART_LENGTH);
    refuse(
      `cannot relocate ${path}: its name holds the hash of ${index.ownerOf(hash)!} inside it, made in a ` +
        'way relocation cannot know (a computation on a path string), so the name native evaluation ' +
        'gives it in the target store dir cannot be known',
    );
  }
  return { name, steps };
}

/**
 * The name native evaluation in `to` gives an object named by `plan`: each hash replaced by the
 * one its path has in `to` (`newPath` of an owner; a copied path's recomputed from the same bytes
 * under its own new name). `{ waitFor }` when an owner is not relocated yet.
 */
export function relocatedName(
  plan: NamePlan,
  content: NamedContent,
  to: string,
  newPath: (oldPath: string) => string | undefined,
): string | { waitFor: string } {
  const { steps } = plan;
  if (steps.length === 0) return plan.name;
  // From the innermost hash out: each copy is named after the path it copied, in `to`.
  let cur: string;
  let i = steps.length - 1;
  const last = steps[i]!;
  if ('owner' in last) {
    const moved = newPath(last.owner);
    if (moved === undefined) return { waitFor: last.hash };
    cur = baseName(moved);
    i--;
  } else {
    let plain = plan.name;
    for (let k = 0; k < steps.length; k++) plain = plain.slice(HASH_PART_LENGTH + 1);
    cur = plain;
  }
  for (; i >= 0; i--) {
    const step = steps[i]!;
    if (!('copied' in step))
      throw new NixPlanError('internal', `a name step of ${plan.name} is out of order`);
    const p = copyPath(step.copied, cur, content, to);
    if (p === undefined) throw new NixPlanError('internal', `the copy rule of ${plan.name} lost its bytes`);
    cur = `${hashPartOf(p)}-${cur}`;
  }
  return cur;
}

/**
 * The hashes of paths outside the closure a plan's name carries (copied paths), each with the
 * hash that path has in `to`: what strings mentioning the name must be rewritten with too.
 */
export function copiedHashes(plan: NamePlan, newName: string): { from: string; to: string }[] {
  const out: { from: string; to: string }[] = [];
  for (let i = 0; i < plan.steps.length; i++) {
    const step = plan.steps[i]!;
    if ('copied' in step)
      out.push({
        from: step.hash,
        to: newName.slice(i * (HASH_PART_LENGTH + 1), i * (HASH_PART_LENGTH + 1) + HASH_PART_LENGTH),
      });
  }
  return out;
}
