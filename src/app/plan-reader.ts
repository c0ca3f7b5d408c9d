// Reading one side of a comparison into a PlanGraph: a bundle (verified in one streaming pass,
// keeping only each .drv's head), a .drv in a store, or the current generation of a profile
// (through its deriver). Each side can fetch the whole bytes of chosen paths afterwards, for a
// drill-down, without having held them.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readlink } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import { NixPlanError } from '../core/errors.js';
import type { BundleManifest } from '../core/bundle/manifest.js';
import { signedBytes } from '../core/bundle/manifest.js';
import {
  exportStream,
  openBundle,
  readBundleHead,
  verifyBundle,
  type BundleSource,
  type DerivationOutputChecks,
  type KnownDerivations,
} from '../core/bundle/index.js';
import { parseDerivationHead } from '../core/derivation/index.js';
import { readExport } from '../core/export-stream.js';
import { checkDetached, parsePublicKey } from '../core/signing.js';
import { baseName, HASH_PART_LENGTH, nameOf } from '../core/store-path.js';
import { PlanGraph, type PlanRoot } from '../core/diff/graph.js';
import type { BundleFacts, PlanSide, PlanSideKind, SignatureInfo } from '../core/diff/plan-diff.js';
import type { RelocObject } from '../core/relocate/index.js';
import { NixStore } from '../nix/store.js';
import { progressOf, type Deps } from './deps.js';
import { rootLabel } from './inspect.js';
import { privateBundle } from './private-copy.js';

/** What to read: a bundle file, a .drv in the store, or a profile's current generation. */
export interface PlanLocation {
  readonly kind: PlanSideKind;
  /** What the user named, and what messages name. */
  readonly path: string;
  /** A bundle's private copy (pinLocation), read instead of `path`. */
  readonly copy?: string | undefined;
}

/**
 * A bundle location as a private copy of the file (other kinds as they are), and how to remove
 * the copy: every read of a comparison (store dir, manifest, digest, verified stream, drill-down
 * files) then sees the same bytes, even if the file is rewritten in place or replaced meanwhile.
 */
export async function pinLocation(
  location: PlanLocation,
): Promise<{ readonly location: PlanLocation; dispose(): Promise<void> }> {
  if (location.kind !== 'bundle') return { location, dispose: () => Promise.resolve() };
  const copy = await privateBundle(location.path);
  return { location: { ...location, copy: copy.path }, dispose: () => copy.dispose() };
}

/** Opens a bundle location (its private copy when pinned), named as the user named it. */
async function openLocation(location: PlanLocation): Promise<BundleSource> {
  return { ...(await openBundle(location.copy ?? location.path)), name: location.path };
}

/** How to read a side. */
export interface ReadOptions {
  /** Nix store URI for .drv and profile sides (Nix's --store; default: Nix's default). */
  readonly store?: string | undefined;
  /**
   * Public keys; a bundle's signatures are reported against them (none: `not-checked`), and a
   * verified one proves the bundle's build outputs, as in verify. Unlike verify, a signature is
   * not required: who signed each side is shown instead.
   */
  readonly trustedKeys?: readonly string[] | undefined;
  /** Accept build outputs no trusted signature proves (`--no-check-sigs`), counting them. */
  readonly noCheckSigs?: boolean | undefined;
  /** Keep every object's bytes (a bundle side that will be relocated). */
  readonly keepObjects?: boolean | undefined;
  /**
   * The other side, read already: a .drv at a path it holds is the same .drv (same store dir, and
   * a .drv path is the hash of its bytes and references), so its head, and the outcome of the
   * verifier's checks of it (`checks`, when that side was a bundle), are taken from there instead
   * of parsing and hashing it again. Its bytes are still checked against its path.
   */
  readonly known?:
    { readonly graph: PlanGraph; readonly checks?: DerivationOutputChecks | undefined } | undefined;
}

/** One side, read. */
export interface ReadSide {
  readonly side: PlanSide;
  readonly graph: PlanGraph;
  /** With `keepObjects` on a bundle: the objects, as relocation takes them. */
  readonly objects?: RelocObject[];
  /** A bundle side's output checks, for the other side's `known`. */
  readonly checks?: DerivationOutputChecks | undefined;
  /**
   * The bytes of those of `paths` that are one small file (.drv, text, one-file source), and of
   * the side's other small non-.drv files (texts, one-file sources) up to FILE_BUDGET in total.
   */
  files(paths: ReadonlySet<string>): Promise<Map<string, Uint8Array>>;
}

