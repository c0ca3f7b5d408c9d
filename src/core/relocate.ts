// Relocation: rewrites a closure of .drv files, text files and sources from store dir A to B so
// that it is exactly what evaluating the same expression natively with store dir B would write.
import { identifyContentAddress, type ContentAddressed } from './content-address.js';
import { NixPlanError } from './errors.js';
import { parseHash, sha256 } from './hash.js';
import { nix32Encode } from './nix32.js';
import {
  HASH_PART_LENGTH,
  compareStrings,
  hashPartOf,
  makeFixedOutputPath,
  makeSourcePath,
  makeTextPath,
  nameOf,
  outputPathName,
  parseStorePath,
  storeDirProblem,
} from './store-path.js';
import {
  compareBytes,
  derivationReferences,
  drvName,
  parseDerivation,
  parseDerivationOutputs,
  parseDerivationSpans,
  serialiseDerivation,
  spliceDerivation,
  type Derivation,
  type DerivationHead,
  type DerivationLayout,
  type DerivationOutput,
  type EnvEntry,
} from './derivation/index.js';
import {
  DerivationHasher,
  computeDrvPath,
  type FilledDerivation,
  type MaskedDerivation,
} from './derivation/hash.js';
import { StoreRewriter } from './relocate/rewrite.js';
import { dependenciesFirst } from './closure.js';

/** A store object of the closure to relocate, in store dir A. */
export interface RelocObject {
  path: string;
  kind: 'drv' | 'text' | 'source';
  references: string[];
  /** drv and text: the file bytes; source: its bytes when it is one regular file. */
  contents?: Uint8Array;
  /**
   * drv and text, instead of `contents`: reads the file bytes when relocation needs them (once
   * when the object is indexed, once when it is relocated, again if it has to wait), so that a
   * caller can keep the bytes of a large closure out of memory.
   */
  readContents?: (() => Uint8Array) | undefined;
  /**
   * sha256 of the object's NAR: a source's new path is made from it. A .drv or text file is
   * addressed by its file's hash and needs none.
   */
  narHash?: Uint8Array | undefined;
  /**
   * Its content address as the caller already verified it: computed from the contents, with the
   * path found to follow from it, the references and the name (a bundle verifier's `ca`). When
   * given, a .drv or text file is not hashed again: its content address plays no part in its
   * relocation. A source's path is still recomputed from it, as its new path is made from it.
   */
  ca?: string | undefined;
}

/** A relocated store object, in store dir B. */
export interface RelocatedObject {
  oldPath: string;
  path: string;
  kind: 'drv' | 'text' | 'source';
  references: string[];
  /** drv/text: the new bytes; source: undefined (its NAR is unchanged). */
  contents?: Uint8Array;
}

/** What relocation did, and what it could not vouch for. */
export interface RelocationReport {
  /** Objects relocated, by kind. */
  objects: Record<'drv' | 'text' | 'source', number>;
  /** Store paths (and placeholders of deferred outputs) rewritten inside strings and text files. */
  hashesRewritten: number;
  /** Store hashes rewritten where no store dir preceded them: a path string was computed on. */
  bareHashRewrites: number;
  /** Objects (relocated path) in which store dir A is still mentioned on its own. */
  bareStoreDirMentions: { path: string; count: number }[];
  /** Everything a user should look at, one sentence each. */
  warnings: string[];
}

/** The result of `relocateClosure`. */
export interface Relocation {
  /** The relocated objects, dependencies first. */
  objects: RelocatedObject[];
  /** Old path → new path of every object and of every output path of every derivation. */
  pathMap: Map<string, string>;
  report: RelocationReport;
}

/** One object as the walk sees it. */
interface Node {
  readonly obj: RelocObject;
  /** Its content address in A (the self-check's result). */
  readonly ca: string;
  /** Derivations: their type, and the names of their deferred outputs (no path yet). */
  readonly drv: { type: DrvType; deferred: string[] } | undefined;
  /** Its references other than itself: relocated before it. */
  readonly refs: string[];
}

