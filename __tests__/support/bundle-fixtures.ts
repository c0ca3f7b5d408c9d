// Test fixtures for plan bundles: small real closures from Nix, export streams taken apart and put back, in-memory bundles.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { constants as zc, zstdCompressSync } from 'node:zlib';
import { identifyContentAddress } from '../../src/core/content-address.js';
import { readExport, EXPORT_MAGIC } from '../../src/core/export-stream.js';
import { encodeSkippableFrame } from '../../src/core/bundle/frame.js';
import {
  OBJECT_KINDS,
  encodeManifest,
  finaliseManifest,
  type BundleManifest,
  type BundleRoot,
  type Include,
  type ManifestDraft,
  type ObjectKind,
} from '../../src/core/bundle/manifest.js';
import { NixPlanError } from '../../src/core/errors.js';
import { sha256, toHex } from '../../src/core/hash.js';
import type { SecretKey } from '../../src/core/signing.js';
import { concatBytes, u64, wireString } from '../../src/core/bytes.js';
import { DerivationHasher, parseDerivation } from '../../src/core/derivation/index.js';
import { makeTextPath } from '../../src/core/store-path.js';
import { SYSTEM, type ScratchStore } from './nix.js';

/** One entry of an export stream with its NAR as bytes. */
export interface RawEntry {
  path: string;
  references: string[];
  deriver: string;
  nar: Uint8Array;
}

/** Encodes entries as `nix-store --export` does, in the given order, without any checks. */
export function encodeExport(entries: readonly RawEntry[]): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const e of entries) {
    parts.push(u64(1), e.nar, u64(EXPORT_MAGIC), ...wireString(e.path), u64(e.references.length));
    for (const r of e.references) parts.push(...wireString(r));
    parts.push(...wireString(e.deriver), u64(0));
  }
  parts.push(u64(0));
  return concatBytes(parts);
}

/** Takes an export stream apart into its entries (validating it). */
export async function splitExport(bytes: Uint8Array): Promise<RawEntry[]> {
  const nars: Uint8Array[][] = [];
  const out: RawEntry[] = [];
  for await (const e of readExport([bytes], {}, { onNarBytes: (c, i) => (nars[i] ??= []).push(c) }))
    out.push({
      path: e.path,
      references: e.references,
      deriver: e.deriver,
      nar: concatBytes(nars[out.length] ?? []),
    });
  return out;
}

/**
 * Export entries of in-memory store objects that hold their file's bytes (a closure-builder's
 * `objects`: sources, texts and .drvs), in their order, no deriver.
 */
export function fileEntries(
  objects: readonly { path: string; references: string[]; contents?: Uint8Array | undefined }[],
): RawEntry[] {
  return objects.map((o) => ({
    path: o.path,
    references: o.references,
    deriver: '',
    nar: narOfFile(o.contents!),
  }));
}

/** NAR of one regular file, encoded by hand. */
export function narOfFile(contents: Uint8Array | string, executable = false): Uint8Array {
  return concatBytes([
    ...['nix-archive-1', '(', 'type', 'regular'].flatMap((s) => wireString(s)),
    ...(executable ? ['executable', ''].flatMap((s) => wireString(s)) : []),
    ...wireString('contents'),
    ...wireString(contents),
    ...wireString(')'),
  ]);
}

/** NAR of a directory whose entries are regular files, in the given order and with the given names (unchecked). */
export function narOfDirectory(files: readonly [name: string, contents: string][]): Uint8Array {
  const tok = (...s: string[]): Uint8Array[] => s.flatMap((x) => wireString(x));
  const parts = tok('nix-archive-1', '(', 'type', 'directory');
  for (const [name, contents] of files)
    parts.push(
      ...tok('entry', '(', 'name', name, 'node', '(', 'type', 'regular', 'contents', contents, ')', ')'),
    );
  parts.push(...tok(')'));
  return concatBytes(parts);
}

/** When fixture plans say they were made. */
export const FIXTURE_CREATED_AT = '2026-01-02T03:04:05Z';

/** A draft as a version-1 writer made it: no createdAt, provenance or promotions. */
export function v1Draft(draft: ManifestDraft): ManifestDraft {
  const { createdAt: _c, provenance: _p, promotions: _q, ...rest } = draft;
  return rest;
}

/** The manifest fields of an export stream, counted the way the verifier classifies entries. */
export async function draftFor(
  exportBytes: Uint8Array,
  storeDir: string,
  roots: BundleRoot[],
  include: Include = 'drvs',
): Promise<ManifestDraft> {
  const counts = Object.fromEntries(OBJECT_KINDS.map((k) => [k, 0])) as Record<ObjectKind, number>;
  const narBytes = { ...counts };
  for await (const e of readExport([exportBytes], {}, { storeDir })) {
    const ca = identifyContentAddress(
      { path: e.path, references: e.references, narHash: e.nar.narHash, file: e.nar.file },
      storeDir,
    );
    const kind = ca?.kind ?? 'output';
    counts[kind]++;
    narBytes[kind] += e.nar.narSize;
  }
  return {
    tool: 'nix-plan test',
    nixVersion: 'test',
    createdAt: FIXTURE_CREATED_AT,
    provenance: {},
    storeDir,
    systems: [SYSTEM],
    include,
    roots,
    counts,
    narBytes,
    paths: OBJECT_KINDS.reduce((n, k) => n + counts[k], 0),
  };
}

