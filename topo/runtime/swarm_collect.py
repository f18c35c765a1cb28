"""The ledger's event lines collected from every node's run volume through that node's engine.

A Swarm task on another node cannot bind-mount topo's run folder, so each task writes its
event files to a node-local named volume (``<deployment>-run`` at /run/topo). On every node
topo has an engine for, a small *reader* container mounts that volume; a process exec'd in
it streams the bytes appended to each event file back through the engine's API (one
long-lived exec per node, so polling costs no process start per read), and the harness
appends them to mirror files in the local run folder. The run engine's own incremental
reader (``topo.events.EventLog``) tails those mirrors as it tails the bind-mounted folder of
the Docker engine: readiness, stall detection and fault timing see the lines live.

- The batch's start signal travels the other way: when the harness writes ``go`` into the
  run folder, it is copied into every node's volume (``put_archive``).
- A killed worker container loses nothing already written: the volume and the reader
  outlive it, and a replacement task on the same node appends to the same files.
- The final drain: once every task container is gone (no writer left), a ``.drain`` file
  tells each streaming reader to make one last pass and say END; the run's figures are
  computed after that.
- Nothing goes through Redis (a fault can empty it) or through the log driver (which splits
  long lines and loses a removed container's output).
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import docker
import docker.errors

from topo.defaults import CONTAINER_UID, CONTAINER_USER
from topo.errors import RunError
from topo.model import TopologyPlan
from topo.plan import DEPLOYMENT, REDIS_FOLDER, RUN_DIR
from topo.runtime.sdk import engine_error

GO_POLL = 0.02  # s: how often the local ``go`` file is looked for (a stat)
DRAIN_TIMEOUT = 60.0  # s for every reader to say END once told to drain
READER_MEMORY = 64 << 20
READER_CPUS = 0.25
DRAIN_FILE = ".drain"
END = b"END"
HEARTBEAT = b"HB"

# The reader's main process: make the volume's folders the container user's, then wait to
# be removed. A new volume takes the owner of the image's /run/topo (copied up), so root
# (with CHOWN as its only capability) first takes it over to create the folders in it.
# Exec form: the image need not have a shell.
_PREPARE = f"""
import os, signal
os.chown("{RUN_DIR}", 0, 0)
folders = ("{RUN_DIR}/events", "{RUN_DIR}/{REDIS_FOLDER}", "{RUN_DIR}")  # the parent last
for d in folders:
    os.makedirs(d, exist_ok=True)
for d in folders:
    os.chown(d, {CONTAINER_UID}, {CONTAINER_UID})
open("/tmp/prepared", "w").close()
signal.pause()
"""

# Exec'd in the reader: every byte appended to an event file, framed as "<name> <n>\\n" and
# n bytes; "HB 0" when idle (keeps the stream's read timeout away); once .drain exists, a
# last pass that finds nothing new ends it with "END 0". argv[1]: offsets already held.
_TAIL = f"""
import json, os, sys, time
ev, drain, out = "{RUN_DIR}/events", "{RUN_DIR}/{DRAIN_FILE}", sys.stdout.buffer
off = json.loads(sys.argv[1])
idle = time.monotonic()
def sweep():
    n = 0
    for name in sorted(os.listdir(ev)):
        if not name.endswith(".jsonl"):
            continue
        with open(os.path.join(ev, name), "rb") as f:
            f.seek(off.get(name, 0))
            data = f.read(1 << 20)
        if data:
            off[name] = off.get(name, 0) + len(data)
            out.write(b"%s %d\\n" % (name.encode(), len(data)) + data)
            n += 1
    return n
while True:
    draining = os.path.exists(drain)
    if sweep():
        out.flush()
        idle = time.monotonic()
        continue
    if draining:
        break
    if time.monotonic() - idle > 5:
        out.write(b"HB 0\\n"); out.flush(); idle = time.monotonic()
    time.sleep(0.05)
