#!/usr/bin/env bash
# topo's one set-up step, idempotent and quick when everything is there:
#   1. a virtualenv in .venv with topo installed;
#   2. a Docker engine that answers (installed from the distribution and started, when we
#      are root on Debian/Ubuntu and none runs);
#   3. the base image topo-base:bookworm (from the official images when they can be pulled,
#      else built offline with debootstrap).
#   4. with --test: what the test suite drives besides Docker (Chromium for the HTML report,
#      docker-compose for the Compose files).
# Environment: TOPO_OFFLINE=1 skips trying to pull official images.
set -euo pipefail
with_tests=0
[ "${1:-}" = "--test" ] && with_tests=1
cd "$(dirname "$0")/.."
log() { echo "bootstrap: $*" >&2; }
BASE=topo-base:bookworm
PIDFILE=/run/topo-dockerd.pid

# 1. Python environment -------------------------------------------------------------
want=$(cat pyproject.toml | sha256sum | cut -c1-16)
if [ ! -x .venv/bin/python ] || [ "$(cat .venv/.topo-installed 2>/dev/null)" != "$want" ]; then
  log "installing topo into .venv"
  python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check -e '.[test]'
  echo "$want" > .venv/.topo-installed
fi

# 2. Docker engine ------------------------------------------------------------------
engine_ok() { timeout 10 docker info >/dev/null 2>&1; }
as_root_on_debian() { [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; }
apt_install() {
  [ -n "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -mmin -1440 2>/dev/null | head -n1)" ] \
    || apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
if ! engine_ok; then
  if ! as_root_on_debian; then
    log "no Docker engine answers. Install Docker (e.g. 'sudo apt-get install docker.io'),"
    log "start it ('sudo systemctl start docker'), and let this user reach it"
    log "('sudo usermod -aG docker \$USER', then log in again). Then run this script again."
    exit 1
  fi
  if ! command -v dockerd >/dev/null; then
    log "installing docker.io from the distribution"
    apt_install docker.io
  fi
  if ! command -v docker >/dev/null; then apt_install docker.io; fi
  if [ -d /run/systemd/system ] && systemctl start docker 2>/dev/null; then
    log "started dockerd with systemd"
  else
    log "starting dockerd (log: /var/log/topo-dockerd.log)"
    # Swarm's agent pulls a task's image before each start unless told to use the node's
    # own: topo's images are local, and nothing here may reach a registry.
    DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1 nohup dockerd >/var/log/topo-dockerd.log 2>&1 &
    echo $! > "$PIDFILE"
  fi
  for _ in $(seq 1 60); do engine_ok && break; sleep 1; done
  engine_ok || { log "dockerd did not answer within 60s; see /var/log/topo-dockerd.log"; exit 1; }
fi

# 3. Base image ---------------------------------------------------------------------
build_from_official() {
  # The official images hold python and redis-server; redis and psutil come as wheels
  # fetched here on the host, so the build itself needs no network.
  [ "${TOPO_OFFLINE:-0}" = 1 ] && return 1
  timeout 60 docker pull -q python:3.11-slim-bookworm >/dev/null 2>&1 || return 1
  timeout 60 docker pull -q redis:7-bookworm >/dev/null 2>&1 || return 1
  local ctx; ctx=$(mktemp -d)
  .venv/bin/pip download -q --only-binary=:all: --python-version 3.11 \
    --platform "manylinux2014_$(uname -m)" -d "$ctx/wheels" redis psutil || { rm -rf "$ctx"; return 1; }
  cat > "$ctx/Dockerfile" <<'DOCKERFILE'
FROM redis:7-bookworm AS redis
FROM python:3.11-slim-bookworm
COPY --from=redis /usr/local/bin/redis-server /usr/local/bin/redis-server
COPY wheels /tmp/wheels
RUN pip install --no-index --no-cache-dir /tmp/wheels/*.whl && rm -rf /tmp/wheels \
 && ln -s /usr/local/bin/python3 /usr/bin/python3 2>/dev/null || true
LABEL topo.managed=true topo.image=base
DOCKERFILE
  docker build -q --network none -t "$BASE" "$ctx" >/dev/null; local rc=$?
  rm -rf "$ctx"
  return $rc
}
if ! docker image inspect "$BASE" >/dev/null 2>&1; then
  if build_from_official; then
    log "built $BASE from the official python and redis images"
  else
    log "official images cannot be pulled here; building $BASE offline"
    if ! command -v debootstrap >/dev/null; then
      as_root_on_debian || { log "debootstrap is missing (apt-get install debootstrap)"; exit 1; }
      apt_install debootstrap
    fi
    bash scripts/build-base-image.sh "$BASE"
  fi
fi
# 4. Test tools ----------------------------------------------------------------------
if [ "$with_tests" = 1 ]; then
  missing=()
  command -v chromium >/dev/null || missing+=(chromium)
  command -v docker-compose >/dev/null || docker compose version >/dev/null 2>&1 || missing+=(docker-compose)
  command -v redis-server >/dev/null || missing+=(redis-server)  # the queue tests start their own
  if [ ${#missing[@]} -gt 0 ]; then
    as_root_on_debian || { log "missing for the tests: ${missing[*]} (install them)"; exit 1; }
    log "installing ${missing[*]} for the tests"
    apt_install "${missing[@]}"
  fi
fi
log "ready: $(docker version --format 'engine {{.Server.Version}}') , image $BASE"
