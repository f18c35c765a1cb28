"""The reader's tail script and the harness's frame parser, without an engine: the script runs
here on a folder standing for the run volume, its output is cut into arbitrary chunks as a
stream delivers it, and the mirror files must hold exactly the bytes the agents wrote."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

from topo.model import TopologyPlan
from topo.plan import DEPLOYMENT, RUN_DIR
from topo.runtime.swarm_collect import _TAIL, NodeEngine, NodeReader

WRITTEN = {  # what the agents wrote, by hand: whole lines, and one killed mid-line
    "topo-x-m0-w0.jsonl": b'{"ev":"task","id":0}\n{"ev":"task","id":1}\n',
    "topo-x-m0-w1.jsonl": b'{"ev":"ready"}\n{"ev":"task","id":2}\n{"ev":"ta',
    "topo-x-m0-feeder.jsonl": b"x" * 3_000_000 + b"\n",  # more than one read of the script
}


def _volume(tmp: Path) -> Path:
    vol = tmp / "vol"
    (vol / "events").mkdir(parents=True)
    for name, data in WRITTEN.items():
        (vol / "events" / name).write_bytes(data)
    (vol / "events" / "not-events.txt").write_bytes(b"ignored\n")
    (vol / ".drain").write_bytes(b"")  # no writer left: one pass, then END
    return vol


def _tail(vol: Path, offsets: dict[str, int]) -> bytes:
    script = _TAIL.replace(RUN_DIR, str(vol))
    return subprocess.run([sys.executable, "-c", script, json.dumps(offsets)],
                          capture_output=True, check=True, timeout=60).stdout


def _chunks(data: bytes, seed: int) -> Iterator[bytes]:
    rng = random.Random(seed)
    i = 0
    while i < len(data):
        n = rng.choice([1, 7, 100, 65536])
        yield data[i:i + n]
        i += n


def _reader(tmp: Path, local: bool = True) -> NodeReader:
    (tmp / "run" / "events").mkdir(parents=True, exist_ok=True)
    plan: Any = TopologyPlan.__new__(TopologyPlan)
    object.__setattr__(plan, "labels", {DEPLOYMENT: "topo-x-m0"})
    node = NodeEngine("abcdef0123456789", None, local)  # type: ignore[arg-type]
    return NodeReader(node, plan, tmp / "run")


def test_the_mirror_holds_every_byte_written_and_the_stream_ends(tmp_path: Path) -> None:
    out = _tail(_volume(tmp_path), {})
    for seed in range(3):
        reader = _reader(tmp_path / str(seed))
        reader._take(_chunks(out, seed))
        assert reader.ended.is_set()
        mirrored = {f.name: f.read_bytes() for f in (tmp_path / str(seed) / "run" / "events").iterdir()}
        assert mirrored == WRITTEN
        for f in reader._files.values():
            f.close()


def test_a_resumed_stream_sends_only_what_the_mirror_lacks(tmp_path: Path) -> None:
    held = {"topo-x-m0-w0.jsonl": 21, "topo-x-m0-feeder.jsonl": 3_000_001}
    out = _tail(_volume(tmp_path), held)
    reader = _reader(tmp_path)
    reader._take(_chunks(out, 1))
    events = tmp_path / "run" / "events"
    assert (events / "topo-x-m0-w0.jsonl").read_bytes() == b'{"ev":"task","id":1}\n'
    assert not (events / "topo-x-m0-feeder.jsonl").exists()
    assert (events / "topo-x-m0-w1.jsonl").read_bytes() == WRITTEN["topo-x-m0-w1.jsonl"]


def test_another_node_files_are_prefixed_and_heartbeats_are_not_data(tmp_path: Path) -> None:
    reader = _reader(tmp_path, local=False)
    reader._take(iter([b"HB 0\nw.jsonl 3\nab", b"\nHB 0\n", b"END 0\n"]))
    (only,) = (tmp_path / "run" / "events").iterdir()
    assert only.name == "abcdef012345~w.jsonl"
    assert only.read_bytes() == b"ab\n"
    assert reader.ended.is_set()


class _Item:
    def __init__(self, labels: dict[str, str], gone: list[str], name: str) -> None:
        self.attrs = {"Labels": labels}
        self._gone, self.name = gone, name

    def remove(self, force: bool = False) -> None:
        self._gone.append(self.name)


class _Kind:
    def __init__(self, items: list[_Item]) -> None:
        self.items = items

    def list(self, all: bool = False, sparse: bool = False,
             filters: dict[str, Any] | None = None) -> list[_Item]:
        key, _, value = str((filters or {}).get("label", "")).partition("=")
        return [i for i in self.items if i.attrs["Labels"].get(key) == value]


class _Engine:
    """Just the listings an engine answers, each item removable."""

    def __init__(self, **kinds: list[_Item]) -> None:
        for kind in ("services", "secrets", "configs", "volumes", "containers", "networks"):
            setattr(self, kind, _Kind(kinds.get(kind, [])))


def test_the_other_nodes_readers_and_volumes_are_found_and_removed_by_label() -> None:
    from topo.plan import MANAGED, OWNER, RUN
    from topo.runtime.swarm_objects import SwarmObjects

    gone: list[str] = []
    labels = {MANAGED: "true", RUN: "r9", OWNER: "host:1:2", DEPLOYMENT: "topo-r9-m0"}
    other = {MANAGED: "true", RUN: "r8", OWNER: "host:3:4", DEPLOYMENT: "topo-r8-m0"}
    node = _Engine(containers=[_Item(labels, gone, "topo-r9-m0-collect"),
                               _Item(other, gone, "topo-r8-m0-collect")],
                   volumes=[_Item(labels, gone, "topo-r9-m0-run")])
    objects = SwarmObjects(_Engine(), engines=(node,))  # type: ignore[arg-type]
    assert objects.labelled_runs() == {"r9": "host:1:2", "r8": "host:3:4"}
    objects.remove_labelled(f"{RUN}=r9")
    assert gone == ["topo-r9-m0-collect", "topo-r9-m0-run"]


class _BreakingApi:
    """An engine whose first stream breaks mid-frame; each exec runs the real tail script
    on the folder from the offsets topo passes."""

    def __init__(self, vol: Path) -> None:
        self.vol = vol
        self.offsets: list[dict[str, int]] = []

    def exec_create(self, container: str, cmd: list[str], **kw: Any) -> dict[str, str]:
        self.offsets.append(json.loads(cmd[-1]))
        return {"Id": str(len(self.offsets))}

    def exec_start(self, exec_id: str, stream: bool) -> Iterator[bytes]:
        out = _tail(self.vol, self.offsets[-1])
        if exec_id == "1":
            yield out[:len(out) * 2 // 5]
            raise ConnectionError("connection reset")
        yield from _chunks(out, 2)


def test_a_broken_stream_resumes_from_the_bytes_held(tmp_path: Path) -> None:
    api = _BreakingApi(_volume(tmp_path))
    reader = _reader(tmp_path)
    node = NodeEngine("abcdef0123456789", type("Client", (), {"api": api})(), True)  # type: ignore[arg-type]
    reader.node = node
    reader.container_id = "c"
    reader._follow()
    mirrored = {f.name: f.read_bytes() for f in (tmp_path / "run" / "events").iterdir()}
    assert mirrored == WRITTEN
    assert api.offsets[0] == {} and api.offsets[1]  # the second asked only for the rest
    assert reader.error == "connection reset"
