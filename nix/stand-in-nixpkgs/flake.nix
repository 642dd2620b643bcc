# An evaluation-only stand-in for nixpkgs, for nix/check-flake.sh on machines that cannot
# fetch nixpkgs. It offers exactly the names flake.nix and nix/*.nix use. Its derivations
# instantiate (so `drvPath` works and every source hash is parsed) but are never built.
{
  description = "evaluation-only stand-in for nixpkgs; never built";

  outputs =
    { self }:
    {
      lib = import ./lib.nix;
      legacyPackages = self.lib.genAttrs [
        "x86_64-linux"
        "aarch64-linux"
        "x86_64-darwin"
        "aarch64-darwin"
      ] (system: import ./pkgs.nix { inherit (self) lib; inherit system; });
    };
}
