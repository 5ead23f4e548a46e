"""Layer streams: compression detected by magic bytes, digests of both sides, limits while streaming.

Reading: ``LayerStream(source)`` is a read-only stream of the uncompressed tar. The compressed bytes
are hashed as they are pulled from ``source`` (the blob digest) and the tar bytes as they are handed
out (the diff_id), so one pass over a layer yields both. Nothing is ever held whole in memory.

gzip goes through ``isal`` (ISA-L, several times faster than zlib; the threaded reader decompresses
in a worker thread while we write files) and falls back to the standard library's ``gzip`` when isal
is missing. zstd goes through ``zstandard``'s ``stream_reader``, which returns a silent EOF on a
truncated frame, so the compressed bytes also pass through a small frame tracker (``_ZstdFrames``)
that tells a complete stream from a truncated one. bzip2 and xz (legacy docker layers, ``import``)
use the standard library.

Bounds (checklist 16, 17): every read counts the uncompressed bytes against
``Limits.max_uncompressed_bytes`` and checks the optional deadline; a truncated or corrupt stream
raises ``InvalidArgument`` as soon as the decompressor notices, never hangs or loops.
"""

from __future__ import annotations

import hashlib
import os
import time

from dockyard.errors import InvalidArgument
from dockyard.oci.digest import Digest
from dockyard.record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import BinaryIO

CHUNK = 1 << 20
GZIP, ZSTD, BZIP2, XZ, NONE = "gzip", "zstd", "bzip2", "xz", "none"
_MAGIC = ((b"\x1f\x8b", GZIP), (b"\x28\xb5\x2f\xfd", ZSTD), (b"BZh", BZIP2), (b"\xfd7zXZ\x00", XZ))


class Limits(Record):
    """Bounds for one layer, enforced while streaming.

    max_uncompressed_bytes  64 GiB of tar: larger than any sane layer, small enough to stop a bomb
                            before it fills a disk (the caller's disk quota is the real bound).
    max_entries             1,000,000 members (a full Debian is ~30,000; each costs a little memory
                            for deferred directory metadata).
    max_path_bytes          PATH_MAX (4096) for names, link targets and symlink targets.
    max_name_bytes          NAME_MAX (255) per component.
    max_header_bytes        1 MiB for one PAX or GNU long-name header (tarfile reads those whole).
    max_seconds             optional wall-clock budget for the whole layer (None: no deadline).
    """

    max_uncompressed_bytes: int = 64 << 30
    max_entries: int = 1_000_000
    max_path_bytes: int = 4096
    max_name_bytes: int = 255
    max_header_bytes: int = 1 << 20
    max_seconds: float | None = None


def detect_compression(head: bytes) -> str:
    """``gzip``, ``zstd``, ``bzip2``, ``xz`` or ``none`` (a plain tar) from the first bytes."""
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    return NONE


class _Readable:
    """``readinto``/``readable`` over a subclass's ``read``: what io and the decompressors expect."""

    def read(self, n: int = -1) -> bytes:
        raise NotImplementedError

    def readinto(self, buf: bytearray | memoryview) -> int:
        b = self.read(len(buf))
        buf[: len(b)] = b
        return len(b)

    def readable(self) -> bool:
        return True


