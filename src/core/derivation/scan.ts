// Reading a .drv's system and references without parsing it: export reads thousands of .drv
// files, and skipping through each costs a fraction of a full parse.
import { QUOTE } from './aterm.js';
import { derivationReferences } from './fields.js';
import { parseDerivation } from './parse.js';

/**
 * The `system` field of a .drv (its `field`-th top-level field: 3 in `Derive(…)`, 4 in
 * `DrvWithVersion(…)`); see scanDerivation.
 */
export function derivationSystem(bytes: Uint8Array, field: number): string {
  return scanDerivation(bytes, field === 4).system;
}

/**
 * A .drv's `system` and references (its input derivations and input sources, sorted: what Nix
 * registers for a .drv it writes), found by skipping through the file rather than parsing it.
 * The fields up to `system` are verbatim strings (no escapes), so every quote opens or closes
 * one. A file it cannot follow is parsed in full, which reports what is malformed and where.
 */
export function scanDerivation(
  bytes: Uint8Array,
  versioned: boolean,
): { system: string; references: string[] } {
  const inputDrvsField = versioned ? 2 : 1;
  const systemField = inputDrvsField + 2;
  const references: string[] = [];
  let depth = 0;
  let at = 0;
  let tupleStart = false;
  for (let i = 0; i < bytes.length; i++) {
    const c = bytes[i];
    if (c === QUOTE) {
      const end = bytes.indexOf(QUOTE, i + 1);
      if (end < 0) break;
      if (depth === 1 && at === systemField)
        return {
          system: Buffer.from(bytes.buffer, bytes.byteOffset + i + 1, end - i - 1).toString('latin1'),
          references: sortedUnique(references),
        };
      if ((at === inputDrvsField && depth === 3 && tupleStart) || (at === inputDrvsField + 1 && depth === 2))
        references.push(Buffer.from(bytes.buffer, bytes.byteOffset + i + 1, end - i - 1).toString('latin1'));
      tupleStart = false;
      i = end;
    } else if (c === 0x28 || c === 0x5b) {
      depth++; // ( [
      tupleStart = c === 0x28 && depth === 3;
    } else if (c === 0x29 || c === 0x5d) {
      if (--depth === 0) break; // ) ]
    } else if (c === 0x2c && depth === 1 && ++at > systemField) break; // ,
  }
  const drv = parseDerivation(bytes);
  return { system: Buffer.from(drv.system).toString('latin1'), references: derivationReferences(drv) };
}

function sortedUnique(items: string[]): string[] {
  items.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return items.filter((x, i) => i === 0 || x !== items[i - 1]);
}
