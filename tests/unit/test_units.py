"""``engine.units``: Docker's size texts (go-units RAMInBytes) and Go durations."""

import pytest

from dockyard.engine.units import parse_duration, parse_size
from dockyard.errors import InvalidArgument


@pytest.mark.parametrize("text,expected", [
    ("0", 0), ("4096", 4096), ("100b", 100), ("100B", 100),
    ("100k", 100 * 1024), ("100K", 100 * 1024), ("100kb", 100 * 1024), ("100KiB", 100 * 1024),
    ("512m", 512 << 20), ("512M", 512 << 20), ("512MB", 512 << 20), ("512mib", 512 << 20),
    ("1g", 1 << 30), ("1G", 1 << 30), ("1gb", 1 << 30), ("1GiB", 1 << 30),
    ("2t", 2 << 40), ("1p", 1 << 50), ("1.5g", 3 << 29), ("0.5k", 512), ("1.7", 1),
    ("64 m", 64 << 20), ("64 MB", 64 << 20), ("32 ", 32), (".5m", 512 << 10),
])
def test_parse_size_accepts_docker_spellings(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", [
    "", "abc", "m", "-1", "-5m", "1x", "1kk", "1mbb", "1ibb", "1mi", "1bi", "1.2.3m", ".",
    "1  m", " 1m", "1m ", "1e3",
])
def test_parse_size_refuses_malformed_text(text):
    with pytest.raises(InvalidArgument, match="invalid size"):
        parse_size(text)


def test_parse_size_refuses_non_text():
    with pytest.raises(InvalidArgument):
        parse_size(64)  # type: ignore[arg-type]


@pytest.mark.parametrize("text,expected", [
    ("0", 0.0), ("-0", 0.0), ("5s", 5.0), ("1m30s", 90.0), ("500ms", 0.5), ("2h", 7200.0),
    ("1.5s", 1.5), ("1h2m3s", 3723.0), ("100us", 1e-4), ("100\u00b5s", 1e-4), ("30ns", 3e-8),
    ("-1.5s", -1.5), ("+2s", 2.0), ("1s500ms", 1.5), (".5m", 30.0), ("0s", 0.0),
])
def test_parse_duration_follows_go(text, expected):
    assert parse_duration(text) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["", "5", "s", "1x", "1.2.3s", "1sm", "-", "1 s", "ms5", "."])
def test_parse_duration_refuses_malformed_text(text):
    with pytest.raises(InvalidArgument, match="invalid duration"):
        parse_duration(text)