class _HashingSource(_Readable):
    """The compressed side: hashes and counts every byte read; can put back the sniffed head."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._head = b""
        self.hasher = hashlib.sha256()
        self.size = 0
        self.eof = False
        self.error: BaseException | None = None

    def peek(self, n: int) -> bytes:
        while len(self._head) < n:
            b = self._read_raw(n - len(self._head))
            if not b:
                break
            self._head += b
        return self._head

    def _read_raw(self, n: int) -> bytes:
        try:
            b = self._raw.read(n)
        except BaseException as e:  # remembered so the reader does not blame the layer for it
            self.error = e
            raise
        if b:
            self.hasher.update(b)
            self.size += len(b)
        else:
            self.eof = True
        return b

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = CHUNK
        if self._head:
            b, self._head = self._head[:n], self._head[n:]
            return b
        return self._read_raw(n)


    def close(self) -> None:  # decompressors may close their source; the caller owns it
        pass

    @property
    def closed(self) -> bool:
        return False


class _ZstdFrames:
    """Follows the frame structure of a zstd stream (RFC 8878) over the compressed bytes.

    Only headers are parsed (frame header, 3-byte block headers, skippable frame lengths); block
    contents are skipped by count. ``complete`` is true when the bytes seen so far end exactly at a
    frame boundary after at least one frame.
    """

    def __init__(self) -> None:
        self._state = "magic"
        self._need = 4
        self._buf = b""
        self._skip = 0
        self._checksum = False
        self.frames = 0

    @property
    def complete(self) -> bool:
        return self._state == "magic" and not self._buf and not self._skip and self.frames > 0

    def feed(self, data: bytes) -> None:
        i, n = 0, len(data)
        while i < n:
            if self._skip:
                take = min(self._skip, n - i)
                i += take
                self._skip -= take
                continue
            take = min(self._need - len(self._buf), n - i)
            self._buf += data[i : i + take]
            i += take
            if len(self._buf) == self._need:
                header, self._buf = self._buf, b""
                self._step(header)

    def _step(self, h: bytes) -> None:
        st = self._state
        if st == "magic":
            if h == b"\x28\xb5\x2f\xfd":
                self._state, self._need = "descriptor", 1
            elif h[0] & 0xF0 == 0x50 and h[1:] == b"\x2a\x4d\x18":
                self._state, self._need = "skippable", 4
            else:
                raise ValueError(f"not a zstd frame (magic {h.hex()})")
        elif st == "skippable":
            self._skip = int.from_bytes(h, "little")
            self._frame_done()
        elif st == "descriptor":
            d = h[0]
            if d & 0x08:
                raise ValueError("zstd frame header has the reserved bit set")
            single = (d >> 5) & 1
            fcs = (1 if single else 0, 2, 4, 8)[d >> 6]
            self._checksum = bool(d & 0x04)
            self._state, self._need = "header", (0 if single else 1) + (0, 1, 2, 4)[d & 3] + fcs
        elif st == "header":
            self._state, self._need = "block", 3
        elif st == "block":
            v = int.from_bytes(h, "little")
            btype, size = (v >> 1) & 3, v >> 3
            if btype == 3:
                raise ValueError("zstd block of reserved type")
            self._skip = 1 if btype == 1 else size
            if v & 1:  # last block
                if self._checksum:
                    self._state, self._need = "checksum", 4
                else:
                    self._frame_done()
        elif st == "checksum":
            self._frame_done()

    def _frame_done(self) -> None:
        self.frames += 1
        self._state, self._need = "magic", 4


class _TrackedSource(_Readable):
    """Feeds every compressed byte the zstd reader pulls to the frame tracker."""

    def __init__(self, src: _HashingSource, frames: _ZstdFrames) -> None:
        self._src, self._frames = src, frames

    def read(self, n: int = -1) -> bytes:
        b = self._src.read(n)
        self._frames.feed(b)
        return b


class _ZstdReader:
    def __init__(self, src: _HashingSource) -> None:
        import zstandard

        self._frames = _ZstdFrames()
        # max_window_size stays at the library default (128 MiB): bounded decoder memory.
        self._reader = zstandard.ZstdDecompressor().stream_reader(
            _TrackedSource(src, self._frames), read_size=CHUNK, read_across_frames=True, closefd=False)

    def read(self, n: int) -> bytes:
        b = self._reader.read(n)
        if not b and n and not self._frames.complete:
            raise EOFError("zstd stream ends inside a frame (truncated)")
        return b

    def close(self) -> None:
        self._reader.close()


def _decompressor(kind: str, src: _HashingSource):  # -> a reader with read(n) and close()
    if kind == GZIP:
        try:
            from isal import igzip_threaded
        except ImportError:  # pragma: no cover - isal is a declared dependency
            import gzip

            return gzip.GzipFile(fileobj=src, mode="rb")  # type: ignore[arg-type]
        return igzip_threaded.open(src, "rb", threads=1)
    if kind == ZSTD:
        return _ZstdReader(src)
    if kind == BZIP2:
        import bz2

        return bz2.BZ2File(src)  # type: ignore[arg-type]
    if kind == XZ:
        import lzma

        return lzma.LZMAFile(src)  # type: ignore[arg-type]
    if kind == NONE:
        return src
    raise InvalidArgument(f"unsupported layer compression {kind!r}")


def _corruption_errors() -> tuple[type[BaseException], ...]:
    import zlib

    errs: list[type[BaseException]] = [EOFError, OSError, ValueError, zlib.error]
    for mod, name in (("isal.isal_zlib", "error"), ("zstandard", "ZstdError"), ("lzma", "LZMAError")):
        try:
            errs.append(getattr(__import__(mod, fromlist=[name]), name))
        except ImportError:  # pragma: no cover
            pass
    return tuple(errs)


class LayerStream(_Readable):
    """A layer's uncompressed tar, read once, with both digests when drained.

    ``compression`` is detected from the magic bytes unless given. ``read(n)`` raises
    ``InvalidArgument`` for a corrupt or truncated stream, a stream past ``max_uncompressed_bytes``
    or past the deadline. ``digest`` (blob) and ``diff_id`` exist once the stream hit EOF: call
    ``drain()`` after the consumer (tarfile stops at the end-of-archive marker) to read the rest.
    """

    def __init__(self, source: BinaryIO, limits: Limits = Limits(), *, compression: str | None = None) -> None:
        self.limits = limits
        self._src = _HashingSource(source)
        self.compression = compression or detect_compression(self._src.peek(6))
        self._dec = _decompressor(self.compression, self._src)
        # A plain tar is its own blob: the same bytes pass through both sides, so one sha256
        # (the blob's) gives both digests instead of hashing every byte twice.
        self._plain = self._dec is self._src
        self._hasher = self._src.hasher if self._plain else hashlib.sha256()
        self.tar_size = 0
        self.eof = False
        self._deadline = None if limits.max_seconds is None else time.monotonic() + limits.max_seconds
        self._errors = _corruption_errors()

    def check_deadline(self) -> None:
        if self._deadline is not None and time.monotonic() > self._deadline:
            raise InvalidArgument(f"layer: took longer than {self.limits.max_seconds} s (limit)")

    def read(self, n: int = CHUNK) -> bytes:
        if n is None or n < 0:
            raise ValueError("LayerStream.read needs a size: layers are streamed, never read whole")
        if self.eof or n == 0:
            return b""
        self.check_deadline()
        try:
            b = self._dec.read(n)
        except self._errors as e:
            if self._src.error is not None:
                raise
            raise InvalidArgument(f"layer: corrupt or truncated {self.compression} stream: {e}") from e
        if not b:
            self.eof = True
            return b
        self.tar_size += len(b)
        if self.tar_size > self.limits.max_uncompressed_bytes:
            raise InvalidArgument(f"layer: uncompressed size exceeds the limit of "
                                  f"{self.limits.max_uncompressed_bytes} bytes (decompression bomb?)")
        if not self._plain:
            self._hasher.update(b)
        return b


    def drain(self) -> None:
        """Read to EOF (tar padding after the end marker, trailing frames) so the digests cover it."""
        while self.read(CHUNK):
            pass
        # The decompressor may stop before its source is exhausted (e.g. bytes after a bzip2
        # stream); the blob digest must cover every byte of the blob.
        while self._src.read(CHUNK):
            pass

    @property
    def diff_id(self) -> Digest:
        if not self.eof:
            raise ValueError("diff_id is known only after the stream was drained")
        return Digest.of_hasher(self._hasher)

    @property
    def digest(self) -> Digest:
        if not (self.eof and self._src.eof):
            raise ValueError("the blob digest is known only after the stream was drained")
        return Digest.of_hasher(self._src.hasher)

    @property
    def compressed_size(self) -> int:
        return self._src.size

    def close(self) -> None:
        if self._dec is not self._src:
            self._dec.close()

    def __enter__(self) -> LayerStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------------------------------
# writing

class HashingWriter:
    """Counts and hashes what passes through to ``out`` (the blob side when writing a layer)."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self.hasher = hashlib.sha256()
        self.size = 0

    def write(self, b: bytes | bytearray | memoryview) -> int:
        self.hasher.update(b)
        self.size += len(b)
        self._out.write(b)
        return len(b)

    def writable(self) -> bool:
        return True

    def flush(self) -> None:
        self._out.flush()

    def close(self) -> None:  # the caller owns ``out``
        pass

    @property
    def closed(self) -> bool:
        return False


def open_compressor(kind: str, sink: HashingWriter, level: int | None = None):  # -> writer with close()
    """A writer compressing into ``sink``; its output depends only on the input bytes.

    gzip: isal's threaded writer (header without timestamp or file name; its output is the same for
    any thread count). Without isal the standard library writes a different, also deterministic,
    stream. zstd: single-threaded with content checksum, no content size (unknown when streaming).
    """
    if kind == GZIP:
        try:
            from isal import igzip_threaded
        except ImportError:  # pragma: no cover
            import gzip

            return gzip.GzipFile(filename="", mode="wb", fileobj=sink, mtime=0,  # type: ignore[arg-type]
                                 compresslevel=6 if level is None else level)
        return igzip_threaded.open(sink, "wb", compresslevel=2 if level is None else level,
                                   threads=min(4, os.cpu_count() or 1))
    if kind == ZSTD:
        import zstandard

        cctx = zstandard.ZstdCompressor(level=3 if level is None else level, write_checksum=True,
                                        write_content_size=False)
        return cctx.stream_writer(sink, closefd=False)
    if kind == NONE:
        return sink
    raise InvalidArgument(f"unsupported layer compression {kind!r} (gzip, zstd or none)")
