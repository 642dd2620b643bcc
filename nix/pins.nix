# The server versions the production Compose stack runs (seed: edoburu/pgbouncer:1.22.1,
# valkey/valkey:8.0, nginx:1.27-alpine, PostgreSQL 15), and the release to build when the
# pinned nixpkgs carries another version.
#
# `want` is a version or a version prefix of whole components: "8.0" accepts 8.0.3 but not
# 8.1.0; "1.22.1" accepts only 1.22.1. xtask/src/binaries.rs applies the same rule at `up`.
#
# Every hash below is copied from a nixpkgs expression that carried exactly that release
# (repository + path + commit in the comment); none was computed or invented here.
{ fetchurl, fetchFromGitHub }:
{
  # nixpkgs has one attribute per PostgreSQL major; `postgresql_15` is the pin.
  postgresql.want = "15";

  pgbouncer = {
    want = "1.22.1";
    release = {
      version = "1.22.1";
      # NixOS/nixpkgs, pkgs/servers/sql/pgbouncer/default.nix at `version = "1.22.1"`
      # (the 2024 expression with `--with-systemd`, before the move to pkgs/by-name).
      src = fetchurl {
        url = "https://www.pgbouncer.org/downloads/files/1.22.1/pgbouncer-1.22.1.tar.gz";
        hash = "sha256-KwGKps5/WSyYkrueD9kCYkhOtzk3/Sr5KXcKRTc7ohU=";
      };
    };
  };

  valkey = {
    want = "8.0";
    release = {
      version = "8.0.3";
      # pkgs/by-name/va/valkey/package.nix at `version = "8.0.3"`, identical in two nixpkgs
      # trees: NuschtOS/nuschtpkgs @ 54b4e54e30156ca9990dfb2daa0ee37e9ebde6b6 and
      # onny/nixpkgs @ 4b2cd736e584609531be81633ba4ad9f46c4a792.
      src = fetchFromGitHub {
        owner = "valkey-io";
        repo = "valkey";
        rev = "8.0.3";
        hash = "sha256-IzerctJUc478dJu2AH20s/A3psiAZWDjQG3USQWqpos=";
      };
    };
  };

  nginx = {
    want = "1.27";
    release = {
      version = "1.27.2";
      # NixOS/nixpkgs @ 00ed845c1e2614deeb230f4d6197baf190df7d5d,
      # pkgs/servers/http/nginx/mainline.nix (`version = "1.27.2"`), fetched by generic.nix
      # from nginx.org/download.
      src = fetchurl {
        url = "https://nginx.org/download/nginx-1.27.2.tar.gz";
        hash = "sha256-qR7Pw6CzosFBOvymJ72IbXbgQUuBytD7eHKpZVobJfo=";
      };
    };
  };

  # Not a service: the workspace's dependencies (jsonwebtoken 11, time 0.3.55, the icu 2 crates)
  # declare rust-version 1.88, above the workspace's own 1.85.
  rustc.minimum = "1.88";
}
