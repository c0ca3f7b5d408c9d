// verifyPlan: one streaming pass over a bundle that checks everything import relies on, without
// touching a store: framing, manifest, digests, every NAR and path, dependency order, content
// addresses, counts, roots and (when keys are given) signatures.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { pipeline, Transform, type TransformCallback } from 'node:stream';
import { createZstdDecompress } from 'node:zlib';
import { NixPlanError } from '../core/errors.js';
import { ZstdFrameScanner } from '../core/bundle/frame.js';
import {
  OBJECT_KINDS,
  verifyManifestSignatures,
  type BundleManifest,
  type ObjectKind,
} from '../core/bundle/manifest.js';
import { identifyContentAddress } from '../core/content-address.js';
import { parseDerivation, derivationReferences } from '../core/derivation.js';
import { readExport, type ExportedPath } from '../core/export-stream.js';
import { parsePublicKey } from '../core/signing.js';
import { readBundleHead } from './inspect.js';
import { progressOf, type Progress } from './deps.js';

/** What to require of a bundle beyond its own consistency. */
export interface VerifyOptions {
  /** Public keys (`NAME:base64`); when given, the manifest must carry a valid signature by one. */
  readonly trustedKeys?: readonly string[] | undefined;
  /** The store dir the bundle must be for (a bundle for another realm is refused). */
  readonly storeDir?: string | undefined;
}

/** The outcome of a successful verification (a failed one throws). */
export interface VerifyReport {
  readonly bundlePath: string;
  readonly manifest: BundleManifest;
  readonly bundleBytes: number;
  readonly paths: number;
  readonly counts: Record<ObjectKind, number>;
  /** Trusted keys whose signatures verified (empty when no keys were asked for). */
  readonly trustedSignatures: readonly string[];
}

/** One verified entry, as handed to a caller that wants to act on it. */
export interface VerifiedEntry extends ExportedPath {
  readonly kind: ObjectKind;
}

/** Hashes and counts bytes, and feeds them to a frame scanner, as they pass. */
class Tap extends Transform {
  private readonly hash = createHash('sha256');
  size = 0;
  constructor(private readonly sink?: (chunk: Uint8Array) => void) {
    super();
  }
  override _transform(chunk: Buffer, _e: BufferEncoding, cb: TransformCallback): void {
    try {
      this.hash.update(chunk);
      this.size += chunk.length;
      this.sink?.(chunk);
      cb(null, chunk);
    } catch (e) {
      cb(e as Error);
    }
  }
  hex(): string {
    return this.hash.digest('hex');
  }
}

function bad(message: string): NixPlanError {
  return new NixPlanError('bundle', message);
}

/**
 * The kind of a verified entry, classified as the exporter does: a path with a deriver is a build
 * output; anything else must be content-addressed (a .drv or text file that is not the hash of
 * its contents is refused), and a 'drvs' bundle holds no outputs.
 */
function kindOf(entry: ExportedPath, storeDir: string, include: BundleManifest['include']): ObjectKind {
  if (entry.deriver !== '' && !entry.path.endsWith('.drv')) {
    if (include === 'drvs')
      throw bad(`'${entry.path}' is a build output, but a 'drvs' bundle holds only derivations and sources`);
    return 'output';
  }
  const ca = identifyContentAddress(
    { path: entry.path, references: entry.references, narHash: entry.nar.narHash, file: entry.nar.file },
    storeDir,
  );
  if (ca === undefined)
    throw bad(`'${entry.path}' has no deriver and is not the hash of its contents: the bundle was altered`);
  return ca.kind;
}

/**
 * Verifies the whole bundle in one streaming pass and calls `onEntry` for each valid entry (before
 * the stream as a whole is known to be valid: act on entries only after this resolves). Memory
 * stays bounded by the largest single-file NAR kept for checking, not by the bundle.
 */
