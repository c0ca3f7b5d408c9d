// The private copy an import works from: its digest, the room it needs, and the file that
// receives its verified export stream for `nix-store --import` to read.
import { createHash } from 'node:crypto';
import { closeSync, constants, openSync, writeSync } from 'node:fs';
import { mkdtemp, open, rm, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LimitError, NixPlanError } from '../core/errors.js';
import type { OptionNames } from '../core/option-names.js';
import {
  handleSource,
  maxSizeAdvice,
  openBundle,
  readCheckedHead,
  type BundleManifest,
  type BundleSource,
} from '../core/bundle/index.js';
import { requireRoom, tmpdirAdvice } from '../transport/room.js';

/** A bundle copied into a private directory (0700), open, with messages naming the original. */
export interface PrivateBundle {
  /** The private directory: room for what is made from the copy (removed with it). */
  readonly dir: string;
  /** The copy's path (only this process can change it). */
  readonly path: string;
  /** The copy, open; its `name` is the name messages give the bundle (the path the user gave). */
  readonly source: BundleSource;
  /**
   * `sha256:<hex>` of the copy: of exactly the bytes written into it, hashed as they were
   * copied (only this process can change the copy), so nothing reads it again for its digest.
   */
  readonly digest: string;
  /** Closes the copy and removes its directory. */
  dispose(): Promise<void>;
}

/** How a private copy is made. */
export interface PrivateCopyOptions {
  /** The sha256 the bytes must have (`sha256:<hex>` or hex), checked on the copy. */
  readonly digest?: string | undefined;
  /**
   * How messages name the bundle (default: `bundlePath`): the user's file when `bundlePath` is
   * itself a private copy made earlier (which needs no more care than any other file).
   */
  readonly name?: string | undefined;
  /** The private directory's name in TMPDIR starts with this (default `nix-plan-copy-`). */
  readonly prefix?: string | undefined;
  /** How messages name what the user can change (default: the command line's flags). */
  readonly optionNames?: OptionNames | undefined;
}

/**
 * Copies `bundlePath` into a private directory under TMPDIR and opens the copy, after checking
 * its sha256 against `options.digest` when one is given. Everything read after this reads the
 * copy, so the bytes verified are the bytes used even if the original is rewritten in place or
 * replaced. The one way import, relocate, deploy, apply, diff and the freshness check read a plan.
 */
export async function privateBundle(
  bundlePath: string,
  options: PrivateCopyOptions = {},
): Promise<PrivateBundle> {
  const name = options.name ?? bundlePath;
  // The original is opened once, its head checked and exactly the bytes it was checked with
  // copied: a file that is not what its manifest says (a sparse terabyte behind a valid head, a
  // manifest declaring a terabyte of compressed data) is refused before a byte of it is copied,
  // and one that grows or is replaced meanwhile cannot make the copy larger.
  const original = await openCheckedBundle(bundlePath, name);
  let dir: string | undefined;
  const remove = async (): Promise<void> => {
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  };
  try {
    await requireRoom(
      tmpdir(),
      original.size,
      `the bundle '${name}' is ${original.size} bytes`,
      tmpdirAdvice(options.optionNames),
    );
    dir = await mkdtemp(join(tmpdir(), options.prefix ?? 'nix-plan-copy-'));
    const path = join(dir, 'bundle.nixplan');
    const digest = await copyExactly(original.handle, original.size, path, name).catch((e: unknown) => {
      throw e instanceof NixPlanError ? e : cannotRead(name, e);
    });
    await original.handle.close();
    if (options.digest !== undefined) checkDigest(digest, options.digest, name);
    const source: BundleSource = { ...(await openBundle(path)), name };
    return {
      dir,
      path,
      source,
      digest,
      dispose: async () => {
        await source.close();
        await remove();
      },
    };
  } catch (e) {
    await original.handle.close().catch(() => undefined);
    await remove();
    throw e;
  }
}

/**
 * Refuses, from its head alone, a bundle file that is not what its manifest says (see
 * readCheckedHead): before hashing or copying a file someone else could have put there.
 */
export async function checkBundleFile(path: string, name = path): Promise<void> {
  await (await openCheckedBundle(path, name)).handle.close();
}

/** The usage error for a bundle file that cannot be opened or read. */
const cannotRead = (name: string, e: unknown): NixPlanError =>
  new NixPlanError('usage', `cannot read bundle '${name}': ${(e as Error).message}`);

