// Closure order: each path after the paths it depends on, iterative, so chains of any length are fine.
import { NixPlanError } from './errors.js';

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

/**
 * Sorts `paths` so every path comes after its references (those inside the set), keeping the
 * given order otherwise; throws a 'closure' error on a cycle between distinct paths.
 */
export function dependencyOrder(
  paths: readonly string[],
  references: (path: string) => readonly string[],
): string[] {
  return dependenciesFirst(paths, references, (path, ref) => {
    throw new NixPlanError('closure', `reference cycle through '${ref}' and '${path}'`);
  });
}
