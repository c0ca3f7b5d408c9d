// Byte streams in tests: what a streaming writer yields, gathered into one array.
import { concatBytes } from '../../src/core/bytes.js';

/** Every chunk of `source`, in one array. */
export async function collect(source: AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  for await (const c of source) chunks.push(c);
  return concatBytes(chunks);
}
