// The rewriter's table of known tokens (store hashes, placeholder hashes): fixed-length nix32
// strings found in bytes by their first six digits, each with the value that replaces it.
import { NixPlanError } from '../errors.js';
import { NIX32_ALPHABET } from '../nix32.js';

/** nix32 digit of each byte, -1 for bytes outside the alphabet. */
export const DIGIT = new Int8Array(256).fill(-1);
for (let i = 0; i < NIX32_ALPHABET.length; i++) DIGIT[NIX32_ALPHABET.charCodeAt(i)] = i;

/** A 30-bit key from the first six nix32 digits at `p` (the caller has checked they are digits). */
function keyAt(b: Uint8Array, p: number): number {
  return (
    ((DIGIT[b[p]!]! << 25) |
      (DIGIT[b[p + 1]!]! << 20) |
      (DIGIT[b[p + 2]!]! << 15) |
      (DIGIT[b[p + 3]!]! << 10) |
      (DIGIT[b[p + 4]!]! << 5) |
      DIGIT[b[p + 5]!]!) >>>
    0
  );
}

function checkNix32(s: string, length: number, what: string): void {
  let ok = s.length === length;
  for (let i = 0; ok && i < length; i++)
    ok = (DIGIT[s.charCodeAt(i) & 0xff] ?? -1) >= 0 && s.charCodeAt(i) < 256;
  if (!ok) throw new NixPlanError('internal', `${what} '${s}' is not ${length} nix32 characters`);
}

/**
 * A table of fixed-length nix32 tokens (old → new): an open-addressing hash table keyed by the
 * 30 bits of their first six digits (random, so the low bits index well), each hit confirmed byte
 * by byte. New values may be set after the old ones are declared.
 */
export class TokenTable {
  private slots = new Int32Array(1024); // id + 1, 0 when empty
  private keys = new Int32Array(1024);
  private old = new Uint8Array(0);
  private repl = new Uint8Array(0);
  private hasRepl = new Uint8Array(0);
  /** A token's bytes, to look it up in the table by (no map of strings: it is asked per path). */
  private readonly probe: Uint8Array;
  readonly strings: string[] = [];

  constructor(
    readonly length: number,
    private readonly what: string,
  ) {
    this.probe = new Uint8Array(length);
  }

  get size(): number {
    return this.strings.length;
  }

  declare(token: string): number {
    const known = this.idOf(token);
    if (known >= 0) return known;
    checkNix32(token, this.length, this.what);
    const id = this.strings.length;
    const n = this.length;
    if (id >= this.hasRepl.length) this.grow(Math.max(64, this.hasRepl.length * 2));
    if ((id + 1) * 4 > this.slots.length) this.rehash(this.slots.length * 2);
    const old = this.old;
    for (let k = 0, base = id * n; k < n; k++) old[base + k] = token.charCodeAt(k);
    this.strings.push(token);
    this.insert(id);
    return id;
  }

  /** The id of `token`, or -1 when it is not declared (or not a token at all). */
  private idOf(token: string): number {
    const n = this.length;
    if (token.length !== n) return -1;
    const probe = this.probe;
    for (let k = 0; k < n; k++) {
      const c = token.charCodeAt(k);
      if (c > 0xff || DIGIT[c]! < 0) return -1;
      probe[k] = c;
    }
    return this.find(probe, 0);
  }

  /** Sets the new value of `token` (declaring it if needed); a second, different one is refused. */
  set(token: string, replacement: string): void {
    const id = this.declare(token);
    const n = this.length;
    const repl = this.repl;
    const base = id * n;
    if (this.hasRepl[id] === 1) {
      let same = replacement.length === n;
      for (let k = 0; same && k < n; k++) same = repl[base + k] === replacement.charCodeAt(k);
      if (!same)
        throw new NixPlanError('internal', `${this.what} ${token} would be replaced by two different values`);
      return;
    }
    checkNix32(replacement, n, this.what);
    for (let k = 0; k < n; k++) repl[base + k] = replacement.charCodeAt(k);
    this.hasRepl[id] = 1;
  }

  /** True when token `id` has its new value. */
  ready(id: number): boolean {
    return this.hasRepl[id] === 1;
  }

  /** Writes the replacement of token `id` into `out` at `w`. */
  write(id: number, out: Uint8Array, w: number): void {
    if (this.hasRepl[id] !== 1)
      throw new NixPlanError(
        'internal',
        `relocation rewrote a mention of ${this.strings[id]} before its new hash was known`,
      );
    const n = this.length;
    const repl = this.repl;
    for (let k = 0, base = id * n; k < n; k++) out[w + k] = repl[base + k]!;
  }

  /** The id of the token at `b[p…]` (whose first six bytes are digits), or -1. */
  find(b: Uint8Array, p: number): number {
    const key = keyAt(b, p);
    const mask = this.slots.length - 1;
    const n = this.length;
    const old = this.old;
    for (let slot = key & mask; ; slot = (slot + 1) & mask) {
      const v = this.slots[slot]!;
      if (v === 0) return -1;
      if (this.keys[slot] !== key) continue;
      const id = v - 1;
      const base = id * n;
      let k = 6; // the key already matched the first six digits
      while (k < n && old[base + k] === b[p + k]) k++;
      if (k === n) return id;
    }
  }

  private insert(id: number): void {
    const key = keyAt(this.old, id * this.length);
    const mask = this.slots.length - 1;
    let slot = key & mask;
    while (this.slots[slot] !== 0) slot = (slot + 1) & mask;
    this.slots[slot] = id + 1;
    this.keys[slot] = key;
  }

  private grow(capacity: number): void {
    const n = this.length;
    const o = new Uint8Array(capacity * n);
    o.set(this.old);
    this.old = o;
    const r = new Uint8Array(capacity * n);
    r.set(this.repl);
    this.repl = r;
    const h = new Uint8Array(capacity);
    h.set(this.hasRepl);
    this.hasRepl = h;
  }

  private rehash(size: number): void {
    this.slots = new Int32Array(size);
    this.keys = new Int32Array(size);
    for (let id = 0; id < this.strings.length; id++) this.insert(id);
  }
}