/**
 * Thrown (and caught) while relocating an object whose strings mention hashes or placeholders
 * whose new values are not known yet: the objects they belong to are relocated first.
 */
class Waiting extends Error {
  constructor(
    readonly hashes: string[],
    readonly placeholders: string[],
  ) {
    super('waiting for mentioned objects to be relocated first');
  }
}

function refuse(message: string): never {
  throw new NixPlanError('relocate', message);
}

/** sha256 placeholder Nix renders for output `output` of a deferred derivation (DownstreamPlaceholder). */
export function downstreamPlaceholder(drvPath: string, output: string): string {
  const name = drvName(drvPath);
  return nix32Encode(sha256(`nix-upstream-output:${hashPartOf(drvPath)}:${outputPathName(name, output)}`));
}

type DrvType = 'input-addressed' | 'fixed' | 'floating';

/** Refuses what cannot be relocated faithfully, and says how the derivation names its outputs. */
function drvType(path: string, drv: Pick<Derivation, 'version' | 'outputs'>): DrvType {
  if (drv.version !== undefined)
    refuse(
      `cannot relocate ${path}: it is written as DrvWithVersion("${drv.version}", …) (it uses ` +
        'experimental dynamic derivations), whose output names nix-plan cannot recompute',
    );
  if (drv.outputs.some((o) => o.hash === 'impure')) refuseImpure(path);
  if (drv.outputs.every((o) => o.hashAlgo === '')) return 'input-addressed';
  if (drv.outputs.every((o) => o.hashAlgo !== '' && o.hash !== '')) return 'fixed';
  if (drv.outputs.every((o) => o.hashAlgo !== '' && o.hash === '' && o.path === '')) return 'floating';
  return refuse(`cannot relocate ${path}: its outputs mix input-addressed, fixed and floating kinds`);
}

const IMPURE_KEY = new TextEncoder().encode('__impure');

/**
 * Refuses a derivation with an `__impure` variable. Nix writes its outputs as impure, which the
 * index refuses before any work; this catches one written by hand, once its environment is read.
 */
function refuseImpureEnv(path: string, keys: Iterable<Uint8Array>): void {
  for (const key of keys) if (compareBytes(key, IMPURE_KEY) === 0) refuseImpure(path);
}

function refuseImpure(path: string): never {
  return refuse(
    `cannot relocate ${path}: it is an impure derivation (__impure), which has no fixed plan to relocate`,
  );
}

/**
 * The kind `obj.ca`, verified by the caller, gives it; undefined when it cannot be its content
 * address. A source's path must follow from it (with its references and name) under `from`.
 */
function checkGivenContentAddress(
  obj: RelocObject & { ca: string },
  from: string,
): ContentAddressed | undefined {
  const name = nameOf(obj.path);
  const { ca } = obj;
  if (ca.startsWith('text:sha256:'))
    return obj.contents === undefined && obj.readContents === undefined
      ? undefined
      : { kind: name.endsWith('.drv') ? 'drv' : 'text', ca };
  if (ca.startsWith('fixed:r:')) {
    if (obj.narHash === undefined || ca !== `fixed:r:sha256:${nix32Encode(obj.narHash)}`) return undefined;
    const others = obj.references.filter((r) => r !== obj.path);
    const self = others.length !== obj.references.length;
    return makeSourcePath(name, obj.narHash, from, others, self) === obj.path
      ? { kind: 'source', ca }
      : undefined;
  }
  if (ca.startsWith('fixed:') && obj.contents !== undefined && obj.references.length === 0)
    return makeFixedOutputPath(name, parseHash(ca.slice('fixed:'.length)), false, from) === obj.path
      ? { kind: 'source', ca }
      : undefined;
  return undefined;
}

