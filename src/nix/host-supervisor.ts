// The activation supervisor the host program (host-activation.ts) leaves on a deploy target: a POSIX
// sh script, started detached, that runs switch-to-configuration, reverts a failed switch, and
// reverts an unconfirmed one when its confirmation window ends (the watchdog). Written without
// brace expansions, like the host program, so it lives in a template literal untouched.

/** The unit nixos-rebuild runs switch-to-configuration in: using it too serialises the two tools. */
export const SWITCH_UNIT = 'nixos-rebuild-switch-to-configuration';

/**
 * switch-to-configuration SYSTEM ($1) ACTION ($2) as nixos-rebuild runs it under systemd: in its
 * unit, with the environment it passes, waiting for the end and passing its output through.
 */
export const SWITCH_UNDER_SYSTEMD = String.raw`systemd-run -E LOCALE_ARCHIVE -E NIXOS_INSTALL_BOOTLOADER --collect --no-ask-password --pipe \
      --quiet --service-type=exec --unit=${SWITCH_UNIT} --wait "$1/bin/switch-to-configuration" "$2"`;

/**
 * switch-to-configuration under a time limit, shared by the supervisor and the host program's
 * attached dry-activate. `run_limited SYSTEM ACTION LIMIT MARK` runs SYSTEM's
 * switch-to-configuration ACTION (in nixos-rebuild's systemd unit when the host runs systemd) and
 * returns its exit code; after LIMIT seconds (0: never) it stops it — `systemctl stop` of the
 * unit, TERM to the process and everything it started, KILL to what is left once it is gone or
 * 10 s later — and creates MARK (removed again if the switch succeeded after all). The processes
 * are found by their parents in /proc, so nothing beyond sh is needed. Needs `nap`.
 */
export const SWITCH_FUNCTIONS = String.raw`descendants() {
  all=" $1 "
  more=1
  while [ "$more" = 1 ]; do
    more=0
    for s in /proc/[0-9]*/status; do
      p=
      pp=
      while read -r k v; do
        case $k in Pid:) p=$v ;; PPid:) pp=$v; break ;; esac
      done 2> /dev/null < "$s"
      case $all in *" $p "*) continue ;; esac
      case $all in *" $pp "*) all="$all$p "; more=1 ;; esac
    done
  done
  printf '%s\n' "$all"
}

run_limited() {
  rm -f "$4"
  if [ -d /run/systemd/system ]; then
    ${SWITCH_UNDER_SYSTEMD} &
  else
    "$1/bin/switch-to-configuration" "$2" &
  fi
  spid=$!
  tpid=
  if [ "$3" -gt 0 ]; then
    (
      end=$(($(date +%s) + $3))
      while [ "$(date +%s)" -lt "$end" ]; do sleep 1; done
      : > "$4"
      pids=$(descendants "$spid")
      if [ -d /run/systemd/system ]; then systemctl stop ${SWITCH_UNIT} 2> /dev/null; fi
      kill -s TERM $pids 2> /dev/null
      n=0
      while kill -0 "$spid" 2> /dev/null && [ "$n" -lt 50 ]; do
        nap
        n=$((n + 1))
      done
      kill -s KILL $pids 2> /dev/null
    ) < /dev/null > /dev/null 2>&1 &
    tpid=$!
  fi
  wait "$spid"
  src=$?
  if [ -n "$tpid" ]; then
    [ -e "$4" ] || kill "$tpid" 2> /dev/null
    # dash reports a job killed by a signal ("Terminated") on the stderr of the wait that reaps
    # it, which is the activation's log: the timer's end is no news to whoever reads that.
    wait "$tpid" 2> /dev/null
  fi
  [ "$src" = 0 ] && rm -f "$4"
  return "$src"
}
`;

/** Generations of activation state (logs, results) kept beside the profile. */
export const KEEP_ACTIVATIONS = 5;

/**
 * The supervisor: started detached before the switch, so neither a dropped SSH session nor a
 * killed nix-plan can stop an activation halfway. It runs switch-to-configuration (under
 * systemd-run when the host runs systemd), restores the previous generation when the switch
 * fails, and, for confirmed activations, waits CONFIRM seconds after the switch for nix-plan to
 * come back and confirm; if nobody does, it restores the previous generation (the watchdog).
 * Who wins between the confirmation and the watchdog is settled by one atomic rename of `armed`.
 */
