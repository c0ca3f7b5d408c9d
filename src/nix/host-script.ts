// The program nix-plan runs on a deploy target (and, for `apply`, on this machine): every step of
// a deploy as POSIX sh, so the host needs only sh, Nix and the everyday tools of any NixOS system.
//
// It is passed whole on each connection (`sh -c PROGRAM nix-plan-host PHASE ARGS…`), so nothing is
// installed on the host and the host always runs the code of the nix-plan that talks to it.
// Lines for nix-plan go to stdout, each starting `@nix-plan `; what a person should read (Nix's
// build log, switch-to-configuration's output) goes to stderr. The program is written without
// brace expansions (`${…}`) so it can live in a template literal untouched.
import { SUPERVISOR, SWITCH_FUNCTIONS } from './host-supervisor.js';

/** The name the program runs under (`$0`): how a host's process list and logs show it. */
export const HOST_PROGRAM_NAME = 'nix-plan-host';

/** Version of the marker-line protocol below; the probe reports it. */
export const HOST_PROTOCOL = 1;

/** The host program. */
export const HOST_SCRIPT = String.raw`# ${HOST_PROGRAM_NAME}: nix-plan's steps on a deploy target (sh -c PROGRAM ${HOST_PROGRAM_NAME} PHASE ARGS...)
trap '' PIPE
nl='
'
cr=$(printf '\r')
# One answer per line: a value holding a line break (a profile link's target can) would be read as
# answers of its own, so the session ends refusing it instead.
say() {
  case $* in
    *"$nl"* | *"$cr"*)
      printf '@nix-plan error host %s\n' "a $1 to report holds a line break (a link target made to look like answers?): refusing it"
      exit 1
      ;;
  esac
  printf '@nix-plan %s\n' "$*"
}
fail() {
  printf '@nix-plan error %s\n' "$*"
  exit 1
}
nap() { sleep 0.2 2>/dev/null || sleep 1; }
alive() { [ -n "$1" ] && { [ -d "/proc/$1" ] || kill -0 "$1" 2>/dev/null; }; }
abs_link() {
  t=$(readlink "$1" 2>/dev/null) || return 1
  case $t in /*) printf '%s\n' "$t" ;; *) printf '%s/%s\n' "$(dirname "$1")" "$t" ;; esac
}
# A relative profile is taken from the login's home directory on the host.
resolve_profile() { case $1 in /*) printf '%s\n' "$1" ;; *) printf '%s/%s\n' "$HOME" "$1" ;; esac; }
tmpbase() { if [ -n "$TMPDIR" ]; then printf '%s\n' "$TMPDIR"; else printf '/tmp\n'; fi; }
link_number() { expr "$(basename "$1")" : '.*-\([0-9][0-9]*\)-link$'; }
# The generation nix-env --rollback goes to: PROFILE's highest-numbered PROFILE-N-link below
# the current generation CURRENT (a link path); prints nothing and fails when there is none.
generation_before() {
  g_dir=$(dirname "$1")
  g_base=$(basename "$1")
  g_cur=$(link_number "$2") || return 1
  g_best=
  for g_link in "$g_dir/$g_base"-*-link; do
    [ -L "$g_link" ] || continue
    g_n=$(link_number "$g_link") || continue
    [ "$(basename "$g_link")" = "$g_base-$g_n-link" ] || continue
    [ "$g_n" -lt "$g_cur" ] || continue
    if [ -z "$g_best" ] || [ "$g_n" -gt "$g_best" ]; then g_best=$g_n; fi
  done
  [ -n "$g_best" ] || return 1
  printf '%s/%s-%s-link\n' "$g_dir" "$g_base" "$g_best"
}

probe() {
  profile=$(resolve_profile "$1")
  say protocol ${HOST_PROTOCOL}
  # First: who we are explains a failure of what follows (a login that cannot reach the store).
  say uid "$(id -u)"
  # Standard output only: a warning Nix prints (an unknown setting in nix.conf) is not the answer.
  v=$(nix-store --version 2> /dev/null) || fail nix "nix-store --version failed: $(nix-store --version 2>&1)"
  say nix "$v"
  sd=$(nix-instantiate --eval -E builtins.storeDir 2> /dev/null) ||
    fail nix "cannot ask Nix for its store dir: $(nix-instantiate --eval -E builtins.storeDir 2>&1)"
  say store-dir "$sd"
  if [ -d /run/systemd/system ]; then say systemd 1; else say systemd 0; fi
  if command -v zstd > /dev/null 2>&1; then say zstd 1; else say zstd 0; fi
  if cur=$(abs_link "$profile"); then
    say generation "$cur"
    if sys=$(abs_link "$cur"); then say system "$sys"; fi
    # Where a rollback would go.
    if before=$(generation_before "$profile" "$cur"); then
      say previous-generation "$before"
      if sys=$(abs_link "$before"); then say previous-system "$sys"; fi
    fi
  fi
  if [ -f "$profile.nix-plan.json" ]; then
    say record "$(od -An -v -tx1 "$profile.nix-plan.json" | tr -d ' \n')"
  fi
  lock="$profile.nix-plan.d/lock"
  if [ -d "$lock" ]; then
    pid=$(cat "$lock/pid" 2>/dev/null)
    if [ -z "$pid" ] || alive "$pid"; then say busy "$pid"; fi
  fi
  for d in "$(tmpbase)"/nix-plan-recv.* "$(tmpbase)"/nix-plan-closure.* "$(tmpbase)"/nix-plan-timer.*; do
    [ -d "$d" ] || continue
    pid=$(expr "$(basename "$d")" : 'nix-plan-[a-z]*\.\([0-9]*\)\.')
    alive "$pid" || rm -rf "$d" 2> /dev/null
  done
  say end
}

# receive SIZE SHA256 ENCODING [GO]: the plan on stdin into a private file; with GO, the sender
# verifies the plan while it is being sent and ends it with GO only once it has: a plan not
# followed by GO is never read.
receive() {
  size=$1
  sha=$2
  enc=$3
  go=$4
  umask 077
  base=$(tmpbase)
  tmp=$(mktemp -d "$base/nix-plan-recv.$$.XXXXXX" 2> /dev/null) || {
    tmp="$base/nix-plan-recv.$$.0"
    mkdir "$tmp" 2> /dev/null || fail host "cannot make a private directory in $base"
  }
  trap 'rm -rf "$tmp"' EXIT
  trap 'exit 129' HUP
  trap 'exit 130' INT
  trap 'exit 143' TERM
  cat > "$tmp/plan" || fail host "cannot write the plan into $tmp (is the disk full?)"
  got=$(wc -c < "$tmp/plan" | tr -d ' ')
  golen=$(printf '%s' "$go" | wc -c | tr -d ' ')
  if [ -n "$go" ] && [ "$got" = "$size" ]; then
    fail transfer "the sender did not confirm the plan it sent as verified: nothing was imported"
  fi
  [ "$got" = "$((size + golen))" ] ||
    fail transfer "received $got of $size bytes: the transfer was cut short, nothing was imported"
  if [ -n "$go" ]; then
    [ "$(tail -c "$golen" "$tmp/plan")" = "$go" ] || fail transfer "the plan received does not end as sent: nothing was imported"
    dd if=/dev/null of="$tmp/plan" bs=1 seek="$size" 2> /dev/null || fail host "cannot cut $tmp/plan to its size"
  fi
  h=$(nix-hash --type sha256 --flat "$tmp/plan" 2>&1) || fail nix "nix-hash failed: $h"
  [ "$h" = "$sha" ] || fail transfer "the plan received has sha256 $h, not the $sha verified: nothing was imported"
  if [ "$enc" = zstd ]; then
    { zstd -d -c -q "$tmp/plan" || echo "$?" > "$tmp/zstd.rc"; } | nix-store --import > "$tmp/imported"
    rc=$?
    # Nix's failure first: when nix-store --import stops early, zstd fails too (a broken pipe),
    # so zstd is blamed only when Nix took the whole stream.
    if [ "$rc" != 0 ] && [ -f "$tmp/zstd.rc" ]; then
      fail nix "nix-store --import failed with exit code $rc (zstd, decompressing the plan into it, exited $(cat "$tmp/zstd.rc"))"
    fi
    [ "$rc" = 0 ] || fail nix "nix-store --import failed with exit code $rc"
    [ -f "$tmp/zstd.rc" ] && fail host "zstd could not decompress the verified plan (exit $(cat "$tmp/zstd.rc"))"
  else
    nix-store --import < "$tmp/plan" > "$tmp/imported"
    rc=$?
    [ "$rc" = 0 ] || fail nix "nix-store --import failed with exit code $rc"
  fi
  say imported "$(wc -l < "$tmp/imported" | tr -d ' ')"
  say end
}

missing() {
  list=$(xargs nix-store --check-validity --print-invalid) || fail nix "nix-store --check-validity failed"
  printf '%s\n' "$list" | while read -r p; do [ -n "$p" ] && say missing "$p"; done
  say end
}

${SWITCH_FUNCTIONS}
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

# Builds DRV (when given) and checks that it gave the system OUT, valid and a NixOS system.
realise_system() {
  if [ -n "$1" ]; then
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
  case $to in *[!0-9]*) fail usage "bad generation '$to'" ;; esac
  case $action in switch | boot | test | dry-activate) ;; *) fail usage "unknown action '$action'" ;; esac
  case $id in *[!A-Za-z0-9-]* | '') fail usage "bad activation id '$id'" ;; esac
  case $limit in *[!0-9]* | '') fail usage "bad activation timeout '$limit'" ;; esac
  realise_system "$drv" "$out"
  if [ "$action" = dry-activate ]; then
    umask 077
    timer=$(mktemp -d "$(tmpbase)/nix-plan-timer.$$.XXXXXX") || fail host "cannot make a private directory in $(tmpbase)"
    trap 'rm -rf "$timer"' EXIT
    run_limited "$out" dry-activate "$limit" "$timer/timed-out" < /dev/null 1>&2
    rc=$?
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
  mkdir -p "$state" || fail host "cannot create $state"
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
  act="$profile.nix-plan.d/act-$id"
  [ -d "$act" ] || fail usage "there is no activation $id for $profile on this host"
  follow "$act" "$off" switched
  if [ "$lost" = 0 ] && [ "$(cat "$act/state" 2> /dev/null)" = awaiting-confirmation ]; then
    if mv "$act/armed" "$act/confirmed" 2> /dev/null; then say confirmed 1; else say confirmed 0; fi
    follow "$act" "$off" final
  fi
  report "$act"
}

phase=$1
shift
case $phase in
  probe) probe "$@" ;;
  receive) receive "$@" ;;
  missing) missing "$@" ;;
  closure) closure "$@" ;;
  activate) activate "$@" ;;
  confirm) confirm "$@" ;;
  *) fail usage "unknown phase '$phase'" ;;
esac
`;

/** The argv that runs `phase` of the host program with `args` (for a HostShell). */
export function hostProgramArgv(phase: string, args: readonly string[], sudo = false): string[] {
  return [...(sudo ? ['sudo', '-n', '--'] : []), 'sh', '-c', HOST_SCRIPT, HOST_PROGRAM_NAME, phase, ...args];
}