/** zstd parameters of test bundles (the writer's, at a fast level). */
export const TEST_ZSTD_PARAMS = {
  [zc.ZSTD_c_compressionLevel]: 3,
  [zc.ZSTD_c_windowLog]: 20,
  [zc.ZSTD_c_checksumFlag]: 1,
};

/**
 * Builds a bundle in memory (as the writer lays it out), with any manifest fields overridden:
 * format version 2, or 1 for a draft without provenance (see `v1Draft`).
 */
export function bundleOf(
  draft: ManifestDraft,
  exportBytes: Uint8Array,
  options: { keys?: readonly SecretKey[]; compressed?: Uint8Array; manifest?: Partial<BundleManifest> } = {},
): { bytes: Uint8Array; manifest: BundleManifest } {
  const compressed = options.compressed ?? zstdCompressSync(exportBytes, { params: TEST_ZSTD_PARAMS });
  const manifest = finaliseManifest(
    {
      format: 'nix-plan',
      formatVersion: draft.provenance === undefined ? 1 : 2,
      ...draft,
      stream: {
        sha256: toHex(sha256(exportBytes)),
        size: exportBytes.length,
        compressedSha256: toHex(sha256(compressed)),
        compressedSize: compressed.length,
      },
      ...options.manifest,
    },
    options.keys ?? [],
  );
  return { bytes: concatBytes([encodeSkippableFrame(encodeManifest(manifest)), compressed]), manifest };
}

/** A small real closure: a .drv depending on another, a path-literal source and a toFile text. */
export interface NixClosure {
  drvPath: string;
  outPath: string;
  closure: string[];
  /** `nix-store --export` of the closure, in Nix's own (dependency) order. */
  exportBytes: Uint8Array;
}

/** Instantiates the fixture expression (`tag` makes the paths distinct) and exports its drv closure with Nix. */
export async function nixClosure(store: ScratchStore, tag: string): Promise<NixClosure> {
  const dir = join(store.root, `fixture-${tag}`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'input.txt'), `input of ${tag}\n`);
  writeFileSync(
    join(dir, 'default.nix'),
    `let
       sys = "${SYSTEM}";
       note = builtins.toFile "note-${tag}" "a note for ${tag}";
       dep = builtins.derivation { name = "dep-${tag}"; system = sys; builder = "/bin/sh"; args = ["-c" "echo dep > $out"]; };
     in builtins.derivation {
       name = "top-${tag}"; system = sys; builder = "/bin/sh";
       args = ["-c" "read x < \${./input.txt}; echo $x \${note} \${dep} > $out"];
     }`,
  );
  const [drvPath] = await store.instantiate(join(dir, 'default.nix'));
  if (drvPath === undefined) throw new Error('nix-instantiate printed nothing');
  const closure = await store.requisites([drvPath]);
  const outPath = (await store.run('nix-store', ['--query', '--outputs', drvPath])).stdout.toString().trim();
  const { stdout } = await store.run('nix-store', ['--export', ...closure]);
  return { drvPath, outPath, closure, exportBytes: new Uint8Array(stdout) };
}

/** The NixPlanError code a promise rejects with, or 'accepted' when it resolves (other errors rethrown). */
export async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'accepted';
  } catch (e) {
    if (e instanceof NixPlanError) return e.code;
    throw e;
  }
}

/**
 * A plan of one NixOS-system root (`nixos-system-NAME-1.0`, a .drv and nothing else) for
 * `storeDir`, as the writer lays it out, made without Nix; `stream` overrides the manifest's
 * stream sizes (the checksum recomputed, as a forger would).
 */
export async function systemBundle(
  storeDir = '/a/s',
  name = 'web',
  stream: Partial<BundleManifest['stream']> = {},
): Promise<Uint8Array> {
  const drvName = `nixos-system-${name}-1.0`;
  const masked = `Derive([("out","","","")],[],[],"${SYSTEM}","/bin/sh",[],[("out","")])`;
  const filled = new DerivationHasher(storeDir, () => {
    throw new Error('no inputs');
  }).fillOutputs(parseDerivation(new TextEncoder().encode(masked)), drvName);
  const contents = Buffer.from(filled.bytes).toString('latin1');
  const drvPath = makeTextPath(`${drvName}.drv`, sha256(contents), [], storeDir);
  const exportBytes = encodeExport([
    { path: drvPath, references: [], deriver: '', nar: narOfFile(contents) },
  ]);
  const draft = await draftFor(exportBytes, storeDir, [
    { attribute: name, drvPath, outputs: { out: filled.paths[0] ?? '' } },
  ]);
  const real = bundleOf(draft, exportBytes);
  if (Object.keys(stream).length === 0) return real.bytes;
  return bundleOf(draft, exportBytes, { manifest: { stream: { ...real.manifest.stream, ...stream } } }).bytes;
}
