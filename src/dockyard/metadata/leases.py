"""``LeaseRepo``: leases protect content in flight from garbage collection (checklist 45).

The protocol for a pull (or any writer): create a lease, add each blob/ingest/snapshot to it
*before* writing or relying on it, write, add the image row, then delete the lease. GC keeps
whatever a live lease names. A lease has an expiry, so one a crashed process left behind stops
protecting anything after its TTL and the content it held is collected.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import sqlite3
import time

from dockyard.errors import AlreadyExists, InvalidArgument, NotFound
from dockyard.metadata.db import constraint
from dockyard.metadata.records import LEASE_KINDS, LeaseRecord, LeaseResource

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping
    from typing import Any

    from dockyard.metadata.db import Database

#: containerd's default: long enough for a slow pull, short enough that a crash is cleaned up daily.
DEFAULT_TTL = 24 * 3600.0


def _rec(row: tuple[Any, ...]) -> LeaseRecord:
    id, created, expires_at, labels = row
    return LeaseRecord(id, created, expires_at, tuple(sorted(json.loads(labels).items())))


def _check(lease_id: str, kind: str | None = None) -> None:
    if not isinstance(lease_id, str) or not lease_id or len(lease_id) > 255 \
            or not lease_id.isprintable():
        raise InvalidArgument(f"invalid lease id {lease_id!r}")
    if kind is not None and kind not in LEASE_KINDS:
        raise InvalidArgument(f"invalid lease resource kind {kind!r}: one of {', '.join(LEASE_KINDS)}")


class LeaseRepo:
    def __init__(self, db: Database) -> None:
        self._db = db

    def create(self, id: str | None = None, *, ttl: float | None = DEFAULT_TTL,
               labels: Mapping[str, str] | None = None, now: float | None = None) -> LeaseRecord:
        """A new lease (random id unless given) expiring ``ttl`` seconds from now (None: never)."""
        lease_id = id if id is not None else secrets.token_hex(16)
        _check(lease_id)
        created = time.time() if now is None else now
        expires = None if ttl is None else created + ttl
        label_items = tuple(sorted((labels or {}).items()))
        with self._db.transaction():
            try:
                self._db._exec("INSERT INTO leases (id, created, expires_at, labels) VALUES (?, ?, ?, ?)",
                               (lease_id, created, expires, json.dumps(dict(label_items))))
            except sqlite3.IntegrityError as e:
                if constraint(e) == "unique":
                    raise AlreadyExists(f"lease {lease_id} already exists") from None
                raise
        return LeaseRecord(lease_id, created, expires, label_items)

    @contextlib.contextmanager
    def temporary(self, *, ttl: float | None = DEFAULT_TTL,
                  labels: Mapping[str, str] | None = None) -> Iterator[LeaseRecord]:
        """A lease for the duration of a ``with`` block (deleted at its end, even on error)."""
        lease = self.create(ttl=ttl, labels=labels)
        try:
            yield lease
        finally:
            with contextlib.suppress(NotFound):
                self.delete(lease.id)

    def get(self, id: str) -> LeaseRecord | None:
        row = self._db._one("SELECT id, created, expires_at, labels FROM leases WHERE id = ?", (id,))
        return _rec(row) if row else None

    def all(self) -> list[LeaseRecord]:
        rows = self._db._query("SELECT id, created, expires_at, labels FROM leases ORDER BY created, id")
        return [_rec(r) for r in rows]

    def renew(self, id: str, ttl: float | None, *, now: float | None = None) -> None:
        """Move the expiry to ``ttl`` seconds from now (a long pull keeps its lease alive)."""
        expires = None if ttl is None else (time.time() if now is None else now) + ttl
        with self._db.transaction():
            cur = self._db._exec("UPDATE leases SET expires_at = ? WHERE id = ?", (expires, id))
            if cur.rowcount == 0:
                raise NotFound(f"no such lease: {id}")

    def delete(self, id: str) -> None:
        with self._db.transaction():
            if self._db._exec("DELETE FROM leases WHERE id = ?", (id,)).rowcount == 0:
                raise NotFound(f"no such lease: {id}")

    def add_resource(self, lease_id: str, kind: str, key: str) -> None:
        """Protect ``key`` (a digest, chain id or ingest ref) under the lease; idempotent."""
        _check(lease_id, kind)
        if not isinstance(key, str) or not key:
            raise InvalidArgument(f"invalid lease resource key {key!r}")
        with self._db.transaction():
            try:
                self._db._exec("INSERT OR IGNORE INTO lease_resources (lease_id, kind, key) "
                               "VALUES (?, ?, ?)", (lease_id, kind, key))
            except sqlite3.IntegrityError:
                raise NotFound(f"no such lease: {lease_id}") from None

    def remove_resource(self, lease_id: str, kind: str, key: str) -> None:
        _check(lease_id, kind)
        with self._db.transaction():
            self._db._exec("DELETE FROM lease_resources WHERE lease_id = ? AND kind = ? AND key = ?",
                           (lease_id, kind, key))

    def resources(self, lease_id: str) -> list[LeaseResource]:
        rows = self._db._query("SELECT lease_id, kind, key FROM lease_resources WHERE lease_id = ? "
                               "ORDER BY kind, key", (lease_id,))
        return [LeaseResource(*r) for r in rows]

    def expired(self, now: float | None = None) -> list[LeaseRecord]:
        t = time.time() if now is None else now
        rows = self._db._query("SELECT id, created, expires_at, labels FROM leases "
                               "WHERE expires_at IS NOT NULL AND expires_at <= ? ORDER BY expires_at",
                               (t,))
        return [_rec(r) for r in rows]

    def delete_expired(self, now: float | None = None) -> list[str]:
        """Delete every expired lease (their resources go with them); return their ids."""
        t = time.time() if now is None else now
        with self._db.transaction():
            ids = [r[0] for r in self._db._query(
                "SELECT id FROM leases WHERE expires_at IS NOT NULL AND expires_at <= ?", (t,))]
            self._db._exec("DELETE FROM leases WHERE expires_at IS NOT NULL AND expires_at <= ?", (t,))
        return ids

    def leased(self, kind: str, now: float | None = None) -> set[str]:
        """Keys of ``kind`` that a live (unexpired) lease protects."""
        _check("x", kind)
        t = time.time() if now is None else now
        rows = self._db._query(
            "SELECT DISTINCT r.key FROM lease_resources r JOIN leases l ON l.id = r.lease_id "
            "WHERE r.kind = ? AND (l.expires_at IS NULL OR l.expires_at > ?)", (kind, t))
        return {r[0] for r in rows}
