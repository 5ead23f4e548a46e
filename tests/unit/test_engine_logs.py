"""``engine.logs`` and ``engine.logrotate``: conmon's k8s-file records read, merged, tailed,
filtered, followed across rotation, and framed as the Docker API sends them."""

from __future__ import annotations

import asyncio
import builtins
import os
import struct
import time

import pytest

from dockyard.engine.logrotate import REOPEN_MESSAGE, LogOptions, rotate
from dockyard.engine.logs import (
    LINE_CAP,
    LogEntry,
    follow,
    format_rfc3339_nano_fixed,
    frame,
    parse_rfc3339_nano,
    parse_time_filter,
    read_entries,
    render_details,
    require_readable,
    rotated_paths,
    select_streams,
)
from dockyard.errors import InvalidArgument, NotImplemented as NotImplementedErr

# Written by the real conmon 2.1.6 here (runc + busybox, `sh -c 'echo a; printf b; echo c >&2;
# echo; ...'` and a loop ending in `printf tail`); the long P records are shortened.
SAMPLE = (
    b"2026-11-28T05:59:09.380954023+00:00 stdout F a\n"
    b"2026-11-28T05:59:09.380954023+00:00 stdout F b\n"
    b"2026-11-28T05:59:09.380988822+00:00 stderr F c\n"
    b"2026-11-28T05:59:09.381973835+00:00 stdout P 12345\n"
    b"2026-11-28T05:59:09.381991981+00:00 stdout P 678\n"
    b"2026-11-28T05:59:09.381999803+00:00 stdout F 910\n"
    b"2026-11-28T05:59:22.650171021+00:00 stdout P tail\n"
)
T0 = 1795845549  # 2026-11-28T05:59:09Z


def rec(second: int, text: str, stream: str = "stdout", tag: str = "F") -> bytes:
    """One record at T0 + second (local-time offsets are exercised with SAMPLE and parse tests)."""
    t = time.gmtime(T0 + second)
    ts = time.strftime("%Y-%m-%dT%H:%M:%S", t) + ".000000000+00:00"
    return f"{ts} {stream} {tag} {text}\n".encode()


def lines(n: int, first: int = 0) -> bytes:
    return b"".join(rec(i, f"line{i}") for i in range(first, first + n))


def texts(entries) -> list[str]:
    return [e.data.decode() for e in entries]


@pytest.fixture
def log(tmp_path):
    return str(tmp_path / "ctr.log")


