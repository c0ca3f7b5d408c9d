// Fan-out of one plan over a GitHub job matrix: roots split into at most 256 shards, small enough
// for a job output, and the same split recomputed by each realise job from its shard number.
import { NixPlanError } from '../core/errors.js';

/** GitHub runs at most 256 jobs per matrix. */
export const MAX_JOBS = 256;
/** A job's outputs may total 1 MB; the matrix keeps to a quarter of it, leaving room for the others. */
export const MATRIX_BUDGET = 256 * 1024;

/** How the roots fan out: one job per root, one job for all, or a fixed number of jobs. */
export type MatrixShape = { kind: 'per-root' } | { kind: 'single' } | { kind: 'jobs'; count: number };

/** Shard `index` (1-based) of `count`. */
export interface Shard {
  readonly index: number;
  readonly count: number;
}

/** One job of the matrix. `roots` is left out when listing them would not fit the budget. */
export interface MatrixEntry {
  /** `INDEX/COUNT`, for the realise action's `shard` input. */
  shard: string;
  /** A label for the job name: the first root's name and how many more. */
  name: string;
  /** The shard's root .drv paths, one per line (for display and the `roots` input). */
  roots?: string;
}

/** What `strategy.matrix` takes: `${{ fromJSON(needs.plan.outputs.matrix) }}`. */
export interface Matrix {
  include: MatrixEntry[];
}

/** A root as the matrix needs it (a manifest's BundleRoot fits). */
export interface MatrixRoot {
  readonly drvPath: string;
  readonly attribute?: string | undefined;
  readonly installable?: string | undefined;
}

/** Parses `INDEX/COUNT` (1 ≤ INDEX ≤ COUNT ≤ 256). */
export function parseShard(text: string): Shard {
  const m = /^(\d+)\/(\d+)$/.exec(text.trim());
  const index = Number(m?.[1]);
  const count = Number(m?.[2]);
  if (m === null || index < 1 || count < 1 || index > count || count > MAX_JOBS) {
    throw new NixPlanError(
      'usage',
      `"${text}" is not a shard INDEX/COUNT with 1 ≤ INDEX ≤ COUNT ≤ ${MAX_JOBS}`,
    );
  }
  return { index, count };
}

/** The slice of `items` shard `index`/`count` takes: contiguous, in order, sizes differing by at most one. */
export function selectShard<T>(items: readonly T[], shard: Shard): T[] {
  const start = Math.floor(((shard.index - 1) * items.length) / shard.count);
  const end = Math.floor((shard.index * items.length) / shard.count);
  return items.slice(start, end);
}

/** The number of jobs a shape gives for `roots` roots (never more than roots, never above 256). */
export function jobCount(shape: MatrixShape, roots: number): number {
  const wanted = shape.kind === 'single' ? 1 : shape.kind === 'jobs' ? shape.count : roots;
  return Math.max(1, Math.min(wanted, roots, MAX_JOBS));
}

/** A short human name for a root: its installable or attribute, else the derivation's name (as `inspect`). */
export function rootLabel(root: MatrixRoot): string {
  if (root.installable !== undefined && root.installable !== '') return root.installable;
  if (root.attribute !== undefined && root.attribute !== '') return root.attribute;
  const base = root.drvPath.slice(root.drvPath.lastIndexOf('/') + 1);
  return base.replace(/^[0-9a-z]{32}-/, '').replace(/\.drv$/, '');
}

/** Splits the roots into jobs; the JSON stays within MATRIX_BUDGET however many roots there are. */
export function planMatrix(roots: readonly MatrixRoot[], shape: MatrixShape): Matrix {
  if (roots.length === 0)
    throw new NixPlanError('usage', 'a plan without roots cannot fan out into a matrix');
  const count = jobCount(shape, roots.length);
  const label = (text: string): string => (text.length > 80 ? `${text.slice(0, 77)}...` : text);
  const entries: MatrixEntry[] = [];
  for (let index = 1; index <= count; index++) {
    const mine = selectShard(roots, { index, count });
    const first = mine[0];
    const name =
      first === undefined ? '' : label(rootLabel(first)) + (mine.length > 1 ? ` +${mine.length - 1}` : '');
    entries.push({ shard: `${index}/${count}`, name, roots: mine.map((r) => r.drvPath).join('\n') });
  }
  const full: Matrix = { include: entries };
  if (Buffer.byteLength(JSON.stringify(full)) <= MATRIX_BUDGET) return full;
  // Too many roots to list: each job finds its roots from the shard number and the manifest.
  return { include: entries.map(({ shard, name }) => ({ shard, name })) };
}