export async function verifyBundle(
  bundlePath: string,
  options: VerifyOptions = {},
  progress?: Progress,
  onEntry?: (entry: VerifiedEntry) => void,
): Promise<VerifyReport> {
  const head = await readBundleHead(bundlePath);
  const { manifest } = head;
  if (options.storeDir !== undefined && options.storeDir !== manifest.storeDir)
    throw new NixPlanError(
      'realm',
      `the bundle is for store dir ${manifest.storeDir}, but the store here is ${options.storeDir}; relocate it first (nix-plan relocate --to ${options.storeDir})`,
    );
  const trustedSignatures =
    options.trustedKeys !== undefined && options.trustedKeys.length > 0
      ? verifyManifestSignatures(manifest, options.trustedKeys.map(parsePublicKey))
      : [];

  const scanner = new ZstdFrameScanner(head.dataOffset);
  const packed = new Tap((c) => scanner.push(c));
  const raw = new Tap();
  const file = createReadStream(bundlePath, { start: head.dataOffset });
  // pipeline destroys every stage on an error, so a damaged frame ends the iteration below.
  const decoded = pipeline(file, packed, createZstdDecompress(), raw, (e) => {
    if (e) raw.destroy(e);
  });

  const counts = Object.fromEntries(OBJECT_KINDS.map((k) => [k, 0])) as Record<ObjectKind, number>;
  const narBytes = { ...counts };
  const seen = new Set<string>();
  const task = (progress ?? progressOf({})).start('verifying', manifest.paths);
  try {
    const entries = readExport(
      decoded as AsyncIterable<Uint8Array>,
      { maxPaths: manifest.paths, maxTotalBytes: manifest.stream.size },
      { storeDir: manifest.storeDir },
    );
    for await (const entry of entries) {
      for (const r of entry.references)
        if (r !== entry.path && !seen.has(r))
          throw new NixPlanError(
            'closure',
            `'${entry.path}' refers to '${r}', which does not come before it in the bundle`,
          );
      const kind = kindOf(entry, manifest.storeDir, manifest.include);
      if (kind === 'drv') {
        const contents = entry.nar.file?.contents;
        if (contents === undefined) throw bad(`'${entry.path}' is not a regular file`);
        const drv = parseDerivation(contents);
        const refs = derivationReferences(drv);
        if (refs.join('\n') !== entry.references.join('\n'))
          throw bad(`the references of '${entry.path}' differ from its inputs`);
      }
      seen.add(entry.path);
      counts[kind]++;
      narBytes[kind] += entry.nar.narSize;
      onEntry?.({ ...entry, kind });
      task.tick(1, entry.nar.narSize);
    }
  } catch (e) {
    if (e instanceof NixPlanError) throw e;
    // zstd reports a damaged frame as a plain Error; for the user it is a corrupt bundle.
    throw bad(`the bundle's data cannot be decompressed (${(e as Error).message}): the bundle is corrupt`);
  } finally {
    task.done();
  }
  // The data frame must be exactly one zstd frame ending at the end of the file.
  scanner.finish();
  if (raw.size !== manifest.stream.size || raw.hex() !== manifest.stream.sha256)
    throw bad('the export stream does not match the sha256 and size in the manifest: the bundle is corrupt');
  if (packed.size !== manifest.stream.compressedSize || packed.hex() !== manifest.stream.compressedSha256)
    throw bad('the compressed stream does not match the manifest: the bundle is corrupt');
  for (const k of OBJECT_KINDS)
    if (counts[k] !== manifest.counts[k] || narBytes[k] !== manifest.narBytes[k])
      throw bad(
        `the bundle holds ${counts[k]} ${k} paths (${narBytes[k]} bytes), the manifest says ${manifest.counts[k]} (${manifest.narBytes[k]})`,
      );
  for (const r of manifest.roots)
    if (!seen.has(r.drvPath)) throw bad(`root '${r.drvPath}' is not in the bundle`);
  return {
    bundlePath,
    manifest,
    bundleBytes: head.fileSize,
    paths: seen.size,
    counts,
    trustedSignatures,
  };
}

/** Verifies a bundle completely (see verifyBundle); the use case behind `nix-plan verify`. */
export async function verifyPlan(
  bundlePath: string,
  options: VerifyOptions = {},
  deps: { progress?: Progress | undefined } = {},
): Promise<VerifyReport> {
  return verifyBundle(bundlePath, options, deps.progress);
}
