# The dev shell: the pinned servers and their clients on PATH (xtask finds them there), the
# Rust toolchain, and the load-test tools the benchmarks use.
{ pkgs, services, nixpkgsRev }:
let
  inherit (services.report) versions;
in
pkgs.mkShell {
  name = "amtp-dev";

  packages = [
    # postgres, initdb, pg_ctl and psql.
    services.packages.postgresql
    services.packages.pgbouncer
    # valkey-server and valkey-cli.
    services.packages.valkey
    services.packages.nginx
    # The artifact store (S3 API).
    services.packages.garage

    pkgs.cargo
    pkgs.rustc
    pkgs.rustfmt
    pkgs.clippy
    pkgs.rust-analyzer

    pkgs.wrk
    pkgs.hyperfine
  ];

  # Versions come from evaluation, so entering the shell runs nothing but echo.
  shellHook = ''
    echo "amtp dev shell (nixpkgs ${nixpkgsRev}): postgres ${versions.postgresql}, pgbouncer ${versions.pgbouncer}, valkey ${versions.valkey}, nginx ${versions.nginx}, garage ${versions.garage}, rustc ${versions.rustc}"
    echo "start the stack with: cargo xtask up"
  '';

  passthru = { inherit (services) report; };
}
