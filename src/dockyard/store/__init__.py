"""``Store``: the one owner of every on-disk path of dockyard. Do not build these paths elsewhere.

    <root>/                          (--root, default /var/lib/dockyard)
      dockyard.db                    SQLite in WAL mode: images, tags, snapshots, leases, ...
      lock                           flock'ed by the one process that writes the store
      content/blobs/<alg>/<hex>      immutable, verified blobs
      content/ingest/<ref>/          partial writes; resumable
        data                         the bytes so far
        info                         JSON: expected digest, total size, start time
      snapshots/<n>/fs               one unpacked layer chain (an overlay lower or upper dir)
      snapshots/<n>/work             overlay work dir, for a snapshot that is an upper dir
      snapshots/l/<short>            short symlinks to snapshots/<n>/fs: lowerdir= of 128+ layers
                                     must fit the mount data page (4096 bytes)
      containers/<id>/               bundle, upper and work dirs, log, monitor files
      volumes/<name>/_data           named volumes
      tmp/                           staging on the same filesystem, so renames are atomic

``snapshots/`` and ``tmp/`` are tops of directory hierarchies for ext2/3/4's inode allocator
(``chattr +T``): see kernel/inode_flags.py.

Every name that reaches a path is validated here first (digests by ``Digest.parse``; ids, refs and
names by ``_component``), so no caller input can climb out of the root.
"""

from __future__ import annotations

import os

from dockyard.errors import InvalidArgument
from dockyard.kernel.inode_flags import spread_subtrees

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dockyard.oci.digest import Digest

DEFAULT_ROOT = "/var/lib/dockyard"
_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")


def _component(kind: str, name: str, max_len: int = 255) -> str:
    if not name or len(name) > max_len or name in (".", "..") or not _SAFE.issuperset(name):
        raise InvalidArgument(f"invalid {kind} {name!r}: use letters, digits, '_', '.', '-'")
    return name


class Store:
    def __init__(self, root: str = DEFAULT_ROOT) -> None:
        self.root = os.path.abspath(root)

    # -- files of the store itself
    @property
    def db(self) -> str:
        return f"{self.root}/dockyard.db"

    @property
    def lock(self) -> str:
        return f"{self.root}/lock"

    @property
    def tmp(self) -> str:
        return f"{self.root}/tmp"

    # -- content
    @property
    def blobs(self) -> str:
        return f"{self.root}/content/blobs"

    def blob(self, digest: Digest) -> str:
        return f"{self.root}/content/blobs/{digest.algorithm}/{digest.hex}"

    @property
    def ingests(self) -> str:
        return f"{self.root}/content/ingest"

    def ingest(self, ref: str) -> str:
        return f"{self.root}/content/ingest/{_component('ingest ref', ref)}"

    def ingest_data(self, ref: str) -> str:
        """The bytes written so far; renamed to ``blob(d)`` on commit."""
        return f"{self.ingest(ref)}/data"

    def ingest_info(self, ref: str) -> str:
        """JSON: expected digest, total size, start time (written atomically when they change)."""
        return f"{self.ingest(ref)}/info"

    # -- snapshots
    @property
    def snapshots(self) -> str:
        return f"{self.root}/snapshots"

    def snapshot(self, n: int) -> str:
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise InvalidArgument(f"invalid snapshot number {n!r}")
        return f"{self.root}/snapshots/{n}"

    def snapshot_fs(self, n: int) -> str:
        return f"{self.snapshot(n)}/fs"

    def snapshot_work(self, n: int) -> str:
        return f"{self.snapshot(n)}/work"

    @property
    def snapshot_links(self) -> str:
        return f"{self.root}/snapshots/l"

    def snapshot_link(self, short: str) -> str:
        return f"{self.root}/snapshots/l/{_component('snapshot link', short, 32)}"

    # -- containers and volumes (engine issue)
    def container(self, container_id: str) -> str:
        return f"{self.root}/containers/{_component('container id', container_id, 128)}"

    @property
    def volumes(self) -> str:
        return f"{self.root}/volumes"

    def volume(self, name: str) -> str:
        """A volume's directory: its ``_data`` and nothing else (the row is in the database)."""
        return f"{self.root}/volumes/{_component('volume name', name)}"

    def volume_data(self, name: str) -> str:
        """A volume's mountpoint: what containers see (a tmpfs or bind of the local driver's
        ``-o`` options is mounted here while in use)."""
        return f"{self.volume(name)}/_data"

    def ensure(self) -> None:
        """Create the tree's top directories (idempotent)."""
        for d in (self.root, self.blobs, self.ingests, self.snapshots, self.snapshot_links, self.tmp,
                  f"{self.root}/containers", f"{self.root}/volumes"):
            os.makedirs(d, mode=0o711, exist_ok=True)
        for d in (self.snapshots, self.tmp):
            spread_subtrees(d)
