"""``NetworkRepo``: network rows and the containers' endpoints on them.

The database keeps the invariants a buggy caller could break: a network with endpoints cannot be
deleted (RESTRICT), a container's endpoints go with its row (CASCADE), and two endpoints of one
network never share an address (UNIQUE (network_id, ip)): a second insert of a taken address fails
with ``AddressInUse`` and the caller allocates the next free one.
"""

from __future__ import annotations

import json
import sqlite3
import time

from dockyard.errors import AlreadyExists, Conflict, InvalidArgument, NotFound
from dockyard.metadata.db import constraint
from dockyard.metadata.records import EndpointRecord, NetworkRecord

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

    from dockyard.metadata.db import Database

_COLS = "id, name, driver, created, subnet, gateway, ip_range, internal, bridge, labels, options"
_EP_COLS = "network_id, container_id, ip, mac, aliases"


class AddressInUse(Conflict):
    """The address is already some other endpoint's on that network."""


def _pairs(text: str) -> tuple[tuple[str, str], ...]:
    data = json.loads(text)
    if not isinstance(data, dict):
        raise InvalidArgument("network labels/options in the database are not a JSON object")
    return tuple(sorted((str(k), str(v)) for k, v in data.items()))


def _text(pairs: Iterable[tuple[str, str]]) -> str:
    return json.dumps(dict(sorted(pairs)), separators=(",", ":"))


def _rec(row: tuple[Any, ...]) -> NetworkRecord:
    (id, name, driver, created, subnet, gateway, ip_range, internal, bridge, labels,
     options) = row
    return NetworkRecord(id, name, driver, created, subnet, gateway, ip_range, bool(internal),
                         bridge, _pairs(labels), _pairs(options))


def _ep(row: tuple[Any, ...]) -> EndpointRecord:
    network_id, container_id, ip, mac, aliases = row
    return EndpointRecord(network_id, container_id, ip, mac, tuple(json.loads(aliases)))


