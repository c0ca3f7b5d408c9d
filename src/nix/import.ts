// Adding paths to a store: whether the store trusts us to (`nix store ping`), `nix-store --import`
// of an export stream, and `nix copy` from a binary cache.
import type { TargetNix } from '../core/derivation/index.js';
import { FLAKE_FEATURES } from './evaluate.js';
import { NixCommandError } from './errors.js';
import { batchPaths, type NixStore } from './store.js';

/** `nix copy` is behind the nix-command feature on every Nix that has it. */
const NIX_COMMAND = ['--extra-experimental-features', 'nix-command'];

/**
 * Whether the store trusts this user, so `nix-store --import` (which needs trust for paths that
 * are not content-addressed) may be tried: `unknown` where Nix cannot say.
 */
export type StoreTrust = 'trusted' | 'untrusted' | 'unknown';

/**
 * Whether the user may `nix-store --import` into the store: Nix 2.15+ says so (`Trusted: 1` in
 * `nix store ping`, `trusted` in its `--json` form); older Nix only tells local from daemon
 * stores, and a local store is ours. `unknown` when it cannot be known (a daemon on old Nix): try
 * and see. The text form comes first: it answers on every Nix in one process (the `--json` form
 * is refused by Nix before 2.15); the JSON form is asked only about a store the text form says
 * nothing of.
 */
export async function storeTrust(store: NixStore): Promise<StoreTrust> {
  const text = await storePing(store);
  if (text.ok) {
    if (text.trusted === '1') return 'trusted';
    if (text.trusted === '0') return 'untrusted';
    if (text.url !== undefined && isLocalUrl(text.url)) return 'trusted';
  }
  const json = await store.runner.run(
    'nix',
    [...FLAKE_FEATURES, ...store.storeArgs(), 'store', 'ping', '--json'],
    { allowFailure: true },
  );
  if (json.code === 0) {
    try {
      const info = JSON.parse(json.stdout.toString('utf8')) as { trusted?: unknown };
      if (info.trusted === true || info.trusted === 1) return 'trusted';
      if (info.trusted === false || info.trusted === 0) return 'untrusted';
    } catch {
      // nothing more to learn
    }
  }
  return 'unknown';
}

/** What `nix store ping` (text form) said of a store: `ok` false when it failed. */
export interface StorePing {
  readonly ok: boolean;
  readonly url?: string | undefined;
  readonly version?: string | undefined;
  readonly trusted?: string | undefined;
}

/** A store URL Nix prints for a store this process writes itself (`local`, `local?…`, a path). */
function isLocalUrl(url: string): boolean {
  return url === 'local' || url.startsWith('local?') || url.startsWith('/');
}

const pings = new WeakMap<NixStore, Promise<StorePing>>();

/**
 * `nix store ping` in its text form, asked once per NixStore (trust and the target's Nix share
 * the answer): the store's URL as Nix resolved it (`local`, `daemon`, …), the version of the Nix
 * that serves it (Nix 2.8 reports it for a local store; daemons of newer Nix report theirs) and,
 * from Nix 2.15 on, whether it trusts us.
 */
export function storePing(store: NixStore): Promise<StorePing> {
  let p = pings.get(store);
  if (p === undefined) {
    p = store.runner
      .run('nix', [...FLAKE_FEATURES, ...store.storeArgs(), 'store', 'ping'], { allowFailure: true })
      .then((r) => {
        if (r.code !== 0) return { ok: false };
        const said = r.stdout.toString('utf8') + r.stderr;
        const field = (name: string): string | undefined =>
          new RegExp(`^${name}: (\\S+)$`, 'm').exec(said)?.[1];
        return { ok: true, url: field('Store URL'), version: field('Version'), trusted: field('Trusted') };
      });
    pings.set(store, p);
  }
  return p;
}

