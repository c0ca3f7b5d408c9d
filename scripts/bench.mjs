// `npm run bench`: times nix-plan export, import and relocate on generated nixpkgs-shaped closures,
// each beside the command a user would otherwise run, in the same run, and reports the ratios.
//
//   npm run bench                      1,000 / 10,000 / 30,000 derivations
//   npm run bench -- --quick           1,000 derivations only, 3 runs (under a minute)
//   options: --sizes 1000,10000 (or none) --runs N --seed S --levels 3,9,12,19 --nix-bin DIR
//            --workloads nixpkgs,deep (the generator's closure shapes measured, each at every size)
//            --profile (node --cpu-prof each nix-plan command once on the largest size)
//            --write-docs (docs/performance.svg and the figures of docs/performance.md)
//            --keep (leave the scratch stores in place)  --cli FILE (a built nix-plan to measure)
//            --from-results FILE (measure nothing: report, plot and docs from an earlier results.json)
//            --hosts N (the one-evaluation case: N flake hosts over one shared closure; 0 skips it)
//            --hosts-count C (derivations in that shared closure; default 2,000, quick 500)
//
// Every store is a scratch store under the OS temp dir; nothing touches /nix. Imports and native
// evaluations always start from a fresh store. Results: bench/out/results.json and
// bench/out/performance.svg. The bench files under bench/ are TypeScript that Node runs directly.
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { changedVariant, generateClosure, WORKLOADS, writeClosure } from '../bench/generate.ts';
import {
  CommandFailed,
  emptyTrash,
  machineInfo,
  makeRealm,
  median,
  moveToTrash,
  removeTree,
  resetRealm,
  timeCommand,
} from '../bench/measure.ts';
import { summariseCpuProfile } from '../bench/profile.ts';
import { SshServer, SSHD } from '../__tests__/support/sshd.ts';
import { markdownReport, renderSvg, replaceSection } from '../bench/report.ts';

const repo = resolve(import.meta.dirname, '..');
const { values: opts } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    sizes: { type: 'string' },
    runs: { type: 'string' },
    seed: { type: 'string', default: '1' },
    workloads: { type: 'string', default: WORKLOADS.join(',') },
    levels: { type: 'string' },
    'nix-bin': { type: 'string' },
    profile: { type: 'boolean', default: false },
    'write-docs': { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false },
    cli: { type: 'string' },
    'from-results': { type: 'string' },
    hosts: { type: 'string', default: '20' },
    'hosts-count': { type: 'string' },
  },
});
// `--sizes none` measures only the one-evaluation case.
const sizes =
  opts.sizes === 'none'
    ? []
    : (opts.sizes ?? (opts.quick ? '1000' : '1000,10000,30000')).split(',').map(Number);
const seed = Number(opts.seed);
const workloads = opts.workloads.split(',').filter((w) => w !== '');
if (workloads.some((w) => !WORKLOADS.includes(w))) throw new Error(`--workloads: of ${WORKLOADS.join(', ')}`);
const binDir = opts['nix-bin'];
// Fewer runs where one run takes minutes; the medians of the small sizes steady the ratios.
const runsFor = (n) =>
  opts.runs !== undefined ? Number(opts.runs) : opts.quick ? 3 : n <= 1000 ? 5 : n <= 10000 ? 3 : 2;
// Level 19 compresses at a few MB/s: measure it where it takes seconds, not minutes.
const levelsFor = (n) =>
  opts.levels !== undefined
    ? opts.levels.split(',').map(Number)
    : opts.quick
      ? [3, 19]
      : n <= 1000
        ? [3, 9, 12, 19]
        : n <= 10000
          ? [3, 9, 12]
          : [];
if (sizes.some((n) => !Number.isInteger(n) || n < 24)) throw new Error('--sizes: integers of at least 24');