def write(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


# ---------------------------------------------------------------------------------------------
# time


@pytest.mark.parametrize("text,expected", [
    ("2026-11-28T05:59:09.380954023+00:00", (T0, 380954023)),
    ("2026-11-28T05:59:09.380954023Z", (T0, 380954023)),
    ("2026-11-28T06:59:09.5+01:00", (T0, 500000000)),
    ("2026-11-27T23:29:09-06:30", (T0, 0)),
    ("1970-01-01T00:00:00Z", (0, 0)),
    ("2000-02-29T12:00:00.000000001Z", (951825600, 1)),
])
def test_parse_rfc3339_nano_keeps_every_nanosecond(text, expected):
    secs, nanos = expected
    assert parse_rfc3339_nano(text) == secs * 1_000_000_000 + nanos


@pytest.mark.parametrize("text", [
    "", "garbage", "2026-11-28T05:59:09", "2026-11-28T05:59:09.+00:00", "2026-13-28T05:59:09Z",
    "2026-11-28T05:59:09.1234567891Z", "2026-11-28X05:59:09Z", "2026-11-28T05:59:09+0000",
])
def test_parse_rfc3339_nano_refuses_other_text(text):
    with pytest.raises(InvalidArgument, match="parse log time"):
        parse_rfc3339_nano(text)


def test_format_fixed_is_utc_with_nine_digits():
    assert format_rfc3339_nano_fixed(T0 * 10**9 + 5000) == "2026-11-28T05:59:09.000005000Z"


NOW = 1_700_000_000.75


@pytest.mark.parametrize("text,expected", [
    ("10m", 1_700_000_000 - 600), ("1h30m", 1_700_000_000 - 5400), ("-5s", 1_700_000_005),
    ("1700000000", 1_700_000_000), ("1700000000.123", 1_700_000_000.123),
    ("1700000000.123456789", 1_700_000_000.123456789), ("0", 0),
    ("2023-11-14T22:13:20Z", 1_700_000_000), ("2023-11-14T22:13:20.5Z", 1_700_000_000.5),
    ("2023-11-14T23:13:20+01:00", 1_700_000_000), ("2023-11-14T22:13Z", 1_699_999_980),
    ("2023-11-14T22Z", 1_699_999_200), ("2023-11-14Z", 1_699_920_000),
    ("2023-11-14T21:13:20-01:00", 1_700_000_000),
])
def test_parse_time_filter_accepts_what_the_docker_cli_does(text, expected):
    assert parse_time_filter(text, NOW) == pytest.approx(expected, abs=1e-6)


def test_parse_time_filter_without_zone_is_local_time(monkeypatch):
    monkeypatch.setenv("TZ", "UTC+02")  # POSIX: two hours west of UTC
    time.tzset()
    try:
        assert parse_time_filter("2023-11-14T20:13:20", NOW) == 1_700_000_000
        assert parse_time_filter("2023-11-14", NOW) == 1_699_920_000 + 7200
    finally:
        monkeypatch.undo()
        time.tzset()


@pytest.mark.parametrize("text", ["yesterday", "10x", "2023-11-14T25:00:00Z", "17e8", ""])
def test_parse_time_filter_refuses_garbage(text):
    with pytest.raises(InvalidArgument):
        parse_time_filter(text, NOW)


# ---------------------------------------------------------------------------------------------
# reading


def test_real_conmon_sample_reads_as_docker_shows_it(log):
    write(log, SAMPLE)
    entries = list(read_entries(log))
    assert [(e.stream, e.data) for e in entries] == [
        ("stdout", b"a\n"), ("stdout", b"b\n"), ("stderr", b"c\n"),
        ("stdout", b"12345678910\n"), ("stdout", b"tail")]
    assert entries[3].time == "2026-11-28T05:59:09.381973835+00:00"  # the line's first record
    assert entries[0].unix_nano == T0 * 10**9 + 380954023
    assert entries[0].timestamp == pytest.approx(T0 + 0.380954023)


def test_times_in_a_local_offset_parse_per_record(log):
    write(log, b"2026-11-28T06:59:09.000000001+01:00 stdout F a\n"
               b"2026-11-28T06:59:09.999999999+01:00 stdout F b\n"
               b"2026-11-28T06:59:10.5+01:00 stdout F c\n"
               b"2026-11-27T19:59:11.000000000-10:00 stdout F d\n")
    assert [e.unix_nano - T0 * 10**9 for e in read_entries(log)] == [
        1, 999999999, 1_500_000_000, 2_000_000_000]


def test_missing_and_empty_logs_have_no_entries(log):
    assert list(read_entries(log)) == []
    assert list(read_entries(log, tail=5)) == []
    write(log, b"")
    assert list(read_entries(log)) == []
    assert list(read_entries(log, tail=5)) == []


def test_empty_line_and_content_with_spaces(log):
    write(log, rec(0, "") + rec(1, "two  words ") + rec(2, "x", "stdout", "F")[:-1])
    assert texts(read_entries(log)) == ["\n", "two  words \n", "x\n"]  # last one torn: kept


def test_partial_lines_merge_per_stream(log):
    write(log, rec(0, "out-", tag="P") + rec(1, "err-", "stderr", "P") + rec(2, "done", "stderr")
          + rec(3, "done") + rec(4, "open", "stderr", "P"))
    got = [(e.stream, e.data) for e in read_entries(log)]
    assert got == [("stderr", b"err-done\n"), ("stdout", b"out-done\n"), ("stderr", b"open")]


def test_huge_line_is_emitted_in_capped_pieces(log):
    piece = "x" * 8192
    n = LINE_CAP // 8192 + 3
    write(log, b"".join(rec(0, piece, tag="P") for _ in range(n)) + rec(0, "end"))
    entries = list(read_entries(log))
    assert [len(e.data) for e in entries] == [LINE_CAP, 3 * 8192 + 4]
    assert b"".join(e.data for e in entries) == b"x" * (n * 8192) + b"end\n"


def test_lines_that_are_not_records_are_skipped(log):
    write(log, b"garbage\n" + rec(0, "ok") + b"2026 stdout X bad\n\n")
    assert texts(read_entries(log)) == ["ok\n"]


def test_rotated_files_read_oldest_first(log):
    write(log + ".2", lines(3, 0))
    write(log + ".1", lines(3, 3))
    write(log, lines(3, 6))
    write(log + ".x", lines(1, 99))  # not a rotated file
    assert rotated_paths(log) == [log + ".2", log + ".1", log]
    assert texts(read_entries(log)) == [f"line{i}\n" for i in range(9)]


def test_partial_line_continues_in_the_next_file(log):
    write(log + ".1", rec(0, "begin-", tag="P"))
    write(log, rec(1, "end"))
    assert texts(read_entries(log)) == ["begin-end\n"]


@pytest.mark.parametrize("tail,expected", [
    (0, []), (1, ["line8"]), (4, ["line5", "line6", "line7", "line8"]), (9, None), (50, None),
    (-1, None), (None, None),
])
def test_tail_counts_lines_across_files(log, tail, expected):
    write(log + ".2", lines(3, 0))
    write(log + ".1", lines(3, 3))
    write(log, lines(3, 6))
    want = [f"line{i}" for i in range(9)] if expected is None else expected
    assert texts(read_entries(log, tail=tail)) == [w + "\n" for w in want]


def test_tail_counts_a_merged_line_once_and_a_trailing_partial(log):
    write(log, rec(0, "first") + rec(1, "a", tag="P") + rec(2, "b", tag="P") + rec(3, "c")
          + rec(4, "unfinished", tag="P"))
    assert texts(read_entries(log, tail=2)) == ["abc\n", "unfinished"]
    assert texts(read_entries(log, tail=1)) == ["unfinished"]


def test_tail_reads_from_the_end_of_a_big_file(log, monkeypatch):
    write(log, lines(40000))  # ~2 MB, many blocks
    read_sizes = []
    real_open = open

    class Counting:
        def __init__(self, f):
            self.f = f

        def read(self, n=-1):
            data = self.f.read(n)
            read_sizes.append(len(data))
            return data

        def __getattr__(self, name):
            return getattr(self.f, name)

    monkeypatch.setattr(builtins, "open", lambda *a, **k: Counting(real_open(*a, **k)))
    got = texts(read_entries(log, tail=3))
    monkeypatch.undo()
    assert got == ["line39997\n", "line39998\n", "line39999\n"]
    assert sum(read_sizes) < 256 * 1024


def test_since_and_until_are_inclusive_and_apply_after_tail(log):
    write(log, lines(10))
    assert texts(read_entries(log, since=T0 + 7)) == ["line7\n", "line8\n", "line9\n"]
    assert texts(read_entries(log, until=T0 + 1)) == ["line0\n", "line1\n"]
    assert texts(read_entries(log, since=T0 + 3, until=T0 + 4.5)) == ["line3\n", "line4\n"]
    assert texts(read_entries(log, tail=5, since=T0 + 8)) == ["line8\n", "line9\n"]
    assert texts(read_entries(log, tail=2, since=T0)) == ["line8\n", "line9\n"]


def test_a_rotation_during_the_read_neither_loses_nor_repeats(log):
    write(log + ".1", lines(3, 0))
    write(log, lines(3, 3))
    it = read_entries(log)
    first = next(it)
    os.replace(log + ".1", log + ".2")
    os.replace(log, log + ".1")
    write(log, lines(3, 6))
    assert texts([first, *it]) == [f"line{i}\n" for i in range(6)]


def test_log_driver_none_cannot_be_read():
    require_readable("k8s-file")
    with pytest.raises(NotImplementedErr, match="configured logging driver does not support "
                                                "reading") as e:
        require_readable("none")
    assert e.value.http_status == 501


def test_select_streams(log):
    write(log, SAMPLE)
    assert texts(select_streams(read_entries(log), stdout=False, stderr=True)) == ["c\n"]
    assert len(list(select_streams(read_entries(log), stdout=True, stderr=False))) == 4


# ---------------------------------------------------------------------------------------------
# framing


ENTRY = LogEntry("2026-11-28T06:59:09.380954023+01:00", "stderr", b"hello\n",
                 T0 * 10**9 + 380954023)


def test_frame_without_tty_has_docker_stream_header():
    out = frame(ENTRY, tty=False, timestamps=False)
    assert out[:8] == struct.pack(">BxxxI", 2, 6) and out[8:] == b"hello\n"
    out = frame(LogEntry("t", "stdout", b"x"), tty=False, timestamps=False)
    assert out == b"\x01\x00\x00\x00\x00\x00\x00\x01x"


def test_frame_with_tty_is_raw_and_timestamps_are_utc_fixed():
    assert frame(ENTRY, tty=True, timestamps=False) == b"hello\n"
    assert frame(ENTRY, tty=True, timestamps=True) == b"2026-11-28T05:59:09.380954023Z hello\n"
    out = frame(ENTRY, tty=False, timestamps=True)
    assert struct.unpack(">BxxxI", out[:8]) == (2, len(out) - 8)


def test_details_come_after_the_timestamp():
    details = render_details({"b": "x y", "a": "1"})
    assert details == "a=1,b=x+y"
    assert frame(ENTRY, tty=True, timestamps=True, details=details) == \
        b"2026-11-28T05:59:09.380954023Z a=1,b=x+y hello\n"
    assert frame(ENTRY, tty=True, timestamps=False, details="") == b" hello\n"


# ---------------------------------------------------------------------------------------------
# rotation


def test_rotate_shifts_files_and_drops_the_oldest(log):
    for i in range(1, 5):
        write(f"{log}.{i}", b"old%d" % i)
    write(log, b"x" * 101)
    assert rotate(log, max_size=100, max_file=3, ctl_fifo=None)
    assert rotated_paths(log) == [log + ".2", log + ".1"]
    assert open(log + ".1", "rb").read() == b"x" * 101
    assert open(log + ".2", "rb").read() == b"old1"


def test_rotate_leaves_a_small_or_missing_log_alone(log):
    assert not rotate(log, max_size=100, max_file=3, ctl_fifo=None)
    write(log, b"x" * 100)
    assert not rotate(log, max_size=100, max_file=3, ctl_fifo=None)
    assert not rotate(log, max_size=0, max_file=3, ctl_fifo=None)
    assert rotated_paths(log) == [log]


def test_rotate_asks_conmon_to_reopen_through_the_fifo(log, tmp_path):
    fifo = str(tmp_path / "ctl")
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        write(log, b"x" * 200)
        assert rotate(log, max_size=100, max_file=2, ctl_fifo=fifo)
        assert os.read(reader, 100) == REOPEN_MESSAGE == b"2 0 0\n"
        write(log, b"y" * 200)
        assert rotate(log, max_size=100, max_file=1, ctl_fifo=fifo)  # conmon truncates
        assert os.read(reader, 100) == b"2 0 0\n"
    finally:
        os.close(reader)


def test_rotate_with_no_conmon_listening_still_renames(log, tmp_path):
    fifo = str(tmp_path / "ctl")
    os.mkfifo(fifo)
    write(log, b"x" * 200)
    assert rotate(log, max_size=100, max_file=3, ctl_fifo=fifo)
    assert rotated_paths(log) == [log + ".1"]


def test_log_options_parse():
    assert LogOptions.parse({}) == LogOptions(10 << 20, 3)
    assert LogOptions.parse({"max-size": "1m", "max-file": "5"}) == LogOptions(1 << 20, 5)
    assert LogOptions.parse({"max-size": "-1"}).max_size == -1
    with pytest.raises(InvalidArgument, match="unknown log opt 'mode' for k8s-file log driver"):
        LogOptions.parse({"mode": "non-blocking"})
    with pytest.raises(InvalidArgument, match="max-file"):
        LogOptions.parse({"max-file": "0"})
    with pytest.raises(InvalidArgument, match="invalid size"):
        LogOptions.parse({"max-size": "lots"})


# ---------------------------------------------------------------------------------------------
# follow


def run_follow(log, script, **kwargs) -> list[LogEntry]:
    """Follow ``log`` while ``script(step)`` writes; the container "stops" when it returns False."""
    state = {"running": True, "step": 0}

    async def main():
        out = []
        agen = follow(log, is_running=lambda: state["running"], poll=0.001, **kwargs)
        async for entry in agen:
            out.append(entry)
        return out

    async def driver():
        task = asyncio.ensure_future(main())
        while state["running"] and not task.done():
            await asyncio.sleep(0.005)
            state["running"] = script(state["step"])
            state["step"] += 1
        return await asyncio.wait_for(task, 10)

    return asyncio.run(driver())


def append(path: str, data: bytes) -> None:
    with open(path, "ab") as f:
        f.write(data)


def test_follow_yields_existing_then_new_entries_then_ends(log):
    write(log, lines(3))

    def script(step):
        if step < 3:
            append(log, lines(1, 3 + step))
        return step < 3

    assert texts(run_follow(log, script)) == [f"line{i}\n" for i in range(6)]


def test_follow_with_tail_and_a_log_that_appears_later(log):
    def script(step):
        if step == 2:
            write(log, lines(2))
        return step < 4

    assert texts(run_follow(log, script)) == ["line0\n", "line1\n"]
    write(log, lines(5))
    assert texts(run_follow(log, lambda step: False, tail=2)) == ["line3\n", "line4\n"]


def test_follow_survives_rotation_with_a_late_reopen(log):
    write(log, lines(2))
    fd = {}

    def script(step):
        if step == 1:  # the daemon renames; conmon still writes to the renamed file
            fd["old"] = open(log, "ab")
            rotate(log, max_size=1, max_file=3, ctl_fifo=None)
        elif step == 3:
            fd["old"].write(lines(1, 2) + rec(3, "half-", tag="P"))
            fd["old"].flush()
        elif step == 5:  # conmon reopens: a new ctr.log
            fd["old"].close()
            write(log, rec(4, "done") + lines(1, 5))
        elif step == 7:  # rotated again, twice, before the follower looks
            rotate(log, max_size=1, max_file=3, ctl_fifo=None)
            write(log, lines(1, 6))
            rotate(log, max_size=1, max_file=3, ctl_fifo=None)
            write(log, lines(1, 7))
        return step < 9

    got = texts(run_follow(log, script))
    # a paused partial line is sent at once, its end as the next piece
    assert "".join(got) == "".join(f"line{i}\n" for i in range(3)) + "half-done\n" + \
        "".join(f"line{i}\n" for i in range(5, 8))


def test_follow_survives_conmons_own_truncating_reopen(log):
    write(log + ".1", lines(2))
    write(log, lines(2, 2))

    def script(step):
        if step == 1:  # conmon --log-size-max: a new file renamed over ctr.log
            write(log + ".tmp", lines(2, 4))
            os.replace(log + ".tmp", log)
        return step < 3

    assert texts(run_follow(log, script)) == [f"line{i}\n" for i in range(6)]


def test_follow_ends_at_until_and_filters_since(log):
    write(log, lines(6))
    got = run_follow(log, lambda step: step < 100, since=T0 + 2, until=T0 + 3)
    assert texts(got) == ["line2\n", "line3\n"]


def test_follow_of_a_stopped_container_is_a_plain_read(log):
    write(log, SAMPLE)
    assert texts(run_follow(log, lambda step: False)) == texts(read_entries(log))
