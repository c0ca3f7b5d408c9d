// Limits on a JSON document's shape, checked before JSON.parse: V8 parses nested arrays and objects
// recursively, so a few kilobytes of `[[[[…` end in a stack overflow, not a clean refusal.
import { NixPlanError } from '../errors.js';

/** Deepest nesting of arrays and objects a manifest may have (version 2 needs 5). */
export const MAX_MANIFEST_DEPTH = 16;

/**
 * Refuses ('bundle', exit 3) a JSON text nested deeper than `maxDepth` arrays and objects, naming
 * `what`. A linear scan that skips strings (with their escapes); it does not validate the JSON,
 * which JSON.parse then does safely.
 */
export function assertJsonDepth(text: string, maxDepth: number, what: string): void {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c /* \ */) i++;
      else if (c === 0x22 /* " */) inString = false;
      continue;
    }
    if (c === 0x22) inString = true;
    else if (c === 0x5b /* [ */ || c === 0x7b /* { */) {
      if (++depth > maxDepth)
        throw new NixPlanError(
          'bundle',
          `${what} is nested deeper than ${maxDepth} arrays and objects (at character ${i}): refusing it`,
        );
    } else if (c === 0x5d /* ] */ || c === 0x7d /* } */) depth--;
  }
}
