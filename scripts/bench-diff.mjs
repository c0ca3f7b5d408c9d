// `node scripts/bench-diff.mjs`: the bench's diff rows alone, for one build or several side by
// side. Each workload's plan and its variant with 1% of packages changed are evaluated and
// exported once (as `npm run bench` makes them), then every build's `nix-plan diff` and the
// stock `nix-store -qR both | comm -3` run in rounds, the order rotating from round to round, so
// machine load hits all of them alike. Every build must print the same `--json` document.
//
//   node scripts/bench-diff.mjs --cli OLD/dist/cli/index.js --cli dist/cli/index.js
//   options: --sizes 10000 --workloads nixpkgs,deep --runs 3 --seed 1
//            --plans DIR (keep the evaluated stores and bundles there and reuse them next time)
//            --profile DIR (one `node --cpu-prof` run of each build's diff per workload)
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { changedVariant, generateClosure, WORKLOADS, writeClosure } from '../bench/generate.ts';
import { makeRealm, median, removeTree, timeCommand } from '../bench/measure.ts';
import { summariseCpuProfile } from '../bench/profile.ts';

const repo = resolve(import.meta.dirname, '..');
const { values: opts } = parseArgs({
  options: {
    cli: { type: 'string', multiple: true },
    sizes: { type: 'string', default: '10000' },
    workloads: { type: 'string', default: WORKLOADS.join(',') },
    runs: { type: 'string', default: '3' },
    seed: { type: 'string', default: '1' },
    plans: { type: 'string' },
    profile: { type: 'string' },
  },
});
const clis = (opts.cli ?? [join(repo, 'dist', 'cli', 'index.js')]).map((f) => resolve(f));
const runs = Number(opts.runs);
const seed = Number(opts.seed);
const log = (msg) => console.error(`[bench-diff ${new Date().toISOString().slice(11, 19)}] ${msg}`);
const work = opts.plans === undefined ? mkdtempSync(join(tmpdir(), 'npb-diff-')) : resolve(opts.plans);
mkdirSync(work, { recursive: true });
let rssSeq = 0;
const run = (argv, realm) => timeCommand({ argv, env: realm.env }, join(work, `rss-${rssSeq++}`));
const lines = (s) => s.split('\n').filter((l) => l !== '');
const secs = (xs) => `${median(xs).toFixed(2)} s`;

/** The two bundles of one workload and size, made once (reused from --plans when there). */
function plans(workload, count) {
  const dir = join(work, `${workload}-${count}-seed${seed}`);
  const realm = { env: makeRealmEnv(join(dir, 'realm')) };
  const a = join(dir, 'plan.nixplan');
  const b = join(dir, 'changed.nixplan');
  const roots = join(dir, 'roots');
  if (existsSync(a) && existsSync(b) && existsSync(roots)) {
    const [rootA, rootB] = lines(readFileSync(roots, 'utf8'));
    return { realm, a, b, rootA, rootB };
  }
  log(`evaluating and exporting ${workload} ${count}`);
  removeTree(dir);
  realm.env = makeRealm(join(dir, 'realm')).env;
  const generated = generateClosure({ count, seed, workload });
  const variant = changedVariant(generated, Math.max(1, Math.round(count / 100)));
  writeClosure(join(dir, 'gen'), generated);
  writeClosure(join(dir, 'gen-changed'), variant.closure);
  const rootA = lines(run(['nix-instantiate', join(dir, 'gen')], realm).stdout)[0];
  const rootB = lines(run(['nix-instantiate', join(dir, 'gen-changed')], realm).stdout)[0];
  for (const [root, out] of [
    [rootA, a],
    [rootB, b],
  ])
    run([process.execPath, clis[0], 'export', '--drv', root, '-o', out, '--quiet'], realm);
  writeFileSync(roots, `${rootA}\n${rootB}\n`);
  return { realm, a, b, rootA, rootB };
}

function makeRealmEnv(root) {
  // The same environment makeRealm gives, without emptying an existing store.
  return {
    NIX_STORE_DIR: join(root, 'store'),
    NIX_STATE_DIR: join(root, 'var'),
    NIX_LOG_DIR: join(root, 'log'),
    NIX_CONF_DIR: join(root, 'conf'),
    NIX_REMOTE: '',
    HOME: join(root, 'home'),
    XDG_CACHE_HOME: join(root, 'cache'),
  };
}

try {
  for (const workload of opts.workloads.split(','))
    for (const count of opts.sizes.split(',').map(Number)) {
      const { realm, a, b, rootA, rootB } = plans(workload, count);
      // Every build must say the same thing; timings aside, the documents are compared whole.
      const documents = clis.map((cli) =>
        JSON.stringify({
          ...JSON.parse(run([process.execPath, cli, 'diff', a, b, '--json', '--quiet'], realm).stdout),
          timings: undefined,
        }),
      );
      const same = documents.every((d) => d === documents[0]);
      const steps = [
        {
          label: 'nix-store -qR both | comm -3',
          argv: [
            'sh',
            '-c',
            'nix-store -qR "$1" | sort > "$3.a" && nix-store -qR "$2" | sort > "$3.b" && comm -3 "$3.a" "$3.b" | wc -l',
            'sh',
            rootA,
            rootB,
            join(work, 'comm'),
          ],
        },
        ...clis.map((cli, i) => ({
          label: `diff #${i} (${cli})`,
          argv: [process.execPath, cli, 'diff', a, b, '--quiet'],
        })),
      ].map((s) => ({ ...s, samples: [] }));
      for (let r = 0; r < runs; r++)
        for (const s of steps.map((_, k) => steps[(r + k) % steps.length]))
          s.samples.push(run(s.argv, realm).sample);
      console.log(
        `${workload} ${count}: --json ${same ? 'identical across builds' : 'DIFFERS between builds'}`,
      );
      for (const s of steps) {
        const cpu = s.samples.map((x) => x.cpuSeconds).filter((x) => x !== undefined);
        const rss = s.samples.map((x) => x.rssMiB).filter((x) => x !== undefined);
        console.log(
          `  ${s.label}: ${secs(s.samples.map((x) => x.seconds))} [${s.samples.map((x) => x.seconds.toFixed(2)).join(' ')}], cpu ${secs(cpu)}, peak ${Math.round(Math.max(...rss))} MB`,
        );
      }
      if (opts.profile !== undefined)
        clis.forEach((cli, i) => {
          const dir = join(resolve(opts.profile), `${workload}-${count}-${i}`);
          removeTree(dir);
          run([process.execPath, '--cpu-prof', '--cpu-prof-dir', dir, cli, 'diff', a, b, '--quiet'], realm);
          const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
          if (file !== undefined) console.log(JSON.stringify(summariseCpuProfile(join(dir, file)), null, 1));
        });
    }
} finally {
  if (opts.plans === undefined) removeTree(work);
}
