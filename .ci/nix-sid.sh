#!/usr/bin/env bash
# nix-sid.sh ROOT SHIMDIR [DIR...]
# Sets up a second, modern Nix (Debian sid's nix-bin, 2.34.x) beside the host's Nix 2.8, so the
# integration tests can run against both. Creates a debootstrap chroot at ROOT (once), installs
# nix-bin in it, bind-mounts /tmp and each DIR at the same path inside, and writes wrappers (nix,
# nix-store, nix-instantiate, nix-build, nix-env, nix-daemon) into SHIMDIR that run inside the
# chroot from the caller's working directory, passing NIX_* variables through. Put SHIMDIR first in
# PATH to use that Nix. Needs root and a Debian package mirror.
# ROOT must not be under /tmp or any DIR (a bind mount of a parent into its own child loops).
set -euo pipefail
root=${1:?usage: nix-sid.sh ROOT SHIMDIR [DIR...]}
shims=${2:?usage: nix-sid.sh ROOT SHIMDIR [DIR...]}
shift 2
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

if [[ ! -x $root/usr/bin/nix ]]; then
  if [[ ! -e $root/.debootstrapped ]]; then
    command -v debootstrap >/dev/null || { apt-get update -qq && apt-get install -y -qq debootstrap >/dev/null; }
    rm -rf "$root"
    debootstrap --variant=minbase sid "$root" "$mirror" >/dev/null
    touch "$root/.debootstrapped"
  fi
  mountpoint -q "$root/proc" || mount -t proc proc "$root/proc"
  chroot "$root" /usr/bin/env PATH=/usr/sbin:/usr/bin:/sbin:/bin bash -c \
    'apt-get -o Acquire::Check-Valid-Until=false update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nix-bin >/dev/null'
  # single-user store owned by root, no build users, no sandbox (as on the host)
  mkdir -p "$root/etc/nix"
  printf 'build-users-group =\nsandbox = false\nexperimental-features = nix-command\n' > "$root/etc/nix/nix.conf"
fi

mountpoint -q "$root/proc" || mount -t proc proc "$root/proc"
mountpoint -q "$root/dev" || mount --bind /dev "$root/dev"
mountpoint -q "$root/dev/pts" || mount --bind /dev/pts "$root/dev/pts"
for dir in /tmp "$@"; do
  mkdir -p "$root$dir"
  # A mount left from an earlier run may show a directory since deleted and made anew at the
  # same path (a fresh clone): remount unless it shows the very same directory.
  if mountpoint -q "$root$dir" && [[ $(stat -c %d:%i "$dir") != $(stat -c %d:%i "$root$dir") ]]; then
    umount -l "$root$dir"
  fi
  mountpoint -q "$root$dir" || mount --bind "$dir" "$root$dir"
done

mkdir -p "$shims"
for tool in nix nix-store nix-instantiate nix-build nix-env nix-daemon; do
  # written aside and renamed, so a tool running meanwhile never sees a half-written wrapper
  cat > "$shims/$tool.new" <<SHIM
#!/usr/bin/env bash
# runs sid's $tool inside $root, from the caller's directory (which must be visible there),
# keeping the caller's NIX_* variables and user so store dirs and trust behave as outside.
# NIX_SID_USERSPEC=USER:GROUP runs the tool as that user (chroot needs root, so the caller is root).
vars=()
while IFS='=' read -r -d '' k v; do
  case \$k in NIX_*|HOME|USER|TMPDIR) vars+=("\$k=\$v") ;; esac
done < <(env -0)
exec chroot \${NIX_SID_USERSPEC:+--userspec="\$NIX_SID_USERSPEC"} "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "\${vars[@]}" \\
  bash -c 'cd "\$1" 2>/dev/null || cd /; shift; exec "\$@"' _ "\$PWD" $tool "\$@"
SHIM
  chmod +x "$shims/$tool.new"
  mv -f "$shims/$tool.new" "$shims/$tool"
done
"$shims/nix" --version
