# nix-plan as a Nix package: the CLI bundle committed in dist/cli (built by `npm run build`, and
# proven by CI to match the sources) run by Node.js 24 from nixpkgs, with its shell completions and
# man page. Nothing is fetched from npm.
#
#   nix run github:OWNER/nix-plan -- export .#nixosConfigurations.web.config.system.build.toplevel -o web.nixplan
#   nix profile install github:OWNER/nix-plan
#
# Only `nodejs_24` and `runCommand` are taken from nixpkgs. nix-plan runs the Nix already installed
# (the one on PATH, which talks to the machine's store or daemon), so Nix is not a dependency.
{
  description = "Evaluate a Nix configuration once, carry its build plan as one small file, realise or relocate it anywhere";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-26.05";

  outputs =
    { self, nixpkgs }:
    let
      systems = [
        "x86_64-linux"
        "aarch64-linux"
        "x86_64-darwin"
        "aarch64-darwin"
      ];
      forAllSystems =
        f:
        builtins.listToAttrs (
          map (system: {
            name = system;
            value = f system nixpkgs.legacyPackages.${system};
          }) systems
        );
      inherit ((builtins.fromJSON (builtins.readFile ./package.json))) version;
    in
    {
      packages = forAllSystems (
        system: pkgs: {
          default = self.packages.${system}.nix-plan;
          nix-plan =
            pkgs.runCommand "nix-plan-${version}"
              {
                cli = ./dist/cli;
                node = pkgs.nodejs_24;
                meta = {
                  description = "Evaluate a Nix configuration once and carry its build plan as one file";
                  mainProgram = "nix-plan";
                };
              }
              ''
                mkdir -p $out/bin $out/lib/nix-plan
                # The bundle is an ES module (its package.json says so); its first line names the
                # interpreter, which becomes this Node.js.
                cp $cli/package.json $out/lib/nix-plan/package.json
                { echo "#!$node/bin/node"; tail -n +2 $cli/index.js; } > $out/lib/nix-plan/index.js
                chmod +x $out/lib/nix-plan/index.js
                ln -s ../lib/nix-plan/index.js $out/bin/nix-plan

                mkdir -p $out/share/bash-completion/completions $out/share/zsh/site-functions \
                  $out/share/fish/vendor_completions.d $out/share/man/man1
                $out/bin/nix-plan completions bash > $out/share/bash-completion/completions/nix-plan
                $out/bin/nix-plan completions zsh > $out/share/zsh/site-functions/_nix-plan
                $out/bin/nix-plan completions fish > $out/share/fish/vendor_completions.d/nix-plan.fish
                $out/bin/nix-plan man > $out/share/man/man1/nix-plan.1
                $out/bin/nix-plan --version
              '';
        }
      );

      apps = forAllSystems (
        system: _pkgs: {
          default = {
            type = "app";
            program = "${self.packages.${system}.default}/bin/nix-plan";
          };
        }
      );
    };
}
