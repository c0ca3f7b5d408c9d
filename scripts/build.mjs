// Builds every entrypoint: ncc bundles src/entry/<name>.ts (and only what it imports) into
// dist/<name>/index.js. Usage: node scripts/build.mjs [OUTDIR] (default dist). The bundles are
// written beside OUTDIR first and replace it only once all are built, so a failed build (a type
// error) leaves the committed dist/ as it was instead of deleting it.
import { execFileSync } from 'node:child_process';
import { renameSync, rmSync } from 'node:fs';

const entries = ['cli', 'plan', 'realise', 'promote', 'deploy'];
const outDir = (process.argv[2] ?? 'dist').replace(/\/+$/, '');
const building = `${outDir}.building`;

rmSync(building, { recursive: true, force: true });
try {
  for (const entry of entries) {
    execFileSync(
      'node',
      [
        'node_modules/@vercel/ncc/dist/ncc/cli.js',
        'build',
        `src/entry/${entry}.ts`,
        '-o',
        `${building}/${entry}`,
        '--quiet',
        '--license',
        'licenses.txt',
      ],
      { stdio: 'inherit' },
    );
  }
} catch (e) {
  rmSync(building, { recursive: true, force: true });
  console.error(`build failed: ${outDir} is left as it was`);
  process.exit(typeof e?.status === 'number' && e.status !== 0 ? e.status : 1);
}
rmSync(outDir, { recursive: true, force: true });
renameSync(building, outDir);
