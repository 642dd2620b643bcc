# The dev shell: the pinned servers and their clients on PATH (xtask finds them there), the
# Rust toolchain, and the load-test tools the benchmarks use.
{ pkgs, services, nixpkgsRev }:
let
  inherit (services.report) versions wanted;
  inherit (pkgs.stdenv.hostPlatform) system;

  # Rotel is packaged for Linux only (nix/pins.nix): rotel's macOS wheels hold an arm64 binary
  # linked against python.org's Python 3.11 framework, so on a Mac the shell says what to do.
  rotel =
    if services.packages ? rotel then
      {
        packages = [ services.packages.rotel ];
        version = ", rotel ${versions.rotel}";
        note = "";
      }
    else
      {
        packages = [ ];
        version = "";
        note =
          if system == "aarch64-darwin" then
            "echo \"rotel-agent (the otel-collector service) is not in this shell on macOS; install it with python.org's Python 3.11: python3.11 -m pip install --target ~/.local/rotel rotel==${wanted.rotel}, then put ~/.local/rotel/rotel on PATH (docs/nix.md)\""
          else
            "echo \"rotel-agent (the otel-collector service) is not in this shell on ${system}: rotel's macOS wheel holds only an arm64 binary, so cargo xtask up cannot start otel-collector here (docs/nix.md)\"";
      };
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
  ]
  # The OpenTelemetry collector, rotel-agent.
  ++ rotel.packages;

  # Versions come from evaluation, so entering the shell runs nothing but echo.
  shellHook = ''
    echo "amtp dev shell (nixpkgs ${nixpkgsRev}): postgres ${versions.postgresql}, pgbouncer ${versions.pgbouncer}, valkey ${versions.valkey}, nginx ${versions.nginx}, garage ${versions.garage}${rotel.version}, rustc ${versions.rustc}"
    ${rotel.note}
    echo "start the stack with: cargo xtask up"
  '';

  passthru = { inherit (services) report; };
}
