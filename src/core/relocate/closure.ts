// Relocation of a closure: rewrites a closure of .drv files, text files and sources from store dir A
// to B so that it is exactly what evaluating the same expression natively with store dir B would
// write. This is the entry: it checks and indexes the closure, orders it, and hands each object
// to the relocator (relocator.ts) once what it refers to or mentions is relocated.
import { dependenciesFirst } from '../closure.js';
import { hashPartOf, parseStorePath } from '../store-path.js';
import { refuse, refuseSourceWithReferences, selfCheck } from './checks.js';
import { namedContent, planName, type NamePlan } from './names.js';
import { Relocator, Waiting, type Node } from './relocator.js';
import type {
  RelocatableRoot,
  RelocateClosureOptions,
  RelocatedObject,
  Relocation,
  RelocObject,
} from './types.js';

/**
 * Relocates a closure from store dir `from` (A) to `to` (B). Every object is self-checked under
 * A; derivations get their inputs mapped, their strings rewritten and their outputs and path
 * recomputed under B; text files are rewritten; sources keep their bytes. Throws a 'relocate'
 * NixPlanError naming the object for anything that cannot be relocated faithfully, and a 'realm'
 * error for an invalid store dir.
 */
export function relocateClosure(
  objects: readonly RelocObject[],
  from: string,
  to: string,
  options: RelocateClosureOptions = {},
): Relocation {
  const { relocation, steps } = relocateLazily(objects, from, to, options);
  for (const o of steps) relocation.objects.push(o);
  return relocation;
}

/**
 * `relocateClosure`, handing out each relocated object as soon as it is made, so a caller can
 * write it (and let it go) while the rest is relocated. Every object is checked and indexed, and
 * ordered by its references, before this returns: the refusals that need no relocating come
 * first. Mentions in strings are found as they are rewritten: an object that mentions one not
 * relocated yet (a mention without a reference, e.g. after `unsafeDiscardStringContext`) waits
 * while that one is relocated first, so dependencies still come first; a mention outside the
 * closure is refused then. Each object the caller passed is released once relocated.
 * `relocation.objects` stays empty; its `pathMap` and `report` are complete once `steps` is done
 * (a refusal may still end it early).
 */
