// The shortest edit script between two sequences (Myers' O(ND) algorithm), for a derivation's
// arguments and the lines of its environment values. Bounded: past `maxEdits` differences it
// gives up and reports the two sides as replaced whole, so a hostile pair of values cannot make
// it quadratic.

/** One run of a diff: items in both, in the old sequence only, or in the new one only. */
export interface Edit<T> {
  readonly op: 'same' | 'old' | 'new';
  readonly items: readonly T[];
}

/** Differences beyond which `diffSequences` stops looking for the shortest script. */
export const DEFAULT_MAX_EDITS = 2000;

function push<T>(out: Edit<T>[], op: Edit<T>['op'], item: T): void {
  const last = out[out.length - 1];
  if (last?.op === op) (last.items as T[]).push(item);
  else out.push({ op, items: [item] });
}

/**
 * The edits that turn `a` into `b`, as runs: `same` runs of equal items, `old` runs (only in `a`)
 * before `new` runs (only in `b`) where both change. Items compare with `===`.
 */
export function diffSequences<T>(a: readonly T[], b: readonly T[], maxEdits = DEFAULT_MAX_EDITS): Edit<T>[] {
  // Equal heads and tails need no search.
  let start = 0;
  while (start < a.length && start < b.length && a[start] === b[start]) start++;
  let endA = a.length;
  let endB = b.length;
  while (endA > start && endB > start && a[endA - 1] === b[endB - 1]) {
    endA--;
    endB--;
  }
  const out: Edit<T>[] = [];
  for (let i = 0; i < start; i++) push(out, 'same', a[i]!);
  const middle = script(a.slice(start, endA), b.slice(start, endB), maxEdits);
  for (const e of middle) for (const item of e.items) push(out, e.op, item);
  for (let i = endA; i < a.length; i++) push(out, 'same', a[i]!);
  return out;
}

/** Myers' greedy forward search with the trace kept for the backtrack. */
function script<T>(a: readonly T[], b: readonly T[], maxEdits: number): Edit<T>[] {
  const n = a.length;
  const m = b.length;
  if (n === 0 && m === 0) return [];
  const whole = (): Edit<T>[] => [
    ...(n > 0 ? [{ op: 'old' as const, items: a }] : []),
    ...(m > 0 ? [{ op: 'new' as const, items: b }] : []),
  ];
  if (n === 0 || m === 0) return whole();
  const max = Math.min(n + m, maxEdits);
  const offset = max + 1;
  let v = new Int32Array(2 * max + 3);
  const trace: Int32Array[] = [];
  for (let d = 0; d <= max; d++) {
    trace.push(v.slice());
    const next = v.slice();
    for (let k = -d; k <= d; k += 2) {
      let x =
        k === -d || (k !== d && v[offset + k - 1]! < v[offset + k + 1]!)
          ? v[offset + k + 1]!
          : v[offset + k - 1]! + 1;
      let y = x - k;
      while (x < n && y < m && a[x] === b[y]) {
        x++;
        y++;
      }
      next[offset + k] = x;
      if (x >= n && y >= m) return backtrack(a, b, trace, next, d, k, offset);
    }
    v = next;
  }
  return whole();
}

function backtrack<T>(
  a: readonly T[],
  b: readonly T[],
  trace: readonly Int32Array[],
  last: Int32Array,
  dEnd: number,
  kEnd: number,
  offset: number,
): Edit<T>[] {
  const steps: { op: Edit<T>['op']; item: T }[] = [];
  let x = last[offset + kEnd]!;
  let y = x - kEnd;
  for (let d = dEnd; d > 0; d--) {
    const v = trace[d]!;
    const k = x - y;
    const down = k === -d || (k !== d && v[offset + k - 1]! < v[offset + k + 1]!);
    const prevK = down ? k + 1 : k - 1;
    const prevX = v[offset + prevK]!;
    const prevY = prevX - prevK;
    while (x > prevX + (down ? 0 : 1) && y > prevY + (down ? 1 : 0)) {
      steps.push({ op: 'same', item: a[--x]! });
      y--;
    }
    if (down) steps.push({ op: 'new', item: b[--y]! });
    else steps.push({ op: 'old', item: a[--x]! });
  }
  while (x > 0 && y > 0) {
    steps.push({ op: 'same', item: a[--x]! });
    y--;
  }
  steps.reverse();
  const out: Edit<T>[] = [];
  // Within a changed stretch, old items come before new ones (as a unified diff shows them).
  let pendingNew: T[] = [];
  for (const s of steps) {
    if (s.op === 'new') pendingNew.push(s.item);
    else {
      if (s.op === 'same') {
        for (const item of pendingNew) push(out, 'new', item);
        pendingNew = [];
      }
      push(out, s.op, s.item);
    }
  }
  for (const item of pendingNew) push(out, 'new', item);
  return out;
}