out.write(b"END 0\\n"); out.flush()
"""


@dataclass(frozen=True)
class NodeEngine:
    """A Swarm node and the engine topo reaches it through."""

    node_id: str
    client: docker.DockerClient
    local: bool  # topo's own node: its mirror files keep the agents' names


def volume_name(deployment: str) -> str:
    return f"{deployment}-run"


class NodeReader:
    """One node's reader container and the thread streaming its event files into the run
    folder's ``events/`` (a node elsewhere gets its files prefixed with its node id: a task
    rescheduled there may write a file of the same name)."""

    def __init__(self, node: NodeEngine, plan: TopologyPlan, run_dir: Path) -> None:
        self.node = node
        self.plan = plan
        self.events = run_dir / "events"
        self.prefix = "" if node.local else f"{node.node_id[:12]}~"
        self.container_id = ""
        self.ended = threading.Event()
        self.error: str | None = None
        self._files: dict[str, Any] = {}
        self._offsets: dict[str, int] = {}
        self._thread = threading.Thread(target=self._follow, daemon=True,
                                        name=f"collect-{node.node_id[:12]}")

    def start(self, image: str) -> None:
        """Make the volume and the reader on this node, prepare the folders, start reading."""
        deployment = self.plan.labels[DEPLOYMENT]
        labels = dict(self.plan.labels)
        client = self.node.client
        client.volumes.create(volume_name(deployment), labels=labels)
        container = client.containers.run(
            image, ["python3", "-c", _PREPARE], name=f"{deployment}-collect",
            detach=True, labels=labels, user="0:0", cap_drop=["ALL"], cap_add=["CHOWN"],
            security_opt=["no-new-privileges"], read_only=True, network_mode="none",
            tmpfs={"/tmp": "rw,nosuid,nodev,size=1m"}, mem_limit=READER_MEMORY,
            memswap_limit=READER_MEMORY, nano_cpus=int(READER_CPUS * 1e9),
            volumes={volume_name(deployment): {"bind": RUN_DIR, "mode": "rw"}})
        self.container_id = str(container.id)
        self._wait_prepared(client)
        self._thread.start()

    def _wait_prepared(self, client: docker.DockerClient, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            code, _ = client.containers.get(self.container_id).exec_run(
                ["python3", "-c", "import os; os.stat('/tmp/prepared')"], user="0:0")
            if code == 0:
                return
            time.sleep(0.1)
        raise RunError(f"the event reader on node {self.node.node_id[:12]} did not start")

    def put(self, name: str, data: bytes) -> None:
        """Write a file into the node's run volume (through the engine, as root)."""
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, int(time.time())
            tar.addfile(info, io.BytesIO(data))
        self.node.client.api.put_archive(self.container_id, RUN_DIR, buf.getvalue())

    def _follow(self) -> None:
        """Stream until END; a broken stream (an engine hiccup) resumes from the bytes held."""
        try:
            while not self.ended.is_set():
                try:
                    self._stream()
                except Exception as e:  # noqa: BLE001 - the engine's, requests', urllib3's, a bad frame
                    self.error = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
                if not self.ended.is_set():
                    self.error = self.error or "the reader's stream ended without END"
                    time.sleep(0.5)
        finally:
            for f in self._files.values():
                f.close()

    def _stream(self) -> None:
        api = self.node.client.api
        made = api.exec_create(
            self.container_id, ["python3", "-c", _TAIL, json.dumps(self._offsets)],
            stdout=True, stderr=False, user=CONTAINER_USER)
        chunks: Iterator[bytes] = api.exec_start(made["Id"], stream=True)
        self._take(chunks)

    def _take(self, chunks: Iterator[bytes]) -> None:
        """Parse the frames of the stream into the mirror files."""
        buf = bytearray()
        frame: tuple[str, int] | None = None
        for chunk in chunks:
            buf += chunk
            while True:
                if frame is None:
                    nl = buf.find(b"\n")
                    if nl < 0:
                        break
                    name, _, size = bytes(buf[:nl]).rpartition(b" ")
                    del buf[:nl + 1]
                    if name == END:
                        self.ended.set()
                        return
                    frame = (name.decode(), int(size))
                    if name == HEARTBEAT:
                        frame = None
                        continue
                if len(buf) < frame[1]:
                    break
                self._append(frame[0], bytes(buf[:frame[1]]))
                del buf[:frame[1]]
                frame = None

    def _append(self, name: str, data: bytes) -> None:
        name = os.path.basename(name)
        f = self._files.get(name)
        if f is None:
            f = self._files[name] = open(self.events / f"{self.prefix}{name}", "ab")
        f.write(data)
        f.flush()
        self._offsets[name] = self._offsets.get(name, 0) + len(data)

    def drain(self) -> None:
        """Tell the reader no writer is left; wait for its last lines and its END."""
        if not self._thread.is_alive():  # never started (deploy failed first) or over
            if self.container_id and not self.ended.is_set():
                raise RunError(f"events of node {self.node.node_id[:12]} not all collected: "
                               f"{self.error or 'the reader stopped'}")
            return
        self.put(DRAIN_FILE, b"")
        self._thread.join(DRAIN_TIMEOUT)
        if not self.ended.is_set():
            self.ended.set()  # stop retrying: what came is kept, the rest is reported
            raise RunError(f"events of node {self.node.node_id[:12]} not all collected "
                           f"within {DRAIN_TIMEOUT:.0f}s ({self.error or 'no END'})")


class Collector:
    """Every node's reader for one deployment, and the ``go`` file carried to them."""

    def __init__(self, nodes: list[NodeEngine], plan: TopologyPlan, run_dir: str) -> None:
        self.readers = [NodeReader(n, plan, Path(run_dir)) for n in nodes]
        self.run_dir = Path(run_dir)
        self.plan = plan
        self.drained = False
        self._stop = threading.Event()
        self._go = threading.Thread(target=self._carry_go, daemon=True, name="collect-go")

    @property
    def node_ids(self) -> set[str]:
        return {r.node.node_id for r in self.readers}

    def start(self) -> None:
        image = next(s.image or self.plan.image for s in self.plan.containers if s.role != "redis")
        try:
            for reader in self.readers:
                reader.start(image)
        except docker.errors.DockerException as e:
            raise engine_error("start the event readers", e) from e
        self._go.start()

    def _carry_go(self) -> None:
        """Copy the harness's ``go`` into every node's volume as soon as it is written."""
        go = self.run_dir / "go"
        waiting = list(self.readers)
        while waiting and not self._stop.is_set():
            if go.exists():
                data = go.read_bytes()
                for reader in list(waiting):
                    try:
                        reader.put("go", data)
                        waiting.remove(reader)
                    except docker.errors.DockerException as e:  # tried again: no go, no batch
                        reader.error = f"go not delivered: {str(e).splitlines()[0][:200]}"
            time.sleep(GO_POLL)

    def drain(self) -> None:
        """The last lines of every node, once no task container is left (idempotent)."""
        if self.drained:
            return
        self.drained = True
        self._stop.set()
        errors = []
        for reader in self.readers:
            try:
                reader.drain()
            except (RunError, docker.errors.DockerException) as e:
                errors.append(str(e).splitlines()[0])
        if errors:
            raise RunError("; ".join(errors))

