// Which root of a plan goes to which host, and whether it is a NixOS system: decided from the
// manifest alone, before anything is sent or built.
import type { BundleRoot } from '../../core/bundle/manifest.js';
import { drvName } from '../../core/derivation/index.js';
import { NixPlanError } from '../../core/errors.js';
import { offers, optionSet, type OptionNames } from '../../core/option-names.js';
import { rootLabel } from '../inspect.js';

/** The prefix of a NixOS system toplevel's derivation name (`nixos-system-HOST-VERSION`). */
export const NIXOS_SYSTEM_PREFIX = 'nixos-system-';

/**
 * How well `root` answers to the host name `name`: 3 its attribute, installable or label is the
 * name; 2 its attribute path names it as a NixOS configuration (`nixosConfigurations.NAME.…`, also
 * inside a flake installable); 1 its derivation is `nixos-system-NAME-<version>`; 0 not at all.
 */
export function rootMatch(root: BundleRoot, name: string): number {
  if (root.attribute === name || root.installable === name || rootLabel(root) === name) return 3;
  const attrPath = `${root.installable ?? ''} ${root.attribute ?? ''}`;
  const quoted = `nixosConfigurations."${name}".`;
  if (attrPath.includes(`nixosConfigurations.${name}.`) || attrPath.includes(quoted)) return 2;
  const drv = drvName(root.drvPath);
  if (drv.startsWith(`${NIXOS_SYSTEM_PREFIX}${name}-`)) {
    const rest = drv.slice(NIXOS_SYSTEM_PREFIX.length + name.length + 1);
    // NixOS versions are dotted (24.05.20240101.abcdef): `web-2-24.05` is host web-2, not web.
    if (/^\d+\.\d+/.test(rest)) return 1;
  }
  return 0;
}

/**
 * The root each named host gets. With one host and no name the plan must have exactly one root;
 * otherwise each name must pick exactly one root (the best match) and no root may go to two
 * hosts' names by accident. Usage errors list the roots, and name the option as `names` spells it.
 */
export function assignRoots(
  roots: readonly BundleRoot[],
  hosts: readonly { name?: string | undefined }[],
  names?: OptionNames,
): BundleRoot[] {
  const list = (): string => roots.map((r, i) => `${i}=${rootLabel(r)}`).join(', ');
  const named = optionSet(names, 'host', 'NAME=[USER@]HOST');
  if (hosts.length === 1 && hosts[0]?.name === undefined) {
    const [only] = roots;
    if (roots.length !== 1 || only === undefined)
      throw new NixPlanError(
        'usage',
        `the plan has ${roots.length} roots (${list()}): name the host after its root (${named}) to deploy one`,
      );
    return [only];
  }
  return hosts.map((h) => {
    const name = h.name;
    if (name === undefined) throw new NixPlanError('usage', `with several hosts, give each a name: ${named}`);
    const scored = roots.map((r) => [r, rootMatch(r, name)] as const).filter(([, s]) => s > 0);
    const best = Math.max(0, ...scored.map(([, s]) => s));
    const chosen = scored.filter(([, s]) => s === best).map(([r]) => r);
    const [root] = chosen;
    if (root === undefined)
      throw new NixPlanError('usage', `no root of the plan is for host '${name}'; its roots are: ${list()}`);
    if (chosen.length > 1)
      throw new NixPlanError(
        'usage',
        `host '${name}' matches ${chosen.length} roots of the plan (${chosen.map(rootLabel).join(', ')}): name it after one`,
      );
    return root;
  });
}

/**
 * The system a root builds, checked to be a NixOS toplevel by its derivation name (unless
 * `allowAnyRoot`) with a known `out` path: refused here, before anything is built. The way out
 * the refusal offers is the option as `names` spells it, when that front end has one.
 */
export function systemOfRoot(root: BundleRoot, allowAnyRoot: boolean, names?: OptionNames): string {
  const name = drvName(root.drvPath);
  if (!allowAnyRoot && !name.startsWith(NIXOS_SYSTEM_PREFIX))
    throw new NixPlanError(
      'usage',
      `root '${rootLabel(root)}' builds '${name}', not a NixOS system (${NIXOS_SYSTEM_PREFIX}…): export the ` +
        'system attribute, e.g. nixosConfigurations.HOST.config.system.build.toplevel' +
        (offers(names, 'allowAnyRoot') ? ` (or pass ${optionSet(names, 'allowAnyRoot')})` : ''),
    );
  const outputs = Object.keys(root.outputs);
  const out = root.outputs['out'];
  if (out === undefined)
    throw new NixPlanError(
      'usage',
      `root '${rootLabel(root)}' has no 'out' output (it has ${outputs.join(', ')}): a system has one`,
    );
  if (out === '')
    throw new NixPlanError(
      'usage',
      `root '${rootLabel(root)}' is content-addressed (its output path is known only after building): ` +
        'deploying one is not supported',
    );
  return out;
}
