// Input derivations a plan does not hold, read from the target store as Nix reads them: when Nix
// registers a .drv whose inputs are not in the plan, it reads them from there. They are parsed,
// bounded in number and bytes, and kept only until they are hashed.
import { NixPlanError } from '../errors.js';
import { parseDerivation, type Derivation } from '../derivation/index.js';

/** Reads a .drv file from the target store; undefined when it is not there. */
export type StoreDerivationReader = (drvPath: string) => Promise<Uint8Array | undefined>;

/** Bounds on what the checker holds for derivations outside the plan. */
export interface DrvOutputLimits {
  /** Most derivations read from the store. */
  maxStoreDerivations: number;
  /** Most bytes of .drv files read from the store. */
  maxStoreDerivationBytes: number;
}

/** Defaults: more than any closure's worth of .drv files (nixpkgs systems have ~30,000, ~200 MB). */
export const DEFAULT_DRV_OUTPUT_LIMITS: Readonly<DrvOutputLimits> = Object.freeze({
  maxStoreDerivations: 1_000_000,
  maxStoreDerivationBytes: 4 * 1024 * 1024 * 1024,
});

/** Derivations read from the store, by path, until they are hashed. */
export class StoreDerivations {
  private readonly held = new Map<string, Derivation>();
  private bytes = 0;
  private readonly limits: DrvOutputLimits;

  /** `read` reads a derivation from the target store (none: every input must be in the plan). */
  constructor(
    private readonly read: StoreDerivationReader | undefined,
    limits: Partial<DrvOutputLimits> = {},
  ) {
    this.limits = { ...DEFAULT_DRV_OUTPUT_LIMITS, ...limits };
  }

  /** The derivation at `drvPath`, when it was read and is still held. */
  get(drvPath: string): Derivation | undefined {
    return this.held.get(drvPath);
  }

  /**
   * Reads `paths` (needed by `needer`) and every input derivation they need, from the store,
   * except those `hashed` says are hashed already.
   */
  async readClosure(
    paths: readonly string[],
    needer: string,
    hashed: (drvPath: string) => boolean,
  ): Promise<void> {
    const read = this.read;
    const todo = paths.map((p) => [p, needer] as const);
    for (let next = todo.pop(); next !== undefined; next = todo.pop()) {
      const [p, by] = next;
      if (hashed(p) || this.held.has(p)) continue;
      const bytes = read === undefined ? undefined : await read(p);
      if (bytes === undefined)
        throw new NixPlanError(
          'closure',
          `'${by}' refers to '${p}', which is neither in the bundle nor valid in the store`,
        );
      this.bytes += bytes.length;
      if (
        this.held.size + 1 > this.limits.maxStoreDerivations ||
        this.bytes > this.limits.maxStoreDerivationBytes
      )
        throw new NixPlanError(
          'limit',
          `the plan needs more than ${this.limits.maxStoreDerivations} input derivations (or ${this.limits.maxStoreDerivationBytes} bytes of them) from the store`,
        );
      let drv: Derivation;
      try {
        drv = parseDerivation(bytes);
      } catch (e) {
        throw new NixPlanError('nix', `cannot parse '${p}' from the store: ${(e as Error).message}`);
      }
      this.held.set(p, drv);
      for (const i of drv.inputDrvs) if (!hashed(i.path) && !this.held.has(i.path)) todo.push([i.path, p]);
    }
  }

  /** Lets go of the derivations `hashed` says are hashed now. */
  release(hashed: (drvPath: string) => boolean): void {
    for (const [p] of this.held) if (hashed(p)) this.held.delete(p);
  }
}
