"""``VolumeRepo``: volume rows and which container mounts which volume where.

The foreign keys do the bookkeeping a buggy caller could get wrong: a volume a container mounts
cannot be deleted (RESTRICT), and a container's mounts go with its row (CASCADE).
"""

from __future__ import annotations

import json
import sqlite3
import time

from dockyard.errors import AlreadyExists, Conflict, InvalidArgument, NotFound
from dockyard.metadata.db import constraint
from dockyard.metadata.records import VolumeRecord

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

    from dockyard.metadata.db import Database

_COLS = "name, driver, created, labels, options, anonymous"


def _pairs(text: str, what: str) -> tuple[tuple[str, str], ...]:
    data = json.loads(text)
    if not isinstance(data, dict):
        raise InvalidArgument(f"volume {what} in the database are not a JSON object")
    return tuple(sorted((str(k), str(v)) for k, v in data.items()))


def _rec(row: tuple[Any, ...]) -> VolumeRecord:
    name, driver, created, labels, options, anonymous = row
    return VolumeRecord(name, driver, created, _pairs(labels, "labels"),
                        _pairs(options, "options"), bool(anonymous))


def _text(pairs: Iterable[tuple[str, str]]) -> str:
    return json.dumps(dict(sorted(pairs)), separators=(",", ":"))


def in_use_message(name: str, users: list[str]) -> str:
    """Docker's text for removing a volume a container uses."""
    return f"remove {name}: volume is in use - [{', '.join(users)}]"


class VolumeRepo:
    def __init__(self, db: Database) -> None:
        self._db = db

    def add(self, rec: VolumeRecord) -> VolumeRecord:
        """Insert a volume (``created`` set to now when 0); ``AlreadyExists`` for a used name."""
        if not isinstance(rec.name, str) or not rec.name or not rec.name.isprintable():
            raise InvalidArgument(f"invalid volume name {rec.name!r}")
        if not rec.created:
            rec = VolumeRecord(rec.name, rec.driver, time.time(), rec.labels, rec.options,
                               rec.anonymous)
        with self._db.transaction():
            try:
                self._db._exec(f"INSERT INTO volumes ({_COLS}) VALUES (?, ?, ?, ?, ?, ?)",
                               (rec.name, rec.driver, rec.created, _text(rec.labels),
                                _text(rec.options), int(rec.anonymous)))
            except sqlite3.IntegrityError as e:
                if constraint(e) == "unique":
                    raise AlreadyExists(f"create {rec.name}: volume name must be unique") from None
                raise
        return rec

    def get(self, name: str) -> VolumeRecord | None:
        row = self._db._one(f"SELECT {_COLS} FROM volumes WHERE name = ?", (name,))
        return _rec(row) if row else None

    def all(self) -> list[VolumeRecord]:
        return [_rec(r) for r in self._db._query(f"SELECT {_COLS} FROM volumes ORDER BY name")]

    def delete(self, name: str) -> None:
        """``NotFound`` if absent; ``Conflict`` (Docker's text) while a container mounts it."""
        with self._db.transaction():
            users = self.users(name)
            if users:
                raise Conflict(in_use_message(name, users))
            try:
                n = self._db._exec("DELETE FROM volumes WHERE name = ?", (name,)).rowcount
            except sqlite3.IntegrityError as e:  # a mount added behind our back: still refuse
                if constraint(e) == "foreign key":
                    raise Conflict(in_use_message(name, self.users(name))) from None
                raise
            if n == 0:
                raise NotFound(f"get {name}: no such volume")

    # -- which container mounts which volume
    def attach(self, container_id: str, volume_name: str, destination: str) -> None:
        """Record that the container mounts the volume at ``destination`` (an absolute path in
        the container). ``NotFound`` for no such container or volume; ``AlreadyExists`` when the
        container already has a volume at that destination."""
        if not destination.startswith("/"):
            raise InvalidArgument(f"attach volume {volume_name}: destination {destination!r} is "
                                  "not an absolute path")
        with self._db.transaction():
            try:
                self._db._exec("INSERT INTO container_volumes (container_id, volume_name, "
                               "destination) VALUES (?, ?, ?)",
                               (container_id, volume_name, destination))
            except sqlite3.IntegrityError as e:
                if constraint(e) == "foreign key":
                    if self.get(volume_name) is None:
                        raise NotFound(f"get {volume_name}: no such volume") from None
                    raise NotFound(f"attach volume {volume_name}: no such container: "
                                   f"{container_id}") from None
                if constraint(e) == "unique":
                    raise AlreadyExists(f"attach volume {volume_name}: container {container_id} "
                                        f"already has a volume at {destination}") from None
                raise

    def detach(self, container_id: str, destination: str | None = None) -> None:
        """Forget the container's volume at ``destination`` (all of them when None)."""
        with self._db.transaction():
            if destination is None:
                self._db._exec("DELETE FROM container_volumes WHERE container_id = ?",
                               (container_id,))
            else:
                self._db._exec("DELETE FROM container_volumes WHERE container_id = ? AND "
                               "destination = ?", (container_id, destination))

    def users(self, volume_name: str) -> list[str]:
        """Ids of the containers that mount the volume (sorted, each once)."""
        rows = self._db._query("SELECT DISTINCT container_id FROM container_volumes "
                               "WHERE volume_name = ? ORDER BY container_id", (volume_name,))
        return [r[0] for r in rows]

    def mounts_of(self, container_id: str) -> list[tuple[str, str]]:
        """``(volume name, destination)`` of each volume the container mounts, by destination."""
        rows = self._db._query("SELECT volume_name, destination FROM container_volumes "
                               "WHERE container_id = ? ORDER BY destination", (container_id,))
        return [(r[0], r[1]) for r in rows]

    def ref_counts(self) -> dict[str, int]:
        """Volume name → number of containers mounting it (volumes no container uses are absent)."""
        rows = self._db._query("SELECT volume_name, COUNT(DISTINCT container_id) "
                               "FROM container_volumes GROUP BY volume_name")
        return {r[0]: r[1] for r in rows}
