{
  description = "AMTP native dev stack: PostgreSQL 15, PgBouncer 1.22.1, Valkey 8.0, nginx 1.27 and the Rust toolchain as plain processes";

  # nixos-25.11: the oldest NixOS release whose Rust (>= 1.88) builds this workspace's
  # dependencies. PgBouncer, Valkey and nginx are pinned back to the Compose stack's versions
  # in nix/services.nix. flake.lock holds the revision; docs/nix.md says where it came from.
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-25.11";

  outputs =
    { nixpkgs, ... }:
    let
      systems = [
        "x86_64-linux"
        "aarch64-linux"
        "x86_64-darwin"
        "aarch64-darwin"
      ];
      forAllSystems =
        f:
        nixpkgs.lib.genAttrs systems (
          system:
          let
            pkgs = nixpkgs.legacyPackages.${system};
          in
          f pkgs (import ./nix/services.nix { inherit pkgs; })
        );
    in
    {
      # `nix build .#pgbouncer` etc.; `nix eval .#pgbouncer.version` shows what a pin resolved to.
      packages = forAllSystems (_pkgs: services: services.packages);

      devShells = forAllSystems (
        pkgs: services: {
          default = import ./nix/shell.nix {
            inherit pkgs services;
            nixpkgsRev = nixpkgs.shortRev or "without a revision";
          };
        }
      );
    };
}
