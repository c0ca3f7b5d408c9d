// Where a bundle's bytes come from: an open file (read through one descriptor) or memory.
// (With writer.ts, the only modules of the core that touch files; see docs/architecture.md.)
import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { NixPlanError } from '../errors.js';

/** Random access to a bundle's bytes: a file, or memory (tests, fuzzing). */
export interface BundleSource {
  /** Names the bundle in messages (its path). */
  readonly name: string;
  readonly size: number;
  /** Reads `length` bytes at `offset` (fewer only at end of file). */
  read(offset: number, length: number): Promise<Uint8Array>;
  /** The bytes from `offset` to the end, in chunks. */
  stream(offset: number): AsyncIterable<Uint8Array>;
  /** Releases the file (no-op for memory). */
  close(): Promise<void>;
}

/** Chunk size of `stream`. */
const CHUNK = 256 * 1024;

/** A bundle held in memory. */
export function memorySource(bytes: Uint8Array, name = 'bundle', chunkSize = CHUNK): BundleSource {
  return {
    name,
    size: bytes.length,
    read: (offset, length) =>
      Promise.resolve(bytes.subarray(offset, Math.min(bytes.length, offset + length))),
    stream: async function* (offset: number): AsyncGenerator<Uint8Array> {
      for (let at = offset; at < bytes.length; at += chunkSize)
        yield await Promise.resolve(bytes.subarray(at, at + chunkSize));
    },
    close: () => Promise.resolve(),
  };
}

/**
 * Opens a bundle file. Verify and import through the same source: it reads through one open
 * file descriptor, so a bundle renamed over after verification is not what gets imported. It must
 * be a regular file: a FIFO is opened without blocking (O_NONBLOCK; no writer would leave the open
 * waiting for ever) and refused, as is a directory or a device.
 */
export async function openBundle(path: string): Promise<BundleSource> {
  let fh: FileHandle;
  try {
    fh = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (e) {
    throw new NixPlanError('usage', `cannot open bundle '${path}': ${(e as Error).message}`);
  }
  try {
    const st = await fh.stat();
    if (!st.isFile())
      throw new NixPlanError('usage', `cannot read bundle '${path}': it is not a regular file`);
    return handleSource(fh, path, st.size);
  } catch (e) {
    await fh.close();
    throw e;
  }
}

/**
 * A bundle read through an open file `fh` of `size` bytes (as its stat said when opened), named
 * `name` in messages; closing the source closes `fh`.
 */
export function handleSource(fh: FileHandle, name: string, size: number): BundleSource {
  const read = async (offset: number, length: number): Promise<Uint8Array> => {
    const buf = new Uint8Array(Math.max(0, Math.min(length, size - offset)));
    let got = 0;
    while (got < buf.length) {
      const { bytesRead } = await fh.read(buf, got, buf.length - got, offset + got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    return buf.subarray(0, got);
  };
  return {
    name,
    size,
    read,
    stream: async function* (offset: number): AsyncGenerator<Uint8Array> {
      // Fresh buffers: readers downstream keep views of the chunks.
      for (let at = offset; ;) {
        const chunk = await read(at, CHUNK);
        if (chunk.length === 0) return;
        at += chunk.length;
        yield chunk;
      }
    },
    close: () => fh.close(),
  };
}
