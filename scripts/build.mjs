// Builds every entrypoint: tsc to lib/, then ncc bundles each into dist/<name>/index.js.
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';

const entries = ['cli', 'plan', 'realise', 'promote'];
const run = (cmd, args) => execFileSync(cmd, args, { stdio: 'inherit' });

rmSync('lib', { recursive: true, force: true });
rmSync('dist', { recursive: true, force: true });
run('node', ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.build.json']);
for (const entry of entries) {
  run('node', [
    'node_modules/@vercel/ncc/dist/ncc/cli.js',
    'build',
    `lib/entry/${entry}.js`,
    '-o',
    `dist/${entry}`,
    '--quiet',
    '--license',
    'licenses.txt',
  ]);
}
