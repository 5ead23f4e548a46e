"""``ContainerRepo``: container rows; ``state`` is the engine's JSON document (engine/container.py)."""

from __future__ import annotations

import sqlite3
import time

from dockyard.errors import AlreadyExists, InvalidArgument, NotFound
from dockyard.metadata.db import constraint
from dockyard.metadata.records import ContainerRecord
from dockyard.oci.digest import Digest

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from dockyard.metadata.db import Database

_COLS = "id, name, image_id, created, state"


def _rec(row: tuple[Any, ...]) -> ContainerRecord:
    id, name, image_id, created, state = row
    return ContainerRecord(id, name, Digest.parse(image_id), created, state)


class ContainerRepo:
    def __init__(self, db: Database) -> None:
        self._db = db

    def add(self, id: str, name: str, image_id: Digest | str, *, state: str = "{}",
            created: float | None = None) -> ContainerRecord:
        """``errors.AlreadyExists`` for a used id or name; ``errors.NotFound`` for no such image."""
        for what, value in (("container id", id), ("container name", name)):
            if not isinstance(value, str) or not value or not value.isprintable():
                raise InvalidArgument(f"invalid {what} {value!r}")
        image = image_id if isinstance(image_id, Digest) else Digest.parse(image_id)
        rec = ContainerRecord(id, name, image, time.time() if created is None else created, state)
        with self._db.transaction():
            try:
                self._db._exec(f"INSERT INTO containers ({_COLS}) VALUES (?, ?, ?, ?, ?)",
                               (id, name, str(image), rec.created, state))
            except sqlite3.IntegrityError as e:
                if constraint(e) == "foreign key":
                    raise NotFound(f"create container {name}: no such image: {image}") from None
                if constraint(e) == "unique":
                    raise AlreadyExists(f"container id {id} or name {name!r} is already in use") \
                        from None
                raise
        return rec

    def get(self, id: str) -> ContainerRecord | None:
        row = self._db._one(f"SELECT {_COLS} FROM containers WHERE id = ?", (id,))
        return _rec(row) if row else None

    def all(self) -> list[ContainerRecord]:
        return [_rec(r) for r in self._db._query(f"SELECT {_COLS} FROM containers ORDER BY created")]

    def set_document(self, id: str, state: str) -> None:
        """Replace the engine's JSON document of the container."""
        with self._db.transaction():
            if self._db._exec("UPDATE containers SET state = ? WHERE id = ?",
                              (state, id)).rowcount == 0:
                raise NotFound(f"no such container: {id}")

    def rename(self, id: str, name: str) -> None:
        if not isinstance(name, str) or not name or not name.isprintable():
            raise InvalidArgument(f"invalid container name {name!r}")
        with self._db.transaction():
            try:
                n = self._db._exec("UPDATE containers SET name = ? WHERE id = ?", (name, id)).rowcount
            except sqlite3.IntegrityError:
                raise AlreadyExists(f"container name {name!r} is already in use") from None
            if n == 0:
                raise NotFound(f"no such container: {id}")

    def delete(self, id: str) -> None:
        with self._db.transaction():
            if self._db._exec("DELETE FROM containers WHERE id = ?", (id,)).rowcount == 0:
                raise NotFound(f"no such container: {id}")

    def uses_image(self, image_id: Digest | str) -> list[str]:
        """Ids of the containers made from the image."""
        rows = self._db._query("SELECT id FROM containers WHERE image_id = ? ORDER BY id",
                               (str(image_id),))
        return [r[0] for r in rows]
