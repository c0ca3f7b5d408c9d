// Seeded generator of nixpkgs-shaped derivation closures, written as one Nix expression of
// `builtins.derivation`s (plus the path-literal sources it uses), for the benchmark and its tests.
//
// Shape, modelled on a nixpkgs closure: ~20 "core" derivations (bootstrap tools, libc, compiler,
// coreutils, bash, …, stdenv) that nearly everything depends on; packages that depend on the stdenv,
// a few core tools and random earlier packages (mostly recent ones); a fixed-output "fetchurl"
// source derivation in front of about a third of the packages; 1–3 outputs; ~30 environment
// variables (phase scripts, flags, dependency lists full of `${dep}`/`${dep.dev}` store paths);
// some path-literal sources (files and directories) and `builtins.toFile` files. One root
// derivation depends on every derivation nothing else depends on, so the root's closure holds all.
//
// A second workload, `deep`, is shaped independently of that, so the benchmark is not tuned to one
// shape: long dependency chains (each package builds on the one before it, plus a few others),
// larger environment values (long build scripts written out in full, metadata text), and many
// more sources: a path-literal file or directory in front of 40% of the packages without a fetch,
// patches in 20% and a `builtins.toFile` text of a few KB in 35%. Its median `.drv` is about
// 16 KB (2.5 times the nixpkgs workload's), and its closure holds about six sources and texts
// for every seven derivations.
//
// With `hosts: N` the file is instead a function of `system` giving N host derivations that each
// depend on that root, like the systems of N machines over one nixpkgs: one shared, expensive
// `let`, evaluated once by a process that asks for all of them. A `flake.nix` exposes them as
// `packages.<system>.host0` … for `nix` (one evaluation against one process per host).
//
// Run directly: node bench/generate.ts --count 1000 [--seed 1] [--workload deep] [--hosts 20] --out DIR   (writes DIR/default.nix)
// Every `let` binding is one derivation or string, and every string is one concatenation, so Nix
// evaluates 30,000 derivations without deep recursion or quadratic list operations.
import { createHash } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';

/** The shapes of closure the generator makes (see the top of this file). */
export const WORKLOADS = ['nixpkgs', 'deep'] as const;
export type Workload = (typeof WORKLOADS)[number];

/** What to generate: the number of derivations in the root's closure, and the PRNG seed. */
export interface GenerateOptions {
  /** Derivations in the closure, root included (at least {@link MIN_COUNT}). */
  readonly count: number;
  /** Same seed and count give the same files, byte for byte. */
  readonly seed: number;
  /** Host derivations over the root, as attributes of the file (default: none, the root itself). */
  readonly hosts?: number | undefined;
  /** The shape (default `nixpkgs`); the same seed gives unrelated closures in different shapes. */
  readonly workload?: Workload | undefined;
}

/** A generated closure: the files to write (relative path → text) and what they hold. */
export interface GeneratedClosure {
  /** `default.nix` and the path-literal sources under `srcs/`, in a fixed order. */
  readonly files: ReadonlyMap<string, string>;
  /** Derivations by role; they add up to `count`, plus `hosts` (each a root of its own). */
  readonly derivations: { core: number; packages: number; fetches: number; root: number; hosts: number };
  /** Path-literal sources (files and directories) and `builtins.toFile` files referenced. */
  readonly sources: { pathLiterals: number; toFiles: number };
  /** Derivations on the longest dependency chain from the root down to the bootstrap tools. */
  readonly depth: number;
}

/** The smallest closure the generator makes: the core set, one fetch, one package and the root. */
export const MIN_COUNT = 24;

// mulberry32: a tiny, fast, well-distributed 32-bit PRNG; all randomness flows from the seed.
class Rng {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  /** Uniform in [0, 1). */
  next(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)] as T;
  }
  /** Skewed towards small indices, like the popularity of shared snippets and flags. */
  skewed(n: number): number {
    const u = this.next();
    return Math.floor(n * u * u);
  }
}

// A string in a Nix expression: literal text and `${expr}` interpolations (which carry context).
type Part = string | { readonly expr: string };
const ref = (expr: string): Part => ({ expr });

