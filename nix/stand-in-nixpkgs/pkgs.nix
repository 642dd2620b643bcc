# Stand-ins for the packages the flake takes from nixpkgs.
#
# The versions are chosen to drive both branches of nix/services.nix: on three systems the
# services are newer than the pins (as in nixos-25.11), so the flake must override them; on
# aarch64-darwin they already satisfy the pins, so the flake must keep them as they are.
{ lib, system }:
let
  carries =
    if system == "aarch64-darwin" then
      {
        pgbouncer = "1.22.1";
        valkey = "8.0.10";
        nginx = "1.27.5";
      }
    else
      {
        pgbouncer = "1.25.1";
        valkey = "8.1.6";
        nginx = "1.29.7";
      };

  # Instantiates to a .drv; building it fails on purpose.
  unbuildable =
    name: env:
    derivation (
      {
        inherit name system;
        builder = "/bin/sh";
        args = [
          "-c"
          "echo 'nix/stand-in-nixpkgs is for evaluation only' >&2; exit 1"
        ];
      }
      // env
    );

  # Like stdenv.mkDerivation: `version` and `src` reach the derivation, `meta` stays an
  # attribute, and `overrideAttrs (old: { ... })` rebuilds it from the merged attributes.
  mkPackage =
    attrs:
    unbuildable "${attrs.pname}-${attrs.version}" (
      builtins.removeAttrs attrs [
        "passthru"
        "meta"
      ]
    )
    // attrs.passthru or { }
    // {
      inherit (attrs) pname version;
      meta = attrs.meta or { };
      overrideAttrs = f: mkPackage (attrs // f attrs);
    };

  package = pname: version: mkPackage { inherit pname version; };

  # A fixed-output derivation, as the real fetcher makes: instantiating one parses its hash,
  # given as `hash` (SRI) or `sha256` (hex), as nixpkgs' fetchurl takes either.
  fetchurl =
    {
      url,
      hash ? null,
      sha256 ? null,
    }:
    unbuildable (baseNameOf url) (
      {
        inherit url;
        outputHashMode = "flat";
      }
      // (
        if hash != null then
          { outputHash = hash; }
        else
          {
            outputHashAlgo = "sha256";
            outputHash = sha256;
          }
      )
    );

  # As nixpkgs' mkShell: `packages` become the shell derivation's `nativeBuildInputs`.
  mkShell =
    {
      name ? "nix-shell",
      packages ? [ ],
      shellHook ? "",
      passthru ? { },
    }:
    unbuildable name {
      nativeBuildInputs = packages;
      inherit shellHook;
    }
    // passthru;
in
{
  inherit
    lib
    fetchurl
    mkShell
    ;

  # For Rotel's wheel (nix/services.nix): a C stdenv and what its derivation names.
  stdenv = {
    hostPlatform = { inherit system; };
    mkDerivation = mkPackage;
    cc.cc.lib = package "gcc-lib" "14.3.0";
  };
  unzip = package "unzip" "6.0";
  autoPatchelfHook = package "auto-patchelf-hook" "0";
  python311 = package "python3" "3.11.14";

  postgresql_15 = package "postgresql" "15.14";
  pgbouncer = package "pgbouncer" carries.pgbouncer;
  # As in nixpkgs: a build patch that fits every release, and a fix for one release.
  valkey = mkPackage {
    pname = "valkey";
    version = carries.valkey;
    patches = [
      ./use_system_jemalloc.patch
      (unbuildable "valkey-security-fix.patch" { })
    ];
  };
  nginxMainline = package "nginx" carries.nginx;
  # A 2.x, as nixpkgs' garage_2 (pkgs/tools/filesystems/garage/default.nix) carries.
  garage_2 = package "garage" "2.3.0";

  rustc = package "rustc" "1.91.1";
  cargo = package "cargo" "1.91.1";
  rustfmt = package "rustfmt" "1.91.1";
  clippy = package "clippy" "1.91.1";
  rust-analyzer = package "rust-analyzer" "2025-11-03";

  wrk = package "wrk" "4.2.0";
  hyperfine = package "hyperfine" "1.19.0";
}
