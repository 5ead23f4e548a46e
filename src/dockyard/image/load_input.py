"""``load``'s input: the archive's tar bytes (compression detected and undone), and a member's
data read straight from them: by offset from a regular file (``pread``), or from the forward-only
stream tarfile parses the headers of (``archive.reader.Forward``); no byte goes through
tarfile's buffers either way."""

from __future__ import annotations

import io
import os
import stat

from dockyard.archive.compression import NONE, detect_compression
from dockyard.errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import BinaryIO

    from dockyard.archive.reader import Forward


class _Prefixed:
    """A stream with its first bytes already read (to sniff the compression) put back."""

    def __init__(self, head: bytes, raw: BinaryIO) -> None:
        self._head, self._raw = head, raw

    def read(self, n: int = -1) -> bytes:
        if self._head:
            if n is None or n < 0:
                b, self._head = self._head + self._raw.read(), b""
                return b
            b, self._head = self._head[:n], self._head[n:]
            return b
        return self._raw.read(n)

    def readinto(self, buf: bytearray | memoryview) -> int:
        b = self.read(len(buf))
        buf[:len(b)] = b
        return len(b)

    def readable(self) -> bool:
        return True

    def close(self) -> None:  # the caller owns the stream
        pass

    @property
    def closed(self) -> bool:
        return False


class MemberData:
    """A member's data, read straight from the archive: by offset from its file (``pread``), or
    from the ``Forward`` stream tarfile parses the headers of (no tarfile buffers either way)."""

    def __init__(self, fd: int | None, fwd: Forward | None, offset: int, size: int,
                 name: str) -> None:
        self._fd, self._fwd, self._offset, self._left, self._name = fd, fwd, offset, size, name

    def read(self, n: int = -1) -> bytes:
        n = self._left if n is None or n < 0 else min(n, self._left)
        if not n:
            return b""
        if self._fd is not None:
            b = os.pread(self._fd, n, self._offset)
        else:
            assert self._fwd is not None and self._fwd.tell() == self._offset
            b = self._fwd.read(n)
        if not b:
            raise InvalidArgument(f"load: the archive is truncated inside {self._name!r}")
        self._offset += len(b)
        self._left -= len(b)
        return b


def plain_file(stream: BinaryIO) -> int | None:
    """The fd of ``stream`` when it is a regular file holding an uncompressed tar from its
    current offset: members are then read by offset, tarfile only parses headers."""
    try:
        fd = stream.fileno()
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        start = stream.tell()
        head = os.pread(fd, 6, start)
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return None
    return fd if detect_compression(head) == NONE else None


def open_input(stream: BinaryIO) -> tuple[BinaryIO, object]:
    """The archive's tar bytes: gzip (and zstd, xz, bzip2) detected by magic, else as is.
    Returns the reader and the decompressor to close (or None)."""
    head = b""
    while len(head) < 6:
        b = stream.read(6 - len(head))
        if not b:
            break
        head += b
    src = _Prefixed(head, stream)
    kind = detect_compression(head)
    if kind == "gzip":
        try:
            from isal import igzip_threaded

            dec = igzip_threaded.open(src, "rb", threads=1)
        except ImportError:  # pragma: no cover - isal is a dependency
            import gzip

            dec = gzip.GzipFile(fileobj=src, mode="rb")  # type: ignore[arg-type]
    elif kind == "zstd":
        import zstandard

        dec = zstandard.ZstdDecompressor().stream_reader(src, read_across_frames=True,
                                                         closefd=False)
    elif kind == "xz":
        import lzma

        dec = lzma.LZMAFile(src)  # type: ignore[arg-type]
    elif kind == "bzip2":
        import bz2

        dec = bz2.BZ2File(src)  # type: ignore[arg-type]
    else:
        return src, None  # type: ignore[return-value]
    return dec, dec
