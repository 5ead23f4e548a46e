"""Container logs: read, tail, follow and frame conmon's "k8s-file" (CRI) log files.

conmon 2.1.6 writes one record per line (checked against the real binary)::

    2026-11-28T05:59:19.593641688+00:00 stdout F line0
    2026-11-28T05:59:22.650171021+00:00 stdout P tail

The time is the host's local time with nine fraction digits and a ``±HH:MM`` offset; ``F`` ends a
line (its newline is not in the record), ``P`` is a piece of a line: output without a newline yet,
or a line longer than one pipe read (conmon splits at its 8 KiB buffer, often at 4 KiB).

A *log entry* is what ``docker logs`` shows as one message: the ``P`` records of a stream joined
with the ``F`` record that ends them, newline restored. Two limits keep memory bounded:

- a merged line is emitted in pieces of at most ``LINE_CAP`` (1 MiB) bytes (the pieces carry no
  newline, the last one does), where dockerd's json-file splits at 16 KiB: the client sees the
  same bytes either way;
- files are read in 64 KiB blocks; ``tail`` seeks backwards from the end, so ``docker logs`` of a
  10 MB log streams and ``--tail 10`` reads a few kilobytes.

The daemon rotates ``ctr.log`` into ``ctr.log.1`` … (see ``logrotate``); every reader here reads
across ``ctr.log.N … ctr.log.1, ctr.log`` in that order, holding the files open from the start so
that a rotation during the read neither skips nor repeats lines.

Pieces still open at the end (a ``P`` run with no ``F``: ``printf b`` as the last output) are
emitted as they are, without a newline, like docker. ``tail`` counts lines (``F`` records, plus a
trailing ``P`` run), interleaved across both streams; ``since``/``until`` compare the time of a
line's first record, inclusive at both ends, after ``tail`` is applied (as dockerd does).
"""

from __future__ import annotations

import asyncio
import functools
import os
import time

from dockyard.errors import InvalidArgument
from dockyard.record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
    from typing import BinaryIO

#: The most bytes of one line kept in memory before a piece of it is emitted.
LINE_CAP = 1 << 20
#: Read size for the forward and backward scans.
BLOCK = 64 * 1024
#: The stream ids in Docker's multiplexed stream header.
STREAM_IDS = {"stdout": 1, "stderr": 2}


class LogEntry(Record):
    """One message: ``data`` ends with ``\\n`` unless it is a piece of a longer or unfinished line."""

    time: str       # the record's timestamp as conmon wrote it (RFC 3339, nanoseconds, offset)
    stream: str     # "stdout" or "stderr"
    data: bytes
    unix_nano: int = 0  # ``time`` as nanoseconds since the epoch

    @property
    def timestamp(self) -> float:
        return self.unix_nano / 1e9


# ---------------------------------------------------------------------------------------------
# time


def _days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm)."""
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def parse_rfc3339_nano(text: str) -> int:
    """Nanoseconds since the epoch of ``2026-11-28T05:59:19.593641688+00:00`` (or ``…Z``).

    The fraction may have 0-9 digits; ``T`` may be ``t`` or a space. Raises ``InvalidArgument``.
    """
    try:
        if text[-1] in "Zz":
            offset, body = 0, text[:-1]
        elif text[-6] in "+-" and text[-3] == ":":
            offset = int(text[-5:-3]) * 3600 + int(text[-2:]) * 60
            if text[-6] == "-":
                offset = -offset
            body = text[:-6]
        else:
            raise ValueError("no zone")
        if (len(body) < 19 or body[4] != "-" or body[7] != "-" or body[10] not in "Tt "
                or body[13] != ":" or body[16] != ":"):
            raise ValueError("layout")
        frac = body[19:]
        nanos = 0
        if frac:
            digits = frac[1:]
            if frac[0] != "." or not 1 <= len(digits) <= 9 or not digits.isdigit():
                raise ValueError("fraction")
            nanos = int(digits.ljust(9, "0"))
        fields = (body[0:4], body[5:7], body[8:10], body[11:13], body[14:16], body[17:19])
        if not all(f.isdigit() for f in fields):
            raise ValueError("digits")
        y, mo, d, h, mi, s = map(int, fields)
        if not (1 <= mo <= 12 and 1 <= d <= 31 and h <= 23 and mi <= 59 and s <= 60):
            raise ValueError("range")
    except (IndexError, ValueError):
        raise InvalidArgument(f"parse log time {text!r}: not an RFC 3339 timestamp") from None
    secs = _days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s - offset
    return secs * 1_000_000_000 + nanos


def format_rfc3339_nano_fixed(unix_nano: int) -> str:
    """UTC with nine fraction digits, Go's ``RFC3339NanoFixed``: what ``docker logs -t`` prints."""
    secs, nanos = divmod(unix_nano, 1_000_000_000)
    return f"{_utc_second(secs)}.{nanos:09d}Z"


