// inspectPlan: what a bundle holds (roots, counts, sizes, signatures), from its manifest alone,
// without decompressing the stream or touching any store.
import {
  openBundle,
  readBundleHead as readHead,
  trustStatus,
  type BundleManifest,
  type ObjectKind,
  type Promotion,
  type Provenance,
} from '../core/bundle/index.js';
import { nameOf } from '../core/store-path.js';

/** A root as a person reads it. */
export interface RootSummary {
  /** The installable, the attribute, or the derivation name. */
  readonly label: string;
  readonly drvPath: string;
  readonly outputs: Record<string, string>;
}

/** The numbers a person (or a script) wants from a bundle without reading the manifest's schema. */
export interface PlanSummary {
  /** Size of the bundle file. */
  readonly bundleBytes: number;
  readonly storeDir: string;
  readonly include: BundleManifest['include'];
  readonly systems: readonly string[];
  readonly roots: readonly RootSummary[];
  readonly paths: number;
  readonly counts: Record<ObjectKind, number>;
  readonly narBytes: Record<ObjectKind, number>;
  /** Uncompressed export stream bytes. */
  readonly streamBytes: number;
  /** streamBytes / compressed bytes. */
  readonly ratio: number;
  /** Key names of the signatures the manifest carries: NOT verified here (see verify). */
  readonly signatures: readonly string[];
  /** What is known of the signatures, in words: "signatures: 2 (not verified)" or "unsigned". */
  readonly trust: string;
  /** When the plan was evaluated (RFC 3339 UTC); absent for a format 1 bundle. */
  readonly createdAt?: string;
  /** Where the plan came from (format 2; absent for format 1). */
  readonly provenance?: Provenance;
  /** What each relocation started from, oldest first. */
  readonly promotions?: readonly Promotion[];
  readonly formatVersion: number;
  readonly relocatedFrom?: string;
  readonly tool: string;
  readonly nixVersion: string;
}

/** What `inspectPlan` returns. */
export interface InspectResult {
  readonly manifest: BundleManifest;
  readonly summary: PlanSummary;
}

/** The bundle's manifest and where its data frame starts. */
export interface BundleHead {
  readonly manifest: BundleManifest;
  /** Byte offset of the data frame (just after the manifest's skippable frame). */
  readonly dataOffset: number;
  /** Size of the whole file. */
  readonly fileSize: number;
}

/**
 * Reads and validates a bundle file's manifest frame (header, size limit, schema, checksum) and
 * its length against the manifest, so truncation is caught before any decoding.
 */
export async function readBundleHead(bundlePath: string): Promise<BundleHead> {
  const source = await openBundle(bundlePath);
  try {
    const head = await readHead(source);
    return { manifest: head.manifest, dataOffset: head.dataOffset, fileSize: head.bundleBytes };
  } finally {
    await source.close();
  }
}

/** The label of a root: its installable, its attribute, or its derivation name. */
export function rootLabel(root: BundleManifest['roots'][number]): string {
  return root.installable ?? root.attribute ?? nameOf(root.drvPath).replace(/\.drv$/, '');
}

/** The summary of a manifest in a file of `bundleBytes` bytes. */
export function summarise(manifest: BundleManifest, bundleBytes: number): PlanSummary {
  return {
    bundleBytes,
    storeDir: manifest.storeDir,
    include: manifest.include,
    systems: manifest.systems,
    roots: manifest.roots.map((r) => ({ label: rootLabel(r), drvPath: r.drvPath, outputs: r.outputs })),
    paths: manifest.paths,
    counts: manifest.counts,
    narBytes: manifest.narBytes,
    streamBytes: manifest.stream.size,
    ratio: manifest.stream.compressedSize === 0 ? 0 : manifest.stream.size / manifest.stream.compressedSize,
    signatures: manifest.signatures.map((s) => s.key),
    trust: trustStatus(manifest),
    ...(manifest.createdAt !== undefined && { createdAt: manifest.createdAt }),
    ...(manifest.provenance !== undefined && { provenance: manifest.provenance }),
    ...(manifest.promotions !== undefined && { promotions: manifest.promotions }),
    formatVersion: manifest.formatVersion,
    ...(manifest.relocatedFrom !== undefined && { relocatedFrom: manifest.relocatedFrom.storeDir }),
    tool: manifest.tool,
    nixVersion: manifest.nixVersion,
  };
}

/** The manifest and a summary of a bundle; reads only the manifest frame. */
export async function inspectPlan(bundlePath: string): Promise<InspectResult> {
  const head = await readBundleHead(bundlePath);
  return { manifest: head.manifest, summary: summarise(head.manifest, head.fileSize) };
}
