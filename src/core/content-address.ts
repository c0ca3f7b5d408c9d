// Content addresses: which store objects name themselves by their content, found by recomputing
// their path. Used to check bundle entries and to write the narinfo `CA:` field that lets an
// untrusted user import them.
import { formatHash, hashBytes, sha256, type HashAlgo } from './hash.js';
import { nix32Encode } from './nix32.js';
import { makeFixedOutputPath, makeSourcePath, makeTextPath, nameOf } from './store-path.js';

/** How a store object is content-addressed. */
export interface ContentAddressed {
  /** `drv` and `text` are text-addressed files; `source` is a fixed (flat or recursive) object. */
  readonly kind: 'drv' | 'text' | 'source';
  /** The narinfo `CA:` value: `text:sha256:<nix32>`, `fixed:r:sha256:<nix32>` or `fixed:<algo>:<nix32>`. */
  readonly ca: string;
}

/** What is known of a store object: enough to recompute its path. */
export interface ObjectFacts {
  readonly path: string;
  readonly references: readonly string[];
  /**
   * sha256 of the object's NAR serialisation, or what computes it: it is asked for only when the
   * object is not a text file (a reader puts off hashing the NAR of a kept file; see tryReadFileNar).
   * Without it, the object is not recognised as a recursive source.
   */
  readonly narHash?: Uint8Array | (() => Uint8Array) | undefined;
  /** The contents, when the object is a single regular file (always the case for drv and text). */
  readonly file?: { readonly executable: boolean; readonly contents: Uint8Array } | undefined;
  /** sha256 of `file.contents` when the caller computed it already (a NAR reader does). */
  readonly fileSha256?: Uint8Array | undefined;
}

const FLAT_ALGOS: readonly HashAlgo[] = ['sha256', 'sha1', 'sha512', 'md5'];

/**
 * Determines how `obj` is content-addressed by recomputing its path every way Nix could have
 * named it, or undefined when none matches (an input-addressed build output, or a forgery).
 * Flat fixed outputs are found for every algorithm; recursive ones only for sha256, the only
 * NAR hash a bundle carries.
 */
export function identifyContentAddress(obj: ObjectFacts, storeDir: string): ContentAddressed | undefined {
  const name = nameOf(obj.path);
  const file = obj.file;
  if (file !== undefined && !file.executable) {
    const digest = obj.fileSha256 ?? sha256(file.contents);
    if (makeTextPath(name, digest, obj.references, storeDir) === obj.path)
      return { kind: name.endsWith('.drv') ? 'drv' : 'text', ca: `text:sha256:${nix32Encode(digest)}` };
  }
  const others = obj.references.filter((r) => r !== obj.path);
  const self = others.length !== obj.references.length;
  const narHash = typeof obj.narHash === 'function' ? obj.narHash() : obj.narHash;
  if (narHash !== undefined && makeSourcePath(name, narHash, storeDir, others, self) === obj.path)
    return { kind: 'source', ca: `fixed:r:sha256:${nix32Encode(narHash)}` };
  if (file !== undefined && !file.executable && obj.references.length === 0) {
    for (const algo of FLAT_ALGOS) {
      const hash =
        algo === 'sha256' && obj.fileSha256 !== undefined
          ? { algo, bytes: obj.fileSha256 }
          : hashBytes(algo, file.contents);
      if (makeFixedOutputPath(name, hash, false, storeDir) === obj.path)
        return { kind: 'source', ca: `fixed:${formatHash(hash, 'nix32', true)}` };
    }
  }
  return undefined;
}
