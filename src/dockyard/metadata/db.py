"""``Database``: dockyard's metadata in one SQLite file (``Store.db``), WAL mode, typed repositories.

Schema (version 3; ``PRAGMA user_version`` counts the migrations applied; arrows are foreign keys)::

    images                                         snapshots
      id TEXT PK  (the config digest)                id INTEGER PK AUTOINCREMENT (= snapshots/<id>)
      manifest_digest, manifest_media_type TEXT      chain_id TEXT UNIQUE
      config_size INTEGER                            parent_id INTEGER NULL ──▶ snapshots  RESTRICT
      created TEXT (the config's RFC 3339, as is)    diff_id TEXT
      architecture, os TEXT                          state TEXT 'incomplete' | 'complete'
      size INTEGER, added_at REAL                    size INTEGER, created REAL
        ▲                                              ▲
        │ CASCADE                                      │ RESTRICT
    image_layers                                       │
      image_id TEXT ──▶ images, idx INTEGER   PK (image_id, idx)
      diff_id, blob_digest TEXT, blob_size INTEGER, media_type TEXT
      snapshot_id INTEGER NULL ────────────────────────┘   (NULL: layer not unpacked)

    tags                                           containers (placeholder until the engine issue)
      name TEXT PK (the full normalized ref)         id TEXT PK, name TEXT UNIQUE
      image_id TEXT ──▶ images  RESTRICT             image_id TEXT ──▶ images  RESTRICT
                                                     created REAL, state TEXT (JSON, the engine's)
    leases                                         lease_resources
      id TEXT PK, created REAL                       lease_id TEXT ──▶ leases  CASCADE
      expires_at REAL NULL (NULL: until deleted)     kind TEXT 'blob' | 'snapshot' | 'ingest'
      labels TEXT (JSON object)                      key TEXT (digest, chain id, ingest ref)
                                                     PK (lease_id, kind, key)
    volumes  (version 2)                           container_volumes  (version 2)
      name TEXT PK, driver TEXT, created REAL        container_id TEXT ──▶ containers  CASCADE
      labels, options TEXT (JSON objects)            volume_name TEXT ──▶ volumes  RESTRICT
      anonymous INTEGER 0 | 1                        destination TEXT; PK (container_id, destination)
    networks  (version 3)                          endpoints  (version 3)
      id TEXT PK, name TEXT UNIQUE, driver TEXT      network_id TEXT ──▶ networks  RESTRICT
      created REAL, subnet, gateway, ip_range TEXT   container_id TEXT ──▶ containers  CASCADE
      internal INTEGER, bridge TEXT                  ip, mac TEXT, aliases TEXT (JSON list)
      labels, options TEXT (JSON objects)            PK (network_id, container_id); UNIQUE (network_id, ip)

Why these choices:
- RESTRICT from tags and containers: an image can only go once nothing names or uses it; the
  database enforces what ``rmi`` must check, even against a buggy caller. Layers CASCADE: they are
  part of the image row.
- Snapshot ids are AUTOINCREMENT, never reused: a directory ``snapshots/<n>`` left behind by a
  crash between the row's delete and the directory's removal can never be mistaken for a new one.
- ``synchronous=FULL``: blobs are fsynced before a row names them and deleted only after the
  row is gone; a commit that a power loss could undo would let the row outlive its blob.
- Tables are STRICT (types enforced); foreign keys on; ``busy_timeout`` so a second process
  waits for the write lock instead of failing at once (the store flock is the first guard).

One connection per ``Database``, guarded by a re-entrant lock: ``transaction()`` is BEGIN
IMMEDIATE … COMMIT (ROLLBACK on an exception); nested, it is a SAVEPOINT. Repository methods that
write open their own transaction, so they are atomic alone and compose inside an outer one.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading

from dockyard.errors import DockyardError, FailedPrecondition, Unavailable
from dockyard.metadata.records import SnapshotRecord  # noqa: F401 - the snapshot API names it here

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from typing import Any

    from dockyard.metadata.containers import ContainerRepo
    from dockyard.metadata.images import ImageRepo, TagRepo
    from dockyard.metadata.leases import LeaseRepo
    from dockyard.metadata.snapshots import SnapshotRepo

_V1 = (
    """CREATE TABLE images (
        id TEXT PRIMARY KEY,
        manifest_digest TEXT NOT NULL,
        manifest_media_type TEXT NOT NULL,
        config_size INTEGER NOT NULL,
        created TEXT NOT NULL,
        architecture TEXT NOT NULL,
        os TEXT NOT NULL,
        size INTEGER NOT NULL,
        added_at REAL NOT NULL
    ) STRICT""",
    """CREATE TABLE snapshots (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        chain_id TEXT NOT NULL UNIQUE,
        parent_id INTEGER REFERENCES snapshots(id) ON DELETE RESTRICT,
        diff_id TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('incomplete', 'complete')),
        size INTEGER NOT NULL DEFAULT 0,
        created REAL NOT NULL
    ) STRICT""",
    "CREATE INDEX snapshots_parent ON snapshots(parent_id)",
    """CREATE TABLE image_layers (
        image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
        idx INTEGER NOT NULL,
        diff_id TEXT NOT NULL,
        blob_digest TEXT NOT NULL,
        blob_size INTEGER NOT NULL,
        media_type TEXT NOT NULL,
        snapshot_id INTEGER REFERENCES snapshots(id) ON DELETE RESTRICT,
        PRIMARY KEY (image_id, idx)
    ) STRICT""",
    "CREATE INDEX image_layers_snapshot ON image_layers(snapshot_id)",
    "CREATE INDEX image_layers_blob ON image_layers(blob_digest)",
    """CREATE TABLE tags (
        name TEXT PRIMARY KEY,
        image_id TEXT NOT NULL REFERENCES images(id) ON DELETE RESTRICT
    ) STRICT""",
    "CREATE INDEX tags_image ON tags(image_id)",
    """CREATE TABLE leases (
        id TEXT PRIMARY KEY,
        created REAL NOT NULL,
        expires_at REAL,
        labels TEXT NOT NULL DEFAULT '{}'
    ) STRICT""",
    """CREATE TABLE lease_resources (
        lease_id TEXT NOT NULL REFERENCES leases(id) ON DELETE CASCADE,
        kind TEXT NOT NULL CHECK (kind IN ('blob', 'snapshot', 'ingest')),
        key TEXT NOT NULL,
        PRIMARY KEY (lease_id, kind, key)
    ) STRICT""",
    "CREATE INDEX lease_resources_key ON lease_resources(kind, key)",
    """CREATE TABLE containers (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        image_id TEXT NOT NULL REFERENCES images(id) ON DELETE RESTRICT,
        created REAL NOT NULL,
        state TEXT NOT NULL DEFAULT '{}'
    ) STRICT""",
    "CREATE INDEX containers_image ON containers(image_id)",
)

#: Version 2: volumes (the engine's named and anonymous volumes) and which container uses which.
_V2 = (
    """CREATE TABLE volumes (
        name TEXT PRIMARY KEY,
        driver TEXT NOT NULL,
        created REAL NOT NULL,
        labels TEXT NOT NULL DEFAULT '{}',
        options TEXT NOT NULL DEFAULT '{}',
        anonymous INTEGER NOT NULL DEFAULT 0 CHECK (anonymous IN (0, 1))
    ) STRICT""",
    """CREATE TABLE container_volumes (
        container_id TEXT NOT NULL REFERENCES containers(id) ON DELETE CASCADE,
        volume_name TEXT NOT NULL REFERENCES volumes(name) ON DELETE RESTRICT,
        destination TEXT NOT NULL,
        PRIMARY KEY (container_id, destination)
    ) STRICT""",
    "CREATE INDEX container_volumes_volume ON container_volumes(volume_name)",
)

#: Version 3: networks and the containers' endpoints on them (one address per network; the
#: UNIQUE (network_id, ip) makes a double allocation impossible even for a buggy caller).
_V3 = (
    """CREATE TABLE networks (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        driver TEXT NOT NULL,
        created REAL NOT NULL,
        subnet TEXT NOT NULL DEFAULT '',
        gateway TEXT NOT NULL DEFAULT '',
        ip_range TEXT NOT NULL DEFAULT '',
        internal INTEGER NOT NULL DEFAULT 0 CHECK (internal IN (0, 1)),
        bridge TEXT NOT NULL DEFAULT '',
        labels TEXT NOT NULL DEFAULT '{}',
        options TEXT NOT NULL DEFAULT '{}'
    ) STRICT""",
    """CREATE TABLE endpoints (
        network_id TEXT NOT NULL REFERENCES networks(id) ON DELETE RESTRICT,
        container_id TEXT NOT NULL REFERENCES containers(id) ON DELETE CASCADE,
        ip TEXT NOT NULL DEFAULT '',
        mac TEXT NOT NULL DEFAULT '',
        aliases TEXT NOT NULL DEFAULT '[]',
        PRIMARY KEY (network_id, container_id)
    ) STRICT""",
    "CREATE UNIQUE INDEX endpoints_ip ON endpoints(network_id, ip) WHERE ip != ''",
    "CREATE INDEX endpoints_container ON endpoints(container_id)",
)

#: MIGRATIONS[i] takes the schema from version i to i + 1. Append only; never edit a shipped one.
MIGRATIONS: tuple[tuple[str, ...], ...] = (_V1, _V2, _V3)
SCHEMA_VERSION = len(MIGRATIONS)


class Database:
    """The metadata database at ``path`` (created, mode 0600, and migrated on open)."""

    def __init__(self, path: str, *, busy_timeout: float = 5.0) -> None:
        self.path = path
        if not os.path.exists(path):
            os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600))
        self._lock = threading.RLock()
        self._depth = 0
        try:
            self._conn = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None,
                                         check_same_thread=False)
        except sqlite3.Error as e:
            raise Unavailable(f"open database {path}: {e}") from None
        try:
            self._setup(busy_timeout)
            self._migrate()
        except BaseException:
            self._conn.close()
            raise
        from dockyard.metadata.containers import ContainerRepo
        from dockyard.metadata.images import ImageRepo, TagRepo
        from dockyard.metadata.leases import LeaseRepo
        from dockyard.metadata.snapshots import SnapshotRepo

        self.images: ImageRepo = ImageRepo(self)
        self.tags: TagRepo = TagRepo(self)
        self.snapshots: SnapshotRepo = SnapshotRepo(self)
        self.leases: LeaseRepo = LeaseRepo(self)
        self.containers: ContainerRepo = ContainerRepo(self)
        from dockyard.metadata.volumes import VolumeRepo
        self.volumes = VolumeRepo(self)
        from dockyard.metadata.networks import NetworkRepo
        self.networks = NetworkRepo(self)

    def _setup(self, busy_timeout: float) -> None:
        c = self._conn
        c.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        mode = c.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise FailedPrecondition(f"open database {self.path}: cannot use WAL mode (got {mode})")
        c.execute("PRAGMA synchronous = FULL")
        c.execute("PRAGMA foreign_keys = ON")
        c.execute("PRAGMA trusted_schema = OFF")

    def _migrate(self) -> None:
        with self.transaction():
            version = self._conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise FailedPrecondition(
                    f"database {self.path} has schema version {version}, newer than this dockyard "
                    f"knows ({SCHEMA_VERSION}): upgrade dockyard")
            for n in range(version, SCHEMA_VERSION):
                for statement in MIGRATIONS[n]:
                    self._conn.execute(statement)
                self._conn.execute(f"PRAGMA user_version = {n + 1}")

    @property
    def schema_version(self) -> int:
        return int(self._query("PRAGMA user_version")[0][0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Database]:
        """BEGIN IMMEDIATE … COMMIT, or ROLLBACK if the body raises; a SAVEPOINT when nested.

        IMMEDIATE takes the write lock up front, so two writers never both read and then fail to
        upgrade (SQLITE_BUSY mid-transaction); the second waits ``busy_timeout``.
        """
        with self._lock:
            depth = self._depth
            conn = self._conn
            try:
                conn.execute("BEGIN IMMEDIATE" if depth == 0 else f"SAVEPOINT sp{depth}")
            except sqlite3.OperationalError as e:
                raise self._unavailable("begin transaction", e) from None
            self._depth = depth + 1
            try:
                yield self
            except BaseException:
                self._depth = depth
                if depth == 0:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                elif conn.in_transaction:  # SQLite may have rolled back everything already
                    conn.execute(f"ROLLBACK TO sp{depth}")
                    conn.execute(f"RELEASE sp{depth}")
                raise
            self._depth = depth
            if depth > 0:
                conn.execute(f"RELEASE sp{depth}")
                return
            try:
                conn.execute("COMMIT")
            except sqlite3.Error as e:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise self._unavailable("commit transaction", e) from None

    def _unavailable(self, what: str, e: sqlite3.Error) -> DockyardError:
        return Unavailable(f"{what} in {self.path}: {e}")

    # -- helpers for the repositories (not part of the public API)
    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def _one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        with self._lock:
            row: tuple[Any, ...] | None = self._conn.execute(sql, params).fetchone()
            return row

    def _exec(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        """Run a write; callers hold ``transaction()`` (checked, so a write is never autocommit)."""
        if self._depth == 0:
            raise RuntimeError("metadata write outside a transaction")
        return self._conn.execute(sql, params)

    def _execmany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if self._depth == 0:
            raise RuntimeError("metadata write outside a transaction")
        self._conn.executemany(sql, rows)

    def check(self) -> list[str]:
        """Problems SQLite finds in the file: ``integrity_check`` and ``foreign_key_check``."""
        problems = [r[0] for r in self._query("PRAGMA integrity_check") if r[0] != "ok"]
        for table, rowid, parent, _ in self._query("PRAGMA foreign_key_check"):
            problems.append(f"{table} row {rowid}: missing {parent} row")
        return problems


def constraint(e: sqlite3.IntegrityError) -> str:
    """Which kind of constraint failed: 'unique', 'foreign key', 'check', 'not null' or ''."""
    msg = str(e).upper()
    for kind in ("UNIQUE", "PRIMARY KEY", "FOREIGN KEY", "CHECK", "NOT NULL"):
        if kind in msg:
            return "unique" if kind == "PRIMARY KEY" else kind.lower()
    return ""


def __getattr__(name: str) -> object:
    """``metadata.db.SnapshotRepo`` (and the other repositories), where the API sketch puts them;
    imported lazily because their modules import this one."""
    if name == "SnapshotRepo":
        from dockyard.metadata.snapshots import SnapshotRepo
        return SnapshotRepo
    if name in ("ImageRepo", "TagRepo"):
        from dockyard.metadata import images
        return getattr(images, name)
    if name == "LeaseRepo":
        from dockyard.metadata.leases import LeaseRepo
        return LeaseRepo
    if name == "ContainerRepo":
        from dockyard.metadata.containers import ContainerRepo
        return ContainerRepo
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
