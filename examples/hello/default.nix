# nix-plan's first example: a tiny closure that needs no nixpkgs and no network. It has every kind
# of object a plan carries: two derivations (one depends on the other), a text file made with
# builtins.toFile, and a path-literal source (build.sh).
{
  system ? builtins.currentSystem,
}:
let
  message = builtins.toFile "message.txt" "Hello from a nix-plan bundle: built without evaluating.\n";

  banner = builtins.derivation {
    name = "hello-banner";
    inherit system;
    builder = "/bin/sh";
    args = [
      "-c"
      "echo \"built on $(/bin/uname -n) from a plan\" > $out"
    ];
  };

  hello = builtins.derivation {
    name = "hello";
    inherit system;
    builder = "/bin/sh";
    args = [ ./build.sh ];
    inherit message banner;
    outputs = [
      "out"
      "doc"
    ];
  };
in
{
  inherit hello banner;
}
