// One-pass byte rewriter for relocation: known store hashes of realm A become those of realm B.
import { HASH_PART_LENGTH } from '../store-path.js';
import { allocBytes } from '../wire.js';
import { DIGIT, TokenTable } from './tokens.js';

/** Length of a rendered placeholder's hash (sha256 in nix32), without its leading slash. */
export const PLACEHOLDER_HASH_LENGTH = 52;

const H = HASH_PART_LENGTH;
const P = PLACEHOLDER_HASH_LENGTH;
const SLASH = 0x2f;
const BACKSLASH = 0x5c;

/** Bytes that may continue a store dir component: a match of A followed by one is not A itself. */
const DIR_CHAR = new Uint8Array(256);
for (const c of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._+-')
  DIR_CHAR[c.charCodeAt(0)] = 1;

// Match kinds, recorded in position order.
const PATH = 0; // `A/<known hash>`
const BARE = 1; // a known hash anywhere else
const PLACEHOLDER = 2; // a known placeholder hash
const UNKNOWN = 3; // `A/<32 nix32 chars>` that is not known
const NAME = 4; // a known hash right after `A/<hash>-` (or after such a one): part of a path's name
const DASH = 0x2d;

/** What the scan of one byte string found, before anything is replaced. */
export interface Mentions {
  /** Known old hashes mentioned (as `A/<hash>` or bare), each once, in order of first mention. */
  readonly hashes: string[];
  /** Known old placeholder hashes mentioned, each once. */
  readonly placeholders: string[];
  /** Every `A/<32 nix32 chars>` whose hash is not known, as that text. */
  readonly unknownPaths: string[];
  /** How many times A appears on its own (not followed by `/<hash>`). */
  readonly bareStoreDirs: number;
}

/** What one rewrite did. */
export interface RewriteResult {
  /**
   * The rewritten bytes; the input itself when nothing was replaced. A short result may be a
   * slice of Node's shared buffer pool: copy it (`slice()`) to keep it for long.
   */
  readonly bytes: Uint8Array;
  /** `A/<known hash>` replaced by `B/<new hash>`. */
  readonly storePaths: number;
  /** Known hashes replaced where they were not preceded by `A/` (computed from a path string). */
  readonly bareHashes: number;
  /** Known placeholders replaced. */
  readonly placeholders: number;
  /** `A/<32 nix32 chars>` left because the hash is not known: the caller must treat it as an error. */
  readonly unknownPaths: string[];
  /** A left on its own (e.g. `builtins.storeDir` was read during evaluation): a warning. */
  readonly bareStoreDirs: number;
  /**
   * Known hashes and placeholders found whose new values are not set yet, each once; when there
   * are any, nothing was replaced (`bytes` is the input): set them and rewrite again.
   */
  readonly waiting?: { readonly hashes: string[]; readonly placeholders: string[] } | undefined;
}

function asciiBytes(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

/**
 * Rewrites byte strings from store dir A to store dir B in one pass: `A/<known old hash>` becomes
 * `B/<new hash>`, a known old hash anywhere else becomes the new one (counted: it was computed from
 * a path string), and known placeholder hashes are swapped. Only known hashes at exact positions
 * are replaced, so A being a prefix of B, or dirs of different lengths, cannot cause collisions.
 */
export class StoreRewriter {
  private readonly hashes = new TokenTable(H, 'store hash');
  private readonly placeholderTable = new TokenTable(P, 'placeholder hash');
  private readonly fromBytes: Uint8Array;
  private readonly toBytes: Uint8Array;
  private readonly fromSkip: Uint8Array;

  // Matches of the last scan as (position, kind, token id) triples, reused between calls.
  private m = new Int32Array(3 * 256);

  /** `from` and `to` are store dirs (A and B), without trailing slashes. */
  constructor(
    readonly from: string,
    readonly to: string,
  ) {
    this.fromBytes = asciiBytes(from);
    this.toBytes = asciiBytes(to);
    // Horspool's shifts for A: how far the search may move on, by the byte under A's last one.
    const lenA = this.fromBytes.length;
    this.fromSkip = new Uint8Array(256).fill(Math.min(lenA, 255));
    for (let k = 0; k < lenA - 1; k++) this.fromSkip[this.fromBytes[k]!] = Math.min(lenA - 1 - k, 255);
  }

  /** Makes `oldHash` (32 nix32 characters) known, so that scans report it; its new value may come later. */
  declare(oldHash: string): void {
    this.hashes.declare(oldHash);
  }

  /**
   * Sets the new hash of `oldHash` (declaring it if needed). Setting it again to the same value
   * does nothing; to another value is an internal error (one path cannot relocate to two).
   */
  set(oldHash: string, newHash: string): void {
    this.hashes.set(oldHash, newHash);
  }

  /** Makes a placeholder known (its 52 nix32 characters, without the leading slash). */
  declarePlaceholder(oldHash: string): void {
    this.placeholderTable.declare(oldHash);
  }

  /** Sets the new value of a placeholder (52 nix32 characters each, without the leading slash), as `set`. */
  setPlaceholder(oldHash: string, newHash: string): void {
    this.placeholderTable.set(oldHash, newHash);
  }

  /**
   * Finds what `bytes` mentions without replacing anything (declared hashes need no new value).
   * `escaped`: as `rewrite`.
   */
  mentions(bytes: Uint8Array, options: { escaped?: boolean } = {}): Mentions {
    const count = this.scan(bytes, options.escaped === true);
    const hashes = new Set<string>();
    const placeholders = new Set<string>();
    const unknownPaths: string[] = [];
    for (let m = 0; m < count; m++) {
      const kind = this.m[3 * m + 1];
      const id = this.m[3 * m + 2]!;
      if (kind === PATH || kind === BARE || kind === NAME) hashes.add(this.hashes.strings[id]!);
      else if (kind === PLACEHOLDER) placeholders.add(this.placeholderTable.strings[id]!);
      else unknownPaths.push(this.unknownText(bytes, this.m[3 * m]!));
    }
    return {
      hashes: [...hashes],
      placeholders: [...placeholders],
      unknownPaths,
      bareStoreDirs: this.countBareStoreDirs(bytes),
    };
  }

  /**
   * Rewrites `bytes`. When a known hash or placeholder found has no new value yet, nothing is
   * replaced and `waiting` names them (so a caller can relocate what they belong to first).
   * `countBareStoreDirs: false` skips counting bare A (when the caller counts them itself).
   * `escaped`: the bytes are strings as a .drv writes them (`\n` `\r` `\t` `\"` `\\` escaped),
   * and are rewritten exactly as their unescaped text would be: the letter of a `\n` or `\r`
   * (both nix32 digits) does not count as part of the digits after it.
   */
  rewrite(
    bytes: Uint8Array,
    options: { countBareStoreDirs?: boolean; escaped?: boolean } = {},
  ): RewriteResult {
    const count = this.scan(bytes, options.escaped === true);
    const bareStoreDirs = options.countBareStoreDirs === false ? 0 : this.countBareStoreDirs(bytes);
    const matches = this.m;
    let storePaths = 0;
    let bareHashes = 0;
    let placeholders = 0;
    const unknownPaths: string[] = [];
    let delta = 0;
    const dirDelta = this.toBytes.length - this.fromBytes.length;
    let waiting = false;
    for (let m = 0; m < count; m++) {
      const kind = matches[3 * m + 1];
      const id = matches[3 * m + 2]!;
      if (kind === PATH) {
        storePaths++;
        delta += dirDelta;
      } else if (kind === BARE) bareHashes++;
      else if (kind === PLACEHOLDER) placeholders++;
      else if (kind === UNKNOWN) unknownPaths.push(this.unknownText(bytes, matches[3 * m]!));
      // NAME: part of a path already counted.
      if (kind !== UNKNOWN && !(kind === PLACEHOLDER ? this.placeholderTable : this.hashes).ready(id))
        waiting = true;
    }
    if (waiting)
      return {
        bytes,
        storePaths: 0,
        bareHashes: 0,
        placeholders: 0,
        unknownPaths,
        bareStoreDirs,
        waiting: this.waitingFor(count),
      };
    if (storePaths + bareHashes + placeholders === 0)
      return { bytes, storePaths, bareHashes, placeholders, unknownPaths, bareStoreDirs };

    const out = allocBytes(bytes.length + delta); // every byte is written below
    const lenA = this.fromBytes.length;
    let r = 0;
    let w = 0;
    const to = this.toBytes;
    for (let m = 0; m < count; m++) {
      const kind = matches[3 * m + 1];
      if (kind === UNKNOWN) continue;
      const pos = matches[3 * m]!;
      const id = matches[3 * m + 2]!;
      const start = kind === PATH ? pos - lenA - 1 : pos;
      w = copy(bytes, r, start, out, w);
      if (kind === PLACEHOLDER) {
        this.placeholderTable.write(id, out, w);
        w += P;
        r = pos + P;
        continue;
      }
      if (kind === PATH) {
        for (let k = 0; k < to.length; k++) out[w++] = to[k]!;
        out[w++] = SLASH;
      }
      this.hashes.write(id, out, w);
      w += H;
      r = pos + H;
    }
    copy(bytes, r, bytes.length, out, w);
    return { bytes: out, storePaths, bareHashes, placeholders, unknownPaths, bareStoreDirs };
  }

  /** The known tokens among the last scan's `count` matches that have no new value yet. */
  private waitingFor(count: number): { hashes: string[]; placeholders: string[] } {
    const hashes = new Set<string>();
    const placeholders = new Set<string>();
    for (let m = 0; m < count; m++) {
      const kind = this.m[3 * m + 1];
      const id = this.m[3 * m + 2]!;
      if (kind === PLACEHOLDER) {
        if (!this.placeholderTable.ready(id)) placeholders.add(this.placeholderTable.strings[id]!);
      } else if (kind !== UNKNOWN && !this.hashes.ready(id)) hashes.add(this.hashes.strings[id]!);
    }
    return { hashes: [...hashes], placeholders: [...placeholders] };
  }

  private unknownText(bytes: Uint8Array, pos: number): string {
    return this.from + '/' + Buffer.from(bytes.buffer, bytes.byteOffset + pos, H).toString('latin1');
  }

  /** True when `A/` ends right before `p`. */
  private fromSlashBefore(b: Uint8Array, p: number): boolean {
    const a = this.fromBytes;
    const start = p - 1 - a.length;
    if (start < 0 || b[p - 1] !== SLASH) return false;
    for (let k = 0; k < a.length; k++) if (b[start + k] !== a[k]) return false;
    return true;
  }

  /**
   * The single scan: finds runs of at least 32 nix32 digits (the only places a hash can be) and
   * looks up each 32-digit window in them; records matches in position order, returns their count.
   * `escaped`: a run that starts with the letter of an escape starts after it (unescaped, the
   * letter is a control byte, which ends a run).
   */
  private scan(b: Uint8Array, escaped: boolean): number {
    const n = b.length;
    let count = 0;
    // Each run of 32+ digits yields at most len/32 + 2 matches; grow before a run, never inside.
    let m = this.m;
    const hashes = this.hashes;
    const haveHashes = hashes.size > 0;
    const placeholders = this.placeholderTable;
    const havePlaceholders = placeholders.size > 0;
    // Where the last path (or hash in a path's name) ended: a known hash right after it and a
    // dash is part of that path's name (`A/<hash>-<hash>-name`, a copy of a store path).
    let pathEnd = -2;
    // Invariant: i is 0 or b[i - 1] is not a nix32 digit.
    let i = 0;
    while (i + H <= n) {
      // No run of 32 digits can start in [i, i + 31] unless b[i + 31] is a digit.
      if (DIGIT[b[i + H - 1]!]! < 0) {
        i += H;
        continue;
      }
      let s = i + H - 1;
      while (s > i && DIGIT[b[s - 1]!]! >= 0) s--;
      let e = i + H; // [s, i + 31] are digits
      while (e < n && DIGIT[b[e]!]! >= 0) e++;
      i = e + 1;
      if (escaped && s > 0 && b[s - 1] === BACKSLASH && escapeStartsAt(b, s - 1)) s++;
      if (e - s < H) continue;

      // A run [s, e) of at least 32 digits.
      const need = 3 * (count + Math.floor((e - s) / H) + 2);
      if (need > m.length) {
        const grown = new Int32Array(Math.max(need, m.length * 2));
        grown.set(m);
        this.m = m = grown;
      }
      let p = s;
      if (havePlaceholders && e - s >= P) {
        const id = placeholders.find(b, s);
        if (id >= 0) {
          m[3 * count] = s;
          m[3 * count + 1] = PLACEHOLDER;
          m[3 * count++ + 2] = id;
          p = s + P;
        }
      }
      const isPath = p === s && this.fromSlashBefore(b, s);
      let pathMatched = false;
      if (haveHashes) {
        while (p + H <= e) {
          const id = hashes.find(b, p);
          if (id < 0) {
            p++;
            continue;
          }
          const kind =
            p === s && isPath ? PATH : p === s && pathEnd === s - 1 && b[s - 1] === DASH ? NAME : BARE;
          if (kind === PATH) pathMatched = true;
          if (kind === PATH || kind === NAME) pathEnd = p + H;
          m[3 * count] = p;
          m[3 * count + 1] = kind;
          m[3 * count++ + 2] = id;
          p += H;
        }
      }
      if (isPath && !pathMatched) {
        m[3 * count] = s;
        m[3 * count + 1] = UNKNOWN;
        m[3 * count++ + 2] = -1;
      }
    }
    return count;
  }

  /** Occurrences of A that end a path component and are not `A/<32 nix32 digits>`. */
  countBareStoreDirs(bytes: Uint8Array): number {
    // A Horspool search over the bytes: a .drv mentions A tens of times, and this skips most of
    // its bytes without making a string of each .drv (or a call per occurrence) to search in.
    const a = this.fromBytes;
    const lenA = a.length;
    const lastA = a[lenA - 1]!;
    const skip = this.fromSkip;
    let count = 0;
    for (let i = lenA - 1; i < bytes.length; i += skip[bytes[i]!]!) {
      if (bytes[i] !== lastA) continue;
      let k = 1;
      while (k < lenA && bytes[i - k] === a[lenA - 1 - k]) k++;
      if (k < lenA) continue;
      const after = i + 1;
      if (after < bytes.length) {
        const c = bytes[after]!;
        if (DIR_CHAR[c] === 1) continue; // a longer component, not A
        if (c === SLASH && isRun(bytes, after + 1, H)) continue; // a path, handled by the scan
      }
      count++;
    }
    return count;
  }
}

/**
 * True when the backslash at `k` starts an escape in an escaped string: it is the last of an odd
 * number of backslashes in a row (`\\` is one escaped backslash).
 */
function escapeStartsAt(b: Uint8Array, k: number): boolean {
  let j = k;
  while (j > 0 && b[j - 1] === BACKSLASH) j--;
  return (k - j) % 2 === 0;
}

function isRun(b: Uint8Array, p: number, len: number): boolean {
  if (p + len > b.length) return false;
  for (let k = 0; k < len; k++) if (DIGIT[b[p + k]!]! < 0) return false;
  return true;
}

/** Copies `src[from, to)` to `dst` at `w`; short segments by hand, which beats `set` for them. */
function copy(src: Uint8Array, from: number, to: number, dst: Uint8Array, w: number): number {
  const len = to - from;
  if (len > 64) {
    dst.set(src.subarray(from, to), w);
    return w + len;
  }
  for (let k = from; k < to; k++) dst[w++] = src[k]!;
  return w;
}

/**
 * One-shot rewrite with a map of old hash → new hash (32 nix32 characters each) from store dir
 * `from` to `to`. For many strings, build one `StoreRewriter` and reuse it.
 */
export function rewriteStoreHashes(
  bytes: Uint8Array,
  hashes: ReadonlyMap<string, string>,
  from: string,
  to: string,
): RewriteResult {
  const rw = new StoreRewriter(from, to);
  for (const [o, n] of hashes) rw.set(o, n);
  return rw.rewrite(bytes);
}
