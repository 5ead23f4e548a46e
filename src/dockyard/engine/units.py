"""Docker's size and duration texts: ``-m 512m``, ``--shm-size 1g``, ``--health-interval 5s``.

``parse_size`` follows go-units ``RAMInBytes`` (binary multiples, case-insensitive, an optional
``b``/``ib`` after the unit, fractions allowed, truncated to whole bytes); ``parse_duration``
follows Go's ``time.ParseDuration`` and returns seconds.
"""

from __future__ import annotations

from dockyard.errors import InvalidArgument

_SIZE_UNITS = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
#: Go's duration units, in seconds ("µs" with either micro sign).
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "\u00b5s": 1e-6, "\u03bcs": 1e-6, "ms": 1e-3,
                   "s": 1.0, "m": 60.0, "h": 3600.0}
_NUMBER_CHARS = frozenset("0123456789.")


def parse_size(text: str) -> int:
    """Bytes from ``"512m"``, ``"1g"``, ``"100k"``, ``"1.5GiB"``, ``"64 MB"`` or ``"4096"``.

    The units are binary (k = 1024). Negative numbers, empty text and unknown suffixes raise
    ``InvalidArgument`` (``invalid size: 'abc'``).
    """
    if not isinstance(text, str):
        raise InvalidArgument(f"invalid size: {text!r}")
    # the number is everything up to the last digit or dot; one space may separate the unit
    end = len(text)
    while end and text[end - 1] not in _NUMBER_CHARS and text[end - 1] != " ":
        end -= 1
    if not end:
        raise InvalidArgument(f"invalid size: '{text}'")
    number, suffix = text[:end], text[end:]
    if number.endswith(" "):
        number = number[:-1]
    if not number or not set(number) <= _NUMBER_CHARS or number.count(".") > 1 \
            or number == ".":
        raise InvalidArgument(f"invalid size: '{text}'")
    value = float(number)
    sfx = suffix.lower()
    if sfx in ("", "b"):
        return int(value)
    mul = _SIZE_UNITS.get(sfx[0])
    if mul is None or sfx[1:] not in ("", "b", "ib"):
        raise InvalidArgument(f"invalid size: '{text}': invalid suffix '{suffix}'")
    return int(value * mul)


def parse_duration(text: str) -> float:
    """Seconds from a Go duration: ``"1m30s"`` -> 90.0, ``"500ms"`` -> 0.5, ``"2h"``, ``"-1.5s"``.

    As in Go, ``"0"`` needs no unit, every other number does, and several number+unit pairs add
    up. Raises ``InvalidArgument`` (``invalid duration "x"``).
    """
    if not isinstance(text, str):
        raise InvalidArgument(f"invalid duration {text!r}")
    s = text
    sign = 1.0
    if s[:1] in ("-", "+"):
        sign = -1.0 if s[0] == "-" else 1.0
        s = s[1:]
    if s == "0":
        return 0.0
    if not s:
        raise InvalidArgument(f'invalid duration "{text}"')
    total = 0.0
    i = 0
    while i < len(s):
        start = i
        while i < len(s) and s[i] in _NUMBER_CHARS:
            i += 1
        number = s[start:i]
        if not number or number == "." or number.count(".") > 1:
            raise InvalidArgument(f'invalid duration "{text}"')
        ustart = i
        while i < len(s) and s[i] not in _NUMBER_CHARS:
            i += 1
        unit = s[ustart:i]
        if not unit:
            raise InvalidArgument(f'invalid duration "{text}": missing unit')
        scale = _DURATION_UNITS.get(unit)
        if scale is None:
            raise InvalidArgument(f'invalid duration "{text}": unknown unit "{unit}"')
        total += float(number) * scale
    return sign * total
