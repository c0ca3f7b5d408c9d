#!/usr/bin/env bash
# nix-plan in one minute, with no network and no root: evaluate examples/hello once into a plan
# bundle, look inside it, throw the evaluating store away, and build the plan in a brand-new store.
# Everything lives in a temporary directory; /nix is never touched.
#
#   bash examples/demo.sh            (installs Nix and Node.js 24 first if they are missing)
#   NIX_PLAN_CLI="nix-plan" bash examples/demo.sh   (use an installed nix-plan instead)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../scripts/ensure-tools.sh
source "$here/../scripts/ensure-tools.sh"
nix_plan_ensure_nix
[[ -n ${NIX_PLAN_CLI:-} ]] || nix_plan_ensure_node
read -r -a cli <<<"${NIX_PLAN_CLI:-node $here/../dist/cli/index.js}"

for tool in nix-instantiate nix-store "${cli[0]}"; do
  command -v "$tool" >/dev/null || { echo "demo: '$tool' not found; install it first" >&2; exit 1; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/nix-plan-demo.XXXXXX")
cleanup() { chmod -R u+w "$work" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

# An isolated single-user store: its own store dir, database, logs and settings (no build users,
# no sandbox, no substituters), so the demo needs neither root nor a daemon nor the network.
use_store() {
  local state=$1
  mkdir -p "$state/conf"
  printf '%s\n' 'build-users-group =' 'sandbox = false' 'substituters =' \
    'experimental-features = nix-command flakes' >"$state/conf/nix.conf"
  export NIX_STORE_DIR="$work/store" NIX_STATE_DIR="$state/var" NIX_LOG_DIR="$state/log"
  export NIX_CONF_DIR="$state/conf" NIX_REMOTE=""
}

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }

use_store "$work/evaluator"
step nix-plan export -f examples/hello -A hello -o hello.nixplan
"${cli[@]}" export -f "$here/hello" -A hello -o "$work/hello.nixplan"

step nix-plan inspect hello.nixplan
"${cli[@]}" inspect "$work/hello.nixplan"

# Forget everything the evaluation produced: the store, its database and the Nix files.
chmod -R u+w "$work/store" "$work/evaluator"
rm -rf "$work/store" "$work/evaluator"
use_store "$work/builder"

step nix-plan realise hello.nixplan --out-link result
"${cli[@]}" realise "$work/hello.nixplan" --out-link "$work/result"

step ./result/bin/hello
"$work/result/bin/hello"
