# A small closure for the e2e workflow: no nixpkgs, builders use only /bin/sh and its builtins
# (the sandbox provides /bin/sh), with a source file, a shared dependency and three roots.
let
  drv =
    name: script:
    builtins.derivation {
      inherit name;
      system = builtins.currentSystem;
      builder = "/bin/sh";
      args = [
        "-c"
        script
      ];
    };
  greeting = builtins.toFile "greeting.txt" "hello from a plan";
  # Its build log holds a workflow command: the realise action must pass the log through with
  # workflow commands switched off, so a build cannot issue them.
  shared = drv "shared" "echo '::warning::printed by a build'; echo shared > $out";
in
{
  alpha = drv "alpha" "read -r g < ${greeting}; echo \"alpha: $g ${shared}\" > $out";
  beta = drv "beta" "echo \"beta ${shared}\" > $out";
  gamma = drv "gamma" "echo gamma > $out";
}
