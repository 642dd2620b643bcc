# The stack's server programs at the pinned versions (nix/pins.nix).
#
# A program comes from nixpkgs unchanged when nixpkgs already carries a version the pin
# accepts; otherwise only its `version` and `src` are swapped for the pinned release, so the
# nixpkgs build recipe (configure flags, patches, systemd support) stays in charge. Rotel,
# which nixpkgs lacks, is the binary of its pinned wheel, on Linux only.
{ pkgs }:
let
  inherit (pkgs) lib;
  pins = import ./pins.nix { inherit (pkgs) fetchurl; };

  accepts = want: version: version == want || lib.hasPrefix "${want}." version;

  # `extra old` adds what a particular recipe needs besides version and src.
  pin =
    name: package: extra:
    let
      inherit (pins.${name}) want release;
    in
    if accepts want package.version then
      package
    else
      package.overrideAttrs (
        old:
        {
          inherit (release) version src;
        }
        // extra old
      );

  inherit (pkgs.stdenv.hostPlatform) system;

  # Rotel has no nixpkgs package: this is the prebuilt `rotel-agent` out of PyPI's wheel
  # (nix/pins.nix), made runnable outside a Python environment. The wheel's Python modules only
  # start this binary, so they are left out.
  rotel =
    let
      inherit (pins.rotel) release;
    in
    pkgs.stdenv.mkDerivation {
      pname = "rotel";
      inherit (release) version;
      src = release.wheels.${system};

      nativeBuildInputs = [
        pkgs.unzip
        pkgs.autoPatchelfHook
      ];
      # What the binary links besides libc and libm (which come with the stdenv): libpython3.11,
      # the cp311 wheel's Python, and libgcc_s. autoPatchelfHook points it at these and at
      # nixpkgs' dynamic loader in place of /lib64's.
      buildInputs = [
        pkgs.python311
        pkgs.stdenv.cc.cc.lib
      ];

      # unzip's setup hook unpacks only `*.zip` names, not `*.whl`.
      unpackPhase = ''
        runHook preUnpack
        unzip -q "$src" rotel/rotel-agent
        runHook postUnpack
      '';

      installPhase = ''
        runHook preInstall
        install -D -m 755 rotel/rotel-agent "$out/bin/rotel-agent"
        runHook postInstall
      '';

      # Runs after the fixup, so it proves the patched binary loads its libraries.
      doInstallCheck = true;
      installCheckPhase = ''
        runHook preInstallCheck
        banner=$("$out/bin/rotel-agent" --version)
        if [[ $banner != "rotel ${release.agentVersion}" ]]; then
          echo "rotel-agent --version printed '$banner', expected 'rotel ${release.agentVersion}'" >&2
          exit 1
        fi
        runHook postInstallCheck
      '';

      meta = {
        description = "Streamfold's Rotel OpenTelemetry collector (rotel-agent), from PyPI's rotel wheel";
        homepage = "https://github.com/streamfold/rotel";
        platforms = builtins.attrNames release.wheels;
        mainProgram = "rotel-agent";
      };
    };

  fromNixpkgs = {
    postgresql = pkgs.postgresql_15;
    garage = pkgs.garage_2;
    inherit (pkgs) pgbouncer valkey;
    nginx = pkgs.nginxMainline;
  };

  packages = {
    inherit (fromNixpkgs) postgresql garage;
    pgbouncer = pin "pgbouncer" fromNixpkgs.pgbouncer (_old: { });
    # nixos-25.11's recipe is written for Valkey 8.1 (NixOS/nixpkgs,
    # pkgs/by-name/va/valkey/package.nix, e.g. its 8.1.4 expression at
    # 0148e16d1446003704803ecabb5a00cfea7d8568): its only patch is `use_system_jemalloc.patch` (link
    # the system jemalloc, the same file since Valkey 7.2), and its check phase edits test files
    # with `--replace-fail` and skips test units chosen for 8.1. The filter keeps that build
    # patch alone, so a fix a later recipe adds for its own release is never applied to 8.0;
    # the CVE-2025-27151 patch that an 8.0.3 recipe carried is upstream in 8.0.6 and later
    # (microsoft/azurelinux dropped its copy at 8.0.6). The check phase is skipped rather than
    # run with edits made for another release.
    valkey = pin "valkey" fromNixpkgs.valkey (old: {
      patches = builtins.filter (patch: lib.hasSuffix "use_system_jemalloc.patch" "${patch}") (
        old.patches or [ ]
      );
      doCheck = false;
    });
    # The recipe (generic.nix) also sets the derivation attribute `nginxVersion` to its own
    # version; keep that attribute true to the source. The recipe's module check
    # (`supports nginxVersion`) reads its function argument instead, which an override cannot
    # reach; this shell builds nginx without extra modules, so no check applies.
    nginx = pin "nginx" fromNixpkgs.nginx (_old: { nginxVersion = pins.nginx.release.version; });
  }
  # On macOS the shell goes without it and says how to install it (nix/shell.nix).
  // lib.optionalAttrs (pins.rotel.release.wheels ? ${system}) { inherit rotel; };
in
assert lib.assertMsg (accepts pins.postgresql.want packages.postgresql.version)
  "postgresql_15 in this nixpkgs is ${packages.postgresql.version}, not ${pins.postgresql.want}.x";
assert lib.assertMsg (accepts pins.garage.want packages.garage.version)
  "garage_2 in this nixpkgs is ${packages.garage.version}, not ${pins.garage.want}.x";
assert lib.assertMsg (lib.versionAtLeast pkgs.rustc.version pins.rustc.minimum)
  "rustc in this nixpkgs is ${pkgs.rustc.version}; the workspace needs ${pins.rustc.minimum} or newer";
{
  inherit packages;

  # What the dev shell runs and whether each version came from an override: evaluated by
  # nix/check-flake.sh, printed by the shell hook.
  report = {
    versions = lib.mapAttrs (_: package: package.version) packages // {
      rustc = pkgs.rustc.version;
    };
    # Whether the version is this flake's pin rather than nixpkgs' own: always for Rotel,
    # which nixpkgs does not carry.
    overridden = lib.mapAttrs (
      name: package: !(fromNixpkgs ? ${name}) || package.version != fromNixpkgs.${name}.version
    ) packages;
    wanted = lib.mapAttrs (_: pin: pin.want or ">= ${pin.minimum}") pins;
  };
}
