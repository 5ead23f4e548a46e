"""``ImageRepo`` and ``TagRepo``: images with their layers, and the names that point at them.

An image is added together with its layers and tags in one transaction, so a crash leaves it
either whole or absent. Deleting one is refused while a tag names it (unless ``untag``) or a
container uses it; the foreign keys enforce the same, so a caller bug cannot orphan a row.
"""

from __future__ import annotations

import builtins
import sqlite3
import time

from dockyard.errors import AlreadyExists, Conflict, InvalidArgument, NotFound
from dockyard.metadata.db import constraint
from dockyard.metadata.records import ImageRecord, ImageRefs, LayerRecord, TagRecord
from dockyard.oci.digest import Digest

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

    from dockyard.metadata.db import Database

_IMAGE_COLS = ("id, manifest_digest, manifest_media_type, config_size, created, architecture, os, "
               "size, added_at")
_LAYER_COLS = "image_id, diff_id, blob_digest, blob_size, media_type, snapshot_id"
_HEX = frozenset("0123456789abcdef")


def _digest(value: Digest | str) -> Digest:
    return value if isinstance(value, Digest) else Digest.parse(value)


def check_tag(name: str) -> str:
    """A tag is stored as given (the caller normalizes it); refuse what can never be a reference."""
    if not isinstance(name, str) or not name or len(name) > 4096:
        raise InvalidArgument(f"invalid tag {name!r}")
    if any(c.isspace() or not c.isprintable() for c in name):
        raise InvalidArgument(f"invalid tag {name!r}: contains whitespace or control characters")
    return name


def _layer(row: tuple[Any, ...]) -> LayerRecord:
    _, diff_id, blob, size, media_type, snapshot_id = row
    return LayerRecord(Digest.parse(diff_id), Digest.parse(blob), size, media_type, snapshot_id)


def _image(row: tuple[Any, ...], layers: tuple[LayerRecord, ...]) -> ImageRecord:
    id, manifest, mt, config_size, created, arch, os_, size, added_at = row
    return ImageRecord(Digest.parse(id), Digest.parse(manifest), mt, config_size, created, arch, os_,
                       size, layers, added_at)


