#!/usr/bin/env bash
# Fetch the squawk linter's prebuilt binary (npm package @squawk-cli/linux-x64) into the cache
# and print its path. Used only by the benchmark, which compares lint speed on the same files.
set -euo pipefail
version=${1:-2.66.0}
if [[ -n "${MIGSAFE_CACHE:-}" ]]; then cache=$MIGSAFE_CACHE
elif [[ $(id -u) -eq 0 ]]; then cache=/var/cache/migsafe
else cache=${XDG_CACHE_HOME:-$HOME/.cache}/migsafe; fi
dest="$cache/squawk-$version"
if [[ -x "$dest/squawk" ]]; then echo "$dest/squawk"; exit 0; fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "@squawk-cli/linux-x64@$version" >/dev/null)
tar xzf "$work"/*.tgz -C "$work"
mkdir -p "$dest"
install -m 755 "$work/package/bin/squawk" "$dest/squawk"
echo "$dest/squawk"
