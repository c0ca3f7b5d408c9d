// What relocation refuses as Nix refuses it: an input-addressed .drv whose output paths do not
// follow from its contents (relocating it there and back would not give it back), and a
// DrvWithVersion whose version Nix does not read. Real Nix 2.8 and 2.34 refuse the same bytes
// on import.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { nixVersions, ScratchStore } from '../../support/nix.js';
import { Builder, enc } from '../../support/closure-builder.js';
import { relocateClosure, type RelocObject } from '../../../src/core/relocate/index.js';
import { MalformedError, NixPlanError } from '../../../src/core/errors.js';
import { computeDrvPath, parseDerivation, type Derivation } from '../../../src/core/derivation/index.js';
import { writeExport } from '../../../src/core/export-stream.js';
import { regularFileNar } from '../../../src/core/nar-write.js';
import { serialiseDerivation } from '../../../src/core/derivation/index.js';
import { fileNarHash } from '../../fixtures/relocate/closure.js';

/** The error `f` throws. */
function errorOf(f: () => unknown): NixPlanError {
  try {
    f();
  } catch (e) {
    if (e instanceof NixPlanError) return e;
    throw e;
  }
  throw new Error('nothing was thrown');
}

/** A closure of one .drv (of `b`) changed by `edit`, its path recomputed from its new bytes. */
async function edited(
  b: Builder,
  drvPath: string,
  edit: (d: Derivation) => void,
): Promise<{ objects: RelocObject[]; path: string; bytes: Uint8Array }> {
  const original = b.objects.find((o) => o.path === drvPath)!;
  const drv = parseDerivation(original.contents!);
  edit(drv);
  const bytes = serialiseDerivation(drv);
  const path = computeDrvPath(b.dir, 'app', bytes, original.references);
  const objects = b.objects.map((o) =>
    o.path === drvPath ? { ...o, path, contents: bytes, narHash: undefined } : o,
  );
  for (const o of objects) if (o.path === path) o.narHash = await fileNarHash(bytes);
  return { objects, path, bytes };
}

describe('relocation refuses what Nix refuses', () => {
  let b: Builder;
  let app: string;
  beforeAll(async () => {
    b = new Builder('/a/store');
    const src = await b.source('hello.txt', 'hello\n');
    app = await b.drv('app', { inputSrcs: [src], env: { src } });
  });

  test('an input-addressed .drv whose output path does not follow from its contents', async () => {
    const wrong = `/a/store/${'1'.repeat(32)}-app`;
    const { objects, path } = await edited(b, app, (d) => {
      d.outputs[0]!.path = wrong;
      d.env.find((e) => Buffer.from(e.key).toString() === 'out')!.value = enc(wrong);
    });
    const e = errorOf(() => relocateClosure(objects, '/a/store', '/b/s'));
    expect(e.code).toBe('relocate');
    expect(e.message).toContain(
      `cannot relocate ${path}: its output out is ${wrong}, but its contents give /a/store/`,
    );
    // The unchanged closure relocates, there and back.
    const there = relocateClosure(b.objects, '/a/store', '/b/s');
    expect(there.objects.length).toBe(b.objects.length);
  });

  test('an input-addressed .drv whose variable named after an output does not hold its path', async () => {
    const { objects, path } = await edited(b, app, (d) => {
      d.env.find((e) => Buffer.from(e.key).toString() === 'out')!.value = enc('/somewhere/else');
    });
    const e = errorOf(() => relocateClosure(objects, '/a/store', '/b/s'));
    expect(e.message).toContain(
      `cannot relocate ${path}: the variables named after its outputs do not hold their paths`,
    );
  });

  test('DrvWithVersion of a version Nix does not read', () => {
    const text = 'DrvWithVersion("invalid-version",[("out","","","")],[],[],"x","/bin/sh",[],[])';
    const e = errorOf(() => parseDerivation(enc(text)));
    expect(e).toBeInstanceOf(MalformedError);
    expect(e.message).toContain("unknown derivation ATerm format version 'invalid-version'");
    // The one version Nix reads is read.
    expect(parseDerivation(enc(text.replace('invalid-version', 'xp-dyn-drv'))).version).toBe('xp-dyn-drv');
  });
});

describe.each(nixVersions())('Nix $label refuses the same .drv files on import', (version) => {
  let store: ScratchStore;
  beforeAll(() => {
    store = new ScratchStore(version, {
      extraConf: version.label === '2.8' ? '' : 'extra-experimental-features = dynamic-derivations\n',
    });
  });
  afterAll(() => store.dispose());

  /** What `nix-store --import` of one .drv with `text` says (it must fail). */
  async function importError(text: string): Promise<string> {
    const bytes = enc(text);
    const path = computeDrvPath(store.storeDir, 'x', bytes, []);
    const stream = writeExport([{ path, references: [], deriver: '', nar: regularFileNar(bytes) }]);
    const r = await store.run('nix-store', ['--import'], { input: stream, allowFailure: true });
    expect(r.code).not.toBe(0);
    expect(await store.validPaths()).toEqual([]);
    return r.stderr;
  }

  test('a DrvWithVersion of an unknown version, and a wrong output path', async () => {
    const system = 'x86_64-linux';
    const versioned = `DrvWithVersion("invalid-version",[("out","","","")],[],[],"${system}","/bin/sh",[],[("out","")])`;
    expect(await importError(versioned)).toMatch(
      version.label === '2.8'
        ? /expected string 'Derive\(/
        : /Unknown derivation ATerm format version 'invalid-version'/,
    );
    const wrong = `${store.storeDir}/${'1'.repeat(32)}-x`;
    const derive = `Derive([("out","${wrong}","","")],[],[],"${system}","/bin/sh",[],[("out","${wrong}")])`;
    expect(await importError(derive)).toMatch(/incorrect output/);
  });
});
