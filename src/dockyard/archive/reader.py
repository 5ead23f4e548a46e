"""Streaming, bounded iteration over tar members (parsing only; nothing is written here).

``tarfile`` parses headers (ustar, GNU, PAX) in stream mode (``r|``), but several of its paths are
unbounded or lenient for our purposes, so a ``TarInfo`` subclass guards each header block:

- a PAX or GNU long-name header is read whole into memory: its size is capped
  (``Limits.max_header_bytes``);
- GNU sparse members (old ``S`` type and the PAX ``GNU.sparse.*`` formats) build maps of
  attacker-chosen size (CVE-2025-58183): refused; no container tool writes them into layers;
- a negative size (CVE-2025-8194: base-256 numbers can be negative) would move the offset backwards
  and loop forever: refused;
- a corrupt header in the middle of the archive ends ``tarfile``'s iteration silently, as if the
  archive were complete: it is an error here. A stream that simply ends at a header boundary, with or
  without the zero blocks, is a clean end (as Go's archive/tar treats it).

``TarFile`` also keeps every member it has seen in ``members``; streaming clears that list so a
million-entry layer costs no memory.
"""

from __future__ import annotations

import tarfile

from dockyard.archive.compression import Limits, LayerStream
from dockyard.errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Iterator

_HEADER_TYPES = (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE,
                 tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK)


class TarRefused(Exception):
    """Raised from inside tarfile's parser; becomes ``InvalidArgument`` at the iteration boundary."""


class _BoundedInfo(tarfile.TarInfo):
    max_header_bytes = 1 << 20

    @classmethod
    def fromtarfile(cls, tar: tarfile.TarFile) -> tarfile.TarInfo:  # type: ignore[override]
        offset = tar.fileobj.tell()  # type: ignore[union-attr]
        buf = tar.fileobj.read(tarfile.BLOCKSIZE)  # type: ignore[union-attr]
        if not buf:
            raise tarfile.EOFHeaderError("end of file")  # clean end without the zero blocks
        if len(buf) != tarfile.BLOCKSIZE:
            raise TarRefused(f"tar stream truncated inside the header at offset {offset}")
        try:
            obj = cls.frombuf(buf, tar.encoding, tar.errors)
        except tarfile.EOFHeaderError:
            raise
        except tarfile.HeaderError as e:
            raise TarRefused(f"invalid tar header at offset {offset}: {e}") from None
        if obj.size < 0:
            raise TarRefused(f"tar header at offset {offset} has a negative size")
        if obj.type == tarfile.GNUTYPE_SPARSE:
            raise TarRefused(f"member {obj.name!r}: GNU sparse files are not supported")
        if obj.type in _HEADER_TYPES and obj.size > cls.max_header_bytes:
            raise TarRefused(f"extended header at offset {offset} is {obj.size} bytes "
                             f"(limit {cls.max_header_bytes})")
        obj.offset = offset
        member = obj._proc_member(tar)
        if member.size < 0:
            raise TarRefused(f"member {member.name!r}: negative size")
        return member

    def _refuse_sparse(self, *args: object) -> None:
        raise TarRefused(f"member {self.name!r}: GNU sparse files are not supported")

    _proc_gnusparse_00 = _proc_gnusparse_01 = _proc_gnusparse_10 = _refuse_sparse


class Forward:
    """A forward-only file over a stream, for ``open_tar(..., seekable=True)``: tarfile reads the
    headers through it and seeks over member data by reading and dropping it, while the caller
    reads a member's data itself (``read``) right after ``next()`` returned the member. No byte
    passes through tarfile's stream buffers. A backward seek (never made by tarfile's reader) is
    a ``tarfile.ReadError``."""

    def __init__(self, raw: object) -> None:
        self._raw = raw
        self._pos = 0

    def tell(self) -> int:
        return self._pos

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            raise ValueError("Forward.read needs a size")
        b = self._raw.read(n)  # type: ignore[attr-defined]
        if 0 < len(b) < n:  # a short read is not the end: fill up (tarfile expects whole blocks)
            parts = [b]
            got = len(b)
            while got < n:
                more = self._raw.read(n - got)  # type: ignore[attr-defined]
                if not more:
                    break
                parts.append(more)
                got += len(more)
            b = b"".join(parts)
        self._pos += len(b)
        return b

    def seek(self, pos: int, whence: int = 0) -> int:
        if whence == 1:
            pos += self._pos
        elif whence != 0:
            raise tarfile.ReadError("cannot seek from the end of a stream")
        if pos < self._pos:
            raise tarfile.ReadError(f"cannot seek back from offset {self._pos} to {pos}")
        while self._pos < pos:
            if not self.read(min(pos - self._pos, 1 << 20)):
                break  # the stream ended: the next read says so
        return self._pos


def open_tar(stream: LayerStream, limits: Limits, *, seekable: bool = False) -> tarfile.TarFile:
    """A stream-mode ``TarFile`` over ``stream`` whose header parsing honours ``limits``.

    ``seekable``: ``stream`` is a plain tar in a regular file (positioned at its start) or a
    ``Forward``; the ``TarFile`` then reads headers only and seeks over member data, which the
    caller copies itself, from ``member.offset_data`` or from the ``Forward`` (no data passes
    through tarfile's buffers). The same header checks apply; a stream that ends inside a
    member's data is an error at the next ``next()``."""
    info = type("_LimitedInfo", (_BoundedInfo,), {"max_header_bytes": limits.max_header_bytes})
    try:
        return tarfile.open(fileobj=stream, mode="r:" if seekable else "r|",  # type: ignore[call-overload]
                            tarinfo=info, encoding="utf-8", errors="surrogateescape")
    except TarRefused as e:
        raise InvalidArgument(f"layer: {e}") from None
    except tarfile.TarError as e:
        raise InvalidArgument(f"layer: not a tar archive: {e}") from None


def members(tar: tarfile.TarFile, limits: Limits) -> Iterator[tarfile.TarInfo]:
    """Members in stream order; at most ``limits.max_entries``; errors become ``InvalidArgument``."""
    count, last = 0, None
    while True:
        try:
            member = tar.next()
        except TarRefused as e:
            raise InvalidArgument(f"layer: {e}") from None
        except tarfile.TarError as e:
            where = f"after member {last!r}" if last is not None else "at its start"
            raise InvalidArgument(f"layer: corrupt tar stream {where}: {e}") from None
        if member is None:
            return
        tar.members.clear()
        last = member.name
        count += 1
        if count > limits.max_entries:
            raise InvalidArgument(f"layer: more than {limits.max_entries} entries (limit)")
        yield member