export const SUPERVISOR = String.raw`# nix-plan activation supervisor: sh supervise.sh ACTIVATION-DIR
act=$1
trap '' HUP INT PIPE
get() { cat "$act/$1" 2>/dev/null; }
put() { printf '%s\n' "$2" > "$act/$1.tmp" && mv -f "$act/$1.tmp" "$act/$1"; }
note() { printf 'nix-plan: %s\n' "$*" >> "$act/log"; }
nap() { sleep 0.2 2>/dev/null || sleep 1; }
. "$act/env"
state=$(dirname "$act")
echo $$ > "$act/pid"
echo $$ > "$state/lock/pid"
profile=$(get profile); action=$(get action); out=$(get out); prev=$(get prev)
prevsys=$(get prevsys); new=$(get new); created=$(get created); confirm=$(get confirm)
systemd=$(get systemd); limit=$(get limit)

${SWITCH_FUNCTIONS}
# run_switch SYSTEM ACTION MARK: switch-to-configuration under the activation timeout, logged.
run_switch() {
  run_limited "$1" "$2" "$limit" "$3" < /dev/null >> "$act/log" 2>&1
}

prune() {
  total=0
  for d in "$state"/act-*; do [ -d "$d" ] && total=$((total + 1)); done
  n=0
  for d in "$state"/act-*; do
    [ -d "$d" ] || continue
    n=$((n + 1))
    if [ $((total - n)) -ge ${KEEP_ACTIVATIONS} ] && [ "$d" != "$act" ]; then rm -rf "$d"; fi
  done
}

finish() {
  rm -rf "$state/lock"
  prune
  exit 0
}

generation() { expr "$1" : '.*-\([0-9][0-9]*\)-link$'; }

revert() {
  put state reverting
  note "$1"
  if [ -z "$prev" ]; then
    if [ "$created" = 1 ]; then
      rm -f "$profile" "$new"
      put removed "$new"
      note "there is no previous generation to re-activate: removed $new"
    else
      note "there is no previous generation to re-activate"
    fi
    put state no-previous
    finish
  fi
  if [ "$action" != test ] && [ "$new" != "$prev" ]; then
    if ! nix-env -p "$profile" --switch-generation "$(generation "$prev")" >> "$act/log" 2>&1; then
      note "nix-env --switch-generation failed: $profile still points at $new"
      put state revert-failed
      finish
    fi
    if [ "$created" = 1 ] && nix-env -p "$profile" --delete-generations "$(generation "$new")" >> "$act/log" 2>&1; then
      put removed "$new"
    fi
  fi
  note "re-activating $prevsys ($action)"
  run_switch "$prevsys" "$action" "$act/revert-timed-out"
  rc=$?
  [ -e "$act/revert-timed-out" ] && note "the previous generation's switch-to-configuration $action did not finish within $limit s: stopped it"
  put revert-rc "$rc"
  if [ "$rc" = 0 ]; then
    put state reverted
  else
    note "the previous generation's switch-to-configuration $action exited with $rc"
    put state revert-failed
  fi
  finish
}

write_record() {
  record=$(get record)
  [ -n "$record" ] || return 0
  rec="$profile.nix-plan.json"
  # Into a file of its own beside the record, then renamed over it: mktemp makes it exclusively,
  # under a name nobody can plant a link at beforehand (a link there is never followed).
  rtmp=
  if rtmp=$(mktemp "$rec.tmp.XXXXXX") && printf '%s\n' "$record" > "$rtmp" && chmod 644 "$rtmp" && mv -f "$rtmp" "$rec"; then
    return 0
  fi
  [ -n "$rtmp" ] && rm -f "$rtmp"
  note "could not write $rec"
  put record-failed 1
}

put state switching
run_switch "$out" "$action" "$act/timed-out"
rc=$?
put switch-rc "$rc"
[ -e "$act/timed-out" ] && revert "switch-to-configuration $action did not finish within $limit s: stopped it; restoring the previous generation"
[ "$rc" = 0 ] || revert "switch-to-configuration $action exited with $rc: restoring the previous generation"
if [ "$confirm" -gt 0 ] && { [ "$action" = switch ] || [ "$action" = test ]; }; then
  deadline=$(($(date +%s) + confirm))
  : > "$act/armed"
  put state awaiting-confirmation
  while [ ! -e "$act/confirmed" ]; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      if mv "$act/armed" "$act/expired" 2>/dev/null; then
        revert "no confirmation within $confirm s: restoring the previous generation"
      fi
    fi
    nap
  done
fi
write_record
put state done
finish
`;
