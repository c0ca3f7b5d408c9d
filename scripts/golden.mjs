// Writes the golden fixtures the core tests check against without Nix: the .drv files of
// __tests__/fixtures/golden/golden.nix as nix-instantiate writes them, two NARs from
// `nix-store --dump`, one `nix-store --export` stream, and golden.json with what Nix says about
// them; with a Nix that has the experimental `dynamic-derivations` feature (2.18 and later), also
// the .drv files of dynamic.nix under dynamic/. Uses the Nix on PATH, in a throwaway chroot store
// whose store dir is /nix/store.
//
//   node scripts/golden.mjs [OUT_DIR]   (default: __tests__/fixtures/golden)
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..');
const FIXTURES = join(REPO, '__tests__', 'fixtures');
const GOLDEN = join(FIXTURES, 'golden');
const out = process.argv[2] ?? GOLDEN;

/** The attributes of golden.nix, dependencies first. */
const DRVS = ['fixed-flat', 'fixed-recursive', 'multi', 'input-addressed'];
/** The attributes of dynamic.nix, dependencies first. */
const DYNAMIC = [
  'leaf',
  'inner',
  'producer',
  'dynamic',
  'dynamic-user',
  'producer2',
  'nested',
  'mixed',
  'fixed-producer',
  'dynamic-fixed',
  'dynamic-fixed-user',
];

/** Nix's version on PATH, as [major, minor]. */
function nixVersion() {
  const text = execFileSync('nix-instantiate', ['--version'], { encoding: 'utf8' });
  const m = /(\d+)\.(\d+)/.exec(text);
  if (m === null) throw new Error(`cannot read Nix's version from: ${text}`);
  return [Number(m[1]), Number(m[2])];
}
const [major, minor] = nixVersion();
const dynamicDerivations = major > 2 || (major === 2 && minor >= 18);

const root = mkdtempSync(join(tmpdir(), 'nix-plan-golden-'));
try {
  mkdirSync(join(root, 'conf'));
  writeFileSync(
    join(root, 'conf', 'nix.conf'),
    'build-users-group =\nsandbox = false\nsubstituters =\nexperimental-features = nix-command' +
      (dynamicDerivations ? ' dynamic-derivations ca-derivations\n' : '\n'),
  );
  const env = {
    ...process.env,
    NIX_REMOTE: `local?root=${join(root, 'store')}`,
    NIX_CONF_DIR: join(root, 'conf'),
    HOME: root,
    XDG_CACHE_HOME: join(root, 'cache'),
  };
  const nix = (cmd, args) =>
    execFileSync(cmd, args, { env, maxBuffer: 1 << 30, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines = (bytes) =>
    bytes
      .toString('utf8')
      .split('\n')
      .filter((l) => l !== '');
  const inStore = (path) => join(root, 'store', path);
  const sha256 = (bytes) => createHash('sha256').update(bytes).digest('hex');

  /** Instantiates `attrs` of `file`, writing each .drv to `dir`; what Nix says about them. */
  const instantiate = (file, attrs, dir) => {
    mkdirSync(dir, { recursive: true });
    const drvs = {};
    for (const attr of attrs) {
      const [drvPath] = lines(nix('nix-instantiate', [file, '-A', attr]));
      const bytes = readFileSync(inStore(drvPath));
      writeFileSync(join(dir, `${attr}.drv`), bytes);
      const text = bytes.toString('utf8');
      // The outputs list opens the ATerm (after `Derive(` or `DrvWithVersion("…",`):
      // ("name","path","hashAlgo","hash"), as Nix wrote it.
      const open = text.indexOf('[');
      const list = text.slice(open + 1, text.indexOf(')],', open) + 1);
      const outputs = {};
      const fixed = {};
      for (const [, name, path, algo, hash] of list.matchAll(
        /\("([^"]*)","([^"]*)","([^"]*)","([^"]*)"\)/g,
      )) {
        outputs[name] = path;
        // Nix's hashDerivationModulo of a fixed-output derivation: sha256 of this string.
        if (hash !== '') fixed[name] = sha256(`fixed:out:${algo}:${hash}:${path}`);
      }
      drvs[attr] = {
        drvPath,
        references: lines(nix('nix-store', ['--query', '--references', drvPath])).sort(),
        outputs,
        ...(Object.keys(fixed).length > 0 ? { hashModulo: fixed['out'] } : {}),
      };
    }
    return drvs;
  };
  const drvs = instantiate(join(GOLDEN, 'golden.nix'), DRVS, join(out, 'drv'));
  if (dynamicDerivations) {
    const dynamic = instantiate(join(GOLDEN, 'dynamic.nix'), DYNAMIC, join(out, 'dynamic'));
    const json = { storeDir: '/nix/store', drvs: dynamic };
    writeFileSync(join(out, 'dynamic', 'golden.json'), `${JSON.stringify(json, null, 2)}\n`);
  }

  const nars = {};
  for (const [name, path] of [
    ['tree.nar', join(FIXTURES, 'nar', 'tree')],
    ['source.nar', join(GOLDEN, 'source.txt')],
  ]) {
    const bytes = nix('nix-store', ['--dump', path]);
    writeFileSync(join(out, name), bytes);
    nars[name] = { narHash: sha256(bytes), narSize: bytes.length };
  }

  // A source and the .drv files (Nix writes them in an order of its own, dependencies first).
  const source = drvs['input-addressed'].references.find((r) => r.endsWith('-source.txt'));
  const exported = [source, ...DRVS.map((a) => drvs[a].drvPath)];
  const stream = nix('nix-store', ['--export', ...exported]);
  writeFileSync(join(out, 'export.bin'), stream);
  const exportInfo = { paths: exported, sha256: sha256(stream), size: stream.length };

  const json = { storeDir: '/nix/store', drvs, nars, export: exportInfo };
  writeFileSync(join(out, 'golden.json'), `${JSON.stringify(json, null, 2)}\n`);
} finally {
  rmSync(root, { recursive: true, force: true });
}
