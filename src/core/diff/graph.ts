// What a diff knows of one plan: each derivation's head (name, version, system, outputs, input
// derivations), interned and indexed by path, and the plan's roots. Built one .drv at a time as a
// bundle streams by, so a plan is never held whole: only these heads.
import type { DerivationHead, DerivationOutput } from '../derivation/index.js';
import { outputKind as declaredKind } from '../derivation/kind.js';
import { NixPlanError } from '../errors.js';
import { nameOf } from '../store-path.js';
import { parseDrvName } from './drv-name.js';

/**
 * How an output's path is known: `input-addressed` (from the .drv's inputs), `fixed` (a declared
 * content hash), `floating` (content-addressed, known after building), `impure`, or `deferred`
 * (input-addressed, but depending on a floating one, so known after building too).
 */
export type OutputKind = 'input-addressed' | 'fixed' | 'floating' | 'impure' | 'deferred';

/** One output of a derivation as a diff shows it. */
export interface OutputInfo {
  readonly name: string;
  /** "" when known only after building. */
  readonly path: string;
  readonly kind: OutputKind;
  /** As written in the .drv: "", "sha256", "r:sha256", "text:sha256", … */
  readonly hashAlgo: string;
  /** As written: the declared hash of a fixed output, "impure", or "". */
  readonly hash: string;
}

/**
 * The kind of an output from its ATerm fields, as the core classifies them, with an
 * input-addressed output that has no path yet told apart as `deferred` (Nix reads it that way).
 */
export function outputKind(o: Pick<DerivationOutput, 'path' | 'hashAlgo' | 'hash'>): OutputKind {
  const kind = declaredKind(o);
  return kind === 'input-addressed' && o.path === '' ? 'deferred' : kind;
}

/** One derivation of a plan, as much as a package-level diff needs. */
export interface DrvNode {
  /** Index in its graph. */
  readonly id: number;
  readonly path: string;
  /** The derivation name (the store path name without `.drv`). */
  readonly name: string;
  /** `builtins.parseDrvName` of `name`. */
  readonly pname: string;
  readonly version: string;
  readonly system: string;
  readonly outputs: readonly OutputInfo[];
  /** Where its input derivations' ids start in the graph's edge list, and how many there are. */
  readonly firstInput: number;
  readonly inputCount: number;
}

/** A root of a plan: what the plan was asked to build. */
export interface PlanRoot {
  /** Installable, attribute, or derivation name: what roots are matched by across two plans. */
  readonly label: string;
  readonly drvPath: string;
}

/** Strings that repeat across a closure (systems, output names, hash algorithms) kept once. */
class Interner {
  private readonly table = new Map<string, string>();
  get(s: string): string {
    const known = this.table.get(s);
    if (known !== undefined) return known;
    this.table.set(s, s);
    return s;
  }
}

const latin1 = (bytes: Uint8Array): string =>
  Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');

/**
 * The derivations of one plan, added in dependency order (a bundle's order, or Nix's
 * `--requisites` order): every input derivation must have been added before the derivations that
 * use it, so a closure is always complete.
 */
export class PlanGraph {
  private readonly byPath = new Map<string, DrvNode>();
  private readonly list: DrvNode[] = [];
  private readonly strings = new Interner();
  /** Every node's input ids, one after another (a small typed array per node costs more). */
  private edges = new Int32Array(1024);
  private edgeCount = 0;

  constructor(
    /** The store dir of every path in it. */
    readonly storeDir: string,
    readonly roots: readonly PlanRoot[],
  ) {}

  /** How many derivations it holds. */
  get size(): number {
    return this.list.length;
  }

  /** Adds one derivation from its parsed head; its inputs must be in the graph already. */
  add(path: string, head: Pick<DerivationHead, 'outputs' | 'inputDrvs' | 'system'>): DrvNode {
    const known = this.byPath.get(path);
    if (known !== undefined) return known;
    const firstInput = this.edgeCount;
    this.reserveEdges(head.inputDrvs.length);
    for (const input of head.inputDrvs) this.edges[this.edgeCount++] = this.inputId(path, input.path);
    const name = nameOf(path).replace(/\.drv$/, '');
    const { name: pname, version } = parseDrvName(name);
    const node: DrvNode = {
      id: this.list.length,
      path,
      name,
      pname,
      version,
      system: this.strings.get(latin1(head.system)),
      outputs: head.outputs.map((o) => ({
        name: this.strings.get(o.name),
        path: o.path,
        kind: outputKind(o),
        hashAlgo: this.strings.get(o.hashAlgo),
        hash: o.hash,
      })),
      firstInput,
      inputCount: head.inputDrvs.length,
    };
    this.byPath.set(path, node);
    this.list.push(node);
    return node;
  }

  /**
   * Adds the derivation `node` of `other` (a plan of the same store dir), whose .drv is the one at
   * the same path here: its name, version, system and outputs are shared, not parsed again, and
   * its inputs are found here by their paths (they must be in this graph already, as for `add`).
   */
  addFrom(other: PlanGraph, node: DrvNode): DrvNode {
    const known = this.byPath.get(node.path);
    if (known !== undefined) return known;
    if (other.storeDir !== this.storeDir)
      throw new NixPlanError('internal', `'${node.path}' is shared between plans of different store dirs`);
    const firstInput = this.edgeCount;
    this.reserveEdges(node.inputCount);
    for (let e = node.firstInput; e < node.firstInput + node.inputCount; e++)
      this.edges[this.edgeCount++] = this.inputId(node.path, other.list[other.edges[e]!]!.path);
    const added: DrvNode = {
      id: this.list.length,
      path: node.path,
      name: node.name,
      pname: node.pname,
      version: node.version,
      system: node.system,
      outputs: node.outputs,
      firstInput,
      inputCount: node.inputCount,
    };
    this.byPath.set(node.path, added);
    this.list.push(added);
    return added;
  }

  /** The id of `input`, which `path` needs: it must have been added before. */
  private inputId(path: string, input: string): number {
    const node = this.byPath.get(input);
    if (node === undefined)
      throw new NixPlanError('closure', `'${path}' needs '${input}', which the plan does not hold before it`);
    return node.id;
  }

  /** Room for `count` more edges. */
  private reserveEdges(count: number): void {
    const needed = this.edgeCount + count;
    if (needed > this.edges.length) {
      const grown = new Int32Array(Math.max(needed, this.edges.length * 2));
      grown.set(this.edges.subarray(0, this.edgeCount));
      this.edges = grown;
    }
  }

  /** The derivation at `path`, if the plan holds it. */
  get(path: string): DrvNode | undefined {
    return this.byPath.get(path);
  }

  /** Whether the plan holds `path`. */
  has(path: string): boolean {
    return this.byPath.has(path);
  }

  /** Every derivation, in the order added. */
  nodes(): readonly DrvNode[] {
    return this.list;
  }

  /** The derivations `path` needs, itself included (none when the plan does not hold it). */
  closure(path: string): DrvNode[] {
    const start = this.byPath.get(path);
    if (start === undefined) return [];
    const seen = new Uint8Array(this.list.length);
    const out: DrvNode[] = [];
    const stack = [start.id];
    seen[start.id] = 1;
    while (stack.length > 0) {
      const node = this.list[stack.pop()!]!;
      out.push(node);
      for (let e = node.firstInput; e < node.firstInput + node.inputCount; e++) {
        const i = this.edges[e]!;
        if (seen[i] === 0) {
          seen[i] = 1;
          stack.push(i);
        }
      }
    }
    return out;
  }
}
