// The ATerm text of a .drv at the byte level: the punctuation, and the escapes Nix writes in the
// builder, arguments and environment (`"` `\` LF CR TAB, nothing else). Shared by the parser
// and the writer, so what one accepts the other writes.
export const QUOTE = 0x22;
export const BACKSLASH = 0x5c;
export const COMMA = 0x2c;
export const LBRACKET = 0x5b;
export const RBRACKET = 0x5d;
export const LPAREN = 0x28;
export const RPAREN = 0x29;

/** Byte a character stands for after a backslash; 0 for "not an escape Nix writes". */
export const UNESCAPE = new Uint8Array(256);
UNESCAPE[0x6e] = 0x0a; // \n
UNESCAPE[0x72] = 0x0d; // \r
UNESCAPE[0x74] = 0x09; // \t
UNESCAPE[QUOTE] = QUOTE;
UNESCAPE[BACKSLASH] = BACKSLASH;

/** Character written after a backslash for a byte that must be escaped; 0 for "write as is". */
export const ESCAPE = new Uint8Array(256);
ESCAPE[0x0a] = 0x6e;
ESCAPE[0x0d] = 0x72;
ESCAPE[0x09] = 0x74;
ESCAPE[QUOTE] = QUOTE;
ESCAPE[BACKSLASH] = BACKSLASH;

/** 1 for the bytes that end a run of plain bytes in an escaped string (the escapable ones). */
export const SPECIAL = new Uint8Array(256).map((_, i) => (ESCAPE[i] === 0 ? 0 : 1));

export const DERIVE = ascii('Derive(');
export const DRV_WITH_VERSION = ascii('DrvWithVersion(');
/** Nesting allowed in dynamic outputs (`drv^out^out^…`); bounds recursion on hostile input. */
export const MAX_DYNAMIC_DEPTH = 64;

/** The bytes of an ASCII string. */
export function ascii(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}
