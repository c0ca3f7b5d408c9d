// Builds every entrypoint: ncc bundles src/entry/<name>.ts (and only what it imports) into
// dist/<name>/index.js. Usage: node scripts/build.mjs [OUTDIR] (default dist).
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';

const entries = ['cli', 'plan', 'realise', 'promote', 'deploy'];
const outDir = process.argv[2] ?? 'dist';

rmSync(outDir, { recursive: true, force: true });
for (const entry of entries) {
  execFileSync(
    'node',
    [
      'node_modules/@vercel/ncc/dist/ncc/cli.js',
      'build',
      `src/entry/${entry}.ts`,
      '-o',
      `${outDir}/${entry}`,
      '--quiet',
      '--license',
      'licenses.txt',
    ],
    { stdio: 'inherit' },
  );
}
