#!/usr/bin/env bash
# Parses and evaluates flake.nix for every system without network access, with the nixpkgs
# input replaced by nix/stand-in-nixpkgs, and checks that the pins resolve to the Compose
# stack's versions. Nothing is built or downloaded; flake.lock is left untouched.
#
# Needs `nix` 2.8 or newer (Debian: apt-get install nix-bin) and a git checkout: flakes see
# only files git tracks. Run from anywhere: bash nix/check-flake.sh
set -euo pipefail

systems=(x86_64-linux aarch64-linux x86_64-darwin aarch64-darwin)

repo=$(git -C "$(dirname "${BASH_SOURCE[0]}")" rev-parse --show-toplevel)
cd "$repo"

fail() {
    echo "check-flake: $*" >&2
    exit 1
}

command -v nix >/dev/null ||
    fail "nix not found; install it (Debian/Ubuntu: apt-get install nix-bin)"

git ls-files --error-unmatch -- flake.nix flake.lock >/dev/null 2>&1 ||
    fail "flake.nix or flake.lock is not tracked by git, so nix cannot see it; git add it first"
untracked=$(git ls-files --others --exclude-standard -- nix)
[[ -z $untracked ]] ||
    fail "untracked files under nix/ are invisible to the flake; git add them first:" $untracked

