// The module map in docs/architecture.md, made from the modules themselves: every module of src/
// opens with a comment saying what it is for, and its first sentence is the module's row. So the
// map names every module and cannot drift from the code: a test runs `--check`.
//
//   node scripts/module-map.mjs --write    rewrite the map between the markers
//   node scripts/module-map.mjs --check    exit 1, naming what differs, when the map is stale
//   --src DIR --doc FILE                   another tree and page (the test uses these)
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const BEGIN = '<!-- modules:begin -->';
const END = '<!-- modules:end -->';
const LAYERS = ['core', 'nix', 'transport', 'app', 'cli', 'action', 'entry'];

function modulesUnder(dir) {
  const out = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...modulesUnder(path));
    else if (entry.name.endsWith('.ts')) out.push(path);
  }
  return out;
}

/** The first sentence of the comment a module opens with (a shebang line skipped). */
export function purposeOf(text) {
  const comment = [];
  for (const line of text.split('\n')) {
    if (line.startsWith('#!')) continue;
    if (!line.startsWith('//')) break;
    comment.push(line.replace(/^\/\/ ?/, ''));
  }
  const joined = comment.join(' ').replace(/\\`/g, '`').trim();
  if (joined === '') return undefined;
  const sentence = /^(.*?)[.:](?:\s|$)/.exec(joined);
  return sentence === null ? joined : sentence[1];
}

/** The map's markdown, or the problems that keep it from being made. */
export function moduleMap(srcDir) {
  const problems = [];
  const byLayer = new Map(LAYERS.map((l) => [l, []]));
  for (const file of modulesUnder(srcDir).sort()) {
    const path = relative(srcDir, file).split(sep).join('/');
    const layer = path.split('/')[0];
    const purpose = purposeOf(readFileSync(file, 'utf8'));
    if (!byLayer.has(layer)) problems.push(`src/${path}: not in a layer (${LAYERS.join(', ')})`);
    else if (purpose === undefined) problems.push(`src/${path}: opens with no comment saying what it is for`);
    else byLayer.get(layer).push([path, purpose]);
  }
  const parts = [];
  for (const [layer, rows] of byLayer) {
    if (rows.length === 0) continue;
    parts.push(`### \`src/${layer}/\``, '');
    for (const [path, purpose] of rows) parts.push(`- \`${path}\`: ${purpose}`);
    parts.push('');
  }
  return { problems, markdown: parts.join('\n') };
}

/** The page with its map replaced (markers kept), or undefined when the page has no markers. */
export function withMap(page, markdown) {
  const begin = page.indexOf(BEGIN);
  const end = page.indexOf(END);
  if (begin < 0 || end < begin) return undefined;
  return `${page.slice(0, begin + BEGIN.length)}\n\n${markdown}\n${page.slice(end)}`;
}

/** The page as prettier writes it (the repository's lint checks every page is). */
async function formatted(page, doc) {
  const prettier = await import('prettier');
  const options = (await prettier.resolveConfig(doc)) ?? {};
  return prettier.format(page, { ...options, filepath: doc });
}

async function main(argv) {
  const repo = fileURLToPath(new URL('..', import.meta.url));
  const option = (name, fallback) => {
    const i = argv.indexOf(name);
    return i >= 0 && i + 1 < argv.length ? argv[i + 1] : fallback;
  };
  const srcDir = option('--src', join(repo, 'src'));
  const doc = option('--doc', join(repo, 'docs', 'architecture.md'));
  const write = argv.includes('--write');
  if (!write && !argv.includes('--check')) {
    process.stderr.write('usage: node scripts/module-map.mjs --write|--check [--src DIR] [--doc FILE]\n');
    return 2;
  }
  const { problems, markdown } = moduleMap(srcDir);
  if (problems.length > 0) {
    process.stderr.write(`module map: ${problems.join('\n  ')}\n`);
    return 1;
  }
  const page = readFileSync(doc, 'utf8');
  const bare = withMap(page, markdown);
  if (bare === undefined) {
    process.stderr.write(`module map: ${doc} has no ${BEGIN} … ${END} section\n`);
    return 1;
  }
  const next = await formatted(bare, doc);
  if (write) {
    if (next !== page) writeFileSync(doc, next);
    return 0;
  }
  if (next === page) return 0;
  const named = (text) =>
    new Set(
      [...text.slice(text.indexOf(BEGIN), text.indexOf(END)).matchAll(/^- `([^`]+)`/gm)].map((m) => m[1]),
    );
  const inPage = named(page);
  const inCode = named(next);
  const missing = [...inCode].filter((m) => !inPage.has(m));
  const gone = [...inPage].filter((m) => !inCode.has(m));
  process.stderr.write(
    [
      `module map in ${doc} is stale: run \`node scripts/module-map.mjs --write\``,
      ...missing.map((m) => `  not in the map: src/${m}`),
      ...gone.map((m) => `  in the map, not in src/: ${m}`),
      ...(missing.length + gone.length === 0 ? ['  a module says what it is for in other words now'] : []),
    ].join('\n') + '\n',
  );
  return 1;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) process.exitCode = await main(process.argv.slice(2));