class NetworkRepo:
    def __init__(self, db: Database) -> None:
        self._db = db

    # ------------------------------------------------------------------ networks

    def add(self, rec: NetworkRecord) -> NetworkRecord:
        """Insert a network (``created`` set to now when 0); ``AlreadyExists`` for a used name or
        id (Docker's text for the name)."""
        for what, value in (("network id", rec.id), ("network name", rec.name)):
            if not isinstance(value, str) or not value or not value.isprintable():
                raise InvalidArgument(f"invalid {what} {value!r}")
        if not rec.created:
            from dockyard.record import replace
            rec = replace(rec, created=time.time())
        with self._db.transaction():
            try:
                self._db._exec(f"INSERT INTO networks ({_COLS}) VALUES "
                               "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                               (rec.id, rec.name, rec.driver, rec.created, rec.subnet,
                                rec.gateway, rec.ip_range, int(rec.internal), rec.bridge,
                                _text(rec.labels), _text(rec.options)))
            except sqlite3.IntegrityError as e:
                if constraint(e) == "unique":
                    raise AlreadyExists(f"network with name {rec.name} already exists") from None
                raise
        return rec

    def get(self, id: str) -> NetworkRecord | None:
        row = self._db._one(f"SELECT {_COLS} FROM networks WHERE id = ?", (id,))
        return _rec(row) if row else None

    def by_name(self, name: str) -> NetworkRecord | None:
        row = self._db._one(f"SELECT {_COLS} FROM networks WHERE name = ?", (name,))
        return _rec(row) if row else None

    def by_prefix(self, prefix: str) -> list[NetworkRecord]:
        """Networks whose id starts with ``prefix`` (hex only, so no LIKE wildcards)."""
        if not prefix or not all(c in "0123456789abcdef" for c in prefix):
            return []
        rows = self._db._query(f"SELECT {_COLS} FROM networks WHERE id >= ? AND id < ? "
                               "ORDER BY id", (prefix, prefix + "g"))
        return [_rec(r) for r in rows]

    def all(self) -> list[NetworkRecord]:
        return [_rec(r) for r in self._db._query(f"SELECT {_COLS} FROM networks "
                                                 "ORDER BY created, name")]

    def update(self, rec: NetworkRecord) -> NetworkRecord:
        """Replace every column of the network ``rec.id`` but the id; ``NotFound`` if absent."""
        with self._db.transaction():
            try:
                n = self._db._exec(
                    "UPDATE networks SET name = ?, driver = ?, created = ?, subnet = ?, "
                    "gateway = ?, ip_range = ?, internal = ?, bridge = ?, labels = ?, "
                    "options = ? WHERE id = ?",
                    (rec.name, rec.driver, rec.created, rec.subnet, rec.gateway, rec.ip_range,
                     int(rec.internal), rec.bridge, _text(rec.labels), _text(rec.options),
                     rec.id)).rowcount
            except sqlite3.IntegrityError as e:
                if constraint(e) == "unique":
                    raise AlreadyExists(f"network with name {rec.name} already exists") from None
                raise
            if n == 0:
                raise NotFound(f"network {rec.id} not found")
        return rec

    def delete(self, id: str) -> None:
        """``NotFound`` if absent; ``Conflict`` while endpoints remain (RESTRICT)."""
        with self._db.transaction():
            try:
                n = self._db._exec("DELETE FROM networks WHERE id = ?", (id,)).rowcount
            except sqlite3.IntegrityError as e:
                if constraint(e) == "foreign key":
                    raise Conflict(f"remove network {id}: it has active endpoints") from None
                raise
            if n == 0:
                raise NotFound(f"network {id} not found")

    # ------------------------------------------------------------------ endpoints

    def add_endpoint(self, network_id: str, container_id: str, ip: str = "", mac: str = "",
                     aliases: Iterable[str] = ()) -> EndpointRecord:
        """Attach the container. ``AddressInUse`` when another endpoint holds ``ip``;
        ``AlreadyExists`` when the container is already on the network; ``NotFound`` for no such
        network or container."""
        rec = EndpointRecord(network_id, container_id, ip, mac, tuple(aliases))
        with self._db.transaction():
            if self.endpoint(network_id, container_id) is not None:
                raise AlreadyExists(f"container {container_id} is already attached to network "
                                    f"{network_id}")
            try:
                self._db._exec(f"INSERT INTO endpoints ({_EP_COLS}) VALUES (?, ?, ?, ?, ?)",
                               (network_id, container_id, ip, mac, json.dumps(list(rec.aliases))))
            except sqlite3.IntegrityError as e:
                kind = constraint(e)
                if kind == "unique":
                    raise AddressInUse(f"allocate address {ip} on network {network_id}: Address "
                                       "already in use") from None
                if kind == "foreign key":
                    if self.get(network_id) is None:
                        raise NotFound(f"network {network_id} not found") from None
                    raise NotFound(f"attach to network {network_id}: no such container: "
                                   f"{container_id}") from None
                raise
        return rec

    def endpoint(self, network_id: str, container_id: str) -> EndpointRecord | None:
        row = self._db._one(f"SELECT {_EP_COLS} FROM endpoints WHERE network_id = ? AND "
                            "container_id = ?", (network_id, container_id))
        return _ep(row) if row else None

    def endpoints_of_container(self, container_id: str) -> list[EndpointRecord]:
        rows = self._db._query(f"SELECT {_EP_COLS} FROM endpoints WHERE container_id = ? "
                               "ORDER BY network_id", (container_id,))
        return [_ep(r) for r in rows]

    def endpoints_of_network(self, network_id: str) -> list[EndpointRecord]:
        rows = self._db._query(f"SELECT {_EP_COLS} FROM endpoints WHERE network_id = ? "
                               "ORDER BY container_id", (network_id,))
        return [_ep(r) for r in rows]

    def endpoint_counts(self) -> dict[str, int]:
        """Network id → number of endpoints (networks without any are absent)."""
        rows = self._db._query("SELECT network_id, COUNT(*) FROM endpoints GROUP BY network_id")
        return {r[0]: r[1] for r in rows}

    def remove_endpoint(self, network_id: str, container_id: str) -> bool:
        """Detach the container; False when it was not attached."""
        with self._db.transaction():
            n = self._db._exec("DELETE FROM endpoints WHERE network_id = ? AND container_id = ?",
                               (network_id, container_id)).rowcount
        return n > 0
