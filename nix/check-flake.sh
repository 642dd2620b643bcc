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
    "pins resolve to postgres 15, pgbouncer 1.22.1, valkey 8.0.10, nginx 1.27.5, garage 2.x; nothing was built"
