// Writing a NAR (Nix ARchive) from an injected file tree, and the tokens and rules its reader shares.
import { MalformedError } from './errors.js';
import { ChunkBatcher, compareBytes, concatBytes, padLength, u64, wireString } from './bytes.js';

/**
 * A file system object as a NAR sees it. Directory entries must come sorted by name bytes;
 * `contents` must yield exactly `size` bytes. Injected, so the core never touches the disk.
 */
export type FileTree =
  | { type: 'regular'; executable: boolean; size: number; contents: () => AsyncIterable<Uint8Array> }
  | { type: 'symlink'; target: Uint8Array }
  | { type: 'directory'; entries: () => AsyncIterable<[name: Uint8Array, node: FileTree]> };

/**
 * Size of the NAR of one regular file of `size` bytes, without writing it: the fixed tokens
 * (`nix-archive-1 ( type regular [executable ""] contents`), the length, the contents padded to
 * 8 bytes and `)`: the byte count of `writeNar(regularFile(bytes, executable))`.
 */
export function regularFileNarSize(size: number, executable = false): number {
  // magic 8+16, "(" 8+8, "type" 8+8, "regular" 8+8, "contents" 8+8, length 8, ")" 8+8;
  // "executable" 8+16 and "" 8 when executable.
  return 112 + (executable ? 32 : 0) + size + padLength(size);
}

/**
 * The NAR of one regular file held in memory, as four chunks (the tokens up to its length, which
 * are shared and must not be changed; the length; the bytes themselves; the padding and closing
 * token): the bytes `writeNar(regularFile(bytes, executable))` yields, without a generator per
 * file. `bytes` is passed through, not copied. The other chunks are small enough to live on the
 * JS heap: relocation writes one NAR per object, and a backing store each cost more than that.
 */
export function regularFileNar(bytes: Uint8Array, executable = false): Uint8Array[] {
  const pad = padLength(bytes.length);
  const end = new Uint8Array(pad + CLOSE.length);
  end.set(CLOSE, pad);
  return [executable ? FILE_HEAD_EXECUTABLE : FILE_HEAD, u64(bytes.length), bytes, end];
}

/** A regular file held in memory. */
export function regularFile(bytes: Uint8Array, executable = false): FileTree {
  return {
    type: 'regular',
    executable,
    size: bytes.length,
    // eslint-disable-next-line @typescript-eslint/require-await
    contents: async function* () {
      yield bytes;
    },
  };
}

/** The first token of every NAR. */
export const MAGIC = 'nix-archive-1';

/** Why `name` cannot be a directory entry (Nix's rules), or undefined if it can. */
export function entryNameProblem(name: Uint8Array): string | undefined {
  if (name.length === 0) return 'an empty name';
  if (name.length === 1 && name[0] === 0x2e) return "the name '.'";
  if (name.length === 2 && name[0] === 0x2e && name[1] === 0x2e) return "the name '..'";
  if (name.includes(0x2f)) return 'a name containing /';
  if (name.includes(0)) return 'a name containing a NUL byte';
  return undefined;
}

/** Printable form of a name for error messages. */
export function show(name: Uint8Array): string {
  return JSON.stringify(Buffer.from(name.buffer, name.byteOffset, name.byteLength).toString('utf8'));
}

/**
 * Serialises `tree` as a NAR, streaming file contents through. Refuses (MalformedError) a tree
 * Nix would refuse to unpack: unsorted or illegal entry names, or a file whose contents do not
 * match its size.
 */
export async function* writeNar(tree: FileTree): AsyncGenerator<Uint8Array> {
  const out = new ChunkBatcher();
  out.addAll(wireString(MAGIC));
  yield* writeNode(tree, out, '');
  out.flush();
  yield* out.take();
}

const T = {
  open: wireString('('),
  close: wireString(')'),
  type: wireString('type'),
  regular: wireString('regular'),
  executable: [...wireString('executable'), ...wireString('')],
  contents: wireString('contents'),
  symlink: wireString('symlink'),
  target: wireString('target'),
  directory: wireString('directory'),
  entry: wireString('entry'),
  name: wireString('name'),
  node: wireString('node'),
};

/** What precedes a regular file's length in a single-file NAR (and with the executable flag). */
export const FILE_HEAD = concatBytes([
  ...wireString(MAGIC),
  ...T.open,
  ...T.type,
  ...T.regular,
  ...T.contents,
]);
export const FILE_HEAD_EXECUTABLE = concatBytes([
  ...wireString(MAGIC),
  ...T.open,
  ...T.type,
  ...T.regular,
  ...T.executable,
  ...T.contents,
]);
/** The closing token of a NAR node. */
export const CLOSE = concatBytes(T.close);

async function* writeNode(tree: FileTree, out: ChunkBatcher, where: string): AsyncGenerator<Uint8Array> {
  out.addAll([...T.open, ...T.type]);
  switch (tree.type) {
    case 'regular': {
      out.addAll(T.regular);
      if (tree.executable) out.addAll(T.executable);
      out.addAll([...T.contents, u64(tree.size)]);
      let written = 0;
      for await (const chunk of tree.contents()) {
        written += chunk.length;
        if (written > tree.size) break;
        out.add(chunk);
        if (out.hasReady) yield* out.take();
      }
      if (written !== tree.size)
        throw new MalformedError(
          'file tree',
          undefined,
          `file '${where || '.'}' has ${written > tree.size ? 'more' : 'fewer'} bytes than its size ${tree.size} (did it change while being read?)`,
        );
      const pad = padLength(tree.size);
      if (pad > 0) out.add(new Uint8Array(pad));
      break;
    }
    case 'symlink':
      out.addAll([...T.symlink, ...T.target, ...wireString(tree.target)]);
      break;
    case 'directory': {
      out.addAll(T.directory);
      let prev: Uint8Array | undefined;
      for await (const [name, node] of tree.entries()) {
        const sub = `${where}/${Buffer.from(name).toString('utf8')}`;
        const problem = entryNameProblem(name);
        if (problem !== undefined)
          throw new MalformedError('file tree', undefined, `'${where || '.'}' has ${problem}`);
        if (prev !== undefined && compareBytes(prev, name) >= 0)
          throw new MalformedError(
            'file tree',
            undefined,
            `entries of '${where || '.'}' are not sorted at ${show(name)}`,
          );
        prev = name;
        out.addAll([...T.entry, ...T.open, ...T.name, ...wireString(name), ...T.node]);
        if (out.hasReady) yield* out.take();
        yield* writeNode(node, out, sub);
        out.addAll(T.close);
      }
      break;
    }
  }
  out.addAll(T.close);
  if (out.hasReady) yield* out.take();
}
