// relocatePlan: bundle for store dir A → bundle for store dir B, in two streaming passes over a
// verified private copy: the first collects what relocation needs (drv/text bytes, source NAR
// hashes), the second writes the relocated export with the sources' NARs copied through.
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NixPlanError } from '../core/errors.js';
import { OBJECT_KINDS, type BundleManifest, type ObjectKind } from '../core/bundle/manifest.js';
import { parseDerivation } from '../core/derivation.js';
import { readExport, writeExport, type ExportEntry } from '../core/export-stream.js';
import { regularFile, writeNar } from '../core/nar.js';
import { relocateClosure, relocateRoot, type RelocationReport, type RelocObject } from '../core/relocate.js';
import { assertStoreDir } from '../core/store-path.js';
import { parseSecretKey } from '../core/signing.js';
import { outputsOf } from '../nix/collect.js';
import { exportStream, openBundle } from '../core/bundle/reader.js';
import { writeBundle } from '../core/bundle/writer.js';
import { progressOf, type Deps } from './deps.js';
import { assertWritable } from './files.js';
import { verifyWithProgress } from './verify.js';
import { TOOL_VERSION } from './version.js';

/** Options of relocatePlan. */
export interface RelocateOptions {
  /** The target store dir (realm). */
  readonly to: string;
  /** Where to write the relocated bundle. */
  readonly output: string;
  /** Secret keys (`NAME:base64`) to sign the new manifest with. */
  readonly signingKeys?: readonly string[] | undefined;
  /** One secret key; added to `signingKeys`. */
  readonly signingKey?: string | undefined;
  /** Public keys; when given, the input bundle must be signed by one. */
  readonly trustedKeys?: readonly string[] | undefined;
  readonly level?: number | undefined;
}

/** What relocatePlan wrote. */
export interface RelocateResult {
  readonly bundlePath: string;
  readonly manifest: BundleManifest;
  readonly bundleBytes: number;
  readonly report: RelocationReport;
}

async function narSize(contents: Uint8Array): Promise<number> {
  let n = 0;
  for await (const c of writeNar(regularFile(contents))) n += c.length;
  return n;
}

/** The NAR chunks of a source, captured during the pass, as a stream again. */
async function* chunksOf(chunks: readonly Uint8Array[]): AsyncGenerator<Uint8Array> {
  for (const c of chunks) yield await Promise.resolve(c);
}

/** Relocates a bundle to store dir `options.to` and writes the result to `options.output`. */
export async function relocatePlan(
  bundlePath: string,
  options: RelocateOptions,
  deps: Deps,
): Promise<RelocateResult> {
  assertStoreDir(options.to);
  await assertWritable(options.output);
  const keys = [
    ...(options.signingKeys ?? []),
    ...(options.signingKey === undefined ? [] : [options.signingKey]),
  ].map(parseSecretKey);
  const dir = await mkdtemp(join(tmpdir(), 'nix-plan-relocate-'));
  try {
    const copy = join(dir, 'bundle.nixplan');
    try {
      await copyFile(bundlePath, copy);
    } catch (e) {
      throw new NixPlanError('usage', `cannot read bundle '${bundlePath}': ${(e as Error).message}`);
    }
    const bundle = await openBundle(copy);
    // Pass 1: verify everything and keep what relocation reads.
    const objects: RelocObject[] = [];
    const narSizes = new Map<string, number>();
    try {
      const { manifest } = await verifyWithProgress(
        bundle,
        {
          trustedKeys: options.trustedKeys,
          onEntry: (e) => {
            if (e.kind === 'output')
              throw new NixPlanError(
                'relocate',
                `'${e.path}' is a build output, which cannot be relocated; relocate a bundle exported with --include drvs`,
              );
            narSizes.set(e.path, e.nar.narSize);
            objects.push({
              path: e.path,
              kind: e.kind,
              references: e.references,
              ...(e.nar.file !== undefined && { contents: e.nar.file.contents }),
              narHash: e.nar.narHash,
            });
          },
        },
        deps.progress,
      );
      const from = manifest.storeDir;
      if (from === options.to)
        throw new NixPlanError('realm', `the bundle is already for store dir ${from}; nothing to relocate`);
      deps.log.info(`relocating ${objects.length} paths from ${from} to ${options.to}…`);
      const relocation = relocateClosure(objects, from, options.to);
      for (const w of relocation.report.warnings) deps.log.warn(w);
      const byOld = new Map(relocation.objects.map((o) => [o.oldPath, o]));
      const narBytes = Object.fromEntries(OBJECT_KINDS.map((k) => [k, 0])) as Record<ObjectKind, number>;
      for (const o of relocation.objects)
        narBytes[o.kind] +=
          o.contents !== undefined ? await narSize(o.contents) : (narSizes.get(o.oldPath) ?? 0);
      const roots = manifest.roots.map((r) => {
        const moved = relocateRoot(r, relocation.pathMap);
        const drv = byOld.get(r.drvPath)?.contents;
        // Output paths come from the relocated .drv itself, the source of truth Nix will check.
        return drv === undefined ? moved : { ...moved, outputs: outputsOf(parseDerivation(drv)) };
      });
      const draft = {
        tool: TOOL_VERSION,
        nixVersion: manifest.nixVersion,
        storeDir: options.to,
        systems: manifest.systems,
        include: manifest.include,
        roots,
        counts: manifest.counts,
        narBytes,
        paths: manifest.paths,
        relocatedFrom: { storeDir: from, report: relocation.report },
      };

      // Pass 2: re-read the verified copy, writing new drv/text NARs and copying sources' NARs.
      let pending: Uint8Array[] = [];
      const task = progressOf(deps).start('writing relocated bundle', manifest.paths);
      async function* entries(): AsyncGenerator<ExportEntry> {
        const stream = readExport(exportStream(bundle), {}, { onNarBytes: (c) => pending.push(c) });
        for await (const e of stream) {
          const chunks = pending;
          pending = [];
          const moved = byOld.get(e.path);
          if (moved === undefined) throw new NixPlanError('internal', `'${e.path}' was not relocated`);
          yield {
            path: moved.path,
            references: [...moved.references],
            deriver: e.deriver === '' ? '' : (relocation.pathMap.get(e.deriver) ?? ''),
            nar: moved.contents !== undefined ? writeNar(regularFile(moved.contents)) : chunksOf(chunks),
          };
          task.tick(1);
        }
      }
      try {
        const { manifest: written, bundleBytes } = await writeBundle(
          options.output,
          draft,
          writeExport(entries()),
          {
            level: options.level,
            keys,
          },
        );
        return { bundlePath: options.output, manifest: written, bundleBytes, report: relocation.report };
      } finally {
        task.done();
      }
    } finally {
      await bundle.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
