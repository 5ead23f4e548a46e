"""An in-memory stand-in for ``metadata.db.Database(path).snapshots`` (the fixed SnapshotRepo API),
for snapshotter tests while, or instead of, the SQLite one.

``FakeSnapshotRepo(path)`` keeps its state in a JSON file, reloaded before and saved after every
call, so a child process killed mid-prepare leaves records a new repo on the same file sees (what
the SQLite file does for the real one). ``images`` holds snapshot ids an image references, for the
Conflict of ``remove``.
"""

from __future__ import annotations

import json
import os
import time

from dockyard.errors import AlreadyExists, Conflict, NotFound
from dockyard.record import Record, replace


class SnapshotRecord(Record):
    id: int
    chain_id: str
    parent_id: int | None
    diff_id: str
    state: str  # "incomplete" | "complete"
    size: int
    created: float


class FakeSnapshotRepo:
    def __init__(self, path: str | None = None) -> None:
        self.path = path
        self.rows: dict[int, SnapshotRecord] = {}
        self.images: set[int] = set()
        self.next_id = 1
        self._load()

    # -- persistence (only with a path)
    def _load(self) -> None:
        if not self.path or not os.path.exists(self.path):
            return
        with open(self.path) as f:
            data = json.load(f)
        self.rows = {r["id"]: SnapshotRecord(**r) for r in data["rows"]}
        self.images = set(data["images"])
        self.next_id = data["next_id"]

    def _save(self) -> None:
        if not self.path:
            return
        data = {"rows": [{f: getattr(r, f) for f in r._fields} for r in self.rows.values()],
                "images": sorted(self.images), "next_id": self.next_id}
        tmp = f"{self.path}.tmp"
        with open(tmp, "w") as f:
            json.dump(data, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    # -- the SnapshotRepo API
    def get_by_chain(self, chain_id: str) -> SnapshotRecord | None:
        self._load()
        return next((r for r in self.rows.values() if r.chain_id == chain_id), None)

    def get(self, id: int) -> SnapshotRecord | None:
        self._load()
        return self.rows.get(id)

    def add(self, chain_id: str, parent_id: int | None, diff_id: str) -> SnapshotRecord:
        self._load()
        if any(r.chain_id == chain_id for r in self.rows.values()):
            raise AlreadyExists(f"snapshot {chain_id} exists")
        if parent_id is not None and parent_id not in self.rows:
            raise NotFound(f"parent snapshot {parent_id}")
        rec = SnapshotRecord(self.next_id, chain_id, parent_id, diff_id, "incomplete", 0, time.time())
        self.rows[rec.id] = rec
        self.next_id += 1
        self._save()
        return rec

    def mark_complete(self, id: int, size: int) -> None:
        self._load()
        if id not in self.rows:
            raise NotFound(f"snapshot {id}")
        self.rows[id] = replace(self.rows[id], state="complete", size=size)
        self._save()

    def incomplete(self) -> list[SnapshotRecord]:
        self._load()
        return [r for r in self.rows.values() if r.state == "incomplete"]

    def remove(self, id: int) -> None:
        self._load()
        if id not in self.rows:
            raise NotFound(f"snapshot {id}")
        if self.children(id):
            raise Conflict(f"snapshot {id} has children")
        if id in self.images:
            raise Conflict(f"snapshot {id} is used by an image")
        del self.rows[id]
        self._save()

    def children(self, id: int) -> list[SnapshotRecord]:
        self._load()
        return [r for r in self.rows.values() if r.parent_id == id]

    def all(self) -> list[SnapshotRecord]:
        self._load()
        return list(self.rows.values())
