// The host program's activation phases (host-script.ts puts them together): `closure` builds the
// new system and lists what would change, `activate` switches the profile and leaves the
// supervisor (host-supervisor.ts) running the switch, `confirm` comes back to confirm it; all
// follow the supervisor's log and report its state. Written without brace expansions, like the
// rest of the program, so it lives in a template literal untouched; it uses the program's helpers.
import { SUPERVISOR, SWITCH_FUNCTIONS } from './host-supervisor.js';

/** The `closure`, `activate` and `confirm` phases and what they share, as sh functions. */
export const ACTIVATION_PHASES = String.raw`${SWITCH_FUNCTIONS}
take_lock() {
  if ! mkdir "$1" 2> /dev/null; then
    pid=$(cat "$1/pid" 2> /dev/null)
    [ -n "$pid" ] || fail busy "another activation is starting ($1 has no pid yet)"
    alive "$pid" && fail busy "another activation (process $pid) is running: $1"
    rm -rf "$1"
    mkdir "$1" 2> /dev/null || fail busy "another activation took $1 just now"
  fi
  echo $$ > "$1/pid"
  locked=$1
  trap '[ -n "$locked" ] && rm -rf "$locked"' EXIT
}

# The directory beside the profile where activations keep their files (what the supervisor runs,
# as root, and which systems it switches to and back to). One planted there before the first
# deploy would be used as it is, so it must be a directory, not a link, of the user running this,
# and writable by no one else: otherwise nothing is changed.
own_dir() {
  if [ -L "$1" ] || [ ! -d "$1" ]; then fail host "$1 is not a directory: nothing was changed"; fi
  read -r own_mode own_links own_uid own_rest << NIX_PLAN_LS
$(ls -ldn "$1")
NIX_PLAN_LS
  [ "$own_uid" = "$(id -u)" ] ||
    fail host "$1 belongs to uid $own_uid, not to uid $(id -u) that activates: nothing was changed"
  case $own_mode in
    ?????w* | ????????w*) fail host "$1 can be written by others than its owner ($own_mode): nothing was changed" ;;
  esac
}

follow() {
  fact=$1
  off=$2
  until=$3
  waited=0
  lost=0
  chunk="$fact/chunk.$$"
  while :; do
    st=$(cat "$fact/state" 2> /dev/null)
    if [ -f "$fact/log" ]; then
      tail -c +$((off + 1)) "$fact/log" > "$chunk" 2> /dev/null
      n=$(wc -c < "$chunk" | tr -d ' ')
      if [ "$n" -gt 0 ]; then
        cat "$chunk" >&2 || { rm -f "$chunk"; exit 1; }
        off=$((off + n))
      fi
    fi
    case $st in
      starting | switching | reverting) ;;
      awaiting-confirmation) [ "$until" = final ] || break ;;
      *) break ;;
    esac
    pid=$(cat "$fact/pid" 2> /dev/null)
    if [ -n "$pid" ]; then
      if ! alive "$pid" && [ "$(cat "$fact/state" 2> /dev/null)" = "$st" ]; then
        lost=1
        break
      fi
    else
      waited=$((waited + 1))
      if [ "$waited" -gt 300 ]; then
        lost=1
        break
      fi
    fi
    nap
  done
  rm -f "$chunk"
  say logged "$off"
}

report() {
  fact=$1
  if [ "$lost" = 1 ]; then say state lost; else say state "$(cat "$fact/state" 2> /dev/null)"; fi
  say previous "$(cat "$fact/prev" 2> /dev/null)"
  say generation "$(cat "$fact/new" 2> /dev/null)"
  for f in switch-rc revert-rc removed record-failed; do
    [ -f "$fact/$f" ] && say "$f" "$(cat "$fact/$f")"
  done
  [ -e "$fact/timed-out" ] && say timed-out "$(cat "$fact/limit")"
  [ -e "$fact/revert-timed-out" ] && say revert-timed-out "$(cat "$fact/limit")"
  if cur=$(abs_link "$(cat "$fact/profile")"); then
    say current "$cur"
    if sys=$(abs_link "$cur"); then say current-system "$sys"; fi
  fi
  say end
}

# Builds DRV (when given) and checks that it gave the system OUT, valid and a NixOS system. With
# the deploy's roots open ($rdir), the system is rooted there ($rdir/system, its other outputs
# $rdir/system-NAME) as Nix builds it, and OUT given without DRV is rooted there too.
realise_system() {
  if [ -n "$1" ] && [ -n "$rdir" ]; then
    store_path_arg "$1"
    nix-store --realise --add-root "$rdir/system" --indirect "$1" > /dev/null ||
      fail build "nix-store --realise $1 failed"
    built=$(abs_link "$rdir/system")
    [ "$built" = "$2" ] || fail build "building $1 gave '$built', not $2"
  elif [ -n "$1" ]; then
    built=$(nix-store --realise "$1") || fail build "nix-store --realise $1 failed"
    case "
$built
" in
      *"
$2
"*) ;;
      *) fail build "building $1 gave '$built', not $2" ;;
    esac
  fi
  nix-store --check-validity "$2" 2> /dev/null || fail build "$2 is not valid in the host's store"
  if [ -z "$1" ] && [ -n "$rdir" ]; then
    store_path_arg "$2"
    root_path "$2" system
  fi
  [ -n "$rdir" ] && roots_touch
  [ -x "$2/bin/switch-to-configuration" ] ||
    fail shape "$2 has no executable bin/switch-to-configuration: it is not a NixOS system"
}

# Prints the runtime closure of store path $2 as "@nix-plan $1 NAR-SIZE PATH" lines.
list_closure() {
  nix-store --query --requisites "$2" > "$tmp/paths" || fail nix "nix-store --query --requisites $2 failed"
  xargs nix-store --query --size < "$tmp/paths" > "$tmp/sizes" || fail nix "nix-store --query --size failed"
  exec 3< "$tmp/sizes"
  while read -r p; do
    read -r n <&3 || fail nix "nix-store --query --size gave fewer sizes than paths"
    say "$1" "$n $p"
  done < "$tmp/paths"
  exec 3<&-
}

# What the activation would change: builds the new system (when DRV is given), then prints the
# profile's current generation and system and the runtime closures of both systems.
closure() {
  profile=$(resolve_profile "$1")
  [ -n "$4" ] && open_roots "$1" "$4"
  realise_system "$2" "$3"
  umask 077
  tmp=$(mktemp -d "$(tmpbase)/nix-plan-closure.$$.XXXXXX" 2> /dev/null) ||
    fail host "cannot make a private directory in $(tmpbase)"
  trap 'rm -rf "$tmp"' EXIT
  if cur=$(abs_link "$profile"); then
    say current "$cur"
    if sys=$(abs_link "$cur"); then
      say current-system "$sys"
      if nix-store --check-validity "$sys" 2> /dev/null; then list_closure old "$sys"; else say old-invalid 1; fi
    fi
  fi
  list_closure new "$3"
  say end
}

activate() {
  profile=$(resolve_profile "$1")
  action=$2
  drv=$3
  out=$4
  confirm=$5
  seen=$6
  record=$7
  id=$8
  limit=$9
  # A rollback: the existing generation TO (a number) whose system is OUT, from the current
  # generation FROM (its link) as nix-plan saw it; the profile is switched, not given a new one.
  shift 9
  to=$1
  from=$2
  # The deploy's roots (host-roots.ts), when it has them.
  roots_id=$3
  case $to in *[!0-9]*) fail usage "bad generation '$to'" ;; esac
  case $action in switch | boot | test | dry-activate) ;; *) fail usage "unknown action '$action'" ;; esac
  case $id in *[!A-Za-z0-9-]* | '') fail usage "bad activation id '$id'" ;; esac
  case $limit in *[!0-9]* | '') fail usage "bad activation timeout '$limit'" ;; esac
  [ -n "$roots_id" ] && open_roots "$profile" "$roots_id"
  realise_system "$drv" "$out"
  if [ "$action" = dry-activate ]; then
    umask 077
    timer=$(mktemp -d "$(tmpbase)/nix-plan-timer.$$.XXXXXX") || fail host "cannot make a private directory in $(tmpbase)"
    trap 'rm -rf "$timer"' EXIT
    run_limited "$out" dry-activate "$limit" "$timer/timed-out" < /dev/null 1>&2
    rc=$?
    drop_roots
    if [ -e "$timer/timed-out" ]; then say timed-out "$limit"; fi
    say switch-rc "$rc"
    say state dry-activated
    if cur=$(abs_link "$profile"); then
      say current "$cur"
      say previous "$cur"
      if sys=$(abs_link "$cur"); then say current-system "$sys"; fi
    fi
    say end
    exit 0
  fi
  state="$profile.nix-plan.d"
  # Its mode whatever the umask (a umask of 002 would make it one that own_dir refuses); the
  # profile's directory is made too when it is not there yet, as nix-env would.
  [ -d "$state" ] || mkdir -p -m 755 "$state" || fail host "cannot create $state"
  own_dir "$state"
  say profile "$profile"
  take_lock "$state/lock"
  rec="$profile.nix-plan.json"
  now=none
  if [ -f "$rec" ]; then now=$(nix-hash --type sha256 --flat "$rec") || fail nix "nix-hash failed"; fi
  [ "$now" = "$seen" ] || fail changed "$rec changed since nix-plan read it (another deploy?): nothing was changed"
  dir=$(dirname "$profile")
  base=$(basename "$profile")
  prev=$(abs_link "$profile") || prev=
  prevsys=
  [ -n "$prev" ] && prevsys=$(abs_link "$prev")
  case $prev$prevsys in
    *"$nl"* | *"$cr"*) fail host "$profile links to a path holding a line break: nothing was changed" ;;
  esac
  before=$(cd "$dir" && ls -d "$base"-*-link 2> /dev/null)
  if [ -n "$to" ]; then
    [ "$prev" = "$from" ] ||
      fail changed "$profile points at $prev now, not at $from as when nix-plan looked (another deploy?): nothing was changed"
    [ "$(abs_link "$dir/$base-$to-link")" = "$out" ] ||
      fail changed "generation $to of $profile is no longer $out: nothing was changed"
  fi
  new=$prev
  created=0
  if [ -n "$to" ] && { [ "$action" = switch ] || [ "$action" = boot ]; }; then
    nix-env -p "$profile" --switch-generation "$to" >&2 ||
      fail nix "nix-env --switch-generation $to failed: $profile is unchanged"
    new=$(abs_link "$profile") || fail nix "$profile is not a link after nix-env --switch-generation"
  elif [ "$action" = switch ] || [ "$action" = boot ]; then
    nix-env -p "$profile" --set "$out" >&2 || fail nix "nix-env --set failed: $profile is unchanged"
    new=$(abs_link "$profile") || fail nix "$profile is not a link after nix-env --set"
    case "
$before
" in
      *"
$(basename "$new")
"*) ;;
      *) created=1 ;;
    esac
  fi
  # From here the profile holds the new system (switch, boot) or it is being switched to (test):
  # the deploy's roots have done their work.
  drop_roots
  act="$state/act-$id"
  mkdir "$act" || fail host "cannot create $act"
  systemd=0
  [ -d /run/systemd/system ] && systemd=1
  for name in profile action out prev prevsys new created confirm record systemd limit; do
    eval "printf '%s\\n' \"\$$name\"" > "$act/$name"
  done
  export -p > "$act/env"
  : > "$act/log"
  echo starting > "$act/state"
  cat > "$act/supervise.sh" << 'NIX_PLAN_SUPERVISOR'
${SUPERVISOR}NIX_PLAN_SUPERVISOR
  if [ "$systemd" = 1 ]; then
    systemd-run --unit="nix-plan-activation-$id" --description="nix-plan activation $id" --collect --quiet \
      --no-ask-password --service-type=exec /bin/sh "$act/supervise.sh" "$act" >&2 ||
      fail host "systemd-run could not start the activation: nothing was activated"
  elif command -v setsid > /dev/null 2>&1; then
    (trap '' HUP INT QUIT; exec setsid sh "$act/supervise.sh" "$act") < /dev/null >> "$act/supervisor.log" 2>&1 &
  else
    (trap '' HUP INT QUIT; exec sh "$act/supervise.sh" "$act") < /dev/null >> "$act/supervisor.log" 2>&1 &
  fi
  locked=
  say activation "$id"
  say previous "$prev"
  say previous-system "$prevsys"
  say generation "$new"
  follow "$act" 0 switched
  report "$act"
}

confirm() {
  profile=$(resolve_profile "$1")
  id=$2
  off=$3
  case $id in *[!A-Za-z0-9-]* | '') fail usage "bad activation id '$id'" ;; esac
  own_dir "$profile.nix-plan.d"
  act="$profile.nix-plan.d/act-$id"
  [ -d "$act" ] || fail usage "there is no activation $id for $profile on this host"
  follow "$act" "$off" switched
  if [ "$lost" = 0 ] && [ "$(cat "$act/state" 2> /dev/null)" = awaiting-confirmation ]; then
    if mv "$act/armed" "$act/confirmed" 2> /dev/null; then say confirmed 1; else say confirmed 0; fi
    follow "$act" "$off" final
  fi
  report "$act"
}
`;