/** Checks that `obj` is what its path says under `from`; returns its content address. */
function selfCheck(obj: RelocObject, from: string): string {
  if (obj.kind !== 'source' && obj.contents === undefined && obj.readContents === undefined)
    refuseWithoutContents(obj);
  const contents = obj.ca === undefined ? bytesOf(obj) : undefined;
  const ca =
    obj.ca !== undefined
      ? checkGivenContentAddress({ ...obj, ca: obj.ca }, from)
      : identifyContentAddress(
          {
            path: obj.path,
            references: obj.references,
            narHash: obj.narHash,
            file: contents === undefined ? undefined : { executable: false, contents },
          },
          from,
        );
  if (ca === undefined && obj.kind === 'source' && obj.narHash === undefined) refuseWithoutNarHash(obj);
  if (ca === undefined)
    refuse(
      `cannot relocate ${obj.path}: it is not content-addressed (its path does not follow from its ` +
        'contents, so it is a build output, e.g. brought in by builtins.storePath or ' +
        'import-from-derivation) or its contents do not match its path',
    );
  if (ca.kind !== obj.kind)
    refuse(`cannot relocate ${obj.path}: it is given as a ${obj.kind} but its path says it is a ${ca.kind}`);
  return ca.ca;
}

/** The object's file bytes, when it has them (read now when the caller reads them). */
function bytesOf(obj: RelocObject): Uint8Array | undefined {
  return obj.contents ?? obj.readContents?.();
}

/** The file bytes of a drv or text, which it must have. */
function contentsOf(obj: RelocObject): Uint8Array {
  return bytesOf(obj) ?? refuseWithoutContents(obj);
}

function refuseWithoutNarHash(obj: RelocObject): never {
  return refuse(
    `cannot relocate ${obj.path}: it is given as a source without its NAR hash, and its contents ` +
      'do not make it a flat fixed-output path; a recursive source is checked, and relocated, by its NAR hash',
  );
}

function refuseWithoutContents(obj: RelocObject): never {
  return refuse(`cannot relocate ${obj.path}: a ${obj.kind} needs its contents`);
}

/** Path of a source under `to`: the same content address, a different store dir. */
function relocatedSourcePath(obj: RelocObject, ca: string, to: string): string {
  const name = nameOf(obj.path);
  // selfCheck found a recursive source's path from its NAR hash, so it has one.
  if (ca.startsWith('fixed:r:sha256:')) return makeSourcePath(name, obj.narHash!, to);
  const algoAndHash = ca.slice('fixed:'.length);
  return makeFixedOutputPath(name, parseHash(algoAndHash), false, to);
}

