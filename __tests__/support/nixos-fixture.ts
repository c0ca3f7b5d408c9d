// Stand-ins for NixOS systems: derivations named nixos-system-LABEL-1.0, with the packages they are
// given in their runtime closure, whose bin/switch-to-configuration records each call (label,
// action, mode, the profile's link at the time) in CONTROL/log and its uid in CONTROL/uid-LABEL,
// and does what CONTROL/mode-LABEL says: ok, fail (every call), fail-once (this call only, then
// ok: a new generation's switch fails while the restore of the previous one, the same label,
// succeeds), cut (drop every SSH connection of the test server, as a configuration that breaks
// the network would) or hang (until CONTROL/release-LABEL exists).
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** What a fixture system's switch-to-configuration is told to do. */
export type SwitchMode = 'ok' | 'fail' | 'fail-once' | 'cut' | 'hang';

/**
 * Nix `let` bindings: `paths`, the store paths of `packages` (NAME = VERSION, in scope): for each,
 * NAME-VERSION and its NAME-VERSION-man output. A system that references them (its `sw`) has them
 * in its runtime closure.
 */
export const PACKAGES_NIX = `
  # A package of the system's runtime closure: NAME-VERSION, and its man page as output-named path.
  package = name: version: builtins.derivation {
    name = "\${name}-\${version}";
    system = builtins.currentSystem;
    builder = "/bin/sh";
    outputs = [ "out" "man" ];
    args = [ "-c" "echo \${name} \${version} > $out; echo \${name}.1 > $man" ];
  };
  paths = builtins.concatMap (name: let p = package name packages.\${name}; in [ p.out p.man ])
    (builtins.attrNames packages);
`;

/**
 * A Nix file: `{ label, control, profile, packages }` → the system derivation; `packages` (NAME =
 * VERSION) puts NAME-VERSION and its NAME-VERSION-man output into the system's runtime closure.
 */
export function systemNix(): string {
  return `
{ label, control, profile ? "/nonexistent", packages ? {} }:
let${PACKAGES_NIX}in
builtins.derivation {
  name = "nixos-system-\${label}-1.0";
  system = builtins.currentSystem;
  builder = "/bin/sh";
  # Referenced from $out/sw: the packages are in the system's runtime closure.
  sw = builtins.concatStringsSep "\n" (map toString paths);
  script = ''
    #!/bin/sh
    mode=$(cat "\${control}/mode-\${label}" 2>/dev/null || echo ok)
    echo "\${label} $1 $mode $(/bin/readlink \${profile} 2>/dev/null)" >> \${control}/log
    /usr/bin/id -u > \${control}/uid-\${label}
    echo "\${label}: switch-to-configuration $1"
    echo "would restart: \${label}-unit.service" >&2
    case $mode in
      fail) echo "\${label}: a unit failed to start" >&2; exit 1 ;;
      fail-once) echo ok > "\${control}/mode-\${label}"; echo "\${label}: a unit failed to start" >&2; exit 1 ;;
      cut) /bin/sh \${control}/cut.sh; sleep 1 ;;
      hang) while [ ! -e "\${control}/release-\${label}" ]; do sleep 0.2; done ;;
    esac
    exit 0
  '';
  args = [ "-c" ''
    /bin/mkdir -p $out/bin
    echo "$sw" > $out/sw
    echo "$script" > $out/bin/switch-to-configuration
    /bin/chmod +x $out/bin/switch-to-configuration
  '' ];
}
`;
}

/** A fleet file: one system per name, as attributes, all switching `profile` of their host. */
export function fleetNix(systemFile: string, control: string, hosts: Record<string, string>): string {
  return `{
${Object.entries(hosts)
  .map(
    ([name, profile]) =>
      `  ${name} = import ${systemFile} { label = "${name}"; control = "${control}"; profile = "${profile}"; };`,
  )
  .join('\n')}
}
`;
}

/** The control directory of the fixture systems. */
export class SwitchControl {
  constructor(readonly dir: string) {}

  /** Sets what LABEL's switch-to-configuration does next. */
  mode(label: string, mode: SwitchMode): void {
    writeFileSync(join(this.dir, `mode-${label}`), `${mode}\n`);
  }

  /** Lets a hanging switch of LABEL finish. */
  release(label: string): void {
    writeFileSync(join(this.dir, `release-${label}`), '');
  }

  /** The uid LABEL's switch-to-configuration last ran as. */
  uid(label: string): number | undefined {
    const file = join(this.dir, `uid-${label}`);
    return existsSync(file) ? Number(readFileSync(file, 'utf8').trim()) : undefined;
  }

  /** The calls so far: "LABEL ACTION MODE PROFILE-LINK". */
  calls(): string[] {
    const log = join(this.dir, 'log');
    return existsSync(log)
      ? readFileSync(log, 'utf8')
          .trim()
          .split('\n')
          .filter((l) => l !== '')
      : [];
  }

  /** Forgets the calls so far and every mode. */
  reset(): void {
    rmSync(join(this.dir, 'log'), { force: true });
    for (const f of readdirSync(this.dir))
      if (/^(?:mode|release|uid)-/.test(f)) rmSync(join(this.dir, f), { force: true });
  }
}