const log = (msg) => console.error(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}`);
const out = join(repo, 'bench', 'out');
mkdirSync(out, { recursive: true });
if (opts['from-results'] !== undefined) {
  await publish(JSON.parse(readFileSync(opts['from-results'], 'utf8')));
  process.exit(0);
}
const work = mkdtempSync(join(tmpdir(), 'npb-'));
const machine = machineInfo(binDir);
log(
  `${machine.cores} cores, ${machine.nixVersion}, Node ${machine.nodeVersion}, load ${machine.loadAverage.toFixed(2)}`,
);
if (!machine.gnuTime)
  log('GNU time (/usr/bin/time, Debian package `time`) is missing: peak memory is not measured');

// The CLI, built into bench/out/dist, rebuilt only when the sources changed.
function buildCli() {
  if (opts.cli !== undefined) return { file: resolve(opts.cli), note: undefined };
  const h = createHash('sha256');
  const walk = (dir) => {
    for (const e of readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else h.update(`${relative(repo, p)}\0`).update(readFileSync(p));
    }
  };
  walk(join(repo, 'src'));
  h.update(readFileSync(join(repo, 'scripts', 'build.mjs')));
  const digest = h.digest('hex');
  const dist = join(out, 'dist');
  const stamp = join(dist, '.sources-sha256');
  const file = join(dist, 'cli', 'index.js');
  if (existsSync(stamp) && readFileSync(stamp, 'utf8') === digest && existsSync(file))
    return { file, note: undefined };
  log('building the CLI into bench/out/dist');
  // Built aside and swapped in on success, so a failed build leaves the last good one.
  const fresh = `${dist}.new`;
  const r = spawnSync(process.execPath, ['scripts/build.mjs', fresh], { cwd: repo, encoding: 'utf8' });
  // The build type-checks the whole tree, and a type error anywhere fails it after the CLI bundle
  // was written. That bundle is still the CLI's code (the sources as they are), so measure it.
  const cliBuilt =
    existsSync(join(fresh, 'cli', 'index.js')) &&
    spawnSync(process.execPath, [join(fresh, 'cli', 'index.js'), '--help']).status === 0;
  if (r.status !== 0 && !cliBuilt) {
    removeTree(fresh);
    return { file: undefined, note: `the CLI does not build: ${firstLine(r.stderr + r.stdout)}` };
  }
  removeTree(dist);
  renameSync(fresh, dist);
  if (r.status !== 0)
    return {
      file,
      note: `the build reported type errors (${firstLine(r.stderr + r.stdout)}); the CLI bundle it wrote was measured`,
    };
  writeFileSync(stamp, digest);
  return { file, note: undefined };
}
const firstLine = (s) =>
  (s.split('\n').find((l) => /error/i.test(l)) ?? s.split('\n')[0] ?? '')
    .trim()
    .replaceAll(`${repo}/`, '')
    .slice(0, 300);

const built = buildCli();
const cli = { available: built.file !== undefined, note: built.note };
// Which subcommands exist: the CLI is being written while the bench is; measure what is there.
const hasCommand = (name) => {
  if (built.file === undefined) return false;
  const r = spawnSync(process.execPath, [built.file, name, '--help'], { encoding: 'utf8' });
  return r.status === 0 && r.stdout.includes(name);
};
const commands = Object.fromEntries(
  ['export', 'import', 'relocate', 'inspect', 'diff', 'deploy'].map((c) => [c, hasCommand(c)]),
);
if (cli.available && !Object.values(commands).every(Boolean)) {
  cli.note = `missing subcommands: ${Object.keys(commands)
    .filter((c) => !commands[c])
    .join(', ')}`;
  cli.available = Object.values(commands).some(Boolean);
}
if (cli.note !== undefined) log(cli.note);

let rssSeq = 0;
const rssFile = () => join(work, `rss-${rssSeq++}`);
const run = (argv, realm, extra = {}) =>
  timeCommand({ argv, env: { ...realm.env, ...extra.env }, cwd: extra.cwd, binDir }, rssFile());
const planArgv = (args, prof) => [
  process.execPath,
  ...(prof === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', prof]),
  built.file,
  ...args,
];
const plan = (args, realm, prof) => run(planArgv(args, prof), realm);
const sh = (script, args, realm) => run(['sh', '-c', script, 'sh', ...args], realm);
const lines = (s) => s.split('\n').filter((l) => l !== '');

/** Medians of a step's samples (the largest RSS); `error` when it could not be measured. */
function summarise(samples, error) {
  const defined = (xs) => xs.filter((x) => x !== undefined);
  const rss = defined(samples.map((s) => s.rssMiB));
  const cpu = defined(samples.map((s) => s.cpuSeconds));
  const phaseNames = [...new Set(samples.flatMap((s) => Object.keys(s.phases ?? {})))];
  const phases = Object.fromEntries(
    phaseNames.map((k) => [k, median(defined(samples.map((s) => s.phases?.[k])))]),
  );
  return {
    samples,
    seconds: error === undefined ? median(samples.map((s) => s.seconds)) : Number.NaN,
    rssMiB: rss.length > 0 ? Math.max(...rss) : undefined,
    cpuSeconds: cpu.length > 0 ? median(cpu) : undefined,
    ...(phaseNames.length > 0 ? { phases } : {}),
    ...(error === undefined ? {} : { error }),
  };
}

/**
 * Runs each step once per round, round after round, so nix-plan and its baseline see the same
 * machine load; the order rotates from round to round. A step whose `fn` is undefined is not
 * measured; one that fails stops and keeps its error.
 */
function interleaved(runs, entries) {
  const state = entries
    .filter(([, , fn]) => fn !== undefined)
    .map(([key, label, fn]) => ({ key, label, fn, samples: [], error: undefined }));
  for (let i = 0; i < runs; i++)
    // Each round starts one step later, so no step always runs right after the same other one.
    for (const s of state.map((_, k) => state[(i + k) % state.length])) {
      if (s.error !== undefined) continue;
      try {
        s.samples.push(s.fn(i));
      } catch (e) {
        s.error = e instanceof CommandFailed ? e.message : String(e);
        log(`${s.label}: ${s.error}`);
      }
    }
  const out = {};
  for (const s of state) {
    out[s.key] = summarise(s.samples, s.error);
    if (s.error === undefined) {
      const r = out[s.key];
      const cpu = r.cpuSeconds === undefined ? '' : `, cpu ${r.cpuSeconds.toFixed(2)} s`;
      const rss = r.rssMiB === undefined ? '' : `, peak ${Math.round(r.rssMiB)} MB`;
      log(`${s.label}: median ${r.seconds.toFixed(2)} s over ${runs}${cpu}${rss}`);
    }
  }
  return out;
}

/** A nix-plan run with `--json`: its sample, with the phase timings the result reports. */
function planJson(args, realm) {
  const r = plan([...args, '--json', '--quiet'], realm);
  let phases;
  try {
    const timings = JSON.parse(r.stdout).timings;
    if (timings !== null && typeof timings === 'object') phases = timings;
  } catch {
    // no JSON result: the sample without phases
  }
  return { ...r.sample, ...(phases === undefined ? {} : { phases }) };
}

async function benchSize(count, workload) {
  const runs = runsFor(count);
  log(`— ${count} derivations, workload ${workload}, ${runs} runs —`);
  const gen = join(out, 'gen', `${workload === 'nixpkgs' ? '' : `${workload}-`}${count}-seed${seed}`);
  const generated = generateClosure({ count, seed, workload });
  writeClosure(gen, generated);
  const alpha = makeRealm(join(work, 'alpha'));
  const beta = makeRealm(join(work, 'beta'));
  const steps = {};
  const instantiate = (realm) => {
    resetRealm(realm);
    const r = run(['nix-instantiate', gen], realm);
    return { sample: r.sample, root: lines(r.stdout)[0] };
  };

  // The source realm, evaluated natively (untimed: it also warms the page cache for the rest).
  const root = instantiate(alpha).root;
  const paths = lines(run(['nix-store', '-qR', root], alpha).stdout);
  const drvs = paths.filter((p) => p.endsWith('.drv'));
  const drvSizes = drvs.map((p) => statSync(p).size);
  const exportBytes = Number(
    sh('nix-store -qR "$1" | xargs nix-store --export | wc -c', [root], alpha).stdout.trim(),
  );
  log(
    `closure: ${paths.length} paths, ${drvs.length} drvs, median drv ${median(drvSizes)} B, export ${exportBytes} B, longest chain ${generated.depth} drvs`,
  );

  // Export: nix-plan vs the closure's export piped through gzip -9.
  const bundle = join(work, `plan-${count}.nixplan`);
  const gz = join(work, `export-${count}.gz`);
  Object.assign(
    steps,
    interleaved(runs, [
      [
        'exportBaseline',
        'export | gzip -9',
        () => sh('nix-store -qR "$1" | xargs nix-store --export | gzip -9 > "$2"', [root, gz], alpha).sample,
      ],
      [
        'export',
        'nix-plan export',
        commands.export ? () => planJson(['export', '--drv', root, '-o', bundle], alpha) : undefined,
      ],
    ]),
  );
  const haveBundle = steps.export !== undefined && steps.export.error === undefined;

  // Diff: the plan against a variant with 1% of its packages changed (the last ones written, which
  // few others depend on), as a routine update would change them; beside the stock-tools listing of
  // which paths differ.
  let diffVariant;
  if (haveBundle && commands.diff) {
    const variant = changedVariant(generated, Math.max(1, Math.round(count / 100)));
    const genB = `${gen}-changed`;
    writeClosure(genB, variant.closure);
    const rootB = lines(run(['nix-instantiate', genB], alpha).stdout)[0];
    const bundleB = join(work, `changed-${count}.nixplan`);
    plan(['export', '--drv', rootB, '-o', bundleB, '--quiet'], alpha);
    let drvsDiffer;
    try {
      const d = JSON.parse(plan(['diff', bundle, bundleB, '--json', '--quiet'], alpha).stdout);
      drvsDiffer = d.total.derivations.added;
    } catch (e) {
      log(`diff --json: ${e instanceof Error ? e.message : String(e)}`);
    }
    diffVariant = { packagesChanged: variant.changed, drvsDiffer };
    log(`diff variant: ${variant.changed} packages changed, ${drvsDiffer ?? '?'} drvs differ`);
    Object.assign(
      steps,
      interleaved(runs, [
        [
          'diffBaseline',
          'nix-store -qR both | comm -3',
          () =>
            sh(
              'nix-store -qR "$1" | sort > "$3.a" && nix-store -qR "$2" | sort > "$3.b" && comm -3 "$3.a" "$3.b" | wc -l',
              [root, rootB, join(work, 'comm')],
              alpha,
            ).sample,
        ],
        ['diff', 'nix-plan diff', () => plan(['diff', bundle, bundleB, '--quiet'], alpha).sample],
      ]),
    );
  }

  const levels = [];
  if (haveBundle)
    for (const level of levelsFor(count)) {
      const f = join(work, `level-${level}.nixplan`);
      try {
        const s = plan(['export', '--drv', root, '-o', f, '--level', String(level), '--quiet'], alpha).sample;
        levels.push({ level, bytes: statSync(f).size, seconds: s.seconds });
        log(
          `level ${level}: ${statSync(f).size} B (${(exportBytes / statSync(f).size).toFixed(1)}×) in ${s.seconds.toFixed(1)} s`,
        );
      } catch (e) {
        log(`level ${level}: ${e instanceof Error ? e.message : String(e)}`);
      }
      removeTree(f);
    }

  // Relocate to the target realm: nix-plan vs native evaluation there, from a fresh store.
  const relocated = join(work, `beta-${count}.nixplan`);
  let betaRoot;
  Object.assign(
    steps,
    interleaved(runs, [
      [
        'relocate',
        'nix-plan relocate',
        haveBundle && commands.relocate
          ? () => planJson(['relocate', bundle, '--to', beta.storeDir, '-o', relocated], alpha)
          : undefined,
      ],
      [
        'instantiateTarget',
        'NIX_STORE_DIR=<target> nix-instantiate',
        () => {
          const r = instantiate(beta);
          betaRoot = r.root;
          return r.sample;
        },
      ],
    ]),
  );
  let relocationMatchesNative;
  if (steps.relocate !== undefined && steps.relocate.error === undefined && commands.inspect) {
    try {
      const manifest = JSON.parse(plan(['inspect', relocated, '--json'], alpha).stdout);
      const roots = (manifest.manifest ?? manifest).roots ?? [];
      relocationMatchesNative = roots.some((r) => r.drvPath === betaRoot);
    } catch (e) {
      log(`inspect of the relocated bundle: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  // A fresh host: stock import of the same stream, nix-plan import, and native evaluation.
  // Without a bundle yet, the baseline imports the export stream compressed by zstd itself.
  const stream = haveBundle ? bundle : join(work, `export-${count}.zst`);
  if (!haveBundle)
    sh(
      'nix-store -qR "$1" | xargs nix-store --export | zstd -q -12 --long=27 -o "$2"',
      [root, stream],
      alpha,
    );
  let importComplete;
  Object.assign(
    steps,
    interleaved(runs, [
      [
        'importBaseline',
        'zstd -dc | nix-store --import',
        () => {
          resetRealm(alpha);
          return sh('zstd -dc "$1" | nix-store --import > /dev/null', [stream], alpha).sample;
        },
      ],
      [
        'import',
        'nix-plan import',
        haveBundle && commands.import
          ? () => {
              resetRealm(alpha);
              const sample = planJson(['import', bundle], alpha);
              importComplete = lines(run(['nix-store', '-qR', root], alpha).stdout).length === paths.length;
              return sample;
            }
          : undefined,
      ],
      ['instantiate', 'nix-instantiate (fresh store)', () => instantiate(alpha).sample],
      // How much of nix-instantiate is evaluation: --readonly-mode computes paths, writes nothing.
      [
        'evaluateOnly',
        'nix-instantiate --readonly-mode',
        () => run(['nix-instantiate', '--readonly-mode', gen], alpha).sample,
      ],
    ]),
  );

  // Deploy to a fresh host over loopback SSH: nix-plan deploy --action push (the plan verified
  // here, sent, checked by sha256 and imported there) vs nix-copy-closure --to of the same .drv
  // closure. The host is a chroot store (NIX_REMOTE=local?root=…) at the same store dir, so its
  // files never touch the source store's; each run starts from an empty one.
  if (existsSync(SSHD)) Object.assign(steps, await benchDeploy(count, runs, alpha, root, bundle, haveBundle));
  else log(`${SSHD} is missing (Debian package openssh-server): deploy is not measured`);

  const result = {
    workload,
    count,
    runs,
    closure: {
      paths: paths.length,
      drvs: drvs.length,
      medianDrvBytes: median(drvSizes),
      exportBytes,
      depth: generated.depth,
    },
    steps,
    bytes: { bundle: haveBundle ? statSync(bundle).size : undefined, gzip: statSync(gz).size },
    levels,
    relocationMatchesNative,
    importComplete,
    ...(diffVariant === undefined ? {} : { diffVariant }),
  };
  return { result, alpha, root, bundle, haveBundle, beta };
}