/** Small files fetched for a drill-down are at most this big. */
const MAX_FILE = 4 * 1024 * 1024;
/** Bytes of texts and one-file sources a drill-down keeps beyond the paths asked for. */
export const FILE_BUDGET = 16 * 1024 * 1024;

/** Reads the store dir of a bundle, a .drv path or a profile without reading the rest. */
export async function storeDirOf(location: PlanLocation, options: ReadOptions, deps: Deps): Promise<string> {
  if (location.kind === 'bundle') {
    const source = await openLocation(location);
    try {
      return (await readBundleHead(source)).manifest.storeDir;
    } finally {
      await source.close();
    }
  }
  return new NixStore(deps.runner, { store: options.store }).storeDir();
}

/** Reads one side of a comparison. */
export async function readPlanSide(
  location: PlanLocation,
  options: ReadOptions,
  deps: Deps,
): Promise<ReadSide> {
  return location.kind === 'bundle'
    ? readBundleSide(location, options, deps)
    : readStoreSide(location, options, deps);
}

/** `sha256:<hex>` of a file. */
async function digestOf(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return `sha256:${hash.digest('hex')}`;
}

/**
 * Each signature's status against `trustedKeys` (none given: `not-checked`). A signature by a
 * trusted key that does not verify means the manifest was altered: that is an error, as in verify.
 */
export function signatureStatuses(
  manifest: BundleManifest,
  trustedKeys: readonly string[] = [],
): SignatureInfo[] {
  if (trustedKeys.length === 0)
    return manifest.signatures.map((s) => ({ key: s.key, status: 'not-checked' }));
  const keys = trustedKeys.map(parsePublicKey);
  const message = signedBytes(manifest);
  return manifest.signatures.map((s) => {
    const check = checkDetached(message, `${s.key}:${s.sig}`, keys);
    if (check === 'invalid' || check === 'malformed')
      throw new NixPlanError(
        'signature',
        `the bundle's signature by key '${s.key}' does not verify: the manifest was altered or signed with another key`,
      );
    return { key: s.key, status: check === 'valid' ? 'verified' : 'untrusted-key' };
  });
}

/** `{a: {b: 1}}` → `{"a.b": "1"}`; arrays by index; only strings, numbers and booleans kept. */
export function flatten(
  value: unknown,
  prefix = '',
  out: Record<string, string> = {},
): Record<string, string> {
  if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean')
    out[prefix] = String(value);
  else if (Array.isArray(value))
    value.forEach((v, i) => flatten(v, prefix === '' ? String(i) : `${prefix}.${i}`, out));
  else if (typeof value === 'object' && value !== null)
    for (const [k, v] of Object.entries(value)) flatten(v, prefix === '' ? k : `${prefix}.${k}`, out);
  return out;
}

/** What a diff shows of a manifest (v2's createdAt, provenance and promotions when present). */
export function bundleFacts(
  manifest: BundleManifest,
  digest: string,
  signatures: readonly SignatureInfo[],
): BundleFacts {
  const v2 = manifest as BundleManifest & { createdAt?: unknown; provenance?: unknown; promotions?: unknown };
  const provenance = flatten(v2.provenance);
  return {
    digest,
    checksum: manifest.checksum,
    formatVersion: manifest.formatVersion,
    tool: manifest.tool,
    nixVersion: manifest.nixVersion,
    include: manifest.include,
    ...(typeof v2.createdAt === 'string' && { createdAt: v2.createdAt }),
    ...(Object.keys(provenance).length > 0 && { provenance }),
    ...(manifest.relocatedFrom !== undefined && { relocatedFrom: manifest.relocatedFrom.storeDir }),
    ...(Array.isArray(v2.promotions) && { promotions: v2.promotions.length }),
    signatures,
  };
}

/** The roots of a manifest as a diff pairs them. */
export function manifestRoots(manifest: BundleManifest): PlanRoot[] {
  return manifest.roots.map((r) => ({ label: rootLabel(r), drvPath: r.drvPath }));
}

