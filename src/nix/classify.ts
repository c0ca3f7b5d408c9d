// The kind of each member of a closure a store describes (.drv, text, source or build output),
// decided from its registration and, for a single file, its bytes, as the bundle verifier decides.
import { identifyContentAddress } from '../core/content-address.js';
import type { ObjectKind } from '../core/bundle/index.js';
import type { PathInfo } from './store.js';

/** Largest single file read to find out whether it is content-addressed (the verifier's limit). */
export const MAX_CLASSIFY_FILE = 16 * 1024 * 1024;

/**
 * The kind of a closure member, decided as the bundle verifier decides it: a `.drv`; else
 * whatever its content address says (a `toFile` text, or a source: a path literal, or a fixed
 * output, whose path is its content's hash too); anything not content-addressed is a build
 * output. `readRegularFile` gives a single-file object's bytes and mode (synchronously, as
 * `NixStore.readRegularFileSync` does: no thread-pool round trip per path).
 */
export function classifySync(
  info: PathInfo,
  storeDir: string,
  readRegularFile: (path: string, maxSize: number) => { bytes: Uint8Array; executable: boolean } | undefined,
): ObjectKind {
  const byPath = classifyWithoutContents(info, storeDir);
  if (byPath !== undefined) return byPath;
  const file = readRegularFile(info.path, MAX_CLASSIFY_FILE);
  if (file === undefined || file.executable) return 'output';
  return classifyFile(info, storeDir, file.bytes);
}

/** The kind when the path, its registration and its NAR hash decide it; undefined when the file must be read. */
function classifyWithoutContents(info: PathInfo, storeDir: string): ObjectKind | undefined {
  if (info.path.endsWith('.drv') && info.deriver === '') return 'drv';
  const narHash = new Uint8Array(Buffer.from(info.narHash, 'hex'));
  const facts = { path: info.path, references: info.references, narHash };
  // Recursive sources need only the NAR hash; flat ones and texts need the file's bytes.
  return identifyContentAddress(facts, storeDir)?.kind;
}

/** The kind of a non-executable single-file object from its bytes (a flat source or a text). */
function classifyFile(info: PathInfo, storeDir: string, contents: Uint8Array): ObjectKind {
  const narHash = new Uint8Array(Buffer.from(info.narHash, 'hex'));
  const facts = { path: info.path, references: info.references, narHash };
  const byFile = identifyContentAddress({ ...facts, file: { executable: false, contents } }, storeDir);
  return byFile?.kind ?? 'output';
}
