// A forger's toolkit for the hostile-author tests: real plans taken apart, changed as someone who
// controls the whole file would change them, and written back self-consistent (every path,
// drv path, output path, count, size, digest and checksum recomputed; signed when asked).
//
//   const plan = await realPlan(store, 'a', 'outputs');          // exported by nix-plan itself
//   const evil = withNar(plan, plan.roots[0].outputs.out, narOfFile('#!/bin/sh\nrm -rf /\n'));
//   const bytes = await forgeBundle(evil);                        // unsigned, consistent
//   const moved = editDerivation(plan, drv, (d) => …, { fillOutputs: true }); // dependents follow
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { zstdCompressSync, zstdDecompressSync } from 'node:zlib';
import { silentLogger } from '../../src/app/deps.js';
import { exportPlan } from '../../src/app/export.js';
import { encodeSkippableFrame, parseSkippableHeader } from '../../src/core/bundle/frame.js';
import {
  DEFAULT_MAX_MANIFEST_SIZE,
  canonicalJson,
  manifestChecksum,
  parseManifest,
  type BundleManifest,
  OBJECT_KINDS,
  type BundleRoot,
  type Include,
  type ManifestDraft,
  type ObjectKind,
} from '../../src/core/bundle/manifest.js';
import { DerivationHasher, computeDrvPath } from '../../src/core/derivation/index.js';
import {
  derivationReferences,
  drvName,
  parseDerivation,
  serialiseDerivation,
  type Derivation,
} from '../../src/core/derivation/index.js';
import { sha256, toHex } from '../../src/core/hash.js';
import { DEFAULT_NAR_LIMITS, readNar, type NarLimits } from '../../src/core/nar.js';
import { regularFileNar } from '../../src/core/nar-write.js';
import type { SecretKey } from '../../src/core/signing.js';
import { hashPartOf, makeSourcePath, makeTextPath } from '../../src/core/store-path.js';
import { concatBytes, wireString } from '../../src/core/bytes.js';
import { ByteReader } from '../../src/core/wire.js';
import { identifyContentAddress } from '../../src/core/content-address.js';
import { TEST_ZSTD_PARAMS, bundleOf, encodeExport, splitExport, type RawEntry } from './bundle-fixtures.js';
import { SYSTEM, type ScratchStore } from './nix.js';

export { encodeExport, narOfDirectory, narOfFile, splitExport, type RawEntry } from './bundle-fixtures.js';

/** A plan taken apart: what a forger edits. */
export interface Plan {
  readonly storeDir: string;
  readonly include: Include;
  readonly roots: readonly BundleRoot[];
  /** The export stream's entries, in order. */
  readonly entries: readonly RawEntry[];
}

/**
 * The fixture a real plan is made of (`tag` keeps plans apart): a "system" whose output is a
 * directory with `bin/switch-to-configuration` (it appends `TAG ACTION` to `marker`) and a file
 * naming a `toFile` text and a dependency's output; it reads a path-literal source and the output of
 * a fixed-output derivation (flat sha256 of "hello\n", which `echo hello` really produces).
 */
export function fixtureExpr(tag: string, marker: string): string {
  return `
let
  sys = builtins.currentSystem;
  mk = name: script: attrs: builtins.derivation ({
    inherit name; system = sys; builder = "/bin/sh"; args = [ "-c" script ];
  } // attrs);
  note = builtins.toFile "note-${tag}" "a note for ${tag}";
  fetched = mk "fetched-${tag}" "echo hello > $out" {
    outputHashMode = "flat"; outputHashAlgo = "sha256";
    outputHash = builtins.hashString "sha256" "hello\\n";
  };
  dep = mk "dep-${tag}" "echo dep > $out" { };
in mk "system-${tag}" ''
  /bin/mkdir -p $out/bin
  read x < \${./input.txt}; read y < \${fetched}
  echo "$x $y \${note} \${dep}" > $out/info
  printf '#!/bin/sh\\necho "${tag} $*" >> ${marker}\\n' > $out/bin/switch-to-configuration
  /bin/chmod +x $out/bin/switch-to-configuration
'' { }
`;
}

/** Instantiates the fixture in `store`; its .drv path. */
export async function instantiateFixture(store: ScratchStore, tag: string, marker: string): Promise<string> {
  const dir = join(store.root, `forge-${tag}`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'input.txt'), `input of ${tag}\n`);
  writeFileSync(join(dir, 'default.nix'), fixtureExpr(tag, marker));
  const [drv] = await store.instantiate(join(dir, 'default.nix'));
  if (drv === undefined) throw new Error('nix-instantiate printed nothing');
  return drv;
}

/**
 * A real plan: the fixture exported by nix-plan's own `exportPlan` from `store` (which builds what
 * `include` needs), read back into entries. `marker` is where its activation script writes.
 */