/** The deploy rows: nix-plan deploy --action push and nix-copy-closure --to, one host, loopback SSH. */
async function benchDeploy(count, runs, alpha, root, bundle, haveBundle) {
  const hostRoot = join(work, `host-${count}`);
  const hostTmp = join(work, `host-tmp-${count}`);
  mkdirSync(hostTmp, { recursive: true });
  const path = `${binDir === undefined ? '' : `${binDir}:`}/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin`;
  const env = { ...alpha.env, NIX_REMOTE: `local?root=${hostRoot}`, PATH: path, TMPDIR: hostTmp };
  let server;
  try {
    server = await SshServer.start([{ name: 'bench', env }]);
  } catch (e) {
    log(`sshd: ${e instanceof Error ? e.message : String(e)}: deploy is not measured`);
    return {};
  }
  // Moved aside, not deleted, before each run, as resetRealm does for the import rows: deleting
  // the last run's 11,000 files right before the next run's import slowed it by seconds.
  const fresh = () => moveToTrash(hostRoot);
  const sshEnv = { NIX_SSHOPTS: `-F ${server.configFile}` };
  try {
    return interleaved(runs, [
      [
        'deployBaseline',
        'nix-copy-closure --to (loopback SSH)',
        () => {
          fresh();
          return run(['nix-copy-closure', '--to', 'bench', root], alpha, { env: sshEnv }).sample;
        },
      ],
      [
        'deploy',
        'nix-plan deploy --action push (loopback SSH)',
        haveBundle && commands.deploy
          ? () => {
              fresh();
              return planJson(
                [
                  'deploy',
                  bundle,
                  '--host',
                  'bench',
                  '--action',
                  'push',
                  `--ssh-option=-F${server.configFile}`,
                  '--no-check-sigs',
                ],
                alpha,
              );
            }
          : undefined,
      ],
    ]);
  } finally {
    server.stop();
    removeTree(hostRoot);
    removeTree(hostTmp);
  }
}

