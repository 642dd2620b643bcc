# The stack's server programs at the pinned versions (nix/pins.nix).
#
# A program comes from nixpkgs unchanged when nixpkgs already carries a version the pin
# accepts; otherwise only its `version` and `src` are swapped for the pinned release, so the
# nixpkgs build recipe (configure flags, patches, systemd support) stays in charge.
{ pkgs }:
let
  inherit (pkgs) lib;
  pins = import ./pins.nix { inherit (pkgs) fetchurl fetchFromGitHub; };

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

  fromNixpkgs = {
    postgresql = pkgs.postgresql_15;
    inherit (pkgs) pgbouncer valkey;
    nginx = pkgs.nginxMainline;
  };

  packages = {
    inherit (fromNixpkgs) postgresql;
    pgbouncer = pin "pgbouncer" fromNixpkgs.pgbouncer (_old: { });
    # The recipe's security patches and test-suite tweaks are written for the release nixpkgs
    # carries, not for an older one; only its build patch (link the system jemalloc, the same
    # file since Valkey 7.2) applies to every release. The pinned release is upstream's tested tag.
    valkey = pin "valkey" fromNixpkgs.valkey (old: {
      patches = builtins.filter (patch: lib.hasSuffix "use_system_jemalloc.patch" "${patch}") (
        old.patches or [ ]
      );
      doCheck = false;
    });
    # The recipe also records the version as `nginxVersion` (nginx module builds read it);
    # keep it true to the source.
    nginx = pin "nginx" fromNixpkgs.nginx (_old: { nginxVersion = pins.nginx.release.version; });
  };
in
assert lib.assertMsg (accepts pins.postgresql.want packages.postgresql.version)
  "postgresql_15 in this nixpkgs is ${packages.postgresql.version}, not ${pins.postgresql.want}.x";
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
    overridden = lib.mapAttrs (name: package: package.version != fromNixpkgs.${name}.version) packages;
    wanted = lib.mapAttrs (_: pin: pin.want or ">= ${pin.minimum}") pins;
  };
}