export function relocateLazily(
  objects: readonly RelocObject[],
  from: string,
  to: string,
  options: RelocateClosureOptions = {},
): { relocation: Relocation; steps: Generator<RelocatedObject, void, undefined> } {
  const r = new Relocator(from, to, options);
  const { rewriter } = r;

  // Index the closure: objects by path and hash, output paths (not objects) by the drv making
  // them. Everything is checked before anything is relocated, so refusals come before any work.
  const byPath = new Map<string, RelocObject>();
  const ownerOfHash = new Map<string, string>();
  const checked = new Map<string, { ca: string; drv: Node['drv'] }>();
  for (const obj of objects) {
    try {
      parseStorePath(obj.path, from);
    } catch (e) {
      refuse(`cannot relocate ${obj.path}: it is not a store path in ${from} (${(e as Error).message})`);
    }
    if (byPath.has(obj.path)) refuse(`cannot relocate: ${obj.path} is in the closure twice`);
    const ca = selfCheck(obj, from);
    refuseSourceWithReferences(obj);
    byPath.set(obj.path, obj);
    ownerOfHash.set(hashPartOf(obj.path), obj.path);
    rewriter.declare(hashPartOf(obj.path));
    checked.set(obj.path, { ca, drv: undefined });
  }
  const ownerOfPlaceholder = new Map<string, string>();
  const outputPathOfHash = new Map<string, string>();
  for (const obj of objects) {
    if (obj.kind !== 'drv') continue;
    checked.get(obj.path)!.drv = r.declareDrv(obj, {
      output: (h, p) => {
        if (!outputPathOfHash.has(h)) outputPathOfHash.set(h, p);
        if (!ownerOfHash.has(h)) ownerOfHash.set(h, obj.path);
      },
      placeholder: (p, owner = obj.path) => ownerOfPlaceholder.set(p, owner),
    });
  }
  r.ownerDrvOf = (h) => ownerOfHash.get(h);

  // Names that carry store hashes (copies of store paths): planned now that every hash of the
  // closure is known. A copied path outside the closure gets its hash declared, owned by the copy,
  // so strings mentioning the copy's name are rewritten whole (and wait for it).
  const nameIndex = {
    ownerOf: (h: string): string | undefined => {
      const o = ownerOfHash.get(h);
      if (o === undefined) return undefined;
      return hashPartOf(o) === h ? o : outputPathOfHash.get(h);
    },
    isOutput: (p: string): boolean => !byPath.has(p),
  };
  const names = new Map<string, NamePlan>();
  for (const obj of objects) {
    const plan = planName(obj, namedContent(obj), from, nameIndex, options.optionNames);
    if (plan.steps.length === 0) continue;
    names.set(obj.path, plan);
    for (const step of plan.steps)
      if ('copied' in step) {
        rewriter.declare(step.hash);
        if (!ownerOfHash.has(step.hash)) ownerOfHash.set(step.hash, obj.path);
      }
  }

  const nodes = new Map<string, Node>();
  // True while every reference comes before its referrer, as in a bundle (the verifier requires
  // it), so the given order is already one to relocate in.
  let inOrder = true;
  for (const obj of objects) {
    const refs: string[] = [];
    for (const ref of obj.references) {
      if (ref === obj.path) continue;
      if (!nodes.has(ref)) {
        if (!byPath.has(ref))
          refuse(`cannot relocate ${obj.path}: it references ${ref}, which is not in the closure`);
        inOrder = false;
      }
      refs.push(ref);
    }
    const { ca, drv } = checked.get(obj.path)!;
    nodes.set(obj.path, { obj, ca, drv, refs, name: names.get(obj.path) });
  }
  checked.clear();
  byPath.clear(); // the nodes hold the objects now, each only until it is relocated
  // Cycles are refused: Nix cannot write them (a derivation is evaluated whole before anything
  // can refer to its paths), so only hand-made input can have them. Input in order has none.
  const given = [...nodes.keys()];
  const order = inOrder
    ? given
    : dependenciesFirst(
        given,
        (path) => nodes.get(path)!.refs,
        (path, dep) =>
          refuse(
            `cannot relocate ${path}: it and ${dep} mention each other, so neither can be relocated first`,
          ),
      );
  return { relocation: r.relocation, steps: steps() };

  function* steps(): Generator<RelocatedObject, void, undefined> {
    for (const path of order) if (nodes.has(path)) yield* relocateFirstWhatItMentions(path);
  }

  /**
   * Relocates `target`, whose references are relocated, and before it whatever it mentions that
   * is not (with their references): a walk with its own stack, as the chain may be long.
   */
  function relocateFirstWhatItMentions(target: string): RelocatedObject[] {
    const made: RelocatedObject[] = [];
    const stack = [target];
    const active = new Set(stack);
    while (stack.length > 0) {
      const path = stack[stack.length - 1]!;
      const node = nodes.get(path)!;
      // Brought forward by a mention: its own references may not be relocated yet.
      let next = stack.length > 1 ? node.refs.find((p) => nodes.has(p)) : undefined;
      if (next === undefined) {
        const out = r.relocate(node);
        if (!(out instanceof Waiting)) {
          nodes.delete(path);
          active.delete(path);
          stack.pop();
          made.push(out);
          continue;
        }
        // One at a time: once it is relocated, this object is tried again.
        const [hash] = out.hashes;
        next = hash !== undefined ? ownerOfHash.get(hash)! : ownerOfPlaceholder.get(out.placeholders[0]!)!;
        if (next === path)
          refuse(
            `cannot relocate ${path}: its strings mention its own output paths outside the variables ` +
              'named after its outputs, which native evaluation cannot write',
          );
      }
      if (active.has(next))
        refuse(
          `cannot relocate ${path}: it and ${next} mention each other, so neither can be relocated first`,
        );
      active.add(next);
      stack.push(next);
    }
    return made;
  }
}

/**
 * Maps a plan root through a relocation's `pathMap`: its drv path and its output paths (deferred
 * outputs stay ""). Throws a 'relocate' error when a path was not part of the relocation.
 */
export function relocateRoot<T extends RelocatableRoot>(root: T, pathMap: ReadonlyMap<string, string>): T {
  const map = (p: string): string => {
    if (p === '') return p;
    const n = pathMap.get(p);
    if (n === undefined) refuse(`root ${p} is not in the relocated closure`);
    return n;
  };
  const outputs = Object.fromEntries(Object.entries(root.outputs).map(([o, p]) => [o, map(p)]));
  return { ...root, drvPath: map(root.drvPath), outputs };
}