/** Samples of several commands run one after another, as one: wall and CPU add up, memory is the largest. */
function sumSamples(samples) {
  const defined = (xs) => xs.filter((x) => x !== undefined);
  const rss = defined(samples.map((s) => s.rssMiB));
  const cpu = defined(samples.map((s) => s.cpuSeconds));
  return {
    seconds: samples.reduce((a, s) => a + s.seconds, 0),
    rssMiB: rss.length > 0 ? Math.max(...rss) : undefined,
    cpuSeconds: cpu.length === samples.length ? cpu.reduce((a, c) => a + c, 0) : undefined,
  };
}

/**
 * One evaluation for all roots: `hosts` flake installables over one shared closure of `count`
 * derivations, exported by nix-plan (one `nix` process evaluates them all), against evaluating
 * them one `nix path-info --derivation` process per root, as nix-plan did before. Fresh store and
 * evaluation cache for every sample. The baseline only evaluates; nix-plan also writes the bundle.
 */
function benchEvaluation(hosts, count) {
  const runs = opts.runs !== undefined ? Number(opts.runs) : opts.quick ? 1 : 3;
  log(`— one evaluation: ${hosts} hosts over ${count} derivations, ${runs} run${runs === 1 ? '' : 's'} —`);
  const gen = join(out, 'gen', `hosts${hosts}-${count}-seed${seed}`);
  writeClosure(gen, generateClosure({ count, seed, hosts }));
  const realm = makeRealm(join(work, 'hosts'));
  const installables = Array.from({ length: hosts }, (_, h) => `path:${gen}#host${h}`);
  const features = ['--extra-experimental-features', 'nix-command flakes'];
  const bundle = join(work, 'hosts.nixplan');
  const steps = interleaved(runs, [
    [
      'perRoot',
      `${hosts} × nix path-info --derivation`,
      () => {
        resetRealm(realm);
        return sumSamples(
          installables.map((i) => run(['nix', ...features, 'path-info', '--derivation', i], realm).sample),
        );
      },
    ],
    [
      'export',
      `nix-plan export (${hosts} installables)`,
      commands.export
        ? () => {
            resetRealm(realm);
            return planJson(['export', ...installables, '-o', bundle], realm);
          }
        : undefined,
    ],
  ]);
  // Checked in the same run: every root is recorded with the installable it came from.
  let rootsMapped;
  if (steps.export?.error === undefined && commands.inspect && existsSync(bundle)) {
    const roots = JSON.parse(plan(['inspect', bundle, '--json'], realm).stdout).manifest?.roots ?? [];
    rootsMapped =
      roots.length === hosts &&
      roots.every((r, h) => r.installable === installables[h] && r.drvPath.endsWith(`-host${h}-system.drv`));
  }
  return { hosts, count, runs, steps, rootsMapped };
}

