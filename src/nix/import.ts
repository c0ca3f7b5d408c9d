// Adding paths to a store: whether the store trusts us to (`nix store ping`), `nix-store --import`
// of an export stream, and `nix copy` from a binary cache.
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
  const ping = (json: boolean): Promise<{ code: number; stdout: Buffer; stderr: string }> =>
    store.runner.run(
      'nix',
      [...FLAKE_FEATURES, ...store.storeArgs(), 'store', 'ping', ...(json ? ['--json'] : [])],
      { allowFailure: true },
    );
  const text = await ping(false);
  if (text.code === 0) {
    const said = text.stdout.toString('utf8') + text.stderr;
    const trusted = /^Trusted: (\S+)$/m.exec(said)?.[1];
    if (trusted === '1') return 'trusted';
    if (trusted === '0') return 'untrusted';
    const url = /^Store URL: (\S+)$/m.exec(said)?.[1];
    if (url !== undefined && (url === 'local' || url.startsWith('local?') || url.startsWith('/')))
      return 'trusted';
  }
  const json = await ping(true);
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
