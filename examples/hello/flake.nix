# The same example as a flake with no inputs (works offline): nix-plan export .#hello
{
  description = "nix-plan example: a plan without nixpkgs";
  outputs =
    { self }:
    let
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      forSystem = system: {
        name = system;
        value =
          let
            plan = import ./default.nix { inherit system; };
          in
          {
            default = plan.hello;
            inherit (plan) hello banner;
          };
      };
    in
    {
      packages = builtins.listToAttrs (map forSystem systems);
    };
}
