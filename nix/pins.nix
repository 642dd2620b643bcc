# The server versions the production Compose stack runs (seed: edoburu/pgbouncer:1.22.1,
# valkey/valkey:8.0, nginx:1.27-alpine, PostgreSQL 15), and the release to build when the
# pinned nixpkgs carries another version.
#
# `want` is a version or a version prefix of whole components: "8.0" would accept 8.0.3 but
# not 8.1.0; "1.22.1" accepts only 1.22.1. The three servers want their exact release: the
# Compose tags `valkey/valkey:8.0` and `nginx:1.27-alpine` float to the newest release of
# their line, and an older release of that line from nixpkgs would lack its fixes (Valkey
# 8.0.3: CVE-2025-32023, CVE-2025-48367, CVE-2025-49844; nginx 1.27.2 with zlib-ng: nixpkgs
# #357522). xtask/src/binaries.rs applies the same rule at `up`, with the Compose tags' prefixes.
#
# Every hash below is copied from a public file that names that exact release and its source
# (repository, path and commit, or index, in the comment); none was computed or invented here.
{ fetchurl }:
{
  # nixpkgs has one attribute per PostgreSQL major; `postgresql_15` is the pin.
  postgresql.want = "15";

  # nixpkgs has one attribute per Garage major; `garage_2` is taken as it is. The release
  # `.ci/run` installs (2.5.0, xtask/src/stack/garage.rs) has no expression with a hash that
  # could be read here, so there is no override: under Nix, `verify` shows Garage as unpinned
  # when nixpkgs' 2.x is another release (docs/nix.md).
  garage.want = "2";

  pgbouncer = {
    want = "1.22.1";
    release = {
      version = "1.22.1";
      # NixOS/nixpkgs @ 3b1f8297eafd95bbc1cf1cad8129817ef5e386f5,
      # pkgs/servers/sql/pgbouncer/default.nix (`version = "1.22.1"`, the 2024 expression with
      # `--with-systemd`, before the move to pkgs/by-name).
      src = fetchurl {
        url = "https://www.pgbouncer.org/downloads/files/1.22.1/pgbouncer-1.22.1.tar.gz";
        hash = "sha256-KwGKps5/WSyYkrueD9kCYkhOtzk3/Sr5KXcKRTc7ohU=";
      };
    };
  };

  valkey = {
    want = "8.0.10";
    release = {
      version = "8.0.10";
      # The tag's GitHub tarball, as microsoft/azurelinux @ 0ca3c997442fa1f2b633d601f8f704a100d63c78
      # fetches it: SPECS/valkey/valkey.spec (`Version: 8.0.10`, Source0 this URL) and the
      # sha256 of that Source0 in SPECS/valkey/valkey.signatures.json. Not a nixpkgs hash:
      # nixpkgs carried 8.0.x up to 8.0.6 (release-25.05, NixOS/nixpkgs#448625), but no
      # nixpkgs expression past 8.0.3 could be read here.
      src = fetchurl {
        url = "https://github.com/valkey-io/valkey/archive/refs/tags/8.0.10.tar.gz";
        sha256 = "3bf957a99d375a0b594db7c52026041c4bfad8ad3711fc00418ccd21dc4632a4";
      };
    };
  };

  nginx = {
    want = "1.27.5";
    release = {
      # The last 1.27 release, which `nginx:1.27-alpine` runs.
      version = "1.27.5";
      # faukah/nixpkgs (a nixpkgs tree) @ 3b20077cd82fd1f099e92e2792d73e3176d4869d,
      # pkgs/servers/http/nginx/mainline.nix (`version = "1.27.5"`), fetched by generic.nix
      # from nginx.org/download; NixOS/nixpkgs#399387 made the same bump in nixpkgs itself.
      src = fetchurl {
        url = "https://nginx.org/download/nginx-1.27.5.tar.gz";
        hash = "sha256-6WrOu5wqbbigAMPdGzLsuhuBDwzVhiMtTZIeN2Z03Q4=";
      };
    };
  };

  # The OpenTelemetry collector. nixpkgs has no rotel package, so the flake installs the
  # `rotel-agent` binary out of the wheel `.ci/run` installs with pip: `rotel==0.0.1a15`, whose
  # binary reports itself as `rotel 0.0.1-alpha10`, the release of the Compose stack's
  # `streamfold/rotel:v0.0.1-alpha10` (xtask/src/stack/otel_collector.rs pins "0.0.1", the
  # part of that banner `up` reads). The binary links against libpython3.11: the cp311 wheels.
  # Linux only: the cp311 macOS wheel, though tagged universal2, holds one arm64 binary linked
  # against python.org's Python 3.11 framework, which nixpkgs' Python is not; the shell says
  # what to do there (docs/nix.md).
  #
  # Each sha256 is the one PyPI's simple index publishes for that file (PEP 691 JSON of
  # https://pypi.org/simple/rotel/, its `hashes.sha256`, read 2026-12-07; both files uploaded
  # 2025-07-31), as pip checks it; the URL is that file's `url` in the same index.
  rotel = {
    want = "0.0.1a15";
    release = {
      version = "0.0.1a15";
      # What `rotel-agent --version` prints, checked after the build.
      agentVersion = "0.0.1-alpha10";
      wheels = {
        x86_64-linux = fetchurl {
          url = "https://files.pythonhosted.org/packages/95/6e/707655c5b3f6e42287a22b47fef2e9a9ae57ad33ac6cd3efb6f8c1cc1b8e/rotel-0.0.1a15-cp311-cp311-manylinux_2_34_x86_64.whl";
          sha256 = "2f4117e58410c933e0dc042a268ef738dab2e3a5d63b5831209acdac2a6ddcb7";
        };
        aarch64-linux = fetchurl {
          url = "https://files.pythonhosted.org/packages/9e/ee/40e800505aff294699288d0e18e8d96c327a86af49bbc01f93ee6fa81ae6/rotel-0.0.1a15-cp311-cp311-manylinux_2_34_aarch64.whl";
          sha256 = "4eb01f9e5d228e4086f63e16cf1d0fa6e92b724bde51f120932a742acec5b0ba";
        };
      };
    };
  };

  # Not a service: the workspace's dependencies declare rust-version 1.89 (rusty-s3 0.11, which
  # signs the xtask's S3 calls, crc-fast 1.10 under object_store, uuid 1.29) and 1.88
  # (jsonwebtoken 11, time 0.3.55, the icu 2 crates), above the workspace's own 1.85.
  rustc.minimum = "1.89";
}
