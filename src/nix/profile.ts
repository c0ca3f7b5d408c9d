// A Nix profile's generations as their links and `nix-env --list-generations` name them. Setting,
// switching and activating generations is the host program's (host-script.ts), here and on hosts.
import { basename } from 'node:path';

/** The generation number of a profile link target like `system-42-link`. */
export function generationOf(linkTarget: string): number | undefined {
  const m = /-(\d+)-link$/.exec(basename(linkTarget));
  return m?.[1] === undefined ? undefined : Number(m[1]);
}

/** The generation numbers `nix-env --list-generations` prints, in its order. */
export function parseGenerations(text: string): number[] {
  return text
    .split('\n')
    .map((l) => /^\s*(\d+)\s/.exec(l)?.[1])
    .filter((n): n is string => n !== undefined)
    .map(Number);
}