@functools.lru_cache(maxsize=8)
def _utc_second(secs: int) -> str:
    t = time.gmtime(secs)
    return (f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T{t.tm_hour:02d}:{t.tm_min:02d}:"
            f"{t.tm_sec:02d}")


def parse_time_filter(text: str, now: float) -> float:
    """Seconds since the epoch for ``docker logs --since/--until`` (and the API's query values).

    Accepts what the docker CLI does (``timetypes.GetTimestamp``): a Go duration (``"10m"``:
    ``now`` minus it, whole seconds), a unix timestamp (``"1700000000"``, ``"1700000000.123"``),
    RFC 3339 with or without fraction and zone (no zone: the daemon's local time), or shortened
    ``2024-01-02``, ``2024-01-02T15``, ``2024-01-02T15:04`` forms.
    """
    from dockyard.engine.units import parse_duration

    text = text.strip()
    if text != "0":
        try:
            return float(int(now - parse_duration(text)))
        except InvalidArgument:
            pass
    if "-" not in text:
        secs, dot, frac = text.partition(".")
        if secs.isdigit() and (not dot or (frac.isdigit() and len(frac) <= 9)):
            return int(secs) + (int(frac.ljust(9, "0")) / 1e9 if frac else 0.0)
        raise InvalidArgument(f"failed to parse value as time or duration: {text!r}")
    return _parse_datetime(text)


def _parse_datetime(text: str) -> float:
    has_zone = any(c in text for c in "zZ+") or text.count("-") == 3
    date, sep, clock = text.partition("T")
    zone = ""
    if has_zone:
        for i in range(len(text) - 1, 9, -1):
            if text[i] in "zZ+-":
                zone = text[i:]
                break
        if sep:
            clock = clock[: len(clock) - len(zone)]
        else:
            date = date[: len(date) - len(zone)]
    parts = clock.split(":") if sep else []
    while sep and len(parts) < 3:
        parts.append("00")
    full = f"{date}T{':'.join(parts) if sep else '00:00:00'}"
    if zone:
        full += "Z" if zone in "zZ" else zone
        try:
            return parse_rfc3339_nano(full) / 1e9
        except InvalidArgument:
            raise InvalidArgument(f"parse time {text!r}: not an RFC 3339 timestamp") from None
    # no zone: the daemon's local time at that wall clock
    try:
        utc_ns = parse_rfc3339_nano(full + "Z")
    except InvalidArgument:
        raise InvalidArgument(f"parse time {text!r}: not an RFC 3339 timestamp") from None
    secs, nanos = divmod(utc_ns, 1_000_000_000)
    t = time.gmtime(secs)
    local = time.mktime((t.tm_year, t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec, 0, 0, -1))
    return local + nanos / 1e9


# ---------------------------------------------------------------------------------------------
# records and entries


def _parse_record(line: bytes) -> tuple[str, str, bool, bytes] | None:
    """``(time, stream, full, content)`` of one record line (without its newline), or None."""
    parts = line.split(b" ", 3)
    if len(parts) < 3 or parts[1] not in (b"stdout", b"stderr") or parts[2] not in (b"F", b"P"):
        return None
    return parts[0].decode("ascii", "replace"), parts[1].decode(), parts[2] == b"F", \
        parts[3] if len(parts) == 4 else b""