function nixString(parts: readonly Part[]): string {
  let s = '"';
  for (const p of parts) {
    if (typeof p === 'string')
      s += p
        .replace(/\\/g, '\\\\')
        .replace(/"/g, '\\"')
        .replace(/\$\{/g, '\\${')
        .replace(/\n/g, '\\n')
        .replace(/\t/g, '\\t');
    else s += '${' + p.expr + '}';
  }
  return s + '"';
}

const SYLLABLES = (
  'ba be bi bo bu ca co cu da de di do fa fe fi fo ga ge gi go gu ha he hi ho ka ke ki ko la le ' +
  'li lo lu ma me mi mo mu na ne ni no nu pa pe pi po pu ra re ri ro ru sa se si so su ta te ti ' +
  'to tu va ve vi vo xa xe xi za ze zi zo bl br cr dr fl fr gl gr pl pr sl st tr qu x z k ng th'
).split(' ');
const PREFIXES = [
  '',
  '',
  '',
  '',
  'lib',
  'lib',
  'python3.12-',
  'perl5.38-',
  'ocaml5.1-',
  'haskell-',
  'gst-',
  'xorg-',
];
const TOOLS = ['cc', 'ld', 'ar', 'install', 'sed', 'grep', 'awk', 'find', 'patch', 'make', 'sh', 'tar'];
const HARDENING = 'bindnow format fortify fortify3 pic relro stackprotector strictoverflow zerocallusedregs';

interface Node {
  /** Nix variable of the derivation. */
  readonly v: string;
  readonly outputs: readonly string[];
  readonly pname: string;
}

/** Generates a closure of `count` derivations; pure and deterministic in (count, seed). */
export function generateClosure(options: GenerateOptions): GeneratedClosure {
  const { count, seed } = options;
  const hosts = options.hosts ?? 0;
  const workload = options.workload ?? 'nixpkgs';
  if (!WORKLOADS.includes(workload)) throw new RangeError(`workload must be one of ${WORKLOADS.join(', ')}`);
  const deep = workload === 'deep';
  if (!Number.isInteger(count) || count < MIN_COUNT)
    throw new RangeError(`count must be an integer of at least ${MIN_COUNT}, got ${count}`);
  if (!Number.isInteger(seed)) throw new RangeError(`seed must be an integer, got ${seed}`);
  if (!Number.isInteger(hosts) || hosts < 0) throw new RangeError(`hosts must be a count, got ${hosts}`);
  const rng = new Rng(seed);
  const files = new Map<string, string>();
  const out: string[] = [];
  const words = Array.from({ length: 900 }, () => {
    let w = '';
    for (let k = rng.range(2, 3); k > 0; k--) w += rng.pick(SYLLABLES);
    return w;
  });
  const word = (): string => words[rng.skewed(words.length)] as string;
  const version = (): string =>
    rng.chance(0.15)
      ? `unstable-2024-0${rng.range(1, 9)}-${rng.range(10, 28)}`
      : `${rng.range(0, 12)}.${rng.range(0, 40)}` + (rng.chance(0.6) ? `.${rng.range(0, 20)}` : '');

  out.push(
    `# Generated by bench/generate.ts (${deep ? 'workload deep, ' : ''}seed ${seed}, ${count} derivations${hosts > 0 ? `, ${hosts} hosts` : ''}): do not edit.`,
  );
  // With hosts the file is a function, so a flake (pure, no currentSystem) can say the system.
  if (hosts > 0) out.push('{ system ? builtins.currentSystem }:', 'let');
  else out.push('let', '  system = builtins.currentSystem;');

  // Shared shell snippets: nixpkgs phases repeat a lot of boilerplate, but not all of it.
  const snippets: string[] = [];
  for (let j = 0; j < 700; j++) snippets.push(makeSnippet(rng, word));
  snippets.forEach((s, j) => out.push(`  s${j} = ${nixString([s])};`));

  // The builders: shell builtins only (the builder's PATH is empty), so any drv here can be built.
  out.push(
    `  defaultBuilder = builtins.toFile "default-builder.sh" ${nixString([
      'for o in $outputs; do\n  eval "p=\\$$o"\n  echo "$name $o" > "$p"\ndone\n',
    ])};`,
  );
  out.push(
    `  fetchBuilder = builtins.toFile "fetchurl-builder.sh" ${nixString(['echo "$name" > "$out"\n'])};`,
  );
  let toFiles = 2;
  // A path-literal directory shared by the bootstrap tools and some in-tree packages.
  files.set('srcs/common/README', 'Shared in-tree sources of the generated closure.\n');
  files.set('srcs/common/setup.sh', 'export LC_ALL=C\nunset TZ\n');
  let pathLiterals = 1;

  const nodes: Node[] = [];
  const packages: Node[] = [];
  const unreferenced = new Set<string>();
  let fetches = 0;
  const use = (n: Node): Node => (unreferenced.delete(n.v), n);
  const outRef = (n: Node, output = 'out'): Part => ref(output === 'out' ? n.v : `${n.v}.${output}`);
  const devRef = (n: Node): Part => outRef(n, n.outputs.includes('dev') ? 'dev' : 'out');
  const list = (xs: readonly Part[]): Part[] => xs.flatMap((x, i) => (i === 0 ? [x] : [' ', x]));

  // The longest chain below each derivation, counting itself (for `depth`; the output ignores it).
  const depthOf = new Map<string, number>();
  const emit = (n: Node, attrs: [string, string][], below: readonly Node[] = []): void => {
    depthOf.set(n.v, 1 + Math.max(0, ...below.map((b) => depthOf.get(b.v) ?? 0)));
    out.push(`  ${n.v} = derivation {`);
    for (const [k, val] of attrs) out.push(k === 'inherit' ? `    inherit ${val};` : `    ${k} = ${val};`);
    out.push('  };');
    nodes.push(n);
    unreferenced.add(n.v);
  };
  const common = (n: Node, args: string): [string, string][] => [
    ['name', nixString([n.pname])],
    ['inherit', 'system'],
    ['builder', '"/bin/sh"'],
    ['args', args],
  ];

  // The core: each depends on all earlier ones, as a bootstrap chain does.
  const CORE: [string, string[]][] = [
    ['bootstrap-tools', ['out']],
    ['glibc-2.39-52', ['out', 'dev', 'bin']],
    ['binutils-2.41', ['out', 'lib']],
    ['gcc-13.2.0', ['out', 'lib']],
    ['coreutils-9.4', ['out', 'info']],
    ['bash-5.2p26', ['out', 'dev', 'man']],
    ['gnumake-4.4.1', ['out']],
    ['gnused-4.9', ['out']],
    ['gnugrep-3.11', ['out']],
    ['gawk-5.2.2', ['out']],
    ['findutils-4.9.0', ['out']],
    ['diffutils-3.10', ['out']],
    ['patch-2.7.6', ['out']],
    ['xz-5.4.6', ['out', 'dev', 'bin']],
    ['gzip-1.13', ['out']],
    ['gnutar-1.35', ['out']],
    ['curl-8.6.0', ['out', 'dev', 'bin']],
    ['mirrors-list', ['out']],
    ['stdenv-linux', ['out']],
  ];
  const core: Node[] = [];
  for (const [i, [pname, outputs]] of CORE.entries()) {
    const n: Node = { v: `c${i}`, outputs, pname };
    const prev = core.map(use);
    const attrs = common(n, '[ "-e" defaultBuilder ]');
    attrs.push(['outputs', `[ ${outputs.map((o) => `"${o}"`).join(' ')} ]`]);
    if (i === 0) attrs.push(['src', './srcs/common']);
    attrs.push(['initialPath', nixString(list(prev.map((p) => outRef(p))))]);
    attrs.push(['propagatedBuildInputs', nixString(list(prev.slice(-3).map(devRef)))]);
    attrs.push(['setup', nixString([rng.pick(snippets), rng.pick(snippets)])]);
    attrs.push(['preHook', nixString([ref(`s${rng.skewed(snippets.length)}`), '\n'])]);
    emit(n, attrs, prev);
    core.push(n);
  }
  const stdenv = core[core.length - 1] as Node;
  const curl = core[16] as Node;
  const mirrors = core[17] as Node;
  const coreTools = core.slice(1, 16);
  unreferenced.clear(); // the core is reached through stdenv

  const fetchDeps = [mirrors, curl, stdenv];
  const fetch = (pname: string, ver: string, ext: string): Node => {
    const name = `${pname}-${ver}.${ext}`;
    const n: Node = { v: `n${nodes.length}`, outputs: ['out'], pname: name };
    const digest = createHash('sha256').update(`${name}\n`).digest();
    const sri = rng.chance(0.8);
    const host = rng.pick([
      'mirror://gnu',
      'https://github.com',
      'https://download.gnome.org',
      'mirror://sourceforge',
    ]);
    const url = `${host}/${pname}/${pname}-${ver}.${ext}`;
    emit(
      n,
      [
        ...common(n, '[ "-e" fetchBuilder ]'),
        ['outputHash', `"${sri ? `sha256-${digest.toString('base64')}` : digest.toString('hex')}"`],
        ...(sri ? [] : ([['outputHashAlgo', '"sha256"']] as [string, string][])),
        ['outputHashMode', '"flat"'],
        [
          'urls',
          nixString([
            url,
            rng.chance(0.3) ? ` ${url.replace(/^[a-z]+:\/\/[^/]+/, 'https://ftp.example.org')}` : '',
          ]),
        ],
        ['mirrorsFile', nixString([outRef(mirrors)])],
        ['nativeBuildInputs', nixString([devRef(curl)])],
        ['stdenv', nixString([outRef(stdenv)])],
        [
          'impureEnvVars',
          '"http_proxy https_proxy ftp_proxy all_proxy no_proxy NIX_CURL_FLAGS NIX_HASHED_MIRRORS NIX_CONNECT_TIMEOUT"',
        ],
        ['curlOpts', '""'],
        ['postFetch', '""'],
        ['downloadToTemp', '""'],
        ['executable', '""'],
        ['preferHashedMirrors', '"1"'],
        ['preferLocalBuild', '"1"'],
        ['showURLs', '""'],
        ['SSL_CERT_FILE', '"/no-cert-file.crt"'],
      ],
      fetchDeps,
    );
    fetches++;
    return n;
  };

  // Packages, each optionally preceded by its source fetch, until only the root is left to add.
  while (nodes.length < count - 1) {
    const pname = `${rng.pick(PREFIXES)}${word()}${rng.chance(0.3) ? `-${word()}` : ''}`;
    const ver = version();
    let src: Part[] = [];
    let srcNode: Node | undefined;
    if (nodes.length < count - 2 && rng.chance(deep ? 0.15 : 0.4)) {
      srcNode = use(fetch(pname, ver, rng.pick(['tar.gz', 'tar.xz', 'tar.bz2', 'zip'])));
      src = [outRef(srcNode)];
    } else if (deep && rng.chance(0.4)) {
      // An in-tree source: one file, or a directory of a few scripts and a Nix file.
      const base = `srcs/${pname}-${nodes.length}`;
      if (rng.chance(0.5)) {
        const file = `${base}.${rng.pick(['sh', 'py', 'cmake', 'conf'])}`;
        files.set(file, longText(rng, word, snippets, rng.range(4, 24)));
        src = [ref(`./${file}`)];
      } else {
        files.set(`${base}/default.nix`, `{ ${word()} = "${word()}"; ${word()} = ${rng.range(0, 99)}; }\n`);
        for (let j = rng.range(1, 4); j > 0; j--)
          files.set(`${base}/${word()}-${j}.sh`, longText(rng, word, snippets, rng.range(2, 12)));
        src = [ref(`./${base}`)];
      }
      pathLiterals++;
    } else if (rng.chance(0.05)) {
      const dir = `srcs/${pname}-${nodes.length}`;
      files.set(`${dir}/default.nix`, `{ ${word()} = "${word()}"; }\n`);
      files.set(`${dir}/${word()}.sh`, `${rng.pick(snippets)}\n`);
      pathLiterals++;
      src = [ref(`./${dir}`)];
    } else if (rng.chance(0.03)) src = [ref('./srcs/common')];
    const n: Node = {
      v: `n${nodes.length}`,
      outputs: rng.chance(0.55)
        ? ['out']
        : rng.chance(0.7)
          ? ['out', 'dev']
          : rng.pick([
              ['out', 'dev', 'man'],
              ['out', 'lib', 'dev'],
              ['bin', 'out', 'dev'],
            ]),
      pname: `${pname}-${ver}`,
    };
    // Dependencies: the oldest unreferenced package (so the graph stays connected, as nixpkgs
    // closures are), some recent packages and some from anywhere.
    const deps = new Set<Node>();
    if (deep && packages.length > 0) {
      // A chain: the package before, the oldest one nothing depends on yet, and a few from anywhere.
      deps.add(packages[packages.length - 1] as Node);
      const oldest = unreferenced.values().next();
      if (!oldest.done && rng.chance(0.9)) deps.add(nodes[Number(oldest.value.slice(1))] as Node);
      for (let j = rng.range(0, 3); j > 0; j--) deps.add(packages[rng.int(packages.length)] as Node);
    } else if (packages.length > 0) {
      const oldest = unreferenced.values().next();
      if (!oldest.done && rng.chance(0.9)) deps.add(nodes[Number(oldest.value.slice(1))] as Node);
      const k = rng.chance(0.08) ? 0 : Math.min(40, 1 + Math.floor(-Math.log(1 - rng.next()) * 6));
      for (let j = 0; j < k; j++)
        deps.add(
          rng.chance(0.6)
            ? (packages[packages.length - 1 - rng.int(Math.min(64, packages.length))] as Node)
            : (packages[rng.int(packages.length)] as Node),
        );
    }
    const depList = [...deps].map(use);
    const tools = coreTools.filter(() => rng.chance(0.25));
    const propagated = depList.filter(() => rng.chance(0.3));
    const attrs = common(n, '[ "-e" defaultBuilder ]');
    attrs.push(
      ['pname', nixString([pname])],
      ['version', nixString([ver])],
      ['outputs', `[ ${n.outputs.map((o) => `"${o}"`).join(' ')} ]`],
      ['stdenv', nixString([outRef(stdenv)])],
      ['src', nixString(src)],
      ['buildInputs', nixString(list(depList.map(devRef)))],
      [
        'nativeBuildInputs',
        nixString(
          list([
            ...tools.map((t) => outRef(t)),
            ...depList.filter(() => rng.chance(0.2)).map((d) => outRef(d)),
          ]),
        ),
      ],
      ['propagatedBuildInputs', nixString(list(propagated.map(devRef)))],
    );
    for (const k of [
      'depsBuildBuild',
      'depsBuildBuildPropagated',
      'depsBuildTarget',
      'depsBuildTargetPropagated',
      'depsHostHost',
      'depsHostHostPropagated',
      'depsTargetTarget',
      'depsTargetTargetPropagated',
      'propagatedNativeBuildInputs',
    ])
      attrs.push([k, '""']);
    const flags = (style: 'configure' | 'cmake' | 'meson'): Part[] => {
      const parts: Part[] = [];
      for (let j = rng.range(2, 14); j > 0; j--) {
        const w = word();
        if (style === 'cmake') parts.push(`-D${w.toUpperCase()}=${rng.pick(['ON', 'OFF'])} `);
        else if (style === 'meson') parts.push(`-D${w}=${rng.pick(['enabled', 'disabled', 'true'])} `);
        else if (rng.chance(0.35) && depList.length > 0)
          parts.push(`--with-${w}=`, devRef(rng.pick(depList)), ' ');
        else parts.push(`--${rng.pick(['enable', 'disable', 'with', 'without'])}-${w} `);
      }
      return parts;
    };
    const buildSystem = rng.pick(['configure', 'configure', 'configure', 'cmake', 'meson'] as const);
    attrs.push(
      ['configureFlags', nixString(buildSystem === 'configure' ? flags('configure') : [])],
      ['cmakeFlags', nixString(buildSystem === 'cmake' ? flags('cmake') : [])],
      ['mesonFlags', nixString(buildSystem === 'meson' ? flags('meson') : [])],
      ['makeFlags', nixString(rng.chance(0.4) ? ['PREFIX=$(out) ', `${word().toUpperCase()}=1`] : [])],
      ['doCheck', rng.chance(0.5) ? '"1"' : '""'],
      ['doInstallCheck', rng.chance(0.2) ? '"1"' : '""'],
      ['strictDeps', '"1"'],
      ['enableParallelBuilding', '"1"'],
      ['NIX_HARDENING_ENABLE', `"${HARDENING}"`],
      [
        'NIX_CFLAGS_COMPILE',
        nixString(depList.filter(() => rng.chance(0.4)).flatMap((d) => ['-I', devRef(d), '/include '])),
      ],
      [
        'NIX_LDFLAGS',
        nixString(
          depList
            .filter(() => rng.chance(0.3))
            .flatMap((d) => ['-L', outRef(d), '/lib -rpath ', outRef(d), '/lib ']),
        ),
      ],
    );
    const phase = (lines: number): string => {
      const parts: Part[] = [];
      for (let j = rng.range(1, lines); j > 0; j--) {
        const r = rng.next();
        if (r < 0.55) parts.push(ref(`s${rng.skewed(snippets.length)}`));
        else if (r < 0.8 && depList.length > 0) {
          const d = rng.pick(depList);
          const alternatives: Part[][] = [
            [
              '  substituteInPlace ',
              `src/${word()}.c --replace-fail /usr/bin/${word()} `,
              outRef(d),
              `/bin/${word()}\n`,
            ],
            ['  wrapProgram $out/bin/', word(), ' --prefix PATH : ', outRef(d), '/bin\n'],
            ['  ln -s ', outRef(d), `/lib/lib${word()}.so $out/lib/\n`],
            ['  export ', word().toUpperCase(), '_PATH=', outRef(d), `/share/${word()}\n`],
          ];
          parts.push(...rng.pick(alternatives));
        } else
          parts.push(
            `  ${rng.pick(TOOLS)} ${word()} ${word()}-${version()} $${rng.pick(n.outputs)}/${word()}\n`,
          );
      }
      return nixString(parts);
    };
    const phases: [string, number][] = [
      ['postPatch', 12],
      ['preConfigure', 8],
      ['postInstall', 20],
      ['postFixup', 12],
    ];
    for (const [k, lines] of phases)
      attrs.push([k, rng.chance(0.8) ? phase(deep ? 3 * lines : lines) : '""']);
    if (deep) {
      // A build script written out in full, and the package's metadata as text.
      attrs.push(['buildPhase', nixString([longText(rng, word, snippets, rng.range(20, 90))])]);
      const prose = (k: number): string => Array.from({ length: k }, word).join(' ');
      attrs.push([
        'meta',
        nixString([
          `description=${prose(rng.range(4, 12))}\nlongDescription=${prose(rng.range(40, 260))}\n` +
            `homepage=https://${word()}.example.org/${pname}\nlicense=${rng.pick(['MIT', 'GPL-2.0-or-later', 'Apache-2.0', 'BSD-3-Clause', 'LGPL-2.1-only'])}\n` +
            `maintainers=${prose(rng.range(1, 5))}\nplatforms=x86_64-linux aarch64-linux\n`,
        ]),
      ]);
    }
    if (rng.chance(0.35)) attrs.push(['installCheckPhase', phase(6)]);
    if (rng.chance(deep ? 0.2 : 0.06)) {
      const file = `srcs/${n.pname}-fix-${word()}.patch`;
      files.set(file, makePatch(rng, word));
      pathLiterals++;
      attrs.push(['patches', nixString([ref(`./${file}`)])]);
    } else attrs.push(['patches', '""']);
    if (rng.chance(0.08)) {
      const text: Part[] = [`# setup hook of ${pname}\n`, rng.pick(snippets)];
      if (rng.chance(0.5)) text.push('\nsource ', ref('./srcs/common'), '/setup.sh\n');
      attrs.push(['setupHook', `builtins.toFile "${pname}-setup-hook.sh" ${nixString(text)}`]);
      toFiles++;
    }
    if (deep && rng.chance(0.35)) {
      // A configuration file of a few KB, as `writeText` makes them.
      const text: Part[] = [
        `# ${pname} ${ver} configuration\n`,
        longText(rng, word, snippets, rng.range(10, 60)),
      ];
      if (rng.chance(0.3)) text.push('include ', ref('./srcs/common'), '/setup.sh\n');
      attrs.push(['configFile', `builtins.toFile "${pname}-${ver}.conf" ${nixString(text)}`]);
      toFiles++;
    }
    attrs.push(['passthruTests', nixString([rng.chance(0.3) ? `${word()} ${word()}` : ''])]);
    emit(n, attrs, srcNode === undefined ? [stdenv, ...depList] : [stdenv, srcNode, ...depList]);
    packages.push(n);
  }

  // The root: like a system-path, it depends on every derivation nothing else depends on.
  const rootNode: Node = { v: 'root', outputs: ['out'], pname: 'bench-closure-root' };
  const leaves = [...unreferenced].map((v) => nodes[Number(v.slice(1))] as Node);
  emit(
    rootNode,
    [
      ...common(rootNode, '[ "-e" defaultBuilder ]'),
      ['paths', nixString(list(leaves.map((l) => outRef(l, l.outputs[0]))))],
      ['preferLocalBuild', '"1"'],
    ],
    leaves,
  );
  out.push('in');
  if (hosts === 0) out.push('root');
  else {
    // Each host is its own small derivation over the whole shared closure.
    out.push('{');
    for (let h = 0; h < hosts; h++)
      out.push(
        `  host${h} = derivation {`,
        `    name = "host${h}-system";`,
        '    inherit system;',
        '    builder = "/bin/sh";',
        '    args = [ "-e" defaultBuilder ];',
        `    hostName = "host${h}";`,
        '    base = root;',
        '  };',
      );
    out.push('}');
  }
  out.push('');
  const result = new Map<string, string>([['default.nix', out.join('\n')]]);
  if (hosts > 0)
    result.set(
      'flake.nix',
      [
        '# Generated by bench/generate.ts: the hosts of default.nix as flake packages.',
        '{',
        '  outputs = { self }: {',
        '    packages = builtins.listToAttrs (map (system: {',
        '      name = system;',
        '      value = import ./default.nix { inherit system; };',
        '    }) [ "x86_64-linux" "aarch64-linux" ]);',
        '  };',
        '}',
        '',
      ].join('\n'),
    );
  for (const k of [...files.keys()].sort()) result.set(k, files.get(k) as string);
  return {
    files: result,
    derivations: { core: core.length, packages: packages.length, fetches, root: 1, hosts },
    sources: { pathLiterals, toFiles },
    depth: depthOf.get('root') ?? 0,
  };
}

function makeSnippet(rng: Rng, word: () => string): string {
  const lines: string[] = [];
  for (let k = rng.range(1, 6); k > 0; k--) {
    const w = word();
    lines.push(
      rng.pick([
        `  substituteInPlace ${w}/Makefile.in --replace-fail '${word()}' '${word()}'`,
        `  patchShebangs --build ${w}/${word()}.sh`,
        `  install -Dm644 ${w}.${rng.pick(['conf', 'desktop', 'xml', 'pc'])} $out/share/${word()}/${w}`,
        `  mkdir -p $out/${rng.pick(['bin', 'lib', 'share', 'libexec'])}/${w}`,
        `  rm -rf $out/share/${w} $out/lib/*.la`,
        `  for f in $out/bin/*; do ${rng.pick(['wrapProgram', 'patchelf --shrink-rpath', 'chmod +x'])} "$f"; done`,
        `  if [ -e ${w}/${word()} ]; then\n    cp -r ${w}/${word()} $out/share/\n  fi`,
        `  export ${w.toUpperCase()}_${word().toUpperCase()}=${rng.range(0, 99)}`,
        `  sed -i -e 's|/usr/${w}|$out/${w}|g' ${word()}/${word()}.${rng.pick(['py', 'pl', 'in', 'cmake'])}`,
        `  moveToOutput lib/${w} "\${!outputDev}"`,
        `  echo "${word()} ${word()} ${word()}" >> $out/nix-support/${w}`,
      ]),
    );
  }
  return lines.join('\n') + '\n';
}

/** `lines` lines of shell, config and prose: snippets picked uniformly, so less alike than phases. */
function longText(rng: Rng, word: () => string, snippets: readonly string[], lines: number): string {
  let s = '';
  for (let j = 0; j < lines; j++) {
    const r = rng.next();
    if (r < 0.3) s += rng.pick(snippets);
    else if (r < 0.6)
      s += `${word()}_${word()} = ${rng.chance(0.5) ? rng.range(0, 65535) : `"${word()} ${word()}"`}\n`;
    else s += `# ${Array.from({ length: rng.range(3, 14) }, word).join(' ')}\n`;
  }
  return s;
}

function makePatch(rng: Rng, word: () => string): string {
  const file = `src/${word()}.c`;
  const lines = [`--- a/${file}`, `+++ b/${file}`];
  for (let h = rng.range(1, 3); h > 0; h--) {
    const at = rng.range(1, 900);
    lines.push(`@@ -${at},6 +${at},6 @@`);
    for (let k = 0; k < 6; k++) {
      const l = `${word()}(${word()}, ${rng.range(0, 255)});`;
      if (k === 3) lines.push(`-  ${l}`, `+  ${word()}_${l}`);
      else lines.push(`   ${l}`);
    }
  }
  return lines.join('\n') + '\n';
}

/**
 * The generated closure with its last `n` package derivations changed (an attribute added), as an
 * update of a few packages changes them and everything that depends on them.
 */
export function changedVariant(
  closure: GeneratedClosure,
  n: number,
): { closure: GeneratedClosure; changed: number } {
  const text = closure.files.get('default.nix') ?? '';
  const out = text.split('\n');
  const heads = out.flatMap((l, i) => (/^ {2}[A-Za-z_][\w'-]* = derivation \{$/.test(l) ? [i] : []));
  // The last derivation is the root: it changes with any of them, so it is not picked.
  const picked = heads.slice(0, -1).slice(-n);
  for (const i of [...picked].reverse()) out.splice(i + 1, 0, '    benchVariant = "changed";');
  return {
    closure: { ...closure, files: new Map([...closure.files, ['default.nix', out.join('\n')]]) },
    changed: picked.length,
  };
}

/** Writes a generated closure under `dir` (emptied first), so `nix-instantiate dir` evaluates it. */
export function writeClosure(dir: string, closure: GeneratedClosure): void {
  rmSync(dir, { recursive: true, force: true });
  for (const [rel, text] of closure.files) {
    const path = join(dir, rel);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, text);
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const { values } = parseArgs({
    options: {
      count: { type: 'string' },
      seed: { type: 'string', default: '1' },
      hosts: { type: 'string', default: '0' },
      workload: { type: 'string', default: 'nixpkgs' },
      out: { type: 'string' },
    },
  });
  if (values.count === undefined || values.out === undefined) {
    console.error(
      `usage: node bench/generate.ts --count N [--seed S] [--workload ${WORKLOADS.join('|')}] [--hosts H] --out DIR`,
    );
    process.exit(2);
  }
  const closure = generateClosure({
    count: Number(values.count),
    seed: Number(values.seed),
    hosts: Number(values.hosts),
    workload: values.workload as Workload,
  });
  writeClosure(values.out, closure);
  console.log(
    JSON.stringify({ out: values.out, ...closure.derivations, ...closure.sources, depth: closure.depth }),
  );
}
