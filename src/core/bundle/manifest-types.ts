// The plan bundle manifest's schema as types and constants (versions 1 and 2; docs/bundle-format.md).
import type { ContentAddressedKind } from '../content-address.js';
import type { RelocationReport } from '../relocate/types.js';

/** The `format` every bundle manifest names. */
export const MANIFEST_FORMAT = 'nix-plan';
/** The manifest schema this code writes. */
export const MANIFEST_FORMAT_VERSION = 2;
/** Every manifest schema this code reads (version 1 has no createdAt, provenance or promotions). */
export const READABLE_FORMAT_VERSIONS: readonly number[] = [1, 2];
/** A manifest schema version this code reads. */
export type ManifestFormatVersion = 1 | 2;
/** Prefix of the bytes a manifest signature covers, so no other signed message can pass for one. */
export const SIGNATURE_DOMAIN = 'nix-plan manifest v1\n';
/** Default limit on the manifest's size; it lists roots, not paths, so it stays small. */
export const DEFAULT_MAX_MANIFEST_SIZE = 16 * 1024 * 1024;

/** What a bundle holds: the plan (`drvs`), plus fixed-output sources, or the built outputs. */
export type Include = 'drvs' | 'sources' | 'outputs';
/** Every include kind, for parsing (the CLI's --include, the action's input). */
export const INCLUDE_KINDS: readonly Include[] = ['drvs', 'sources', 'outputs'];
/** What a store object in a plan is: a .drv, a text file (toFile), a source, or a build output. */
export type ObjectKind = ContentAddressedKind | 'output';
/** Every object kind, in the order counts are listed. */
export const OBJECT_KINDS: readonly ObjectKind[] = ['drv', 'text', 'source', 'output'];

/** Counts (or bytes) per object kind, all zero. */
export function emptyCounts(): Record<ObjectKind, number> {
  return Object.fromEntries(OBJECT_KINDS.map((k) => [k, 0])) as Record<ObjectKind, number>;
}

/** A root the plan was made for: how it was named, its derivation, and its outputs. */
export interface BundleRoot {
  installable?: string;
  attribute?: string;
  drvPath: string;
  /** Output name → output path ("" for a deferred content-addressed output). */
  outputs: Record<string, string>;
}

/** What relocation changed, as recorded in the manifest: relocation's own report. */
export type RelocationSummary = RelocationReport;

/** A signature over the manifest: key name and base64 of the 64-byte ed25519 signature. */
export interface ManifestSignature {
  key: string;
  sig: string;
}

/** The export stream's size and digests (hex sha256), uncompressed and as the compressed data frame. */
export interface StreamInfo {
  sha256: string;
  size: number;
  compressedSha256: string;
  compressedSize: number;
}

/** One locked input of the evaluated flake (a node of its lock file). */
export interface FlakeInputProvenance {
  /** The node's name in the lock file (`nixpkgs`, `nixpkgs_2`, …). */
  name: string;
  /** Its locked flake reference as a URL (`github:NixOS/nixpkgs/<rev>`, `path:…?narHash=…`). */
  url: string;
  /** SRI hash of its contents (`sha256-…`), when the lock records one. */
  narHash?: string;
  /** Seconds since the epoch of its last modification, when the lock records it. */
  lastModified?: number;
}

/** The evaluated flake: its locked URL and its lock file's inputs, sorted by name. */
export interface FlakeProvenance {
  url: string;
  inputs: FlakeInputProvenance[];
}

/**
 * Where a plan came from (every member optional; see docs/security.md for what each proves).
 * Signed with the rest of the manifest, so it is as trustworthy as the key that signed it.
 */
export interface Provenance {
  /** `owner/name` on GitHub, or (from the command line) the git remote's URL without credentials. */
  repository?: string;
  /** The git commit evaluated (40 or 64 lower-case hex digits). */
  commit?: string;
  /** The git ref, e.g. `refs/heads/main`. */
  ref?: string;
  /** The worktree had uncommitted changes when it was evaluated. */
  dirty?: boolean;
  /** GitHub's workflow ref (`owner/name/.github/workflows/ci.yml@refs/heads/main`). */
  workflow?: string;
  /** The workflow run's URL, with its attempt. */
  runUrl?: string;
  /** The workflow run's attempt (1 for the first). */
  runAttempt?: number;
  /** The evaluated flake and its locked inputs. */
  flake?: FlakeProvenance;
}

/** A key whose signature verified on a promoted plan's input. */
export interface PromotionSigner {
  key: string;
  /** `sha256:` + hex of sha256 of the 32-byte ed25519 public key. */
  fingerprint: string;
}

/** What a relocation (promotion) started from; appended by relocate and promote, oldest first. */
export interface Promotion {
  /** `sha256:<hex>` of the input bundle file. */
  digest: string;
  /** The input's store dir. */
  storeDir: string;
  /** The input manifest's checksum. */
  checksum: string;
  /** Trusted keys whose signatures verified on the input (empty with `noCheckSigs`). */
  signedBy: PromotionSigner[];
  /** The input was accepted without proof (`--no-check-sigs`). */
  noCheckSigs?: true;
  /** RFC 3339 UTC time of the promotion. */
  at: string;
}

/** The manifest, version 1 or 2 (see docs/bundle-format.md). */
export interface BundleManifest {
  format: typeof MANIFEST_FORMAT;
  formatVersion: ManifestFormatVersion;
  /** The tool that wrote the bundle, e.g. "nix-plan 0.1.0". */
  tool: string;
  /** Version of the Nix that evaluated. */
  nixVersion: string;
  storeDir: string;
  systems: string[];
  include: Include;
  roots: BundleRoot[];
  counts: Record<ObjectKind, number>;
  narBytes: Record<ObjectKind, number>;
  /** Number of store paths in the stream (the sum of `counts`). */
  paths: number;
  stream: StreamInfo;
  /**
   * Version 2: RFC 3339 UTC time (seconds) the plan was evaluated; kept by relocation. Absent in
   * version 1, and in a plan relocated from a version-1 one (its age is unknown).
   */
  createdAt?: string;
  /** Version 2: where the plan came from (always present, may be empty). */
  provenance?: Provenance;
  /** Version 2: what each relocation started from, oldest first; absent when never promoted. */
  promotions?: Promotion[];
  relocatedFrom?: { storeDir: string; report: RelocationSummary };
  signatures: ManifestSignature[];
  /** sha256 (hex) of the canonical manifest without this field. */
  checksum: string;
}

/** The fields a writer knows before the stream has been written. */
export type ManifestDraft = Omit<
  BundleManifest,
  'format' | 'formatVersion' | 'stream' | 'signatures' | 'checksum'
>;
