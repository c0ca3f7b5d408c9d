// `-` for a bundle: standard input copied into a private temp file (0600 in a 0700 directory)
// first, so the use case reads a file nobody else can change, and removed afterwards. Whoever
// sends the plan chose every byte of it, as with a file: its head is read and checked before
// anything is written, then the room for the length its manifest declares, and exactly that many
// bytes are copied; a stream that is shorter, or goes on past them, is refused.
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  DEFAULT_MAX_MANIFEST_SIZE,
  SKIPPABLE_HEADER_SIZE,
  memorySource,
  parseManifest,
  parseSkippableHeader,
  readCheckedHead,
} from '../core/bundle/index.js';
import { NixPlanError } from '../core/errors.js';
import { requireRoom, TMPDIR_ADVICE } from '../transport/room.js';

/** How messages name a plan read from standard input. */
const STDIN = 'standard input';

/**
 * Runs `use` with `bundle`, or with a private copy of standard input when `bundle` is `-`; `label`
 * is how messages name the plan: what the user gave (`standard input`), never the copy's path.
 */
export async function withBundleFile<T>(
  bundle: string | undefined,
  stdin: NodeJS.ReadableStream | undefined,
  use: (file: string | undefined, label: string | undefined) => Promise<T>,
): Promise<T> {
  if (bundle !== '-') return use(bundle, bundle);
  if (stdin === undefined)
    throw new NixPlanError('usage', 'no standard input to read the plan from (BUNDLE -)');
  const dir = await mkdtemp(join(tmpdir(), 'nix-plan-stdin-'));
  try {
    const file = join(dir, 'plan.nixplan');
    await copyBundle(new StreamReader(stdin), file);
    return await use(file, STDIN);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Copies the bundle `input` holds into the new file `file` (see the module comment). */
async function copyBundle(input: StreamReader, file: string): Promise<void> {
  try {
    const header = await input.take(SKIPPABLE_HEADER_SIZE);
    const { size } = parseSkippableHeader(header, DEFAULT_MAX_MANIFEST_SIZE, `plan bundle '${STDIN}'`);
    const frame = await input.take(size);
    if (frame.length < size)
      throw new NixPlanError(
        'bundle',
        `plan bundle '${STDIN}' is truncated: its manifest frame needs ${SKIPPABLE_HEADER_SIZE + size} bytes, the stream had ${SKIPPABLE_HEADER_SIZE + frame.length}`,
      );
    const head = Buffer.concat([header, frame]);
    const length = head.length + parseManifest(frame).stream.compressedSize;
    // The head as a bundle of the length it declares: the same checks a bundle file's head gets.
    await readCheckedHead({ ...memorySource(head, STDIN), size: length });
    await requireRoom(tmpdir(), length, `the bundle on ${STDIN} is ${length} bytes`, TMPDIR_ADVICE);
    const out = await open(file, 'wx', 0o600);
    try {
      await out.write(head);
      for (let at = head.length; at < length;) {
        const chunk = await input.next(length - at);
        if (chunk === undefined)
          throw new NixPlanError(
            'bundle',
            `plan bundle '${STDIN}' is truncated: the manifest says ${length} bytes, the stream had ${at}`,
          );
        await out.write(chunk);
        at += chunk.length;
      }
    } finally {
      await out.close();
    }
    if ((await input.next(1)) !== undefined)
      throw new NixPlanError(
        'bundle',
        `plan bundle '${STDIN}' is followed by extra bytes: the manifest says ${length} bytes, the stream goes on`,
      );
  } catch (e) {
    await input.stop();
    if (e instanceof NixPlanError) throw e;
    throw new NixPlanError('usage', `cannot read the plan from ${STDIN}: ${(e as Error).message}`);
  }
}

/** Reads a stream a few bytes at a time, as the copy asks for them. */
class StreamReader {
  private readonly chunks: AsyncIterator<string | Buffer>;
  private rest: Buffer = Buffer.alloc(0);
  private ended = false;

  constructor(stream: NodeJS.ReadableStream) {
    this.chunks = (stream as AsyncIterable<string | Buffer>)[Symbol.asyncIterator]();
  }

  /** The next bytes, at most `max` of them; undefined at the end of the stream. */
  async next(max: number): Promise<Buffer | undefined> {
    while (this.rest.length === 0) {
      if (this.ended) return undefined;
      const r = await this.chunks.next();
      if (r.done === true) {
        this.ended = true;
        return undefined;
      }
      this.rest = typeof r.value === 'string' ? Buffer.from(r.value) : r.value;
    }
    const out = this.rest.subarray(0, max);
    this.rest = this.rest.subarray(out.length);
    return out;
  }

  /** Exactly `n` bytes, or fewer when the stream ends first. */
  async take(n: number): Promise<Buffer> {
    const parts: Buffer[] = [];
    for (let got = 0; got < n;) {
      const chunk = await this.next(n - got);
      if (chunk === undefined) break;
      parts.push(chunk);
      got += chunk.length;
    }
    return Buffer.concat(parts);
  }

  /** Stops reading (the rest of the stream is not wanted). */
  async stop(): Promise<void> {
    if (!this.ended) await this.chunks.return?.().catch(() => undefined);
    this.ended = true;
  }
}