# A private store, cache and config under a temporary directory: works as root or not, needs
# no daemon, no sandbox and no writable /nix, and leaves nothing behind.
work=$(mktemp -d "${TMPDIR:-/tmp}/amtp-check-flake.XXXXXX")
cleanup() {
    chmod -R u+w "$work" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
echo '{"flakes": [], "version": 2}' >"$work/registry.json"
export XDG_CACHE_HOME="$work/cache" NO_COLOR=1
export NIX_CONFIG="experimental-features = nix-command flakes
sandbox = false
substituters =
flake-registry = $work/registry.json"

# nix's progress lines and its (expected) "dirty tree" and "not writing modified lock file"
# warnings go to a log, shown when something fails.
log="$work/nix.log"
nix_flake() {
    if ! nix --store "local?root=$work/root" "$@" \
        --override-input nixpkgs "path:$repo/nix/stand-in-nixpkgs" \
        --no-write-lock-file 2>"$log"; then
        echo "--- nix $* (last lines of its output)" >&2
        grep -v '^evaluating ' "$log" | tail -n 20 >&2
        return 1
    fi
}

lock_before=$(git hash-object flake.lock)

echo "== nix $(nix --version | awk '{print $NF}'): flake show (nixpkgs = nix/stand-in-nixpkgs)"
nix_flake flake show . || fail "flake show failed"
echo "== flake check --no-build (the output schema, every system)"
nix_flake flake check --no-build . || fail "flake check failed"

# Applied to a dev shell's `report` (nix/services.nix): "ok", or what is wrong.
check_report='{ expectOverridden }: report:
  let
    accepts = want: version: version == want || builtins.substring 0 (builtins.stringLength want + 1) version == "${want}.";
    pins = { postgresql = "15"; pgbouncer = "1.22.1"; valkey = "8.0.10"; nginx = "1.27.5"; garage = "2"; };
    problems =
      builtins.concatMap (name:
        (if accepts pins.${name} report.versions.${name} then [ ]
         else [ "${name} is ${report.versions.${name}}, the flake pins ${pins.${name}}" ])
        ++ (if report.wanted.${name} == pins.${name} then [ ]
            else [ "nix/pins.nix wants ${name} ${report.wanted.${name}}, the flake pins ${pins.${name}}" ])
      ) (builtins.attrNames pins)
      ++ builtins.concatMap (name:
        if report.overridden.${name} == expectOverridden then [ ]
        else [ "${name}: overridden = ${builtins.toJSON report.overridden.${name}}, expected ${builtins.toJSON expectOverridden} with the stand-in" ]
      ) [ "pgbouncer" "valkey" "nginx" ]
      ++ (if report.overridden.postgresql then [ "postgresql_15 must come from nixpkgs unchanged" ] else [ ])
      ++ (if report.overridden.garage then [ "garage_2 must come from nixpkgs unchanged" ] else [ ]);
  in
  if problems == [ ] then "ok" else builtins.concatStringsSep "; " problems'

# Rotel: the rotel 0.0.1a15 wheel per system, as PyPI's simple index lists it (nix/pins.nix);
# no wheel on macOS, where the shell must go without it and say so.
rotel_version=0.0.1a15
declare -A rotel_wheel=(
    [x86_64-linux]='{ url = "https://files.pythonhosted.org/packages/95/6e/707655c5b3f6e42287a22b47fef2e9a9ae57ad33ac6cd3efb6f8c1cc1b8e/rotel-0.0.1a15-cp311-cp311-manylinux_2_34_x86_64.whl"; sha256 = "2f4117e58410c933e0dc042a268ef738dab2e3a5d63b5831209acdac2a6ddcb7"; }'
    [aarch64-linux]='{ url = "https://files.pythonhosted.org/packages/9e/ee/40e800505aff294699288d0e18e8d96c327a86af49bbc01f93ee6fa81ae6/rotel-0.0.1a15-cp311-cp311-manylinux_2_34_aarch64.whl"; sha256 = "4eb01f9e5d228e4086f63e16cf1d0fa6e92b724bde51f120932a742acec5b0ba"; }'
)

# Applied to a dev shell: "ok", or what is wrong with its rotel.
check_rotel='{ version, wheel, package }: shell:
  let
    inShell = builtins.filter (p: (p.pname or "") == "rotel") shell.nativeBuildInputs;
    rotel = builtins.head inShell;
    says = text: builtins.replaceStrings [ text ] [ "" ] shell.shellHook != shell.shellHook;
    inherit (shell) report;
    problems =
      (if report.wanted.rotel == version then [ ]
       else [ "nix/pins.nix wants rotel ${report.wanted.rotel}, the flake pins ${version}" ])
      ++ (if wheel == null then
            (if inShell == [ ] then [ ] else [ "rotel is in the shell without a wheel for this system" ])
            ++ (if report.versions ? rotel then [ "the report gives rotel a version without a wheel" ] else [ ])
            ++ (if says "rotel-agent (the otel-collector service) is not in this shell" then [ ]
                else [ "the shell hook does not say that rotel-agent is missing" ])
          else if builtins.length inShell != 1 then
            [ "the shell has ${toString (builtins.length inShell)} rotel packages, expected 1" ]
          else
            (if rotel.drvPath == package then [ ] else [ "the shell'"'"'s rotel is not packages.rotel" ])
            ++ (if rotel.version == version && report.versions.rotel == version then [ ]
                else [ "rotel is ${rotel.version} (report: ${report.versions.rotel}), the flake pins ${version}" ])
            ++ (if report.overridden.rotel then [ ] else [ "rotel: overridden = false, but nixpkgs has no rotel" ])
            ++ (if rotel.src.url == wheel.url then [ ] else [ "rotel wheel URL is ${rotel.src.url}, expected ${wheel.url}" ])
            ++ (if rotel.src.outputHash == wheel.sha256 then [ ]
                else [ "rotel wheel sha256 is ${rotel.src.outputHash}, expected ${wheel.sha256}" ])
            ++ (if says "rotel ${version}" then [ ] else [ "the shell hook does not print rotel ${version}" ]));
  in
  if problems == [ ] then "ok" else builtins.concatStringsSep "; " problems'

checked=0
for system in "${systems[@]}"; do
    drv=$(nix_flake eval --raw ".#devShells.$system.default.drvPath") ||
        fail "devShells.$system.default does not evaluate"
    report=$(nix_flake eval --json ".#devShells.$system.default.report") ||
        fail "the pin report for $system does not evaluate"
    for name in pgbouncer valkey nginx garage; do
        nix_flake eval --raw ".#packages.$system.$name.drvPath" >/dev/null ||
            fail "packages.$system.$name does not evaluate"
    done
    wheel=${rotel_wheel[$system]:-null}
    rotel_drv=null
    if [[ $wheel != null ]]; then
        rotel_drv=$(nix_flake eval --json ".#packages.$system.rotel.drvPath") ||
            fail "packages.$system.rotel does not evaluate"
    else
        has_rotel=$(nix_flake eval --json ".#packages.$system" --apply 'packages: packages ? rotel') ||
            fail "packages.$system does not evaluate"
        [[ $has_rotel == false ]] || fail "packages.$system has rotel, but it has no wheel"
    fi
    echo "== $system: $drv"
    echo "   $report"
    # The stand-in's aarch64-darwin already carries pinned versions (the flake must keep
    # them), the other systems newer ones (the flake must override them): both paths run.
    expect_overridden=true
    [[ $system == aarch64-darwin ]] && expect_overridden=false
    verdict=$(nix_flake eval --raw ".#devShells.$system.default.report" \
        --apply "($check_report) { expectOverridden = $expect_overridden; }") ||
        fail "the pin report for $system could not be checked"
    [[ $verdict == ok ]] || fail "$system: $verdict"
    verdict=$(nix_flake eval --raw ".#devShells.$system.default" \
        --apply "($check_rotel) { version = \"$rotel_version\"; wheel = $wheel; package = $rotel_drv; }") ||
        fail "rotel in the $system shell could not be checked"
    [[ $verdict == ok ]] || fail "$system: $verdict"
    # An overridden Valkey keeps only the recipe's build patch.
    patches=$(nix_flake eval --json ".#packages.$system.valkey.patches" \
        --apply 'map (patch: baseNameOf "${patch}")') ||
        fail "valkey patches for $system do not evaluate"
    case $expect_overridden:$patches in
    true:'["'*'-use_system_jemalloc.patch"]' | false:*valkey-security-fix.patch*) ;;
    *) fail "$system: valkey patches are $patches" ;;
    esac
    checked=$((checked + 1))
done

# The real lock must name a github nixpkgs revision with its hash, and must be unchanged.
lock=$(nix --store "local?root=$work/root" eval --raw --impure --expr '
  let
    node = (builtins.fromJSON (builtins.readFile ./flake.lock)).nodes.nixpkgs.locked;
    ok =
      node.type == "github" && node.owner == "NixOS" && node.repo == "nixpkgs"
      && builtins.match "[0-9a-f]{40}" node.rev != null
      && builtins.match "sha256-[A-Za-z0-9+/]{43}=" node.narHash != null
      && builtins.isInt node.lastModified;
  in
  if ok then "nixpkgs ${node.rev} ${node.narHash}" else throw "flake.lock: bad nixpkgs node"
') || fail "flake.lock does not pin nixpkgs properly"
echo "== flake.lock: $lock"
[[ $(git hash-object flake.lock) == "$lock_before" ]] || fail "flake.lock was modified"

echo "check-flake: ok: flake parsed and evaluated for $checked systems against the stand-in;" \
    "pins resolve to postgres 15, pgbouncer 1.22.1, valkey 8.0.10, nginx 1.27.5, garage 2.x," \
    "rotel $rotel_version from its wheel on Linux (URL and sha256 per system), none on macOS; nothing was built"