class _Merger:
    """Joins ``P`` records with the record that ends their line, per stream."""

    def __init__(self) -> None:
        # stream -> [first time, first unix_nano, chunks, size]
        self._open: dict[str, list] = {}
        self._clock = _Clock()

    def feed(self, line: bytes) -> LogEntry | None:
        rec = _parse_record(line)
        if rec is None:
            return None
        ts, stream, full, content = rec
        pending = self._open.get(stream)
        if pending is None:
            if full:
                return LogEntry(ts, stream, content + b"\n", self._clock.nano(ts))
            pending = self._open[stream] = [ts, self._clock.nano(ts), [], 0]
        pending[2].append(content)
        pending[3] += len(content)
        if full:
            del self._open[stream]
            pending[2].append(b"\n")
            return LogEntry(pending[0], stream, b"".join(pending[2]), pending[1])
        if pending[3] >= LINE_CAP:
            del self._open[stream]
            return LogEntry(pending[0], stream, b"".join(pending[2]), pending[1])
        return None

    def flush(self) -> list[LogEntry]:
        """The unfinished lines so far, oldest first (each becomes an entry without newline)."""
        out = [LogEntry(p[0], s, b"".join(p[2]), p[1]) for s, p in self._open.items()]
        self._open.clear()
        out.sort(key=lambda e: e.unix_nano)
        return out


class _Clock:
    """``parse_rfc3339_nano`` for a stream of conmon timestamps: the whole-second part is parsed
    once per second (conmon's fixed layout), the nine fraction digits every time."""

    def __init__(self) -> None:
        self._key = ""
        self._base = 0

    def nano(self, ts: str) -> int:
        if len(ts) == 35 and ts[19] == "." and ts[20:29].isdigit():
            key = ts[:19] + ts[29:]
            if key != self._key:
                try:
                    self._base = parse_rfc3339_nano(key)
                except InvalidArgument:
                    return 0
                self._key = key
            return self._base + int(ts[20:29])
        try:
            return parse_rfc3339_nano(ts)
        except InvalidArgument:
            return 0


class _Lines:
    """Complete lines of one open file from a position on, in ``BLOCK`` reads; keeps the unfinished
    tail for the next call (the writer may be mid-record). A "line" longer than ``LINE_CAP``
    without a newline is not conmon's output and is dropped."""

    def __init__(self, f: BinaryIO, offset: int = 0) -> None:
        self.f = f
        self.f.seek(offset)
        self._rest = b""
        self.key = _key(f)

    def read(self, final: bool = False) -> Iterator[list[bytes]]:
        """Batches of lines up to the end of the file now; with ``final`` the unfinished one too."""
        while True:
            block = self.f.read(BLOCK)
            if not block:
                break
            lines = (self._rest + block).split(b"\n")
            self._rest = lines.pop()
            if len(self._rest) > LINE_CAP:
                self._rest = b""
            if lines:
                yield lines
        if final and self._rest:
            rest, self._rest = self._rest, b""
            yield [rest]


# ---------------------------------------------------------------------------------------------
# files


def rotated_paths(log_path: str) -> list[str]:
    """``log_path`` and its rotated siblings that exist, oldest first: ``ctr.log.2, ctr.log.1,
    ctr.log``."""
    directory, name = os.path.split(log_path)
    prefix = name + "."
    numbered = []
    try:
        names = os.listdir(directory or ".")
    except FileNotFoundError:
        return []
    for n in names:
        if n.startswith(prefix) and n[len(prefix):].isdigit():
            numbered.append((int(n[len(prefix):]), os.path.join(directory, n)))
    paths = [p for _, p in sorted(numbered, reverse=True)]
    if name in names:
        paths.append(log_path)
    return paths


def _open_all(log_path: str) -> list[BinaryIO]:
    """Open the log and its rotated files, oldest first. Opened newest first and deduplicated by
    inode, so a rotation between two opens shows a file twice (skipped), never loses one."""
    files: list[BinaryIO] = []
    seen = set()
    for path in reversed(rotated_paths(log_path)):
        try:
            f = open(path, "rb")  # noqa: SIM115 - closed by the caller
        except FileNotFoundError:
            continue
        st = os.fstat(f.fileno())
        if (st.st_dev, st.st_ino) in seen:
            f.close()
            continue
        seen.add((st.st_dev, st.st_ino))
        files.append(f)
    files.reverse()
    return files


class _TailCount:
    """Counts lines walking records backwards (see ``_tail_start``)."""

    def __init__(self, want: int) -> None:
        self.want = want
        self.count = 0
        self.seen_full = False
        self.trailing = False

    def stops_at(self, line: bytes) -> bool:
        """Feed one record (newest first); True if reading must start right after it."""
        parts = line.split(b" ", 3)
        if len(parts) < 3 or parts[2] not in (b"F", b"P"):
            return False
        full = parts[2] == b"F"
        if full or not (self.seen_full or self.trailing):
            if self.count == self.want:
                return True
            self.count += 1
            if full:
                self.seen_full = True
            else:
                self.trailing = True
        return False


