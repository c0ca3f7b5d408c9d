// The relocator: the state of one relocation (the rewriter's known hashes and their new values,
// the hasher of relocated derivations, the report) and the relocation of one object of each kind.
import { makeContentAddressedPath, parseContentAddress } from '../content-address.js';
import {
  DerivationHasher,
  parseDerivation,
  parseDerivationOutputs,
  parseDerivationSpans,
} from '../derivation/index.js';
import { dynamicPlaceholders, parseDynamicOutputs, type DynamicOutput } from './dynamic.js';
import { NixPlanError } from '../errors.js';
import { sha256 } from '../hash.js';
import { compareStrings, downstreamPlaceholder, hashPartOf, nameOf, storeDirProblem } from '../store-path.js';
import { contentsOf, drvType, refuse, type DrvType } from './checks.js';
import { relocateDrv, spliceDrv, type DrvContext } from './drv.js';
import { copiedHashes, namedContent, relocatedName, type NamePlan } from './names.js';
import { StoreRewriter } from './rewrite.js';
import type { RelocateClosureOptions, RelocatedObject, Relocation, RelocObject } from './types.js';

/** One object as the walk sees it. */
export interface Node {
  readonly obj: RelocObject;
  /** Its content address in A (the self-check's result). */
  readonly ca: string;
  /** Derivations: their type, and the names of their deferred outputs (no path yet). */
  readonly drv: { type: DrvType; deferred: string[] } | undefined;
  /** Its references other than itself: relocated before it. */
  readonly refs: string[];
  /** How its name is made from store hashes, when it carries any (names.ts). */
  readonly name: NamePlan | undefined;
}

/**
 * Thrown (and caught) while relocating an object whose strings mention hashes or placeholders
 * whose new values are not known yet: the objects they belong to are relocated first.
 */
export class Waiting extends Error {
  constructor(
    readonly hashes: string[],
    readonly placeholders: string[],
  ) {
    super('waiting for mentioned objects to be relocated first');
  }
}

/**
 * Path of a source under `to`: the same content address, a different store dir, and its name as
 * native evaluation in `to` gives it (`name`, when it carries store hashes).
 */
function relocatedSourcePath(obj: RelocObject, ca: string, to: string, name = nameOf(obj.path)): string {
  // The self-check found the source's path from this address (a recursive one from its NAR hash).
  return makeContentAddressedPath(name, parseContentAddress(ca), to);
}

/** The state of one relocation: known hashes and their new values, the hasher, the report. */
export class Relocator {
  readonly relocation: Relocation;
  readonly rewriter: StoreRewriter;
  private readonly hasher: DerivationHasher;
  private readonly hasherA: DerivationHasher;
  /** For each .drv whose outputs build derivations used by others: the child maps they use. */
  private readonly dynamicUses = new Map<string, DynamicOutput[][]>();
  private readonly cx: DrvContext;
  /** The derivation whose output has hash `hash` (set when the closure is indexed). */
  ownerDrvOf: (hash: string) => string | undefined = () => undefined;
  /** The object being relocated, and what its rewrites replaced so far. */
  private current = '';
  private readonly rewritten = { hashes: 0, bare: 0 };

  constructor(
    readonly from: string,
    readonly to: string,
    private readonly options: RelocateClosureOptions,
  ) {
    for (const [role, dir] of [
      ['target', to],
      ['source', from],
    ] as const) {
      const problem = storeDirProblem(dir);
      if (problem !== undefined)
        throw new NixPlanError('realm', `invalid ${role} store directory '${dir}': ${problem}`);
    }
    this.relocation = {
      objects: [],
      pathMap: new Map(),
      report: {
        objects: { drv: 0, text: 0, source: 0 },
        hashesRewritten: 0,
        bareHashRewrites: 0,
        bareStoreDirMentions: [],
        warnings: [],
      },
    };
    this.rewriter = new StoreRewriter(from, to);
    // Each relocated derivation's modulo hash is recorded as it is made, so none is looked up;
    // and so is each original's in A, as it is checked.
    this.hasher = new DerivationHasher(to, (p) => {
      throw new NixPlanError('internal', `relocated derivation ${p} is not known yet`);
    });
    this.hasherA = new DerivationHasher(from, (p) => {
      throw new NixPlanError('internal', `derivation ${p} was not checked before its dependents`);
    });
    this.cx = {
      from,
      to,
      hasher: this.hasher,
      mapPath: (p) => this.mapPath(p),
      setHash: (o, n) => this.setHash(o, n),
      rewrite: (bytes, escaped) => this.rewrite(bytes, escaped),
      mentionsAny: (bytes) => {
        const m = this.rewriter.mentions(bytes);
        return m.hashes.length + m.placeholders.length + m.unknownPaths.length > 0;
      },
      onDerivation: options.onDerivation,
      hasherA: options.outputsChecked === true ? undefined : this.hasherA,
    };
  }

