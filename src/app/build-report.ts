// Building a plan's roots and saying what happened: which derivations Nix built, which paths it
// substituted, and when each root was ready. Nix is asked for its machine-readable log (one build
// for all roots, so it still builds them in parallel); the human log is written on from it.
import type { BundleRoot } from '../core/bundle/index.js';
import { internalJsonArgs, NixLogReader } from '../nix/build-log.js';
import { NixCommandError } from '../nix/errors.js';
import type { NixStore } from '../nix/store.js';
import { rootLabel } from './inspect.js';

/** How one root's outputs came to be. */
export interface RootBuild {
  readonly drvPath: string;
  readonly label: string;
  /** `built` here, `substituted` from a binary cache, `valid` already, or `unknown` (no log to tell). */
  readonly how: 'built' | 'substituted' | 'valid' | 'unknown';
  /** Milliseconds from the start of the build until the root was ready (undefined when not known). */
  readonly readyMs: number | undefined;
}

/** What building the roots did. */
export interface BuildReport {
  /** .drv paths Nix built, in the order it started them. */
  readonly built: readonly string[];
  /** Store paths Nix substituted. */
  readonly substituted: readonly string[];
  readonly roots: readonly RootBuild[];
  /** Milliseconds the whole build took. */
  readonly totalMs: number;
}

/**
 * Builds `roots` with one `nix-store --realise` (unless `nixArgs` choose a log format, Nix logs
 * as internal-json, and the log is read as it comes); returns what Nix printed and the report.
 */
export async function realiseWithReport(
  store: NixStore,
  roots: readonly BundleRoot[],
  options: {
    readonly addRoot?: string | undefined;
    readonly nixArgs?: readonly string[] | undefined;
    /** The user chose the log format elsewhere (the CLI's runner adds it): do not read the log. */
    readonly userLogFormat?: boolean | undefined;
    readonly nixLog?: ((chunk: Uint8Array) => void) | undefined;
    readonly now?: () => number;
  },
): Promise<{ printed: string[]; report: BuildReport }> {
  const now = options.now ?? ((): number => performance.now());
  const timed = options.userLogFormat !== true && !(options.nixArgs ?? []).includes('--log-format');
  const nixLog = options.nixLog;
  const reader = new NixLogReader(
    nixLog === undefined ? undefined : (text) => nixLog(Buffer.from(text)),
    now,
  );
  const started = now();
  let printed: string[];
  try {
    printed = await store.realise(
      roots.map((r) => r.drvPath),
      {
        addRoot: options.addRoot,
        extraArgs: timed ? internalJsonArgs(options.nixArgs) : options.nixArgs,
        onLog: timed ? (chunk) => reader.push(chunk) : nixLog,
      },
    );
  } catch (e) {
    reader.end();
    // The failure's stderr is JSON: the log was shown as text as it came (then the error points
    // at it), or, when nothing was shown, the error carries the tail of that text instead.
    if (timed && e instanceof NixCommandError)
      throw new NixCommandError(e.command, e.args, e.exitCode, reader.tail(), {
        what: 'nix-store --realise',
        shown: nixLog !== undefined,
      });
    throw e;
  }
  reader.end();
  const totalMs = Math.max(0, now() - started);
  const { built, substituted, finished } = reader.events;
  const builtSet = new Set(built);
  const substitutedSet = new Set(substituted);
  const report: BuildReport = {
    built,
    substituted,
    totalMs,
    roots: roots.map((r): RootBuild => {
      const label = rootLabel(r);
      if (!timed) return { drvPath: r.drvPath, label, how: 'unknown', readyMs: undefined };
      if (builtSet.has(r.drvPath))
        return { drvPath: r.drvPath, label, how: 'built', readyMs: finished.get(r.drvPath) };
      const outs = Object.values(r.outputs).filter((p) => substitutedSet.has(p));
      if (outs.length > 0)
        return {
          drvPath: r.drvPath,
          label,
          how: 'substituted',
          readyMs: Math.max(...outs.map((p) => finished.get(p) ?? 0)),
        };
      return { drvPath: r.drvPath, label, how: 'valid', readyMs: 0 };
    }),
  };
  return { printed, report };
}