class ImageRepo:
    def __init__(self, db: Database) -> None:
        self._db = db

    def add(self, image: ImageRecord, tags: Iterable[str] = (), *, exist_ok: bool = False) -> bool:
        """Insert the image, its layers and tags atomically; tags are moved if they exist.

        An image already present raises ``errors.AlreadyExists``, or with ``exist_ok`` only gets
        the tags (its stored layers are kept). Returns whether the image row was new. A layer
        naming a snapshot that does not exist raises ``errors.NotFound``.
        """
        tags = [check_tag(t) for t in tags]
        added_at = image.added_at or time.time()
        db = self._db
        with db.transaction():
            try:
                db._exec(f"INSERT INTO images ({_IMAGE_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         (str(image.id), str(image.manifest_digest), image.manifest_media_type,
                          image.config_size, image.created, image.architecture, image.os,
                          image.size, added_at))
                new = True
            except sqlite3.IntegrityError as e:
                if constraint(e) != "unique":
                    raise
                if not exist_ok:
                    raise AlreadyExists(f"image {image.id} already exists") from None
                new = False
            if new:
                rows = [(i, str(image.id), str(la.diff_id), str(la.blob_digest), la.blob_size,
                         la.media_type, la.snapshot_id) for i, la in enumerate(image.layers)]
                try:
                    db._execmany(f"INSERT INTO image_layers (idx, {_LAYER_COLS}) "
                                 "VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
                except sqlite3.IntegrityError as e:
                    if constraint(e) == "foreign key":
                        missing = [la.snapshot_id for la in image.layers if la.snapshot_id is not None
                                   and db.snapshots.get(la.snapshot_id) is None]
                        raise NotFound(f"add image {image.id}: no snapshot {missing}") from None
                    raise
            for name in tags:
                db.tags.set(name, image.id)
        return new

    def get(self, image_id: Digest | str) -> ImageRecord | None:
        d = _digest(image_id)
        row = self._db._one(f"SELECT {_IMAGE_COLS} FROM images WHERE id = ?", (str(d),))
        if row is None:
            return None
        layers = self._db._query(f"SELECT {_LAYER_COLS} FROM image_layers WHERE image_id = ? "
                                 "ORDER BY idx", (str(d),))
        return _image(row, tuple(_layer(r) for r in layers))

    def resolve(self, id_or_prefix: str) -> ImageRecord:
        """By full id or a unique hex prefix (``sha256:`` optional), as ``docker rmi 3f5`` does.

        ``errors.NotFound`` when nothing matches, ``errors.Conflict`` when the prefix is ambiguous.
        """
        text = id_or_prefix
        algorithm, sep, prefix = text.partition(":")
        if not sep:
            algorithm, prefix = "sha256", text
        if algorithm not in ("sha256", "sha512") or not prefix or not _HEX.issuperset(prefix) \
                or len(prefix) > 128:
            raise NotFound(f"no such image: {text}")
        # prefix is lowercase hex: no GLOB metacharacter can appear in it
        rows = self._db._query("SELECT id FROM images WHERE id GLOB ? ORDER BY id LIMIT 2",
                               (f"{algorithm}:{prefix}*",))
        if not rows:
            raise NotFound(f"no such image: {text}")
        if len(rows) > 1:
            raise Conflict(f"image id prefix {text!r} is ambiguous: it matches {rows[0][0]} and "
                           f"{rows[1][0]}")
        image = self.get(rows[0][0])
        if image is None:  # deleted between the two reads
            raise NotFound(f"no such image: {text}")
        return image

    def list(self) -> list[ImageRecord]:
        """Every image, newest first, each with its layers (two queries, not one per image)."""
        rows = self._db._query(f"SELECT {_IMAGE_COLS} FROM images ORDER BY added_at DESC, id")
        layers: dict[str, list[LayerRecord]] = {}
        for r in self._db._query(f"SELECT {_LAYER_COLS} FROM image_layers ORDER BY image_id, idx"):
            layers.setdefault(r[0], []).append(_layer(r))
        return [_image(r, tuple(layers.get(r[0], ()))) for r in rows]

    def refs(self, image_id: Digest | str) -> ImageRefs:
        d = str(_digest(image_id))
        tags = self._db._query("SELECT name FROM tags WHERE image_id = ? ORDER BY name", (d,))
        users = self._db._query("SELECT id FROM containers WHERE image_id = ? ORDER BY id", (d,))
        return ImageRefs(tuple(r[0] for r in tags), tuple(r[0] for r in users))

    def delete(self, image_id: Digest | str, *, untag: bool = False) -> tuple[str, ...]:
        """Delete the image and its layer rows; return the tags removed with it.

        ``errors.Conflict`` while a container uses it (even with ``untag``: the container's
        rootfs is built on its layers), or while it is tagged and ``untag`` is false.
        """
        d = _digest(image_id)
        db = self._db
        with db.transaction():
            if db._one("SELECT 1 FROM images WHERE id = ?", (str(d),)) is None:
                raise NotFound(f"no such image: {d}")
            refs = self.refs(d)
            if refs.containers:
                raise Conflict(f"image {d.short} is being used by container "
                               f"{', '.join(c[:12] for c in refs.containers)}")
            if refs.tags and not untag:
                raise Conflict(f"image {d.short} is referenced by tags: {', '.join(refs.tags)}")
            db._exec("DELETE FROM tags WHERE image_id = ?", (str(d),))
            db._exec("DELETE FROM images WHERE id = ?", (str(d),))
        return refs.tags

    def dangling(self) -> builtins.list[ImageRecord]:
        """Images no tag names (what ``image prune`` removes when no container uses them)."""
        return [i for i in self.list() if not self._db._one(
            "SELECT 1 FROM tags WHERE image_id = ? LIMIT 1", (str(i.id),))]

    def set_layer_snapshot(self, image_id: Digest | str, idx: int, snapshot_id: int | None) -> None:
        """Record that layer ``idx`` of the image is unpacked as ``snapshot_id`` (or no longer)."""
        with self._db.transaction():
            try:
                cur = self._db._exec("UPDATE image_layers SET snapshot_id = ? "
                                     "WHERE image_id = ? AND idx = ?",
                                     (snapshot_id, str(_digest(image_id)), idx))
            except sqlite3.IntegrityError:
                raise NotFound(f"no such snapshot: {snapshot_id}") from None
            if cur.rowcount == 0:
                raise NotFound(f"image {image_id} has no layer {idx}")

    def layer_refcounts(self) -> dict[Digest, int]:
        """For each layer blob, how many images use it (shared size in ``system df``)."""
        rows = self._db._query("SELECT blob_digest, COUNT(DISTINCT image_id) FROM image_layers "
                               "GROUP BY blob_digest")
        return {Digest.parse(b): n for b, n in rows}

    def blob_roots(self) -> set[Digest]:
        """Every blob an image needs: manifest, config (the id) and layers. GC marks from these."""
        rows = self._db._query("SELECT id FROM images UNION SELECT manifest_digest FROM images "
                               "UNION SELECT blob_digest FROM image_layers")
        return {Digest.parse(r[0]) for r in rows}


class TagRepo:
    def __init__(self, db: Database) -> None:
        self._db = db

    def set(self, name: str, image_id: Digest | str) -> Digest | None:
        """Point ``name`` at the image (creating or moving the tag); return its previous target."""
        check_tag(name)
        d = str(_digest(image_id))
        db = self._db
        with db.transaction():
            old = db._one("SELECT image_id FROM tags WHERE name = ?", (name,))
            try:
                db._exec("INSERT INTO tags (name, image_id) VALUES (?, ?) "
                         "ON CONFLICT (name) DO UPDATE SET image_id = excluded.image_id", (name, d))
            except sqlite3.IntegrityError:
                raise NotFound(f"tag {name}: no such image: {d}") from None
        return Digest.parse(old[0]) if old and old[0] != d else None

    def get(self, name: str) -> Digest | None:
        row = self._db._one("SELECT image_id FROM tags WHERE name = ?", (name,))
        return Digest.parse(row[0]) if row else None

    def remove(self, name: str) -> Digest:
        """Untag; return the image the tag pointed at (which may now be dangling)."""
        db = self._db
        with db.transaction():
            row = db._one("SELECT image_id FROM tags WHERE name = ?", (name,))
            if row is None:
                raise NotFound(f"no such tag: {name}")
            db._exec("DELETE FROM tags WHERE name = ?", (name,))
        return Digest.parse(row[0])

    def tags_of(self, image_id: Digest | str) -> list[str]:
        rows = self._db._query("SELECT name FROM tags WHERE image_id = ? ORDER BY name",
                               (str(_digest(image_id)),))
        return [r[0] for r in rows]

    def all(self) -> list[TagRecord]:
        return [TagRecord(n, Digest.parse(i))
                for n, i in self._db._query("SELECT name, image_id FROM tags ORDER BY name")]