export async function realPlan(
  store: ScratchStore,
  tag: string,
  include: Include = 'drvs',
  marker = join(store.root, `marker-${tag}`),
): Promise<Plan> {
  const drv = await instantiateFixture(store, tag, marker);
  const file = join(store.root, `forge-${tag}-${include}.nixplan`);
  await exportPlan({ drvPaths: [drv], output: file, include }, { runner: store.runner, log: silentLogger });
  return loadPlan(new Uint8Array(readFileSync(file)));
}

/** Takes a bundle's bytes apart (no verification: a forger's view of it). */
export async function loadPlan(bytes: Uint8Array): Promise<Plan> {
  const { size } = parseSkippableHeader(bytes, DEFAULT_MAX_MANIFEST_SIZE);
  const manifest = parseManifest(bytes.subarray(8, 8 + size));
  const raw = new Uint8Array(zstdDecompressSync(bytes.subarray(8 + size)));
  return {
    storeDir: manifest.storeDir,
    include: manifest.include,
    roots: manifest.roots,
    entries: await splitExport(raw),
  };
}

/** NAR limits no forged NAR reaches. */
const LENIENT: NarLimits = {
  maxFileSize: 2 ** 40,
  maxEntries: 2 ** 30,
  maxDepth: 2 ** 20,
  maxNameLength: 2 ** 20,
  maxTargetLength: 2 ** 20,
};

/** Options of `forgeBundle`. */
export interface ForgeOptions {
  /** Sign the manifest with these keys (none: unsigned). */
  readonly keys?: readonly SecretKey[];
  /** Manifest fields to set (after the honest ones are computed). */
  readonly manifest?: Partial<BundleManifest>;
}

/**
 * The bundle a forger writes for `plan`: counts, sizes and kinds as the verifier will count
 * them, digests of the stream as written, a valid checksum, signed by `keys`. Self-consistent:
 * only what the forger changed in the plan is wrong, and only where a check looks deeper.
 */
export async function forgeBundle(plan: Plan, options: ForgeOptions = {}): Promise<Uint8Array> {
  const raw = encodeExport(plan.entries);
  const draft = await draftOf(plan);
  const compressed = zstdCompressSync(raw, { params: TEST_ZSTD_PARAMS });
  try {
    return bundleOf(draft, raw, {
      keys: options.keys ?? [],
      compressed,
      ...(options.manifest !== undefined && { manifest: options.manifest }),
    }).bytes;
  } catch {
    // Fields our own writer refuses to write (a forger writes them anyway), unsigned.
    const manifest = {
      format: 'nix-plan',
      formatVersion: 1,
      ...draft,
      signatures: [],
      ...options.manifest,
    } as unknown as BundleManifest;
    return forgeRaw(restream(manifest, raw, compressed), compressed);
  }
}

/**
 * The manifest fields of a plan, counted as the verifier counts them (each entry's kind from its
 * content address), without reading its NARs the way the verifier does: they may be ones it refuses.
 */
export async function draftOf(plan: Plan): Promise<ManifestDraft> {
  const counts = Object.fromEntries(OBJECT_KINDS.map((k) => [k, 0])) as Record<ObjectKind, number>;
  const narBytes = { ...counts };
  for (const e of plan.entries) {
    let file: { executable: boolean; contents: Uint8Array } | undefined;
    try {
      file = (await readNar(ByteReader.from([e.nar], 'NAR'), LENIENT, e.nar.length)).file;
    } catch {
      file = undefined; // a NAR the verifier refuses: its kind does not matter
    }
    const ca = identifyContentAddress(
      { path: e.path, references: e.references, narHash: sha256(e.nar), file },
      plan.storeDir,
    );
    const kind = ca?.kind ?? 'output';
    counts[kind]++;
    narBytes[kind] += e.nar.length;
  }
  return {
    tool: 'nix-plan test',
    nixVersion: 'test',
    storeDir: plan.storeDir,
    systems: [SYSTEM],
    include: plan.include,
    roots: [...plan.roots],
    counts,
    narBytes,
    paths: plan.entries.length,
  };
}

/** A bundle whose manifest is exactly `manifest` (not validated) with its checksum recomputed. */
export function forgeRaw(manifest: Omit<BundleManifest, 'checksum'>, data: Uint8Array): Uint8Array {
  const json = canonicalJson({ ...manifest, checksum: manifestChecksum(manifest) });
  return concatBytes([encodeSkippableFrame(new Uint8Array(Buffer.from(json))), data]);
}

/** `manifest` made consistent with an export stream `raw` compressed to `data`, as a forger would. */
export function restream(
  manifest: BundleManifest,
  raw: Uint8Array,
  data: Uint8Array,
): Omit<BundleManifest, 'checksum'> {
  const { checksum: _c, ...rest } = manifest;
  return {
    ...rest,
    stream: {
      sha256: toHex(sha256(raw)),
      size: raw.length,
      compressedSha256: toHex(sha256(data)),
      compressedSize: data.length,
    },
  };
}