def _scan_back(f: BinaryIO, counter: _TailCount) -> int | None:
    """The offset in ``f`` to start at for the counter's lines, or None if all of ``f`` is needed."""
    f.seek(0, os.SEEK_END)
    size = pos = f.tell()
    carry = b""
    while pos > 0:
        n = min(BLOCK, pos)
        pos -= n
        f.seek(pos)
        block = f.read(n) + carry
        lines = block.split(b"\n")
        carry = lines[0]
        end = pos + len(block)
        for line in reversed(lines[1:]):
            start = end - len(line)
            if line and counter.stops_at(line):
                return min(start + len(line) + 1, size)
            end = start - 1
        if len(carry) > LINE_CAP:  # not conmon's: start after it
            return pos + len(carry) + 1
    if carry and counter.stops_at(carry):
        return min(len(carry) + 1, size)
    return None


def _tail_start(files: list[BinaryIO], tail: int) -> tuple[int, int]:
    """(file index, offset) from where the last ``tail`` lines of ``files`` begin."""
    counter = _TailCount(tail)
    for i in range(len(files) - 1, -1, -1):
        offset = _scan_back(files[i], counter)
        if offset is not None:
            return i, offset
    return 0, 0


def _in_window(entry: LogEntry, since_ns: int | None) -> bool:
    return since_ns is None or entry.unix_nano >= since_ns


def _ns(seconds: float | None) -> int | None:
    return None if seconds is None else round(seconds * 1e9)


def read_entries(log_path: str, *, since: float | None = None, until: float | None = None,
                 tail: int | None = None) -> Iterator[LogEntry]:
    """The entries of ``log_path`` and its rotated files, oldest first, as of now.

    ``tail`` keeps the last N lines (None: all); ``since``/``until`` are seconds since the epoch
    (inclusive). A missing log (never started) yields nothing. Use it as a generator: the files
    stay open until it is exhausted or closed.
    """
    files = _open_all(log_path)
    try:
        if tail is not None and tail < 0:
            tail = None
        index, offset = _tail_start(files, tail) if tail is not None else (0, 0)
        since_ns, until_ns = _ns(since), _ns(until)
        merger = _Merger()
        for i in range(index, len(files)):
            reader = _Lines(files[i], offset if i == index else 0)
            for batch in reader.read(final=True):
                for line in batch:
                    entry = merger.feed(line)
                    if entry is None or not _in_window(entry, since_ns):
                        continue
                    if until_ns is not None and entry.unix_nano > until_ns:
                        return
                    yield entry
        for entry in merger.flush():
            if _in_window(entry, since_ns) and (until_ns is None or entry.unix_nano <= until_ns):
                yield entry
    finally:
        for f in files:
            f.close()


# ---------------------------------------------------------------------------------------------
# follow


def _key(f: BinaryIO) -> tuple[int, int]:
    st = os.fstat(f.fileno())
    return st.st_dev, st.st_ino


class _Seen:
    """The files a follower has read (or skipped), held open until they are unlinked: an open
    inode cannot be reused, so a new ``ctr.log`` is never mistaken for one already read."""

    def __init__(self) -> None:
        self.files: dict[tuple[int, int], BinaryIO] = {}

    def add(self, f: BinaryIO) -> None:
        self.files.setdefault(_key(f), f)

    def prune(self, active: set[tuple[int, int]]) -> None:
        for k, f in list(self.files.items()):
            if k not in active and os.fstat(f.fileno()).st_nlink == 0:
                f.close()
                del self.files[k]

    def close(self) -> None:
        for f in self.files.values():
            f.close()
        self.files.clear()


def _successors(log_path: str, readers: list[_Lines], seen: _Seen) -> list[BinaryIO]:
    """The files not read yet if the log was rotated away from the last reader's file, or
    replaced by conmon's own truncating reopen; else []. Adds them to ``seen``."""
    try:
        st = os.stat(log_path)
    except FileNotFoundError:
        return []  # renamed to .1 but conmon has not reopened yet: it still writes to ours
    if (st.st_dev, st.st_ino) == readers[-1].key:
        return []
    seen.prune({r.key for r in readers})
    newer = []
    for f in _open_all(log_path):
        if _key(f) in seen.files:
            f.close()
        else:
            seen.add(f)
            newer.append(f)
    return newer


