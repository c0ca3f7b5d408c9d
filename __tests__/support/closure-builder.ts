// Builds closures in memory the way Nix would name them, in any store dir: sources, text files
// and derivations with their output paths computed as Nix does (for tests of relocation).
import type { RelocObject } from '../../src/core/relocate/index.js';
import { sha256 } from '../../src/core/hash.js';
import { makeSourcePath, makeTextPath } from '../../src/core/store-path.js';
import {
  DerivationHasher,
  computeDrvPath,
  serialiseDerivation,
  type Derivation,
} from '../../src/core/derivation/index.js';
import { fileNarHash } from '../fixtures/relocate/closure.js';

/** A string's bytes, latin-1. */
export const enc = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'latin1'));

/** Builds closures the way Nix would name them, in any store dir. */
export class Builder {
  readonly objects: RelocObject[] = [];
  private readonly drvs = new Map<string, Derivation>();
  private readonly hasher: DerivationHasher;

  constructor(readonly dir: string) {
    this.hasher = new DerivationHasher(dir, (p) => this.drvs.get(p)!);
  }

  async source(name: string, contents: string): Promise<string> {
    const bytes = enc(contents);
    const narHash = await fileNarHash(bytes);
    const path = makeSourcePath(name, narHash, this.dir);
    this.objects.push({ path, kind: 'source', references: [], contents: bytes, narHash });
    return path;
  }

  async text(name: string, contents: (dir: string) => string, references: string[] = []): Promise<string> {
    const bytes = enc(contents(this.dir));
    const path = makeTextPath(name, sha256(bytes), references, this.dir);
    this.objects.push({ path, kind: 'text', references, contents: bytes, narHash: await fileNarHash(bytes) });
    return path;
  }

  /** A derivation; `env` values may mention anything (that is the point). Returns the drv path. */
  async drv(
    name: string,
    options: {
      outputs?: string[];
      inputDrvs?: [string, string[]][];
      inputSrcs?: string[];
      env?: Record<string, string>;
      fixed?: { hashAlgo: string; hash: string };
      system?: string;
      /** DrvWithVersion's version (Nix writes one only for dynamic inputs). */
      version?: string;
      edit?: (d: Derivation) => void;
    } = {},
  ): Promise<string> {
    const outputs = (options.outputs ?? ['out']).sort();
    const env: Record<string, string> = { builder: '/bin/sh', name, system: 'x86_64-linux', ...options.env };
    for (const o of outputs) env[o] = '';
    const drv: Derivation = {
      version: options.version,
      outputs: outputs.map((o) => ({
        name: o,
        path: '',
        hashAlgo: options.fixed?.hashAlgo ?? '',
        hash: options.fixed?.hash ?? '',
      })),
      inputDrvs: (options.inputDrvs ?? [])
        .map(([path, outs]) => ({ path, outputs: outs.sort() }))
        .sort((a, b) => (a.path < b.path ? -1 : 1)),
      inputSrcs: (options.inputSrcs ?? []).sort(),
      system: enc(options.system ?? 'x86_64-linux'),
      builder: enc('/bin/sh'),
      args: [enc('-c'), enc('echo > $out')],
      env: Object.keys(env)
        .sort()
        .map((k) => ({ key: enc(k), value: enc(env[k]!) })),
    };
    const paths = this.hasher.outputPaths(drv, name);
    for (const o of drv.outputs) o.path = paths.get(o.name)!;
    for (const e of drv.env) {
      const p = paths.get(Buffer.from(e.key).toString('latin1'));
      if (p !== undefined) e.value = enc(p);
    }
    options.edit?.(drv);
    const bytes = serialiseDerivation(drv);
    const references = [...new Set([...drv.inputSrcs, ...drv.inputDrvs.map((i) => i.path)])].sort();
    const path = computeDrvPath(this.dir, name, bytes, references);
    this.drvs.set(path, drv);
    this.objects.push({ path, kind: 'drv', references, contents: bytes, narHash: await fileNarHash(bytes) });
    return path;
  }

  outPath(drvPath: string, output = 'out'): string {
    return this.drvs.get(drvPath)!.outputs.find((o) => o.name === output)!.path;
  }
}
