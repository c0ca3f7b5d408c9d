// Bytes from a plan shown as text a person can read and nothing can abuse: valid UTF-8 stays as it
// is, everything that could hide, move or rewrite what a reviewer sees (control characters,
// terminal escapes, bidirectional overrides, invisible characters, invalid UTF-8) is written as
// an escape. The escaping is reversible (`\\` for a backslash), so distinct bytes stay distinct.
// Strings (store paths, names) use core/text.ts's escapes, as every other display does.
import { escapeTerminal } from '../text.js';

/** Code points shown as `\u{…}`: C1 controls, invisible and direction-changing characters. */
function isHidden(cp: number): boolean {
  return (
    (cp >= 0x80 && cp <= 0x9f) || // C1 controls (0x9b is a terminal CSI)
    cp === 0xad || // soft hyphen
    cp === 0x061c || // Arabic letter mark
    (cp >= 0x200b && cp <= 0x200f) || // zero width space/joiners, LRM/RLM
    (cp >= 0x2028 && cp <= 0x202e) || // line/paragraph separators, bidi embeddings and overrides
    (cp >= 0x2060 && cp <= 0x2069) || // word joiner, invisible operators, bidi isolates
    cp === 0xfeff || // zero width no-break space
    (cp >= 0xfff9 && cp <= 0xfffb) || // interlinear annotations
    (cp >= 0xe0000 && cp <= 0xe007f) // tags
  );
}

const hex2 = (b: number): string => b.toString(16).padStart(2, '0');

/**
 * `bytes` as safe text: `\\`, `\r`, `\xNN` for other control bytes and for bytes that are not
 * valid UTF-8, `\u{NNNN}` for hidden code points; a newline stays a newline and a tab a tab
 * unless `escapeLayout` (then `\n`, `\t`).
 */
export function showBytes(bytes: Uint8Array, escapeLayout = false): string {
  let out = '';
  let i = 0;
  while (i < bytes.length) {
    const b = bytes[i]!;
    if (b < 0x80) {
      if (b === 0x5c) out += '\\\\';
      else if (b === 0x0a) out += escapeLayout ? '\\n' : '\n';
      else if (b === 0x09) out += escapeLayout ? '\\t' : '\t';
      else if (b === 0x0d) out += '\\r';
      else if (b < 0x20 || b === 0x7f) out += `\\x${hex2(b)}`;
      else out += String.fromCharCode(b);
      i++;
      continue;
    }
    const cp = decodeOne(bytes, i);
    if (cp === undefined) {
      out += `\\x${hex2(b)}`;
      i++;
      continue;
    }
    out += isHidden(cp.codePoint) ? `\\u{${cp.codePoint.toString(16)}}` : String.fromCodePoint(cp.codePoint);
    i += cp.length;
  }
  return out;
}

/** A string from a plan (a store path, a name) for a terminal: core/text.ts's escapes. */
export function showText(text: string): string {
  return escapeTerminal(text);
}

/** One well-formed UTF-8 sequence at `i` (shortest form, no surrogates, ≤ U+10FFFF), or undefined. */
function decodeOne(bytes: Uint8Array, i: number): { codePoint: number; length: number } | undefined {
  const b0 = bytes[i]!;
  let length: number;
  let cp: number;
  let min: number;
  if (b0 >= 0xc2 && b0 <= 0xdf) {
    length = 2;
    cp = b0 & 0x1f;
    min = 0x80;
  } else if (b0 >= 0xe0 && b0 <= 0xef) {
    length = 3;
    cp = b0 & 0x0f;
    min = 0x800;
  } else if (b0 >= 0xf0 && b0 <= 0xf4) {
    length = 4;
    cp = b0 & 0x07;
    min = 0x10000;
  } else return undefined;
  if (i + length > bytes.length) return undefined;
  for (let k = 1; k < length; k++) {
    const c = bytes[i + k]!;
    if ((c & 0xc0) !== 0x80) return undefined;
    cp = (cp << 6) | (c & 0x3f);
  }
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return undefined;
  return { codePoint: cp, length };
}
