// The architecture's layer rules (docs/architecture.md, "Layers"), as a check over the import graph
// of src/: which layer may import which, where file and process IO may happen, and no cycles.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, posix, relative } from 'node:path';
import ts from 'typescript';

/** One module of src/: its path under src/ (`core/hash.ts`), what it imports, what globals it uses. */
export interface ModuleInfo {
  readonly path: string;
  /** Imported modules as paths under src/ (`core/errors.ts`), or package names (`node:fs`, `@actions/core`). */
  readonly imports: readonly string[];
  /** The properties of the `process` global it reads or calls (`env`, `stdout`, …). */
  readonly processUses: readonly string[];
}

/** The layers, each with the layers it may import. */
export const LAYERS: Readonly<Record<string, readonly string[]>> = {
  core: ['core'],
  nix: ['core', 'nix'],
  transport: ['core', 'transport'],
  app: ['core', 'nix', 'transport', 'app'],
  cli: ['core', 'nix', 'transport', 'app', 'cli'],
  action: ['core', 'nix', 'transport', 'app', 'action'],
  entry: ['cli', 'action', 'entry'],
};

/** Packages a layer may import besides Node's own (`node:…`). */
const PACKAGES: Readonly<Record<string, readonly string[]>> = {
  transport: ['@actions/artifact'],
  action: ['@actions/artifact', '@actions/core', '@actions/exec'],
};

/** The only modules that may start processes: Nix's tools here, any program on a host over SSH. */
const PROCESS_IO = ['nix/runner.ts', 'nix/ssh.ts'];
/** Node's file-system modules. */
const FILE_MODULES = ['node:fs', 'node:fs/promises'];
/** The core's only modules that touch files: a bundle is read through one descriptor and written atomically. */
const CORE_FILE_IO = ['core/bundle/source.ts', 'core/bundle/writer.ts'];
/** The only modules that may use the `process` global (the environment, stdio, exit codes). */
const PROCESS_GLOBAL = [
  'entry/',
  'cli/main.ts',
  'action/run.ts',
  'action/exec-runner.ts', // each command's line echoed into the job log
  'nix/runner.ts',
  'core/bundle/writer.ts', // its pid in a temporary file's name
];

const layerOf = (path: string): string => path.split('/')[0] ?? '';
const allowed = (path: string, list: readonly string[]): boolean =>
  list.some((p) => (p.endsWith('/') ? path.startsWith(p) : path === p));

/** Every rule the modules break, one sentence each (empty when they keep them all). */
export function layerProblems(modules: readonly ModuleInfo[]): string[] {
  const problems: string[] = [];
  const known = new Set(modules.map((m) => m.path));
  for (const m of modules) {
    const layer = layerOf(m.path);
    const mayImport = LAYERS[layer];
    if (mayImport === undefined) {
      problems.push(`${m.path} is in no layer (${Object.keys(LAYERS).join(', ')})`);
      continue;
    }
    for (const i of m.imports) {
      if (i.startsWith('node:')) {
        if (i === 'node:child_process' && !allowed(m.path, PROCESS_IO))
          problems.push(`${m.path} imports ${i}: only ${PROCESS_IO.join(', ')} may start processes`);
        if (FILE_MODULES.includes(i) && layer === 'core' && !allowed(m.path, CORE_FILE_IO))
          problems.push(`${m.path} imports ${i}: in the core only ${CORE_FILE_IO.join(', ')} touch files`);
      } else if (i.endsWith('.ts')) {
        if (!known.has(i)) problems.push(`${m.path} imports ${i}, which is not a module of src/`);
        else if (!mayImport.includes(layerOf(i)))
          problems.push(`${m.path} imports ${i}: ${layer} may import only ${mayImport.join(', ')}`);
      } else if (!(PACKAGES[layer] ?? []).includes(i))
        problems.push(`${m.path} imports the package ${i}, which the ${layer} layer may not use`);
    }
    if (m.processUses.length > 0 && !allowed(m.path, PROCESS_GLOBAL))
      problems.push(
        `${m.path} uses process.${m.processUses.join(', process.')}: only ${PROCESS_GLOBAL.join(', ')} may`,
      );
  }
  for (const cycle of importCycles(modules)) problems.push(`import cycle: ${cycle.join(' → ')}`);
  return problems;
}

/** The import cycles among the modules, each as the modules around it (the first repeated last). */
export function importCycles(modules: readonly ModuleInfo[]): string[][] {
  const graph = new Map(modules.map((m) => [m.path, m.imports.filter((i) => i.endsWith('.ts'))]));
  // Tarjan's strongly connected components; any component of two or more, or a self-import, is a cycle.
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const cycles: string[][] = [];
  const visit = (v: string): void => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) !== index.get(v)) return;
    const component: string[] = [];
    for (;;) {
      const w = stack.pop()!;
      onStack.delete(w);
      component.push(w);
      if (w === v) break;
    }
    if (component.length > 1 || (graph.get(v) ?? []).includes(v))
      cycles.push([...component.reverse(), component[0]!]);
  };
  for (const v of [...graph.keys()].sort()) if (!index.has(v)) visit(v);
  return cycles;
}

/** The modules of `srcDir` as the rules see them. */
export function readModules(srcDir: string): ModuleInfo[] {
  const files: string[] = [];
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir).sort()) {
      const p = join(dir, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (name.endsWith('.ts')) files.push(p);
    }
  };
  walk(srcDir);
  return files.map((file) => {
    const path = relative(srcDir, file).split('\\').join('/');
    const text = readFileSync(file, 'utf8');
    const imports = ts
      .preProcessFile(text, true, true)
      .importedFiles.map(({ fileName }) =>
        fileName.startsWith('.')
          ? posix.normalize(posix.join(posix.dirname(path), fileName)).replace(/\.js$/, '.ts')
          : fileName,
      );
    return { path, imports, processUses: processUses(text, file) };
  });
}

/** The `process.X` properties a module's code uses (comments and strings do not count). */
function processUses(text: string, file: string): string[] {
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, false);
  const uses = new Set<string>();
  const visit = (node: ts.Node): void => {
    if (
      ts.isPropertyAccessExpression(node) &&
      ts.isIdentifier(node.expression) &&
      node.expression.text === 'process'
    )
      uses.add(node.name.text);
    ts.forEachChild(node, visit);
  };
  visit(source);
  return [...uses].sort();
}

/** src/ of this repository. */
export const SRC_DIR = join(dirname(new URL(import.meta.url).pathname), '..', '..', 'src');
