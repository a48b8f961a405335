#!/usr/bin/env bash
# Install what migsafe needs, only what is missing, saying what it does.
#   scripts/setup.sh build   libclang (pg_query's build) and the PostgreSQL server binaries
#   scripts/setup.sh test    the same, plus what the tests use (Chromium for the HTML report test)
set -euo pipefail
purpose=${1:-build}
say() { printf 'migsafe setup: %s\n' "$*" >&2; }

if ! command -v cargo >/dev/null 2>&1; then
  say "cargo is not installed; install Rust with https://rustup.rs and run this again"
  exit 1
fi

packages=()
# pg_query's build generates bindings with bindgen, which needs libclang.
if ! ldconfig -p 2>/dev/null | grep -qE 'libclang(-[0-9.]+)?\.so' && ! ls /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1; then
  packages+=(libclang-dev)
fi
# The throwaway clusters need PostgreSQL's server binaries (initdb, postgres, pg_ctl) and
# pg_dump/pg_restore for backups; contrib for extensions such as pg_trgm, ltree, pgcrypto.
have_server=false
if [[ -n "${PG_BIN:-}" && -x "${PG_BIN}/postgres" ]]; then have_server=true; fi
if command -v pg_config >/dev/null 2>&1 && [[ -x "$(pg_config --bindir)/postgres" ]]; then have_server=true; fi
if ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then have_server=true; fi
if ! $have_server; then packages+=(postgresql postgresql-contrib); fi
if [[ "$purpose" == test ]]; then
  command -v chromium >/dev/null 2>&1 || packages+=(chromium)
fi

if ((${#packages[@]})); then
  sudo=""
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null 2>&1 || { say "need root (or sudo) to install: ${packages[*]}"; exit 1; }
    sudo=sudo
  fi
  say "installing ${packages[*]} with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  if ! $sudo apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null 2>&1; then
    say "refreshing the package lists first"
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
  fi
  say "installed ${packages[*]}"
fi