/**
 * The experimental features the Nix on PATH has on, under the environment and NIX_CONFIG an
 * import runs with: the `experimental-features = …` line of `nix show-config` (or `nix config
 * show` where that alias is gone); undefined when neither answers. The text form, because Nix 2.8
 * writes the features as enum numbers in the `--json` form. Nix drops the names it does not know
 * when it reads its settings, so a feature listed is one this Nix knows and has on.
 */
export async function experimentalFeatures(store: NixStore): Promise<ReadonlySet<string> | undefined> {
  for (const cmd of [['show-config'], ['config', 'show']]) {
    const r = await store.runner.run('nix', [...NIX_COMMAND, ...cmd], { allowFailure: true });
    if (r.code !== 0) continue;
    const line = /^experimental-features = (.*)$/m.exec(r.stdout.toString('utf8'));
    if (line !== null) return new Set((line[1] ?? '').split(' ').filter((f) => f !== ''));
  }
  return undefined;
}

/**
 * What the Nix that will parse the plan's .drv files in `store` is known to accept: for a local
 * store, its version and experimental features (two processes: the ping, shared with
 * `storeTrust`, and the features); for a daemon, its version when it reports one (its features
 * cannot be asked: the client does not send its own, and the daemon tells none).
 */
export async function targetNix(store: NixStore): Promise<TargetNix> {
  const ping = await storePing(store);
  if (!ping.ok || ping.url === undefined) return { kind: 'other', label: 'the target store' };
  if (isLocalUrl(ping.url))
    return {
      kind: 'local',
      version: ping.version,
      features: await experimentalFeatures(store),
      label: `the store (${ping.url})`,
    };
  if (ping.url === 'daemon' || ping.url.startsWith('unix://'))
    return { kind: 'daemon', version: ping.version, label: `the daemon (${ping.url})` };
  return { kind: 'other', version: ping.version, label: `the store ${ping.url}` };
}

/**
 * `nix-store --import` of an export stream (bytes, chunks, or a `FileInput`); a failure is a
 * NixCommandError (see `isSignatureRefusal` for the store wanting signatures). `onPaths` counts the
 * paths as Nix reports them. Returns the paths Nix reported: every path of the stream, each one
 * added or found valid already (Nix prints them once it has added the last one).
 */
export async function importExport(
  store: NixStore,
  input: Uint8Array | AsyncIterable<Uint8Array>,
  onPaths?: (count: number) => void,
): Promise<string[]> {
  const args = [...store.storeArgs(), '--import'];
  // nix-store --import prints each path, one a line.
  const out: Buffer[] = [];
  const onStdout = (chunk: Uint8Array): void => {
    out.push(Buffer.from(chunk));
    onPaths?.(chunk.filter((b) => b === 0x0a).length);
  };
  const result = await store.runner.run('nix-store', args, { input, allowFailure: true, onStdout });
  NixCommandError.check('nix-store', args, result, { what: 'nix-store --import' });
  return Buffer.concat(out)
    .toString('utf8')
    .split('\n')
    .filter((l) => l !== '');
}

/**
 * `nix copy --from FROM [--to STORE] [--derivation] PATHS…` into `store` (its `--store` URI, if
 * any, is the destination), batched to fit the command line. With `derivation`, `.drv` paths mean
 * themselves, not their outputs (and any other path means its deriver). A failure is a
 * NixCommandError named `what`.
 */
export async function copyPaths(
  store: NixStore,
  from: string,
  paths: readonly string[],
  options: { derivation?: boolean; what?: string } = {},
): Promise<void> {
  const to = store.options.store === undefined ? [] : ['--to', store.options.store];
  const base = [
    ...NIX_COMMAND,
    'copy',
    '--from',
    from,
    ...to,
    ...(options.derivation === true ? ['--derivation'] : []),
  ];
  for (const batch of batchPaths(paths)) {
    const args = [...base, ...batch];
    const result = await store.runner.run('nix', args, { allowFailure: true });
    NixCommandError.check('nix', args, result, { what: options.what ?? 'nix copy' });
  }
}