async def follow(log_path: str, *, is_running: Callable[[], bool], since: float | None = None,
                 until: float | None = None, tail: int | None = None,
                 poll: float = 0.1) -> AsyncIterator[LogEntry]:
    """The entries there are (like ``read_entries``), then new ones as conmon writes them.

    Follows rotation (``ctr.log`` renamed to ``ctr.log.1`` and reopened, or replaced by conmon).
    A line still open when the writer pauses is sent as a piece at once (progress output shows
    live). Ends when ``is_running()`` is False and the file is read to its end (``is_running``
    must turn False only after conmon wrote its last output: conmon exited or wrote the exit
    file), or once ``until`` is in the past.
    """
    seen = _Seen()
    try:
        files = _open_all(log_path)
        for f in files:
            seen.add(f)
        if tail is not None and tail < 0:
            tail = None
        index, offset = _tail_start(files, tail) if tail is not None and files else (0, 0)
        readers = [_Lines(f, offset if i == index else 0) for i, f in enumerate(files)
                   if i >= index]
        since_ns, until_ns = _ns(since), _ns(until)
        merger = _Merger()
        while True:
            running = is_running()
            # read what is there: every reader but the last is finished for writing
            while readers:
                final = len(readers) > 1 or not running
                for batch in readers[0].read(final=final):
                    for line in batch:
                        entry = merger.feed(line)
                        if entry is None or not _in_window(entry, since_ns):
                            continue
                        if until_ns is not None and entry.unix_nano > until_ns:
                            return
                        yield entry
                    await asyncio.sleep(0)
                if len(readers) == 1:
                    newer = _successors(log_path, readers, seen)
                    if not newer:
                        break
                    readers += [_Lines(f) for f in newer]
                    continue  # drain the rotated file (now final), then the new ones
                readers.pop(0)
            if not readers:
                newer = _open_all(log_path)  # created after we started
                for f in newer:
                    seen.add(f)
                readers = [_Lines(f) for f in newer]
                if readers:
                    continue
            for entry in merger.flush():
                if _in_window(entry, since_ns):
                    if until_ns is not None and entry.unix_nano > until_ns:
                        return
                    yield entry
            if not running or (until is not None and time.time() > until):
                return
            await asyncio.sleep(poll)
    finally:
        seen.close()


# ---------------------------------------------------------------------------------------------
# output


def render_details(attrs: Mapping[str, str]) -> str:
    """``docker logs --details`` text of a container's log attributes: ``k=v,k2=v2`` sorted,
    values URL-query-escaped."""
    from urllib.parse import quote_plus

    return ",".join(f"{quote_plus(k)}={quote_plus(v)}" for k, v in sorted(attrs.items()))


def frame(entry: LogEntry, *, tty: bool, timestamps: bool, details: str | None = None) -> bytes:
    """One entry as the logs endpoint sends it.

    ``timestamps`` puts the UTC time (nine fraction digits) and a space first; ``details`` (None:
    off) puts the rendered attributes and a space before the data (so ``""`` gives a leading space,
    as dockerd does). Without a TTY the payload follows Docker's 8-byte stream header.
    """
    payload = entry.data
    if details is not None:
        payload = details.encode() + b" " + payload
    if timestamps:
        payload = format_rfc3339_nano_fixed(entry.unix_nano).encode() + b" " + payload
    if tty:
        return payload
    n = len(payload)
    return bytes((STREAM_IDS.get(entry.stream, 1), 0, 0, 0, n >> 24 & 255, n >> 16 & 255,
                  n >> 8 & 255, n & 255)) + payload


def require_readable(driver: str) -> None:
    """Docker's 501 for ``docker logs`` of a container whose log driver keeps no file."""
    if driver == "none":
        from dockyard.errors import NotImplemented as NotImplementedErr

        raise NotImplementedErr("configured logging driver does not support reading")


def select_streams(entries: Iterable[LogEntry], *, stdout: bool,
                   stderr: bool) -> Iterator[LogEntry]:
    """The entries of the selected streams (the API's ``stdout``/``stderr`` query flags)."""
    for e in entries:
        if (stdout if e.stream == "stdout" else stderr):
            yield e