/** The contents of a one-file NAR (a .drv's bytes). */
export async function fileOfNar(nar: Uint8Array): Promise<Uint8Array> {
  const summary = await readNar(ByteReader.from([nar], 'NAR'), DEFAULT_NAR_LIMITS, nar.length);
  if (summary.file === undefined) throw new Error('not a one-file NAR');
  return summary.file.contents;
}

/** The plan with the NAR of `path` replaced (nothing else changes: its path no longer proves it). */
export function withNar(plan: Plan, path: string, nar: Uint8Array): Plan {
  if (!plan.entries.some((e) => e.path === path)) throw new Error(`no entry ${path}`);
  return { ...plan, entries: plan.entries.map((e) => (e.path === path ? { ...e, nar } : e)) };
}

/** The plan with `entry` inserted before entry `at` (default: appended). */
export function withEntry(plan: Plan, entry: RawEntry, at = plan.entries.length): Plan {
  const entries = [...plan.entries];
  entries.splice(at, 0, entry);
  return { ...plan, entries };
}

/** The plan with every entry changed by `f` (entries f returns undefined for are dropped). */
export function mapEntries(plan: Plan, f: (e: RawEntry, i: number) => RawEntry | undefined): Plan {
  return { ...plan, entries: plan.entries.flatMap((e, i) => f(e, i) ?? []) };
}

/** The first entry whose path ends with `suffix`. */
export function entryEnding(plan: Plan, suffix: string): RawEntry {
  const e = plan.entries.find((x) => x.path.endsWith(suffix));
  if (e === undefined) throw new Error(`no entry ending with ${suffix}`);
  return e;
}

/** Replaces every 32-character hash in `renames` (old → new) wherever it occurs in `bytes`. */
function rename(bytes: Uint8Array, renames: ReadonlyMap<string, string>): Uint8Array {
  if (renames.size === 0) return bytes;
  let text = Buffer.from(bytes).toString('latin1');
  for (const [from, to] of renames) text = text.split(from).join(to);
  return new Uint8Array(Buffer.from(text, 'latin1'));
}

/** A derivation with `renames` applied to every path and string in it, its lists sorted again. */
function renameDerivation(drv: Derivation, renames: ReadonlyMap<string, string>): Derivation {
  if (renames.size === 0) return drv;
  const byString = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
  return {
    ...drv,
    outputs: drv.outputs.map((o) => ({ ...o, path: renameString(o.path, renames) })),
    inputDrvs: drv.inputDrvs
      .map((i) => ({ ...i, path: renameString(i.path, renames) }))
      .sort((a, b) => byString(a.path, b.path)),
    inputSrcs: drv.inputSrcs.map((p) => renameString(p, renames)).sort(byString),
    builder: rename(drv.builder, renames),
    args: drv.args.map((a) => rename(a, renames)),
    env: drv.env.map((e) => ({ key: e.key, value: rename(e.value, renames) })),
  };
}

/** `rename` of a string. */
function renameString(s: string, renames: ReadonlyMap<string, string>): string {
  let out = s;
  for (const [from, to] of renames) out = out.split(from).join(to);
  return out;
}

/**
 * Edits the .drv at `drvPath` and re-derives everything that depends on it, in stream order, as
 * a forger who recomputes every hash does: the edited .drv's path, the input paths, output paths
 * and paths of its dependents, the references, derivers and paths of the other entries, and the
 * roots. With `fillOutputs` the edited .drv's output paths (and its variables named after them)
 * are recomputed, so Nix accepts it; without, they stay as `edit` left them. Dependents always get
 * theirs recomputed.
 */
