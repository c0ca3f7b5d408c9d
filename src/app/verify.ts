// verifyPlan: one streaming pass over a bundle that checks everything import relies on (the
// bundle verifier in core/bundle/), without touching a store, with progress.
import {
  openBundle,
  readBundleHead,
  verifyBundle,
  type BundleSource,
  type VerifyOptions as CoreVerifyOptions,
  type VerifyReport as CoreVerifyReport,
  trustReportOf,
  type TrustReport,
} from '../core/bundle/index.js';
import { parsePublicKey } from '../core/signing.js';
import { progressOf, type Progress } from './deps.js';

/** What to require of a bundle beyond its own consistency. */
export interface VerifyOptions {
  /** Public keys (`NAME:base64`); when given, the manifest must carry a valid signature by one. */
  readonly trustedKeys?: readonly string[] | undefined;
  /** The store dir the bundle must be for (a bundle for another realm is refused). */
  readonly storeDir?: string | undefined;
  /** Accept build outputs no trusted signature proves (`--no-check-sigs`), counting them. */
  readonly noCheckSigs?: boolean | undefined;
}

/** The outcome of a successful verification (a failed one throws). */
/**
 * What `verify` reports: the verifier's findings and the plan's trust, without the verifier's
 * working state (its output-path checks and the outputs they declared, which the use cases that
 * go on to import, relocate or diff hand on; `--json` prints this whole).
 */
export interface VerifyReport extends Omit<
  CoreVerifyReport,
  'outputChecks' | 'derivations' | 'declaredOutputs' | 'shapes'
> {
  readonly bundlePath: string;
  /** What was proven about who made the plan (no keys: integrity only, signatures not checked). */
  readonly trust: TrustReport;
}

/**
 * Runs the bundle verifier over `bundle` with a progress task ticking per path; `extra` passes
 * the verifier's other options (store validity, an entry callback) through.
 */
export async function verifyWithProgress(
  bundle: string | BundleSource,
  options: CoreVerifyOptions,
  progress: Progress | undefined,
  signal?: AbortSignal,
): Promise<CoreVerifyReport> {
  const source = typeof bundle === 'string' ? await openBundle(bundle) : bundle;
  try {
    // The manifest says how many paths there are, so the bar can show a total.
    const { manifest } = await readBundleHead(source);
    const task = progressOf({ progress }).start('verifying', manifest.paths);
    try {
      return await verifyBundle(source, {
        ...options,
        onEntry: async (e) => {
          signal?.throwIfAborted();
          await options.onEntry?.(e);
          task.tick(1, e.nar.narSize);
        },
      });
    } finally {
      task.done();
    }
  } finally {
    if (typeof bundle === 'string') await source.close();
  }
}

/** Verifies a bundle completely; the use case behind `nix-plan verify`. */
export async function verifyPlan(
  bundlePath: string,
  options: VerifyOptions = {},
  deps: { progress?: Progress | undefined; signal?: AbortSignal | undefined } = {},
): Promise<VerifyReport> {
  const keys = (options.trustedKeys ?? []).map(parsePublicKey);
  const report = await verifyWithProgress(
    bundlePath,
    {
      trustedKeys: keys,
      storeDir: options.storeDir,
      noCheckSigs: options.noCheckSigs,
      // No entry's bytes are kept past its checks: they need not be copied out of the stream.
      keptFiles: 'view',
    },
    deps.progress,
    deps.signal,
  );
  const {
    outputChecks: _checks,
    derivations: _derivations,
    declaredOutputs: _declared,
    shapes: _shapes,
    ...findings
  } = report;
  return {
    bundlePath,
    ...findings,
    trust: trustReportOf(report.manifest, keys, {
      noCheckSigs: report.noCheckSigs,
      unproven: report.unproven,
    }),
  };
}