  private setHash(oldPath: string, newPath: string): void {
    this.relocation.pathMap.set(oldPath, newPath);
    // Refuses (internal) a second, different new hash for the same old one.
    this.rewriter.set(hashPartOf(oldPath), hashPartOf(newPath));
  }

  private mapPath(p: string): string {
    const n = this.relocation.pathMap.get(p);
    if (n === undefined) throw new NixPlanError('internal', `${p} was not relocated before its dependents`);
    return n;
  }

  /** Rewrites a string of the object being relocated; throws Waiting when it must wait. */
  private rewrite(bytes: Uint8Array, escaped = false): Uint8Array {
    if (bytes.length < 32) return bytes; // too short to hold a hash: skip the call
    const r = this.rewriter.rewrite(bytes, { countBareStoreDirs: false, escaped });
    if (r.unknownPaths.length > 0)
      refuse(
        `cannot relocate ${this.current}: it mentions ${r.unknownPaths[0]}, which is outside the ` +
          'closure (neither an object in it nor an output of a derivation in it), so its new ' +
          'path cannot be known; include it in the plan',
      );
    if (r.waiting !== undefined) throw new Waiting(r.waiting.hashes, r.waiting.placeholders);
    // Counted once the object is relocated: it may have to wait and be relocated again.
    this.rewritten.hashes += r.storePaths + r.placeholders;
    this.rewritten.bare += r.bareHashes;
    return r.bytes;
  }

  /**
   * Refuses a copy of a build output (import from derivation) whose bytes mention A, or may:
   * native evaluation in B builds that output again, and what it builds there mentions B instead.
   */
  private checkCopyOfOutput(obj: RelocObject, output: string): void {
    const file = obj.contents;
    const mentions =
      file === undefined
        ? obj.mentionsStoreDir
        : Buffer.from(file.buffer, file.byteOffset, file.byteLength).includes(this.from);
    if (mentions === false) return;
    const drv = this.ownerDrvOf(hashPartOf(output)) ?? 'a derivation of the plan';
    refuse(
      `cannot relocate ${obj.path}: it is a copy of ${output}, an output of ${drv} built while evaluating, ` +
        (mentions === true
          ? `and its bytes mention ${this.from}: `
          : `and whether its bytes mention ${this.from} is not known: `) +
        `native evaluation in ${this.to} would build that output again and copy what it builds there`,
    );
  }

  /**
   * Checks that a .drv can be relocated and makes its output hashes (or the placeholders of its
   * deferred outputs) known, telling `owner` of each.
   */
  declareDrv(
    obj: RelocObject,
    owner: {
      output: (hash: string, path: string) => void;
      /** A placeholder this .drv mentions, and the .drv whose relocation gives its new value. */
      placeholder: (placeholder: string, owner?: string) => void;
    },
  ): NonNullable<Node['drv']> {
    const parsed = parseDerivationOutputs(contentsOf(obj));
    const type = drvType(obj.path, parsed);
    for (const o of parsed.outputs) {
      if (o.path !== '') {
        const h = hashPartOf(o.path);
        owner.output(h, o.path);
        this.rewriter.declare(h);
      } else {
        // A deferred output: dependents mention it by a placeholder made from this drv's path.
        const p = downstreamPlaceholder(obj.path, o.name);
        owner.placeholder(p);
        this.rewriter.declarePlaceholder(p);
      }
    }
    if (parsed.version !== undefined) this.declareDynamicInputs(contentsOf(obj), owner);
    // Only what ordering needs is kept: 10,000 parsed drvs would hold ~130 MB until the end.
    return { type, deferred: parsed.outputs.filter((o) => o.path === '').map((o) => o.name) };
  }

  /**
   * A dynamic derivation's inputs (DrvWithVersion): the outputs it uses of what an input builds
   * are mentioned by placeholders made from that input's path, known once it is relocated.
   */
  private declareDynamicInputs(
    bytes: Uint8Array,
    owner: { placeholder: (placeholder: string, owner?: string) => void },
  ): void {
    for (const input of parseDerivationSpans(bytes).head.inputDrvs) {
      if (input.dynamicOutputs === undefined) continue;
      const children = parseDynamicOutputs(input.dynamicOutputs);
      for (const p of dynamicPlaceholders(input.path, children)) {
        owner.placeholder(p, input.path);
        this.rewriter.declarePlaceholder(p);
      }
      let uses = this.dynamicUses.get(input.path);
      if (uses === undefined) this.dynamicUses.set(input.path, (uses = []));
      uses.push(children);
    }
  }