export async function editDerivation(
  plan: Plan,
  drvPath: string,
  edit: (drv: Derivation) => void,
  options: { fillOutputs?: boolean } = {},
): Promise<Plan> {
  const renames = new Map<string, string>();
  const drvs = new Map<string, Derivation>();
  const hasher = new DerivationHasher(plan.storeDir, (p) => {
    const d = drvs.get(p);
    if (d === undefined) throw new Error(`${p} is not a .drv of the plan`);
    return d;
  });
  const entries: RawEntry[] = [];
  let touched = false;
  for (const e of plan.entries) {
    if (!e.path.endsWith('.drv')) {
      entries.push(e); // renamed once every .drv is (an output may come before its .drv)
      continue;
    }
    const original = await fileOfNar(e.nar);
    const isTarget = e.path === drvPath;
    const affected = isTarget || renames.size > 0;
    const drv = renameDerivation(parseDerivation(original), renames);
    let bytes = serialiseDerivation(drv);
    if (isTarget) {
      edit(drv);
      touched = true;
    }
    const name = drvName(e.path);
    const inputAddressed = drv.outputs.every((o) => o.hashAlgo === '') && drv.version === undefined;
    if (affected && inputAddressed && (!isTarget || options.fillOutputs === true)) {
      const filled = hasher.fillOutputs(drv, name);
      if (filled.hash.kind !== 'deferred') {
        drv.outputs.forEach((o, i) => {
          const want = filled.paths[i] ?? '';
          if (o.path !== '' && want !== '' && o.path !== want)
            renames.set(hashPartOf(o.path), hashPartOf(want));
        });
        bytes = filled.bytes;
        // The filled paths set on the parsed form, not parsed back: a forged .drv need not parse.
        drv.outputs.forEach((o, i) => {
          o.path = filled.paths[i] ?? o.path;
          const v = drv.env.find((e) => Buffer.from(e.key).toString('latin1') === o.name);
          if (v !== undefined) v.value = new Uint8Array(Buffer.from(o.path, 'latin1'));
        });
      }
    } else if (isTarget) bytes = serialiseDerivation(drv);
    drvs.set(e.path, drv);
    const refs = derivationReferences(drv);
    const path = computeDrvPath(plan.storeDir, name, bytes, refs);
    if (path !== e.path) renames.set(hashPartOf(e.path), hashPartOf(path));
    drvs.set(path, drv);
    entries.push({ ...e, path, references: refs, nar: concatBytes(regularFileNar(bytes)) });
  }
  if (!touched) throw new Error(`no .drv ${drvPath} in the plan`);
  const mapString = (p: string): string => renameString(p, renames);
  const finalDrvs = new Map([...drvs].filter(([p]) => entries.some((e) => e.path === p)));
  return {
    ...plan,
    entries: entries.map((e) =>
      e.path.endsWith('.drv')
        ? e
        : {
            ...e,
            path: mapString(e.path),
            references: e.references.map(mapString).sort(),
            deriver: mapString(e.deriver),
          },
    ),
    // A root's outputs as its (edited) .drv now gives them: the forger keeps the manifest in line.
    roots: plan.roots.map((r) => {
      const drvPath = mapString(r.drvPath);
      const drv = finalDrvs.get(drvPath);
      const outputs = Object.fromEntries(Object.entries(r.outputs).map(([k, v]) => [k, mapString(v)]));
      for (const o of drv?.outputs ?? []) if (o.name in outputs) outputs[o.name] = o.path;
      return { ...r, drvPath, outputs };
    }),
  };
}

/** A source entry whose path is the hash of `nar` (content-addressed, so self-proving). */
export function sourceEntry(
  storeDir: string,
  name: string,
  nar: Uint8Array,
  references: string[] = [],
): RawEntry {
  const path = makeSourcePath(name, sha256(nar), storeDir, references, false);
  return { path, references: [...references].sort(), deriver: '', nar };
}

/** A `toFile` text entry whose path is the hash of `contents` and its references. */
export function textEntry(
  storeDir: string,
  name: string,
  contents: string,
  references: string[] = [],
): RawEntry {
  const refs = [...references].sort();
  const bytes = new Uint8Array(Buffer.from(contents));
  return {
    path: makeTextPath(name, sha256(bytes), refs, storeDir),
    references: refs,
    deriver: '',
    nar: concatBytes(regularFileNar(bytes)),
  };
}

/** NAR tokens, for NARs no honest writer makes. */
export function narTokens(...parts: (string | Uint8Array)[]): Uint8Array {
  return concatBytes(parts.flatMap((p) => wireString(p)));
}

/** The NAR of one symlink. */
export function narOfSymlink(target: string | Uint8Array): Uint8Array {
  return narTokens('nix-archive-1', '(', 'type', 'symlink', 'target', target, ')');
}

/** The NAR of directories named `name` nested `depth` deep around a file. */
export function narOfNested(depth: number, name = 'd'): Uint8Array {
  const open: (string | Uint8Array)[] = [];
  const close: string[] = [];
  for (let i = 0; i < depth; i++) {
    open.push('(', 'type', 'directory', 'entry', '(', 'name', name, 'node');
    close.push(')', ')');
  }
  return narTokens('nix-archive-1', ...open, '(', 'type', 'regular', 'contents', 'x', ')', ...close);
}

/** `size` bytes no compressor shrinks, the same for the same `seed` (xorshift32). */
export function noise(size: number, seed = 1): Uint8Array {
  const words = new Uint32Array(Math.ceil(size / 4));
  let x = (2463534242 ^ Math.imul(seed, 0x9e3779b9)) >>> 0 || 1;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    words[i] = x >>> 0;
  }
  return new Uint8Array(words.buffer, 0, size);
}