/** One profiled run of each nix-plan command on the largest size, summarised. */
function profileCommands(ctx) {
  const profiles = [];
  const dir = join(out, 'profiles');
  const profiled = (command, args, before) => {
    removeTree(dir);
    mkdirSync(dir, { recursive: true });
    try {
      before?.();
      plan(args, ctx.alpha, dir);
      const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
      if (file === undefined) return;
      profiles.push({ command, count: ctx.result.count, ...summariseCpuProfile(join(dir, file)) });
      log(`profiled nix-plan ${command}`);
    } catch (e) {
      log(`profile of ${command}: ${e instanceof Error ? e.message : String(e)}`);
    }
  };
  if (!ctx.haveBundle) return profiles;
  const relocated = join(work, 'profile-beta.nixplan');
  profiled('export', ['export', '--drv', ctx.root, '-o', join(work, 'profile.nixplan'), '--quiet']);
  if (commands.relocate)
    profiled('relocate', ['relocate', ctx.bundle, '--to', ctx.beta.storeDir, '-o', relocated, '--quiet']);
  if (commands.import) profiled('import', ['import', ctx.bundle, '--quiet'], () => resetRealm(ctx.alpha));
  return profiles;
}

// The sources measured: a commit, "-dirty" when the working tree differs from it.
const commit = spawnSync('git', ['describe', '--always', '--dirty'], {
  cwd: repo,
  encoding: 'utf8',
}).stdout?.trim();
const results = {
  date: new Date().toISOString(),
  seed,
  ...(commit ? { commit } : {}),
  machine,
  loadAverageEnd: 0,
  cli,
  sizes: [],
  profiles: [],
};
try {
  const hosts = Number(opts.hosts);
  if (hosts > 0) {
    const count = Number(opts['hosts-count'] ?? (opts.quick ? 500 : 2000));
    results.evaluation = benchEvaluation(hosts, count);
    emptyTrash();
  }
  let last;
  for (const workload of workloads)
    for (const n of sizes) {
      last = await benchSize(n, workload);
      results.sizes.push(last.result);
      emptyTrash();
    }
  if (opts.profile && last !== undefined) results.profiles = profileCommands(last);
} finally {
  if (!opts.keep) removeTree(work);
  else log(`scratch stores kept in ${work}`);
}
results.loadAverageEnd = loadavg()[0] ?? 0;
writeFileSync(join(out, 'results.json'), JSON.stringify(results, null, 2) + '\n');
await publish(results);

/** Prints the report; writes the plot, and with --write-docs the docs' figures and plot. */
async function publish(results) {
  const report = markdownReport(results);
  console.log(report);
  if (results.sizes.length === 0) return;
  const svg = renderSvg(results);
  writeFileSync(join(out, 'performance.svg'), svg);
  log('wrote bench/out/results.json and bench/out/performance.svg');
  if (opts['write-docs']) {
    writeFileSync(join(repo, 'docs', 'performance.svg'), svg);
    const doc = join(repo, 'docs', 'performance.md');
    // Formatted as `npm run lint` expects, so a rewritten doc can be committed as it is.
    const prettier = await import('prettier');
    const options = (await prettier.resolveConfig(doc)) ?? {};
    const text = replaceSection(readFileSync(doc, 'utf8'), 'figures', report);
    writeFileSync(doc, await prettier.format(text, { ...options, filepath: doc }));
    log('wrote docs/performance.svg and the figures of docs/performance.md');
  }
}