/** How `relocateClosure` and `relocateLazily` work (the result is the same either way). */
export interface RelocateClosureOptions {
  /**
   * Default true: each .drv's builder, arguments and environment are rewritten as written and
   * spliced after its new head. false: every .drv is parsed whole and serialised again, the
   * straightforward way the spliced one is tested against.
   */
  readonly splice?: boolean | undefined;
  /**
   * Called with each .drv's first fields as relocation parses it, before relocation checks
   * anything of them (a caller that left parsing the .drv files to relocation checks them here).
   * A .drv relocated again after waiting for what it mentions is passed again.
   */
  readonly onDerivation?: ((obj: RelocObject, drv: DerivationHead) => void) | undefined;
}

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
  for (const obj of objects) {
    if (obj.kind !== 'drv') continue;
    checked.get(obj.path)!.drv = r.declareDrv(obj, {
      output: (h) => {
        if (!ownerOfHash.has(h)) ownerOfHash.set(h, obj.path);
      },
      placeholder: (p) => ownerOfPlaceholder.set(p, obj.path),
    });
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
    nodes.set(obj.path, { obj, ca, drv, refs });
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

function refuseSourceWithReferences(obj: RelocObject): void {
  if (obj.kind === 'source' && obj.references.length > 0)
    refuse(
      `cannot relocate ${obj.path}: it is a source with references (${obj.references.join(', ')}); ` +
        'native evaluation could not have produced it',
    );
}

/** The state of one relocation: known hashes and their new values, the hasher, the report. */
class Relocator {
  readonly relocation: Relocation;
  readonly rewriter: StoreRewriter;
  private readonly hasher: DerivationHasher;
  private readonly cx: DrvContext;
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
    // Each relocated derivation's modulo hash is recorded as it is made, so none is looked up.
    this.hasher = new DerivationHasher(to, (p) => {
      throw new NixPlanError('internal', `relocated derivation ${p} is not known yet`);
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
   * Checks that a .drv can be relocated and makes its output hashes (or the placeholders of its
   * deferred outputs) known, telling `owner` of each.
   */
  declareDrv(
    obj: RelocObject,
    owner: { output: (hash: string) => void; placeholder: (placeholder: string) => void },
  ): NonNullable<Node['drv']> {
    const parsed = parseDerivationOutputs(contentsOf(obj));
    const type = drvType(obj.path, parsed);
    for (const o of parsed.outputs) {
      if (o.path !== '') {
        const h = hashPartOf(o.path);
        owner.output(h);
        this.rewriter.declare(h);
      } else {
        // A deferred output: dependents mention it by a placeholder made from this drv's path.
        const p = downstreamPlaceholder(obj.path, o.name);
        owner.placeholder(p);
        this.rewriter.declarePlaceholder(p);
      }
    }
    // Only what ordering needs is kept: 10,000 parsed drvs would hold ~130 MB until the end.
    return { type, deferred: parsed.outputs.filter((o) => o.path === '').map((o) => o.name) };
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
      out = {
        oldPath: obj.path,
        path: relocatedSourcePath(obj, node.ca, to),
        kind: 'source',
        references: [],
      };
      const file = obj.contents; // a source keeps its bytes: they are only looked at
      if (file !== undefined && Buffer.from(file.buffer, file.byteOffset, file.byteLength).includes(from))
        warnings.push(
          `${obj.path} is a source whose bytes mention ${from}; they are kept as they are, as native ` +
            `evaluation in ${to} would keep them`,
        );
    } else if (obj.kind === 'text') {
      bytes = contentsOf(obj);
      // Kept to the end: copied out of the shared pool a short rewrite result may be a slice of.
      const rewritten = this.rewrite(bytes);
      const contents = rewritten === bytes ? rewritten : rewritten.slice();
      const references = obj.references.map((p) => this.mapPath(p)).sort(compareStrings);
      const newPath = makeTextPath(nameOf(obj.path), sha256(contents), references, to);
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

interface DrvContext {
  readonly from: string;
  readonly to: string;
  readonly hasher: DerivationHasher;
  readonly mapPath: (p: string) => string;
  readonly setHash: (oldPath: string, newPath: string) => void;
  /** Rewrites a string (as written in a .drv when `escaped`), counting what it rewrote. */
  readonly rewrite: (bytes: Uint8Array, escaped?: boolean) => Uint8Array;
  /** True when a rewrite of `bytes` would find anything. */
  readonly mentionsAny: (bytes: Uint8Array) => boolean;
  readonly onDerivation: ((obj: RelocObject, drv: DerivationHead) => void) | undefined;
}

/** Relocates one derivation whose dependencies are all relocated: parsed whole, serialised again. */
function relocateDrv(obj: RelocObject, drv: Derivation, type: DrvType, cx: DrvContext): RelocatedObject {
  cx.onDerivation?.(obj, drv);
  const name = drvName(obj.path);
  checkReferences(obj, drv);
  refuseImpureEnv(
    obj.path,
    drv.env.map((e) => e.key),
  );
  const outputs = fixOutputs(drv.outputs, type, name, cx);
  // Input-addressed: the own output paths in env are what is being computed: mask them first.
  const masked = type === 'input-addressed';
  const env: EnvEntry[] = drv.env
    .map((e) => ({
      key: cx.rewrite(e.key),
      value:
        masked && outputNamed(drv.outputs, e.key) !== undefined ? new Uint8Array(0) : cx.rewrite(e.value),
    }))
    .sort((a, b) => compareBytes(a.key, b.key));
  const relocated: Derivation = {
    ...relocatedHead(drv, outputs, masked, cx),
    builder: cx.rewrite(drv.builder),
    args: drv.args.map((a) => cx.rewrite(a)),
    env,
  };
  return completeDrv(
    obj,
    drv.outputs,
    relocated,
    // Output paths, the bytes with them filled in and the modulo hash, from one serialisation.
    masked ? cx.hasher.fillOutputs(relocated, name) : serialiseDerivation(relocated),
    cx,
  );
}

/**
 * `relocateDrv` without unescaping the strings after the system and escaping them again: the
 * builder, arguments and environment are rewritten as written and spliced after the new head
 * (what `rewrite` finds in escaped strings is what it finds in their text). Undefined, having
 * done nothing, when an environment key mentions a store path, as rewriting it could change the
 * order of the environment: relocateDrv sorts it again.
 */
function spliceDrv(
  obj: RelocObject,
  bytes: Uint8Array,
  type: DrvType,
  cx: DrvContext,
): RelocatedObject | undefined {
  const { head, tail } = parseDerivationSpans(bytes);
  cx.onDerivation?.(obj, head);
  if (head.version !== undefined) return undefined;
  refuseImpureEnv(obj.path, tail.keys);
  for (const key of tail.keys) if (key.length >= HASH_PART_LENGTH && cx.mentionsAny(key)) return undefined;
  const name = drvName(obj.path);
  checkReferences(obj, head);
  const outputs = fixOutputs(head.outputs, type, name, cx);
  const masked = type === 'input-addressed';
  // The tail as written, rewritten; masked, it is cut around the values of the env variables
  // named after outputs, which are left empty (their paths are filled in later).
  const pieces: Uint8Array[] = [];
  const holeOutputs: string[] = [];
  let r = tail.start;
  // Plain loops: a closure per environment variable added up to tens of MB of garbage.
  if (masked)
    for (let i = 0; i < tail.keys.length; i++) {
      const o = outputNamed(head.outputs, tail.keys[i]!);
      if (o === undefined) continue;
      pieces.push(cx.rewrite(bytes.subarray(r, tail.values[2 * i]), true));
      holeOutputs.push(o.name);
      r = tail.values[2 * i + 1]!;
    }
  pieces.push(cx.rewrite(bytes.subarray(r), true));
  const relocated = relocatedHead(head, outputs, masked, cx);
  if (!masked) return completeDrv(obj, head.outputs, relocated, spliceDerivation(relocated, pieces), cx);
  const layout: DerivationLayout = { inputDrvsStart: 0, inputDrvsEnd: 0, outputPaths: [], envValues: [] };
  const maskedBytes = spliceDerivation(relocated, pieces, layout);
  const maskedDrv: MaskedDerivation = {
    bytes: maskedBytes,
    layout,
    envHoles: holeOutputs.map((output, i) => ({ at: layout.envValues[i]!, output })),
  };
  return completeDrv(obj, head.outputs, relocated, cx.hasher.fillMasked(maskedDrv, relocated, name), cx);
}

/** Refuses a .drv whose references are not its input derivations and sources. */
function checkReferences(obj: RelocObject, drv: Pick<Derivation, 'inputDrvs' | 'inputSrcs'>): void {
  if (!sameReferences(drv, obj.references))
    refuse(`cannot relocate ${obj.path}: its references are not its input derivations and sources`);
}

/**
 * The outputs of a relocated .drv before its strings are rewritten: a fixed output's path
 * follows from its hash alone, so it is known (and recorded) now; other paths are kept.
 */
function fixOutputs(
  outputs: readonly DerivationOutput[],
  type: DrvType,
  name: string,
  cx: DrvContext,
): DerivationOutput[] {
  const copy = outputs.map((o) => ({ ...o }));
  if (type !== 'fixed') return copy;
  const paths = cx.hasher.fixedOutputPaths({ outputs: copy }, name)!;
  for (const o of copy) {
    const p = paths.get(o.name)!;
    cx.setHash(o.path, p);
    o.path = p;
  }
  return copy;
}

/** Outputs (masked: with empty paths), inputs mapped and sorted, and the system rewritten. */
function relocatedHead(
  drv: Pick<Derivation, 'inputDrvs' | 'inputSrcs' | 'system'>,
  outputs: DerivationOutput[],
  masked: boolean,
  cx: DrvContext,
): Pick<Derivation, 'version' | 'outputs' | 'inputDrvs' | 'inputSrcs' | 'system'> {
  return {
    version: undefined,
    outputs: masked ? outputs.map((o) => ({ ...o, path: '' })) : outputs,
    inputDrvs: drv.inputDrvs
      .map((i) => ({ path: cx.mapPath(i.path), outputs: i.outputs })) // output names: read, never changed
      .sort((a, b) => compareStrings(a.path, b.path)),
    inputSrcs: drv.inputSrcs.map(cx.mapPath).sort(compareStrings),
    system: cx.rewrite(drv.system),
  };
}

/**
 * The relocated .drv from its written form: the final bytes, or (input-addressed) the masked
 * form with its outputs filled in, whose paths are recorded against the original ones.
 */
function completeDrv(
  obj: RelocObject,
  original: readonly DerivationOutput[],
  relocated: Pick<Derivation, 'outputs' | 'inputDrvs' | 'inputSrcs'>,
  written: Uint8Array | FilledDerivation,
  cx: DrvContext,
): RelocatedObject {
  const name = drvName(obj.path);
  let contents: Uint8Array;
  let hash: FilledDerivation['hash'] | undefined;
  if (written instanceof Uint8Array) contents = written;
  else {
    contents = written.bytes;
    hash = written.hash;
    for (let i = 0; i < original.length; i++) {
      const o = original[i]!;
      const p = written.paths[i] ?? '';
      if ((o.path === '') !== (p === ''))
        refuse(
          `cannot relocate ${obj.path}: output ${o.name} is deferred in one store dir and not the other`,
        );
      if (o.path !== '') cx.setHash(o.path, p);
    }
  }
  const references = derivationReferences(relocated);
  const path = computeDrvPath(cx.to, name, contents, references);
  cx.hasher.record(path, relocated, hash);
  return { oldPath: obj.path, path, kind: 'drv', references, contents };
}

/** True when a .drv's references are exactly its input sources and input derivations. */
function sameReferences(
  drv: Pick<Derivation, 'inputDrvs' | 'inputSrcs'>,
  references: readonly string[],
): boolean {
  const inputs = derivationReferences(drv);
  if (inputs.length === references.length && inputs.every((r, i) => r === references[i])) return true;
  // The caller's references may come in another order.
  const given = new Set(references);
  return given.size === inputs.length && inputs.every((r) => given.has(r));
}

/** The output whose name is `key`, if any. */
function outputNamed(outputs: readonly DerivationOutput[], key: Uint8Array): DerivationOutput | undefined {
  for (const o of outputs) if (asciiEquals(key, o.name)) return o;
  return undefined;
}

/** True when `bytes` are the ASCII string `s`. */
function asciiEquals(bytes: Uint8Array, s: string): boolean {
  if (bytes.length !== s.length) return false;
  for (let i = 0; i < s.length; i++) if (bytes[i] !== s.charCodeAt(i)) return false;
  return true;
}

/** A root of a plan: a derivation and the paths of its outputs ("" when deferred). */
export interface RelocatableRoot {
  drvPath: string;
  outputs: Record<string, string>;
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
  const outputs: Record<string, string> = {};
  for (const [o, p] of Object.entries(root.outputs)) outputs[o] = map(p);
  return { ...root, drvPath: map(root.drvPath), outputs };
}
