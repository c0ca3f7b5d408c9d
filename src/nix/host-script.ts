// The program nix-plan runs on a deploy target (and, for `apply`, on this machine): every step of
// a deploy as POSIX sh, so the host needs only sh, Nix and the everyday tools of any NixOS system.
//
// It is passed whole on each connection (`sh -c PROGRAM nix-plan-host PHASE ARGS…`), so nothing is
// installed on the host and the host always runs the code of the nix-plan that talks to it.
// Lines for nix-plan go to stdout, each starting `@nix-plan `; what a person should read (Nix's
// build log, switch-to-configuration's output) goes to stderr. The program is written without
// brace expansions (`${…}`) so it can live in a template literal untouched. Here: the helpers every
// phase uses, the probe and the dispatch; the phases that move a plan are in host-transfer.ts, those
// that activate it in host-activation.ts, the supervisor activation leaves behind in
// host-supervisor.ts.
import { ACTIVATION_PHASES } from './host-activation.js';
import { ROOTS_FUNCTIONS } from './host-roots.js';
import { TRANSFER_PHASES } from './host-transfer.js';

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
rdir=
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
  # The newest activation beside the profile (their names sort by time): how it ended, so the
  # next deploy or rollback can say what the host was left running. First lines only.
  last=
  for d in "$profile.nix-plan.d"/act-*; do [ -d "$d" ] && [ ! -L "$d" ] && last=$d; done
  if [ -n "$last" ]; then
    say last-activation "$(basename "$last")"
    for f in action out state switch-rc; do
      v=
      [ -f "$last/$f" ] && read -r v < "$last/$f"
      case $v in *"$cr"*) v= ;; esac
      say "last-$f" "$v"
    done
    [ -e "$last/expired" ] && say last-expired 1
    [ -e "$last/timed-out" ] && say last-timed-out 1
  fi
  for d in "$(tmpbase)"/nix-plan-recv.* "$(tmpbase)"/nix-plan-closure.* "$(tmpbase)"/nix-plan-timer.*; do
    [ -d "$d" ] || continue
    pid=$(expr "$(basename "$d")" : 'nix-plan-[a-z]*\.\([0-9]*\)\.')
    alive "$pid" || rm -rf "$d" 2> /dev/null
  done
  # What deploys cut off before they ended left rooted (see host-roots.ts).
  stale_roots "$1"
  say end
}

# The experimental features the host's Nix has on, as its settings say them (the text form: 2.8's
# --json writes them as numbers); nothing when no \`nix\` command there says them.
features() {
  for f_cmd in show-config 'config show'; do
    # f_cmd is split on purpose: 'config show' is two words.
    # shellcheck disable=SC2086
    f_out=$(nix --extra-experimental-features nix-command $f_cmd 2> /dev/null) || continue
    f_line=$(printf '%s\n' "$f_out" | sed -n 's/^experimental-features = //p')
    [ -n "$f_line$(printf '%s\n' "$f_out" | sed -n 's/^experimental-features =$/x/p')" ] || continue
    say features "$f_line"
    say end
    return 0
  done
  say end
}

${ROOTS_FUNCTIONS}
${TRANSFER_PHASES}
${ACTIVATION_PHASES}
phase=$1
shift
case $phase in
  probe) probe "$@" ;;
  receive) receive "$@" ;;
  missing) missing "$@" ;;
  closure) closure "$@" ;;
  activate) activate "$@" ;;
  confirm) confirm "$@" ;;
  release) release "$@" ;;
  features) features ;;
  *) fail usage "unknown phase '$phase'" ;;
esac
`;

/** The argv that runs `phase` of the host program with `args` (for a HostShell). */
export function hostProgramArgv(phase: string, args: readonly string[], sudo = false): string[] {
  return [...(sudo ? ['sudo', '-n', '--'] : []), 'sh', '-c', HOST_SCRIPT, HOST_PROGRAM_NAME, phase, ...args];
}
