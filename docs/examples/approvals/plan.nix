# A small service, before and after a change, for the example summaries in docs/approvals.md
# (rendered by scripts/approvals-example.mjs). `--argstr change after` bumps openssl, replaces
# libyaml with libfyaml, and builds zlib with other flags: everything above zlib is rebuilt at the
# same version. Builders are /bin/sh, so it builds anywhere Nix runs.
{ change ? "before" }:
let
  after = change == "after";
  system = builtins.currentSystem;
  builder = builtins.toFile "builder.sh" ''
    for o in ''${outputs:-out}; do
      eval "p=\$$o"
      echo "$name $o" > "$p"
    done
  '';
  mk = name: attrs: derivation ({ inherit name system; builder = "/bin/sh"; args = [ "-e" builder ]; } // attrs);
  zlib = mk "zlib-1.3.1" { configureFlags = if after then "--static" else "--shared"; };
  openssl = mk (if after then "openssl-3.0.14" else "openssl-3.0.13") { buildInputs = "${zlib}"; };
  curl = mk "curl-8.7.1" { buildInputs = "${openssl} ${zlib}"; };
  yaml = if after then mk "libfyaml-0.9" { } else mk "libyaml-0.2.5" { };
  pcre = mk "pcre2-10.43" { };
  nginx = mk "nginx-1.26.0" { buildInputs = "${openssl} ${zlib} ${pcre}"; outputs = [ "out" "doc" ]; };
in
{
  web = mk "web-2.4.0" { deps = "${nginx} ${curl} ${yaml}"; };
  worker = mk "worker-2.4.0" { deps = "${curl} ${yaml} ${pcre}"; };
}
