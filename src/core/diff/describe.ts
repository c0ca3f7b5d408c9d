// The phrases a diff is told in, shared by the terminal and the job summaries: version changes,
// counts, signature status. Plain text; callers escape it for where it goes.
import { versionChanges, versionsOnlyIn, type PackageChange, type PackageCounts } from './packages.js';
import type { SignatureInfo } from './plan-diff.js';
import { trustStatus, type TrustReport } from '../bundle/trust-report.js';
import { groupDigits, plural } from '../text.js';

/** How an empty version reads (`builtins.parseDrvName` gives "" for `source`, `foo-`). */
export const NO_VERSION = '(none)';

const show = (vs: readonly string[]): string =>
  vs.length === 0 ? '∅' : vs.map((v) => (v === '' ? NO_VERSION : v)).join(', ');

/**
 * A package's versions as `old → new`: only the versions that changed when some did (as
 * `nix store diff-closures` shows them), all of them for an addition, removal or rebuild.
 */
export function versionsText(p: PackageChange): string {
  switch (p.change) {
    case 'added':
      return show(p.new.versions);
    case 'removed':
      return show(p.old.versions);
    case 'rebuilt':
      return show(p.new.versions);
    default:
      return `${show(versionsOnlyIn(p.old.versions, p.new.versions))} → ${show(versionsOnlyIn(p.new.versions, p.old.versions))}`;
  }
}

/** What else changed in a package's derivations: output names and kinds. */
export function outputsText(p: PackageChange): string | undefined {
  if (p.change === 'added' || p.change === 'removed') return undefined;
  const parts: string[] = [];
  const names = (xs: readonly string[]): string => xs.join(', ') || '∅';
  if (p.old.outputs.join(' ') !== p.new.outputs.join(' '))
    parts.push(`outputs ${names(p.old.outputs)} → ${names(p.new.outputs)}`);
  if (p.old.outputKinds.join(' ') !== p.new.outputKinds.join(' '))
    parts.push(`${names(p.old.outputKinds)} → ${names(p.new.outputKinds)}`);
  return parts.length === 0 ? undefined : parts.join('; ');
}

/** nvd's tags: `U` upgrade, `D` downgrade, `C` changed, `A` added, `R` removed, `B` rebuilt. */
export const CHANGE_TAGS: Readonly<Record<PackageChange['change'], string>> = {
  upgrade: 'U',
  downgrade: 'D',
  changed: 'C',
  added: 'A',
  removed: 'R',
  rebuilt: 'B',
};

/** `2 version changes (1 upgrade, 1 downgrade), 1 added, 3 rebuilt` or `no package changes`. */
export function countsText(c: PackageCounts): string {
  const parts: string[] = [];
  const v = versionChanges(c);
  if (v > 0) {
    const detail = [
      c.upgrade > 0 ? plural(c.upgrade, 'upgrade') : '',
      c.downgrade > 0 ? plural(c.downgrade, 'downgrade') : '',
      c.changed > 0 ? `${c.changed} other` : '',
    ].filter((s) => s !== '');
    parts.push(`${plural(v, 'version change')} (${detail.join(', ')})`);
  }
  if (c.added > 0) parts.push(`${groupDigits(c.added)} added`);
  if (c.removed > 0) parts.push(`${groupDigits(c.removed)} removed`);
  if (c.rebuilt > 0) parts.push(`${groupDigits(c.rebuilt)} rebuilt`);
  return parts.length === 0 ? 'no package changes' : parts.join(', ');
}

/**
 * A bundle's signature status in the words every front end uses (core/bundle/trust-report.ts):
 * "verified: signed by trusted key ci", "signatures: 2 (not verified)", "unsigned", or, read with
 * --no-check-sigs and no trusted signature, "NOT CHECKED (--no-check-sigs): 3 unproven paths".
 */
export function signatureText(
  signatures: readonly SignatureInfo[] | undefined,
  proof: { readonly noCheckSigs?: boolean; readonly unproven?: number } = {},
): string {
  if (signatures === undefined) return 'not a bundle (no signatures)';
  const report: TrustReport = {
    keysGiven: signatures.some((s) => s.status !== 'not-checked'),
    verifiedBy: signatures.filter((s) => s.status === 'verified').map((s) => s.key),
    signatures: [...signatures],
    noCheckSigs: proof.noCheckSigs === true,
    unproven: proof.unproven ?? 0,
  };
  return trustStatus({ signatures: signatures.map((s) => ({ key: s.key, sig: '' })) }, report);
}
