// What relocation takes, gives and reports.
import type { ContentAddressedKind } from '../content-address.js';
import type { DerivationHead } from '../derivation/index.js';
import type { OptionNames } from '../option-names.js';

/** A store object of the closure to relocate, in store dir A. */
export interface RelocObject {
  path: string;
  kind: ContentAddressedKind;
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
  /**
   * A source without `contents` (a directory, or a file the caller did not keep): whether its NAR
   * mentions store dir A, when the caller looked (undefined: not known).
   */
  mentionsStoreDir?: boolean | undefined;
}

/** A relocated store object, in store dir B. */
export interface RelocatedObject {
  oldPath: string;
  path: string;
  kind: ContentAddressedKind;
  references: string[];
  /** drv/text: the new bytes; source: undefined (its NAR is unchanged). */
  contents?: Uint8Array;
}

/** What relocation did, and what it could not vouch for. */
export interface RelocationReport {
  /** Objects relocated, by kind. */
  objects: Record<ContentAddressedKind, number>;
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
  /**
   * True when the caller has checked already that every input-addressed .drv's output paths are
   * what its contents give (a bundle verifier does, as Nix does on import); otherwise relocation
   * checks them itself, and refuses a .drv whose paths do not follow from its contents.
   */
  readonly outputsChecked?: boolean | undefined;
  /** How refusals name what the user can change (default: the command line's flags). */
  readonly optionNames?: OptionNames | undefined;
}

/** A root of a plan: a derivation and the paths of its outputs ("" when deferred). */
export interface RelocatableRoot {
  drvPath: string;
  outputs: Record<string, string>;
}
