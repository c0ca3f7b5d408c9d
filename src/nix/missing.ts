// What Nix would fetch for store paths that are not valid, asked without changing anything:
// `nix-store --realise --dry-run PATH…` on output paths (no .drv needed), read from Nix's
// printMissing listing ("these N paths will be fetched (…):", "don't know how to build …").
import { NixCommandError } from './errors.js';
import { batchPaths, type NixStore } from './store.js';

/** Nix's answer: paths its substituters would give (with their references), and the rest. */
export interface MissingPaths {
  /** Paths that would be fetched: the substitutable ones asked about and their references. */
  readonly fetch: string[];
  /** Paths asked about that no substituter has ("don't know how to build"). */
  readonly unknown: string[];
  /** Nix's size estimate of the fetch (`0.12 MiB download, 0.40 MiB unpacked`), when one batch said it. */
  readonly fetchSize?: string;
}

/** Reads printMissing's listing: the paths under each header. */
export function parseMissing(text: string): MissingPaths {
  const fetch: string[] = [];
  const unknown: string[] = [];
  let fetchSize: string | undefined;
  let section: string[] | undefined;
  for (const line of text.split('\n')) {
    if (/will be fetched/.test(line)) {
      section = fetch;
      fetchSize = /\(([^)]*)\):\s*$/.exec(line)?.[1];
    } else if (/don't know how to build/.test(line)) section = unknown;
    else if (/will be built/.test(line)) section = undefined;
    else if (/^ {2}\//.test(line)) section?.push(line.trim());
    else if (line.trim() !== '') section = undefined;
  }
  return { fetch, unknown, ...(fetchSize === undefined ? {} : { fetchSize }) };
}

/** `nix-store --realise --dry-run` on `paths` (output paths, not .drv files): read-only. */
export async function queryMissing(store: NixStore, paths: readonly string[]): Promise<MissingPaths> {
  const fetch: string[] = [];
  const unknown: string[] = [];
  const batches = batchPaths(paths);
  let fetchSize: string | undefined;
  for (const batch of batches) {
    const args = [...store.storeArgs(), '--realise', '--dry-run', ...batch];
    // The listing grows with the paths: collect it whole (the runner keeps only a tail).
    const chunks: Buffer[] = [];
    const result = await store.runner.run('nix-store', args, {
      allowFailure: true,
      onStderr: (c) => chunks.push(Buffer.from(c)),
    });
    const text = Buffer.concat(chunks).toString('utf8');
    NixCommandError.check('nix-store', args, { code: result.code, stderr: text });
    const m = parseMissing(text);
    fetch.push(...m.fetch);
    unknown.push(...m.unknown);
    if (batches.length === 1) fetchSize = m.fetchSize;
  }
  return { fetch, unknown, ...(fetchSize === undefined ? {} : { fetchSize }) };
}
