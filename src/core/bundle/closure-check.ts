// The closure rule of a bundle, checked entry by entry as the stream arrives: every reference is
// the entry itself, one before it, or a path the target store already holds.
import { LimitError, NixPlanError } from '../errors.js';
import type { ReaderLimits } from './limits.js';

/**
 * The closure rule, entry by entry: every reference is the entry itself, an entry before it, or a
 * path valid in the target store. A reference met later in the stream is out of dependency order;
 * the others not in the bundle are gathered (bounded in number and bytes) and asked about in one
 * query at the end (`missing`, then `finish` with the valid ones): one missing is a 'closure' error.
 */
export class ClosureCheck {
  private readonly seen = new Set<string>();
  /** Reference not yet seen → the first path that needs it. */
  private readonly pending = new Map<string, string>();
  private pendingBytes = 0;
  private storeValid = 0;

  constructor(
    private readonly limits: Pick<ReaderLimits, 'maxMissingReferences' | 'maxMissingReferenceBytes'>,
  ) {}

  /** Refuses an entry an earlier one needed but did not find (call before `add`). */
  arrive(path: string): void {
    const needer = this.pending.get(path);
    if (needer !== undefined)
      throw new NixPlanError(
        'closure',
        `'${needer}' refers to '${path}', which comes after it in the bundle: the bundle is out of dependency order`,
      );
  }

  /** Records an entry and its references. */
  add(path: string, references: readonly string[]): void {
    for (const r of references) {
      if (r === path || this.seen.has(r) || this.pending.has(r)) continue;
      this.pending.set(r, path);
      this.pendingBytes += r.length;
      if (
        this.pending.size > this.limits.maxMissingReferences ||
        this.pendingBytes > this.limits.maxMissingReferenceBytes
      )
        throw new LimitError(
          `the bundle refers to more than ${this.limits.maxMissingReferences} paths (or ${this.limits.maxMissingReferenceBytes} bytes of them) it does not hold, e.g. '${r}' (from '${path}')`,
        );
    }
    this.seen.add(path);
  }

  /** Whether `path` was an entry. */
  has(path: string): boolean {
    return this.seen.has(path);
  }

  /** How many entries were added. */
  get paths(): number {
    return this.seen.size;
  }

  /** The references the bundle does not hold (to be found valid in the store). */
  missing(): string[] {
    return [...this.pending.keys()];
  }

  /** How many references were found valid in the store instead of in the bundle. */
  get storeReferences(): number {
    return this.storeValid;
  }

  /** Refuses a reference that was neither an entry nor valid in the store (`valid`: those that are). */
  finish(valid: ReadonlySet<string>): void {
    for (const [missing, needer] of this.pending)
      if (!valid.has(missing))
        throw new NixPlanError(
          'closure',
          `'${needer}' refers to '${missing}', which is neither in the bundle nor valid in the store`,
        );
    this.storeValid = this.pending.size;
  }
}
