// The host program's garbage collector roots for what one deploy stages on the host (host-script.ts
// puts them in): from the import until the deploy ends, the plan's root .drv (so the closure it
// holds) and the system built from it stay alive whatever `nix-store --gc` runs between the
// deploy's SSH sessions. They live in a private directory beside the profile,
// PROFILE.nix-plan.d/roots/ID, whose links Nix registers as indirect roots (`--add-root
// --indirect`); the activation removes it once the profile holds the new system (or the deploy
// ends short of that: the `release` phase), and a later deploy removes one whose deploy was cut
// off (stale_roots). Written without brace expansions, like the
// rest of the program; it uses the program's helpers and own_dir (host-activation.ts).

/** Seconds after its last session that a deploy's roots count as left behind. */
export const ROOTS_STALE_SECONDS = 600;

/** The roots helpers and the `release` phase, as sh functions. */
export const ROOTS_FUNCTIONS = String.raw`# Seconds since the epoch, or nothing where date cannot say.
epoch() {
  e=$(date +%s 2> /dev/null)
  case $e in '' | *[!0-9]*) e= ;; esac
  printf '%s\n' "$e"
}

# Marks the roots directory $rdir as in use by this session: its pid, and when it last was.
roots_touch() {
  echo $$ > "$rdir/pid"
  epoch > "$rdir/time"
}

# open_roots PROFILE ID: makes (or reopens) PROFILE.nix-plan.d/roots/ID, sets rdir. Each level must
# be a directory of this user writable by no one else (own_dir): a planted one changes nothing.
open_roots() {
  case $2 in *[!A-Za-z0-9-]* | '') fail usage "bad deploy id '$2'" ;; esac
  r_state="$(resolve_profile "$1").nix-plan.d"
  [ -d "$r_state" ] || mkdir -p -m 755 "$r_state" || fail host "cannot create $r_state"
  own_dir "$r_state"
  [ -d "$r_state/roots" ] || mkdir -m 700 "$r_state/roots" || fail host "cannot create $r_state/roots"
  own_dir "$r_state/roots"
  rdir="$r_state/roots/$2"
  [ -d "$rdir" ] || mkdir -m 700 "$rdir" || fail host "cannot create $rdir"
  own_dir "$rdir"
  roots_touch
}

# A store path given by nix-plan, before it goes into a Nix expression: a store path's characters only.
store_path_arg() {
  case $1 in
    /*) ;;
    *) fail usage "not a store path: '$1'" ;;
  esac
  case $1 in *[!A-Za-z0-9+._?=/-]*) fail usage "not a store path: '$1'" ;; esac
}

# root_drv DRV: $rdir/drv, an indirect root of DRV (so of every .drv and source it needs). Only
# nix-instantiate roots a .drv without building it (nix-store --add-root --realise builds).
root_drv() {
  store_path_arg "$1"
  r_err=$(nix-instantiate --add-root "$rdir/drv" --indirect -E "import (builtins.storePath \"$1\")" 2>&1 > /dev/null) ||
    fail nix "cannot make $rdir/drv a garbage collector root of $1: $r_err"
}

# root_path PATH NAME: $rdir/NAME, an indirect root of the (valid, not .drv) store path PATH.
root_path() {
  r_err=$(nix-store --add-root "$rdir/$2" --indirect --realise "$1" 2>&1 > /dev/null) ||
    fail nix "cannot make $rdir/$2 a garbage collector root of $1: $r_err"
}

# Whether $1 is a directory (not a link) of this user that no one else can write, as own_dir
# demands, without failing: the probe cleans up only where a deploy would have made its roots.
is_own_dir() {
  [ -d "$1" ] && [ ! -L "$1" ] || return 1
  read -r i_mode i_links i_uid i_rest << NIX_PLAN_LS
$(ls -ldn "$1")
NIX_PLAN_LS
  [ "$i_uid" = "$(id -u)" ] || return 1
  case $i_mode in ?????w* | ????????w*) return 1 ;; esac
  return 0
}

# Removes the roots of deploys to PROFILE that are over: no session of theirs running (pid) and
# none for ROOTS_STALE_SECONDS (time). One whose time cannot be read is left alone.
stale_roots() {
  s_state="$(resolve_profile "$1").nix-plan.d"
  s_dir="$s_state/roots"
  is_own_dir "$s_state" && is_own_dir "$s_dir" || return 0
  s_now=$(epoch)
  [ -n "$s_now" ] || return 0
  for s_r in "$s_dir"/*; do
    is_own_dir "$s_r" || continue
    s_pid=$(cat "$s_r/pid" 2> /dev/null)
    alive "$s_pid" && continue
    s_t=$(cat "$s_r/time" 2> /dev/null)
    case $s_t in '' | *[!0-9]*) continue ;; esac
    [ $((s_now - s_t)) -gt ${ROOTS_STALE_SECONDS} ] || continue
    rm -rf "$s_r" 2> /dev/null
  done
  return 0
}

# The deploy's roots ($rdir, when open) go: the activation no longer needs them.
drop_roots() {
  if [ -n "$rdir" ]; then
    rm -rf "$rdir" 2> /dev/null
    rdir=
  fi
}

# release PROFILE ID: the deploy ID is over, whatever its result: its roots go, and those of
# deploys to PROFILE cut off earlier.
release() {
  case $2 in *[!A-Za-z0-9-]* | '') fail usage "bad deploy id '$2'" ;; esac
  r_state="$(resolve_profile "$1").nix-plan.d"
  if [ -d "$r_state/roots/$2" ]; then
    own_dir "$r_state"
    own_dir "$r_state/roots"
    rm -rf "$r_state/roots/$2" || fail host "cannot remove $r_state/roots/$2"
    say released "$2"
  fi
  stale_roots "$1"
  say end
}
`;