/**
 * Opens the bundle file at `path` (messages name it `name`) once: a FIFO does not block the open,
 * what was opened must be a regular file (fstat of the descriptor read afterwards), and its head
 * must be what its manifest says (readCheckedHead). Returns it open, with the size it was checked
 * at; closed again when refused.
 */
async function openCheckedBundle(path: string, name: string): Promise<{ handle: FileHandle; size: number }> {
  const handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK).catch((e: unknown) => {
    throw cannotRead(name, e);
  });
  try {
    const st = await handle.stat();
    if (!st.isFile())
      throw new NixPlanError('usage', `cannot read bundle '${name}': it is not a regular file`);
    await readCheckedHead(handleSource(handle, name, st.size));
    return { handle, size: st.size };
  } catch (e) {
    await handle.close();
    throw e;
  }
}

/**
 * Copies the first `size` bytes of `from` into a new file `to` (0600), failing if there are fewer,
 * and returns the `sha256:<hex>` of the bytes written.
 */
async function copyExactly(from: FileHandle, size: number, to: string, name: string): Promise<string> {
  const out = await open(to, 'wx', 0o600);
  const hash = createHash('sha256');
  try {
    const buf = new Uint8Array(Math.min(size, COPY_CHUNK));
    for (let at = 0; at < size;) {
      const { bytesRead } = await from.read(buf, 0, Math.min(buf.length, size - at), at);
      if (bytesRead === 0)
        throw new NixPlanError('bundle', `the bundle '${name}' became shorter while it was copied`);
      for (let done = 0; done < bytesRead;) {
        const { bytesWritten } = await out.write(buf, done, bytesRead - done, at + done);
        done += bytesWritten;
      }
      hash.update(buf.subarray(0, bytesRead));
      at += bytesRead;
    }
  } finally {
    await out.close();
  }
  return `sha256:${hash.digest('hex')}`;
}

/** How much a private copy reads and writes at a time. */
const COPY_CHUNK = 4 * 1024 * 1024;

/**
 * A private file that receives the verified export stream as the verifier decompresses it, so
 * `nix-store --import` can read it straight from disk: no second decompression and no second
 * verification. Only this process can write it (0600 in a 0700 directory), so what Nix reads is
 * byte for byte what was verified. If writing fails (a full disk), it gives up quietly and the
 * caller falls back to decompressing the private bundle copy again.
 */
export class VerifiedStreamFile {
  private fd: number | undefined;
  failure: string | undefined;

  constructor(readonly path: string) {
    this.fd = openSync(path, 'wx', 0o600);
  }

  /** Appends a chunk (synchronously: the page cache takes 1 MiB in well under a millisecond). */
  write(chunk: Uint8Array): void {
    if (this.fd === undefined) return;
    try {
      for (let at = 0; at < chunk.length;) at += writeSync(this.fd, chunk, at, chunk.length - at);
    } catch (e) {
      this.failure = (e as Error).message;
      this.close();
    }
  }

  /** True when every chunk was written. */
  get complete(): boolean {
    return this.failure === undefined;
  }

  /** Closes the file (it stays for its reader). */
  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}

/** Refuses `actual` (`sha256:<hex>` of a bundle) when it is not `digest` (`sha256:<hex>` or hex). */
function checkDigest(actual: string, digest: string, bundlePath: string): void {
  const want = digest.replace(/^sha256:/, '').toLowerCase();
  if (!/^[0-9a-f]{64}$/.test(want))
    throw new NixPlanError('usage', `the digest '${digest}' is not a sha256 (sha256:<64 hex digits>)`);
  const got = actual.replace(/^sha256:/, '');
  if (got !== want)
    throw new NixPlanError(
      'bundle',
      `the bundle '${bundlePath}' has sha256:${got}, not the expected digest sha256:${want}: it is not the plan that was published`,
    );
}

/**
 * Refuses, before decompressing anything, a plan larger than `maxSize` uncompressed, or one the
 * temp dir has no room for (its verified stream is written there).
 */
export async function checkRoom(
  manifest: BundleManifest,
  dir: string,
  maxSize: number | undefined,
  names?: OptionNames,
): Promise<void> {
  const size = manifest.stream.size;
  if (maxSize !== undefined && size > maxSize)
    throw new LimitError(
      `the plan is ${size} bytes uncompressed, more than the limit of ${maxSize} bytes (${maxSizeAdvice(names)})`,
    );
  await requireRoom(dir, size, `the plan is ${size} bytes uncompressed`, tmpdirAdvice(names));
}
