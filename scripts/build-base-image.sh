#!/usr/bin/env bash
# Build topo's base image (python3, redis client, psutil, redis-server) without any image
# registry: debootstrap a minimal Debian bookworm and `docker import` it.
# Usage: build-base-image.sh TAG
set -euo pipefail
tag=${1:?usage: build-base-image.sh TAG}
mirror=${TOPO_DEBIAN_MIRROR:-}
if [ -z "$mirror" ]; then
  # Use the mirror this host's apt already uses, so no other address is contacted.
  mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null \
           | grep -oE 'https?://[^ ]+/debian/?( |$)' | head -n1 | tr -d ' ' || true)
  mirror=${mirror:-http://deb.debian.org/debian}
fi
command -v debootstrap >/dev/null || { echo "debootstrap is missing: apt-get install debootstrap" >&2; exit 1; }
root=$(mktemp -d /var/tmp/topo-base.XXXXXX)
trap 'rm -rf "$root"' EXIT
echo "topo: building base image $tag from $mirror (debootstrap, about a minute)" >&2
debootstrap --variant=minbase --include=python3,python3-redis,python3-psutil,redis-server \
  bookworm "$root" "$mirror" >"$root.log" 2>&1 || { tail -n 20 "$root.log" >&2; rm -f "$root.log"; exit 1; }
rm -f "$root.log"
# Trim what a worker never needs; keep the image small.
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/usr/share/doc \
       "$root"/usr/share/man "$root"/usr/share/locale
tar -C "$root" -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'LABEL topo.managed=true topo.image=base' \
  - "$tag" >/dev/null
echo "topo: base image $tag ready" >&2
