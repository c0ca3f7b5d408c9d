// Closure walking over an injected reference lookup: dependencies first, deterministic, iterative.
import { NixPlanError } from './errors.js';
import { compareStrings } from './store-path.js';

/** What a store object in a plan is: a .drv, a text file (toFile), a source, or a build output. */
export type ObjectKind = 'drv' | 'text' | 'source' | 'output';

/** A store object with what the closure walk needs to know about it. */
export interface StoreObject {
  path: string;
  kind: ObjectKind;
  references: string[];
  deriver: string;
}

/** A closure that is not closed (a reference nobody has) or not a DAG (a cycle). */
export class ClosureError extends NixPlanError {
  override readonly name = 'ClosureError';
  constructor(
    readonly problem: 'missing' | 'cycle',
    /** missing: [referrer…, missing path]; cycle: the paths around the cycle, first repeated last. */
    readonly paths: readonly string[],
    message: string,
  ) {
    super('closure', message);
  }
}

interface Frame {
  readonly path: string;
  readonly refs: readonly string[];
  next: number;
}

/**
 * Walks the closure of `roots`, dependencies first; throws ClosureError on a cycle or missing path.
 *
 * `references(path)` returns the path's references, or undefined when the path is unknown.
 * A path referring to itself (build outputs may) is not a cycle. The order is a depth-first
 * post-order visiting roots in the order given and references in sorted order, so the same
 * input always gives the same output whatever order the lookup lists references in. Each path
 * is looked up once; the walk keeps its own stack, so graphs of any depth are fine.
 */
export function closureOrder(
  roots: readonly string[],
  references: (path: string) => readonly string[] | undefined,
): string[] {
  const state = new Map<string, 'active' | 'done'>();
  const order: string[] = [];
  const stack: Frame[] = [];

  const enter = (path: string, referrer: string | undefined): void => {
    const refs = references(path);
    if (refs === undefined) {
      const chain = [...stack.map((f) => f.path), path];
      throw new ClosureError(
        'missing',
        chain,
        referrer === undefined
          ? `path ${path} is not in the closure (nothing is known about it)`
          : `path ${path}, referenced by ${referrer}, is missing from the closure`,
      );
    }
    state.set(path, 'active');
    stack.push({ path, refs: [...refs].sort(compareStrings), next: 0 });
  };

  for (const root of roots) {
    if (state.get(root) === 'done') continue;
    enter(root, undefined);
    while (stack.length > 0) {
      const top = stack[stack.length - 1] as Frame;
      if (top.next < top.refs.length) {
        const ref = top.refs[top.next++] as string;
        if (ref === top.path) continue;
        const s = state.get(ref);
        if (s === 'done') continue;
        if (s === 'active') {
          const from = stack.findIndex((f) => f.path === ref);
          const cycle = [...stack.slice(from).map((f) => f.path), ref];
          throw new ClosureError('cycle', cycle, `the closure has a reference cycle: ${cycle.join(' -> ')}`);
        }
        enter(ref, top.path);
        continue;
      }
      stack.pop();
      state.set(top.path, 'done');
      order.push(top.path);
    }
  }
  return order;
}

/**
 * Orders `paths` so each comes after those it depends on, keeping the given order wherever it
 * already is one (an iterative depth-first post-order, so chains of any length are fine).
 * `dependencies(path)` may list anything: the path itself and paths outside `paths` are ignored.
 * `onCycle(path, dependency)` is called when two paths depend on each other, and must throw.
 */
export function dependenciesFirst(
  paths: readonly string[],
  dependencies: (path: string) => readonly string[],
  onCycle: (path: string, dependency: string) => never,
): string[] {
  const inSet = new Set(paths);
  const state = new Map<string, 'active' | 'done'>();
  const order: string[] = [];
  for (const start of paths) {
    if (state.has(start)) continue;
    const stack: { path: string; deps: readonly string[]; next: number }[] = [
      { path: start, deps: dependencies(start), next: 0 },
    ];
    state.set(start, 'active');
    while (stack.length > 0) {
      const top = stack[stack.length - 1] as (typeof stack)[number];
      if (top.next < top.deps.length) {
        const dep = top.deps[top.next++] as string;
        if (dep === top.path || !inSet.has(dep)) continue;
        const s = state.get(dep);
        if (s === 'done') continue;
        if (s === 'active') onCycle(top.path, dep);
        state.set(dep, 'active');
        stack.push({ path: dep, deps: dependencies(dep), next: 0 });
        continue;
      }
      stack.pop();
      state.set(top.path, 'done');
      order.push(top.path);
    }
  }
  return order;
}