async function readBundleSide(location: PlanLocation, options: ReadOptions, deps: Deps): Promise<ReadSide> {
  const { path } = location;
  const source = await openLocation(location);
  try {
    const head = await readBundleHead(source);
    const { manifest } = head;
    // Refuses a signature by a trusted key name that does not verify (the manifest was altered).
    const signatures = signatureStatuses(manifest, options.trustedKeys);
    const digest = await digestOf(location.copy ?? path);
    const graph = new PlanGraph(manifest.storeDir, manifestRoots(manifest));
    const keep = options.keepObjects === true;
    const sameDir = options.known?.graph.storeDir === manifest.storeDir ? options.known : undefined;
    const knownGraph = sameDir?.graph;
    const known: KnownDerivations | undefined =
      sameDir?.checks === undefined
        ? undefined
        : { head: (p) => sameDir.graph.get(p), checks: sameDir.checks };
    const objects: RelocObject[] = [];
    const task = progressOf(deps).start(`reading ${path}`, manifest.paths);
    let report;
    try {
      // Every check verify makes, with the same limits: each .drv is parsed (or, when the other
      // side checked one at the same path, taken from there), its output paths computed as Nix
      // does, build outputs proven by a trusted signature (or counted with --no-check-sigs), and
      // no store is asked about references the bundle does not hold: they are refused, as by
      // verify. A trusted key proves; a signature is not required (who signed is shown).
      report = await verifyBundle(source, {
        ...(signatures.some((s) => s.status === 'verified') && { trustedKeys: options.trustedKeys }),
        noCheckSigs: options.noCheckSigs === true,
        keptFiles: keep ? 'copy' : 'view',
        known,
        onEntry: (e) => {
          task.tick(1, e.nar.narSize);
          if (e.kind === 'drv') {
            if (e.derivation !== undefined) graph.add(e.path, e.derivation);
            else {
              const same = knownGraph?.get(e.path);
              if (same === undefined)
                throw new NixPlanError('internal', `the derivation '${e.path}' was neither parsed nor known`);
              graph.addFrom(knownGraph!, same);
            }
          }
          if (keep) {
            if (e.kind === 'output')
              throw new NixPlanError(
                'relocate',
                `'${e.path}' is a build output, which cannot be relocated to compare plans of different store dirs`,
              );
            const file = e.nar.file?.contents;
            objects.push({
              path: e.path,
              kind: e.kind,
              references: e.references,
              ...(file !== undefined && { contents: file }),
              ...(e.kind === 'source' && { narHash: e.nar.narHash }),
              ca: e.ca,
            });
          }
        },
      });
    } finally {
      task.done();
    }
    const facts: BundleFacts = {
      ...bundleFacts(manifest, digest, signatures),
      ...(report.noCheckSigs && { noCheckSigs: true, unproven: report.unproven }),
    };
    return {
      side: {
        kind: 'bundle',
        source: path,
        storeDir: manifest.storeDir,
        derivations: graph.size,
        systems: manifest.systems,
        roots: graph.roots,
        bundle: facts,
      },
      graph,
      checks: report.outputChecks,
      ...(keep && { objects }),
      files: (paths) => bundleFiles(location, paths),
    };
  } finally {
    await source.close();
  }
}

/**
 * The bytes of `paths` that are small single files in a bundle, read again (the first pass kept
 * none of them). The stream's digests are checked again at its end, so a bundle changed since
 * the first pass fails here instead of showing other bytes.
 */
async function bundleFiles(
  location: PlanLocation,
  paths: ReadonlySet<string>,
): Promise<Map<string, Uint8Array>> {
  const out = new Map<string, Uint8Array>();
  const source = await openLocation(location);
  let budget = FILE_BUDGET;
  try {
    for await (const e of readExport(exportStream(source), { keepFileUpTo: MAX_FILE })) {
      const file = e.nar.file?.contents;
      if (file === undefined) continue;
      if (paths.has(e.path)) out.set(e.path, file);
      else if (!e.path.endsWith('.drv') && file.length <= budget) {
        budget -= file.length;
        out.set(e.path, file);
      }
    }
  } finally {
    await source.close();
  }
  return out;
}