  /**
   * Relocates one object whose references are all relocated; or, having changed nothing but the
   * recorded paths of its fixed outputs, says which mentioned hashes it must wait for.
   */
  relocate(node: Node): RelocatedObject | Waiting {
    this.current = node.obj.path;
    this.rewritten.hashes = 0;
    this.rewritten.bare = 0;
    try {
      return this.relocateNow(node);
    } catch (e) {
      if (e instanceof Waiting) return e;
      throw e;
    }
  }

  private relocateNow(node: Node): RelocatedObject {
    const { obj } = node;
    const { from, to } = this;
    const { report } = this.relocation;
    const { warnings } = report;
    let out: RelocatedObject;
    let bytes: Uint8Array | undefined; // a drv's or text's, read once
    if (obj.kind === 'source') {
      const name =
        node.name === undefined
          ? nameOf(obj.path)
          : relocatedName(node.name, namedContent(obj), to, (p) => this.relocation.pathMap.get(p));
      if (typeof name !== 'string') throw new Waiting([name.waitFor], []);
      out = {
        oldPath: obj.path,
        path: relocatedSourcePath(obj, node.ca, to, name),
        kind: 'source',
        references: [],
      };
      if (node.name !== undefined) {
        // The hashes of copied paths outside the closure, as strings mentioning the copy hold them.
        for (const c of copiedHashes(node.name, name)) this.rewriter.set(c.from, c.to);
        const last = node.name.steps[node.name.steps.length - 1]!;
        if ('owner' in last && last.output) this.checkCopyOfOutput(obj, last.owner);
      }
      const file = obj.contents; // a source keeps its bytes: they are only looked at
      const mentions =
        file === undefined
          ? obj.mentionsStoreDir === true
          : Buffer.from(file.buffer, file.byteOffset, file.byteLength).includes(from) ||
            this.rewriter.mentions(file).hashes.length > 0;
      if (mentions)
        warnings.push(
          `${out.path} (was ${obj.path}) is a source whose bytes mention ${from} or store hashes of the ` +
            `plan; they are kept as they are, as native evaluation in ${to} would keep them`,
        );
    } else if (obj.kind === 'text') {
      bytes = contentsOf(obj);
      // Kept to the end: copied out of the shared pool a short rewrite result may be a slice of.
      const rewritten = this.rewrite(bytes);
      const contents = rewritten === bytes ? rewritten : rewritten.slice();
      const references = obj.references.map((p) => this.mapPath(p)).sort(compareStrings);
      const ca = { method: 'text', hash: { algo: 'sha256', bytes: sha256(contents) } } as const;
      const newPath = makeContentAddressedPath(nameOf(obj.path), ca, to, references);
      out = { oldPath: obj.path, path: newPath, kind: 'text', references, contents };
    } else {
      bytes = contentsOf(obj);
      const type = node.drv!.type;
      out =
        (this.options.splice !== false ? spliceDrv(obj, bytes, type, this.cx) : undefined) ??
        relocateDrv(obj, parseDerivation(bytes), type, this.cx);
    }
    this.setHash(obj.path, out.path);
    if (obj.kind === 'drv') {
      // Deferred outputs: dependents mention them by placeholders derived from this drv's path.
      for (const o of node.drv!.deferred)
        this.rewriter.setPlaceholder(downstreamPlaceholder(obj.path, o), downstreamPlaceholder(out.path, o));
      // Outputs of what it builds (dynamic derivations), the same way, chained.
      for (const children of this.dynamicUses.get(obj.path) ?? []) {
        const before = dynamicPlaceholders(obj.path, children);
        const after = dynamicPlaceholders(out.path, children);
        before.forEach((p, i) => this.rewriter.setPlaceholder(p, after[i]!));
      }
    }
    const bareDirs = bytes === undefined ? 0 : this.rewriter.countBareStoreDirs(bytes);
    if (bareDirs > 0) {
      report.bareStoreDirMentions.push({ path: out.path, count: bareDirs });
      warnings.push(
        `${out.path} (was ${obj.path}) mentions the store dir ${from} on its own ${bareDirs} time(s), e.g. ` +
          `a value computed from builtins.storeDir; it was left as is, so native evaluation in ${to} may differ`,
      );
    }
    report.hashesRewritten += this.rewritten.hashes;
    report.bareHashRewrites += this.rewritten.bare;
    const bareHashes = this.rewritten.bare;
    if (bareHashes > 0)
      warnings.push(
        `${out.path} (was ${obj.path}) contains ${bareHashes} store hash(es) without a store dir before ` +
          'them (computed from a path string); they were rewritten, but anything else computed from ' +
          'those paths (hashString, stringLength, substring) cannot be',
      );
    report.objects[obj.kind]++;
    return out;
  }
}
