#!/usr/bin/env bash
# Run a command on a single-node Docker Swarm made for it, then leave the engine as found:
# a swarm that existed stays joined; one this script made is left (also on failure or
# Ctrl-C). The swarm listens on loopback only.
#   scripts/single-node-swarm.sh topo compare scenarios/etl.yaml --engine swarm
# On a shared engine, hold its lock around the whole: swarm mode changes the engine.
set -u
state=$(docker info --format '{{.Swarm.LocalNodeState}}')
made=0
# swarm init creates the docker_gwbridge network and leaving keeps it: remove it when we made it
had_gwbridge=$(docker network ls -q --filter name='^docker_gwbridge$')
if [ "$state" = "inactive" ]; then
  docker swarm init --advertise-addr 127.0.0.1 --listen-addr 127.0.0.1:2377 >/dev/null || exit 1
  made=1
fi
leave() {
  [ "$made" = 1 ] || return 0
  docker swarm leave --force >/dev/null
  [ -n "$had_gwbridge" ] || docker network rm docker_gwbridge >/dev/null 2>&1 || true
}
trap leave EXIT
trap 'exit 130' INT TERM
"$@"