/** The store path a profile's current generation is: its symlinks followed into the store dir. */
async function profileTarget(profile: string, storeDir: string): Promise<string> {
  let at = isAbsolute(profile) ? profile : resolve(profile);
  for (let hops = 0; hops < 40; hops++) {
    if (at.startsWith(`${storeDir}/`)) {
      const rest = at.slice(storeDir.length + 1);
      return `${storeDir}/${rest.split('/')[0] ?? ''}`;
    }
    let target: string;
    try {
      target = await readlink(at);
    } catch (e) {
      throw new NixPlanError(
        'usage',
        `cannot read the profile '${profile}': ${(e as NodeJS.ErrnoException).code === 'EINVAL' ? `'${at}' is not a symlink into ${storeDir}` : (e as Error).message}`,
      );
    }
    at = isAbsolute(target) ? target : resolve(dirname(at), target);
  }
  throw new NixPlanError('usage', `the profile '${profile}' is a chain of more than 40 symlinks`);
}

async function readStoreSide(location: PlanLocation, options: ReadOptions, deps: Deps): Promise<ReadSide> {
  const store = new NixStore(deps.runner, { store: options.store });
  const storeDir = await store.storeDir();
  let drvPath = location.path;
  let label: string;
  if (location.kind === 'profile') {
    const out = await profileTarget(location.path, storeDir);
    const { stdout } = await deps.runner.run('nix-store', [
      ...store.storeArgs(),
      '--query',
      '--deriver',
      out,
    ]);
    drvPath = stdout.toString('utf8').trim();
    if (!drvPath.endsWith('.drv'))
      throw new NixPlanError(
        'usage',
        `the current generation of '${location.path}' (${out}) has no known deriver, so its plan cannot be read; compare against a plan bundle or a .drv path instead`,
      );
    label = nameOf(out);
  } else {
    if (
      !drvPath.startsWith(`${storeDir}/`) ||
      !drvPath.endsWith('.drv') ||
      baseName(drvPath).length <= HASH_PART_LENGTH + 5
    )
      throw new NixPlanError('usage', `'${drvPath}' is not a .drv path in the store ${storeDir}`);
    label = nameOf(drvPath).replace(/\.drv$/, '');
  }
  let closure: string[];
  try {
    closure = await store.requisites([drvPath]);
  } catch (e) {
    throw new NixPlanError(
      'usage',
      location.kind === 'profile'
        ? `the deriver ${drvPath} of the current generation of '${location.path}' is not in the store (garbage-collected?), so its plan cannot be read; compare against a plan bundle instead`
        : `'${drvPath}' is not a valid path in the store: ${(e as Error).message.split('\n')[0] ?? ''}`,
      { cause: e },
    );
  }
  store.setStoreDir(storeDir);
  const graph = new PlanGraph(storeDir, [{ label, drvPath }]);
  const known = options.known?.graph.storeDir === storeDir ? options.known.graph : undefined;
  const systems = new Set<string>();
  const task = progressOf(deps).start(`reading ${drvPath}`, closure.length);
  try {
    for (const p of closure) {
      task.tick(1);
      if (!p.endsWith('.drv')) continue;
      const same = known?.get(p);
      if (same !== undefined) {
        systems.add(graph.addFrom(known!, same).system);
        continue;
      }
      const file = store.readRegularFileSync(p);
      if (file === undefined) throw new NixPlanError('nix', `'${p}' is not a regular file`);
      const node = graph.add(p, parseDerivationHead(file.bytes));
      systems.add(node.system);
    }
  } finally {
    task.done();
  }
  return {
    side: {
      kind: location.kind,
      source: location.path,
      storeDir,
      derivations: graph.size,
      systems: [...systems].sort(),
      roots: graph.roots,
    },
    graph,
    files: (paths) => {
      const out = new Map<string, Uint8Array>();
      let budget = FILE_BUDGET;
      const read = (p: string): Uint8Array | undefined => {
        try {
          return store.readRegularFileSync(p, MAX_FILE)?.bytes;
        } catch {
          return undefined;
        }
      };
      for (const p of paths) {
        const bytes = read(p);
        if (bytes !== undefined) out.set(p, bytes);
      }
      for (const p of closure)
        if (!p.endsWith('.drv') && !out.has(p) && budget > 0) {
          const bytes = read(p);
          if (bytes !== undefined && bytes.length <= budget) {
            budget -= bytes.length;
            out.set(p, bytes);
          }
        }
      return Promise.resolve(out);
    },
  };
}
