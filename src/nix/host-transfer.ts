// The host program's transfer phases (host-script.ts puts them together): `receive` takes a plan
// into a private file, checks its size and sha256 against what the sender verified and imports
// it with `nix-store --import`; `missing` says which of the paths it is given the store lacks.
// Written without brace expansions, like the rest of the program, so it lives in a template
// literal untouched; it uses the program's helpers (`say`, `fail`, `tmpbase`).

/** The `receive` and `missing` phases, as sh functions. */
export const TRANSFER_PHASES = String.raw`# receive SIZE SHA256 ENCODING [GO [PROFILE ID DRV OUT]]: the plan on stdin into a private file;
# with GO, the sender verifies the plan while it is being sent and ends it with GO only once it
# has: a plan not followed by GO is never read. With an ID, what was imported is rooted for the
# deploy ID (host-roots.ts) as soon as Nix has it: the derivation DRV, else the system OUT.
receive() {
  size=$1
  sha=$2
  enc=$3
  go=$4
  r_profile=$5
  r_id=$6
  r_drv=$7
  r_out=$8
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
  # Standard output only: a warning nix-hash prints (a setting or feature in nix.conf it does not
  # know) is not the hash.
  h=$(nix-hash --type sha256 --flat "$tmp/plan" 2> "$tmp/hash.err") || fail nix "nix-hash failed: $(cat "$tmp/hash.err")"
  [ "$h" = "$sha" ] || fail transfer "the plan received has sha256 $h, not the $sha verified: nothing was imported"
  [ -n "$r_id" ] && open_roots "$r_profile" "$r_id"
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
  if [ -n "$rdir" ]; then
    if [ -n "$r_drv" ]; then
      root_drv "$r_drv"
    elif [ -n "$r_out" ] && nix-store --check-validity "$r_out" 2> /dev/null; then
      root_path "$r_out" system
    fi
    roots_touch
  fi
  say imported "$(wc -l < "$tmp/imported" | tr -d ' ')"
  say end
}

missing() {
  list=$(xargs nix-store --check-validity --print-invalid) || fail nix "nix-store --check-validity failed"
  printf '%s\n' "$list" | while read -r p; do [ -n "$p" ] && say missing "$p"; done
  say end
}
`;
