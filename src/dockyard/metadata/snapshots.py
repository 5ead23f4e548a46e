"""``SnapshotRepo``: rows of unpacked layer chains. The snapshotter owns the directories.

A snapshot is added "incomplete" before its unpack starts and marked complete only after the
unpack finished and was synced; at start the snapshotter removes every incomplete one
(``incomplete()``), so a crash mid-unpack never leaves a half layer that looks usable.
"""

from __future__ import annotations

import sqlite3
import time

from dockyard.errors import AlreadyExists, Conflict, NotFound
from dockyard.metadata.db import constraint
from dockyard.metadata.records import SNAPSHOT_COMPLETE, SNAPSHOT_INCOMPLETE, SnapshotRecord

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from dockyard.metadata.db import Database

_COLS = "id, chain_id, parent_id, diff_id, state, size, created"


def _rec(row: tuple[Any, ...]) -> SnapshotRecord:
    return SnapshotRecord(*row)


class SnapshotRepo:
    def __init__(self, db: Database) -> None:
        self._db = db

    def get_by_chain(self, chain_id: str) -> SnapshotRecord | None:
        row = self._db._one(f"SELECT {_COLS} FROM snapshots WHERE chain_id = ?", (chain_id,))
        return _rec(row) if row else None

    def get(self, id: int) -> SnapshotRecord | None:
        row = self._db._one(f"SELECT {_COLS} FROM snapshots WHERE id = ?", (id,))
        return _rec(row) if row else None

    def add(self, chain_id: str, parent_id: int | None, diff_id: str) -> SnapshotRecord:
        """A new incomplete snapshot; ``errors.AlreadyExists`` if ``chain_id`` has one."""
        created = time.time()
        with self._db.transaction():
            try:
                cur = self._db._exec(
                    "INSERT INTO snapshots (chain_id, parent_id, diff_id, state, size, created) "
                    "VALUES (?, ?, ?, ?, 0, ?)",
                    (chain_id, parent_id, diff_id, SNAPSHOT_INCOMPLETE, created))
            except sqlite3.IntegrityError as e:
                if constraint(e) == "unique":
                    raise AlreadyExists(f"snapshot for chain {chain_id} already exists") from None
                if constraint(e) == "foreign key":
                    raise NotFound(f"add snapshot {chain_id}: no parent snapshot {parent_id}") from None
                raise
            id = cur.lastrowid
        assert id is not None
        return SnapshotRecord(id, chain_id, parent_id, diff_id, SNAPSHOT_INCOMPLETE, 0, created)

    def mark_complete(self, id: int, size: int) -> None:
        with self._db.transaction():
            cur = self._db._exec("UPDATE snapshots SET state = ?, size = ? WHERE id = ?",
                                 (SNAPSHOT_COMPLETE, size, id))
            if cur.rowcount == 0:
                raise NotFound(f"no such snapshot: {id}")

    def incomplete(self) -> list[SnapshotRecord]:
        """Incomplete snapshots, children before parents (the order to remove them in)."""
        rows = self._db._query(f"SELECT {_COLS} FROM snapshots WHERE state = ? ORDER BY id DESC",
                               (SNAPSHOT_INCOMPLETE,))
        return [_rec(r) for r in rows]

    def remove(self, id: int) -> None:
        """Delete the row; ``errors.Conflict`` while a child snapshot or an image layer uses it."""
        with self._db.transaction():
            child = self._db._one("SELECT chain_id FROM snapshots WHERE parent_id = ? LIMIT 1", (id,))
            if child:
                raise Conflict(f"snapshot {id} has children (chain {child[0]})")
            user = self._db._one("SELECT image_id FROM image_layers WHERE snapshot_id = ? LIMIT 1",
                                 (id,))
            if user:
                raise Conflict(f"snapshot {id} is a layer of image {user[0]}")
            cur = self._db._exec("DELETE FROM snapshots WHERE id = ?", (id,))
            if cur.rowcount == 0:
                raise NotFound(f"no such snapshot: {id}")

    def children(self, id: int) -> list[SnapshotRecord]:
        rows = self._db._query(f"SELECT {_COLS} FROM snapshots WHERE parent_id = ? ORDER BY id", (id,))
        return [_rec(r) for r in rows]

    def all(self) -> list[SnapshotRecord]:
        return [_rec(r) for r in self._db._query(f"SELECT {_COLS} FROM snapshots ORDER BY id")]

    def unreferenced(self) -> list[SnapshotRecord]:
        """Complete snapshots no image layer and no child uses: candidates for snapshot GC.

        Leases on snapshots ("snapshot" resources, keyed by chain id) are the caller's to honour.
        """
        rows = self._db._query(
            f"SELECT {_COLS} FROM snapshots s WHERE state = ? "
            "AND NOT EXISTS (SELECT 1 FROM snapshots c WHERE c.parent_id = s.id) "
            "AND NOT EXISTS (SELECT 1 FROM image_layers l WHERE l.snapshot_id = s.id) ORDER BY id",
            (SNAPSHOT_COMPLETE,))
        return [_rec(r) for r in rows]
