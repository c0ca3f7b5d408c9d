// Reading a bundle side of a comparison: verified in one streaming pass that keeps only each
// .drv's head, the manifest facts a diff shows (digest, signatures against the trusted keys,
// provenance), and the drill-down's small files read again afterwards.
import { LimitError, NixPlanError } from '../core/errors.js';
import { relocateAdvice } from '../core/option-names.js';
import type { BundleManifest } from '../core/bundle/manifest.js';
import { signedBytes } from '../core/bundle/manifest.js';
import { exportStream, readBundleHead, verifyBundle, type KnownDerivations } from '../core/bundle/index.js';
import { readExport } from '../core/export-stream.js';
import { checkDetached, parsePublicKey } from '../core/signing.js';
import { PlanGraph, type PlanRoot } from '../core/diff/graph.js';
import type { BundleFacts, SignatureInfo } from '../core/diff/plan-diff.js';
import type { RelocObject } from '../core/relocate/index.js';
import { progressOf, type Deps } from './deps.js';
import { fileDigest } from './files.js';
import { rootLabel } from './inspect.js';
import {
  FILE_BUDGET,
  drillDownLimit,
  MAX_FILE,
  MAX_HELD_BYTES,
  openLocation,
  type PlanLocation,
  type ReadOptions,
  type ReadSide,
} from './plan-side.js';

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

/** Reads a bundle side (`readPlanSide` of a bundle location). */
export async function readBundleSide(
  location: PlanLocation,
  options: ReadOptions,
  deps: Deps,
): Promise<ReadSide> {
  const { path } = location;
  const source = await openLocation(location);
  try {
    const head = await readBundleHead(source);
    const { manifest } = head;
    // Refuses a signature by a trusted key name that does not verify (the manifest was altered).
    const signatures = signatureStatuses(manifest, options.trustedKeys);
    // The private copy's digest was taken as it was copied (an unpinned file is read for it).
    const digest = location.digest ?? (await fileDigest(location.copy ?? path));
    const graph = new PlanGraph(manifest.storeDir, manifestRoots(manifest));
    const keep = options.keepObjects === true;
    const sameDir = options.known?.graph.storeDir === manifest.storeDir ? options.known : undefined;
    const knownGraph = sameDir?.graph;
    const known: KnownDerivations | undefined =
      sameDir?.checks === undefined
        ? undefined
        : { head: (p) => sameDir.graph.get(p), checks: sameDir.checks };
    const objects: RelocObject[] = [];
    const maxHeld = options.maxHeldBytes ?? MAX_HELD_BYTES;
    let held = 0;
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
        optionNames: options.optionNames,
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
            held += file?.length ?? 0;
            if (held > maxHeld)
              throw new LimitError(
                `${path} is for another store dir than the plan it is compared with, and relocating it to ` +
                  `compare them holds its .drv and file contents in memory: more than ${maxHeld} bytes, refused ` +
                  `(relocate it first, with ${relocateAdvice(options.optionNames, options.relocateTo ?? 'DIR')}, and compare that)`,
              );
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
      files: (paths, max) => bundleFiles(location, paths, max),
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
  maxHeld = MAX_HELD_BYTES,
): Promise<Map<string, Uint8Array>> {
  const out = new Map<string, Uint8Array>();
  const source = await openLocation(location);
  let budget = FILE_BUDGET;
  let held = 0;
  try {
    for await (const e of readExport(exportStream(source), { keepFileUpTo: MAX_FILE })) {
      const file = e.nar.file?.contents;
      if (file === undefined) continue;
      if (paths.has(e.path)) {
        held += file.length;
        if (held > maxHeld) throw drillDownLimit(location.path, maxHeld);
        out.set(e.path, file);
      } else if (!e.path.endsWith('.drv') && file.length <= budget) {
        budget -= file.length;
        out.set(e.path, file);
      }
    }
  } finally {
    await source.close();
  }
  return out;
}
