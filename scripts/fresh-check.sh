#!/usr/bin/env bash
# `make fresh-check`: run the README's two commands where nothing was installed by hand.
#
# Builds a clean Debian root (debootstrap, minbase) holding only what a Rust developer's machine
# has: ca-certificates, git, make, gcc (with the C library's headers), and the host's Rust
# toolchain bind-mounted read-only. Clones this repository's committed HEAD into it and runs
# `make demo`, then `make test`, inside it (its own mount and PID namespaces, so nothing leaks to
# the host and every process it started ends with it). Prints each command's exit code and wall
# time; exits non-zero when either fails. Needs root (debootstrap, chroot, mounts) and Debian's
# package mirror; takes tens of minutes (a cold build, then the whole test suite).
#
#   FRESH_SUITE=bookworm   the Debian release to build
#   FRESH_MIRROR=URL       the Debian mirror (default deb.debian.org)
#   FRESH_KEEP=1           keep the root afterwards (its path is printed)
#   FRESH_ONLY="make demo" run only these commands (';'-separated)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
suite=${FRESH_SUITE:-bookworm}
mirror=${FRESH_MIRROR:-http://deb.debian.org/debian}
say() { printf 'fresh-check: %s\n' "$*" >&2; }

[[ $(id -u) -eq 0 ]] || { say "needs root (debootstrap, chroot and mounts)"; exit 2; }
if ! command -v debootstrap >/dev/null 2>&1; then
  say "installing debootstrap: it builds the clean Debian root"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends debootstrap >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends debootstrap >/dev/null; }
fi
if [[ -n "$(git -C "$repo" status --porcelain --untracked-files=no)" ]]; then
  say "note: uncommitted changes are not part of the check (it clones the committed HEAD)"
fi

# The host's toolchain: the sysroot of the rustc cargo would use here (cargo, rustc, cargo-fmt,
# cargo-clippy live in its bin). Bound read-only, so the check cannot change it.
sysroot=$(rustc --print sysroot)
[[ -x "$sysroot/bin/cargo" ]] || { say "no cargo in $sysroot/bin"; exit 2; }

work=$(mktemp -d /var/tmp/migsafe-fresh.XXXXXX)
root=$work/root
cleanup() {
  if [[ "${FRESH_KEEP:-}" == 1 ]]; then say "kept the root at $root"; else rm -rf "$work"; fi
}
trap cleanup EXIT

t0=$(date +%s)
say "building a clean Debian $suite root in $root"
if ! debootstrap --variant=minbase --include=ca-certificates,git,make,gcc,libc6-dev \
  "$suite" "$root" "$mirror" >"$work/debootstrap.log" 2>&1; then
  tail -n 20 "$work/debootstrap.log" >&2
  say "debootstrap failed"
  exit 3
fi
say "root ready in $(($(date +%s) - t0)) s"
# A fresh machine's apt sources: the release, its updates and security.
cat >"$root/etc/apt/sources.list" <<EOF
deb $mirror $suite main
deb $mirror $suite-updates main
deb ${mirror%/debian}/debian-security $suite-security main
EOF
cp /etc/resolv.conf "$root/etc/resolv.conf"
# The network this machine reaches the registries through: certificate authorities added
# locally (a TLS-inspecting proxy's) are part of the site, not of the project, so the fresh
# root trusts them as the host does, and sees the same CA settings in its environment.
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
  mkdir -p "$root/usr/local/share/ca-certificates"
  cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
  chroot "$root" update-ca-certificates >/dev/null 2>&1 || { say "update-ca-certificates failed in the root"; exit 3; }
fi
site_env=()
for v in SSL_CERT_FILE SSL_CERT_DIR NODE_EXTRA_CA_CERTS CURL_CA_BUNDLE GIT_SSL_CAINFO REQUESTS_CA_BUNDLE \
  http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY; do
  [[ -n "${!v:-}" ]] && site_env+=("$v=${!v}")
done
# As in any container: package scripts do not start services (postgresql's own cluster).
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 755 "$root/usr/sbin/policy-rc.d"
mkdir -p "$root/opt/rust"
git clone --quiet "$repo" "$root/root/migsafe"
cloned=$(git -C "$root/root/migsafe" rev-parse --short HEAD)
say "cloned $(git -C "$root/root/migsafe" log -1 --format='%h %s' | cut -c1-80)"

IFS=';' read -r -a commands <<<"${FRESH_ONLY:-make demo;make test}"
results=()
failed=0
for cmd in "${commands[@]}"; do
  cmd=$(echo "$cmd" | xargs)
  log=$work/$(echo "$cmd" | tr ' ' '-').log
  say "running '$cmd' in the fresh root (log: $log)"
  start=$(date +%s)
  set +e
  # A mount and PID namespace of its own: the mounts and every process vanish with it.
  unshare --mount --pid --fork --propagation private bash -c '
    set -e
    root=$1 sysroot=$2 cmd=$3
    shift 3
    mount -t proc proc "$root/proc"
    mount -t sysfs sysfs "$root/sys"
    mount --bind /dev "$root/dev"
    mount -t devpts devpts "$root/dev/pts" -o newinstance,ptmxmode=0666 || true
    mount -t tmpfs -o mode=1777,size=8g tmpfs "$root/dev/shm"
    mount --bind "$sysroot" "$root/opt/rust"
    mount -o remount,bind,ro "$root/opt/rust"
    exec chroot "$root" /usr/bin/env -i HOME=/root USER=root LANG=C.UTF-8 TERM=dumb \
      PATH=/opt/rust/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$@" \
      bash -c "cd /root/migsafe && $cmd"
  ' fresh "$root" "$sysroot" "$cmd" "${site_env[@]}" 2>&1 | tee "$log" | sed -u 's/^/  | /'
  rc=${PIPESTATUS[0]}
  set -e
  secs=$(($(date +%s) - start))
  results+=("$cmd: exit $rc, $secs s")
  say "$cmd: exit $rc, $secs s"
  ((rc == 0)) || failed=1
done

say "summary (Debian $suite, clean clone of $cloned, $(nproc) cores):"
for r in "${results[@]}"; do say "  $r"; done
say "  total $(($(date +%s) - t0)) s including the root's build"
exit $failed
