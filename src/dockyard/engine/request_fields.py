"""Typed reads from a decoded Docker API JSON object, the way Go's ``encoding/json`` fills a struct.

Go matches keys case-insensitively (an exact match wins), treats ``null`` as "absent" (the zero
value), refuses a number with a fraction for an integer field and any other type mismatch. Every
error names the field by its dotted path (``HostConfig.Memory``), which is what a client needs to
fix its request; Docker answers such requests with 400.
"""

from __future__ import annotations

from dockyard.errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


class Fields:
    """One JSON object and its path: ``Fields(body, "Config").string("Image")``."""

    __slots__ = ("data", "path")

    def __init__(self, data: Any, path: str) -> None:
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise InvalidArgument(f"{path}: expected a JSON object, got {_type_name(data)}")
        self.data = data
        self.path = path

    def name(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def raw(self, key: str) -> Any:
        """The value under ``key`` (exact spelling first, then any case), None when absent."""
        if key in self.data:
            return self.data[key]
        low = key.lower()
        for k, v in self.data.items():
            if isinstance(k, str) and k.lower() == low:
                return v
        return None

    def bad(self, key: str, value: Any, expected: str) -> InvalidArgument:
        return InvalidArgument(f"{self.name(key)}: expected {expected}, got "
                               f"{_type_name(value)} {_short(value)}")

    def string(self, key: str, default: str = "") -> str:
        v = self.raw(key)
        if v is None:
            return default
        if not isinstance(v, str):
            raise self.bad(key, v, "a string")
        return v

    def boolean(self, key: str) -> bool:
        v = self.raw(key)
        if v is None:
            return False
        if not isinstance(v, bool):
            raise self.bad(key, v, "true or false")
        return v

    def opt_boolean(self, key: str) -> bool | None:
        v = self.raw(key)
        return None if v is None else self.boolean(key)

    def integer(self, key: str, *, minimum: int | None = INT64_MIN,
                maximum: int = INT64_MAX) -> int:
        """An integer (0 when absent); ``minimum`` None means 0 (an unsigned Go field)."""
        v = self.opt_integer(key, minimum=minimum, maximum=maximum)
        return 0 if v is None else v

    def opt_integer(self, key: str, *, minimum: int | None = INT64_MIN,
                    maximum: int = INT64_MAX) -> int | None:
        v = self.raw(key)
        if v is None:
            return None
        if isinstance(v, float) and v.is_integer() and abs(v) < 2**53:
            v = int(v)  # lenient where Go is strict: 64.0 from a float-happy client
        if isinstance(v, bool) or not isinstance(v, int):
            raise self.bad(key, v, "an integer")
        low = 0 if minimum is None else minimum
        if v < low:
            what = "negative" if low == 0 else f"less than {low}"
            raise InvalidArgument(f"{self.name(key)}: {v} is invalid: cannot be {what}")
        if v > maximum:
            raise InvalidArgument(f"{self.name(key)}: {v} is out of range (at most {maximum})")
        return v

    def number(self, key: str) -> float:
        v = self.raw(key)
        if v is None:
            return 0.0
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise self.bad(key, v, "a number")
        return float(v)

    def strings(self, key: str) -> tuple[str, ...] | None:
        """A JSON array of strings; None when absent or null (a null item is ``""``, as Go)."""
        v = self.raw(key)
        if v is None:
            return None
        if not isinstance(v, list):
            raise self.bad(key, v, "an array of strings")
        for i, item in enumerate(v):
            if item is not None and not isinstance(item, str):
                raise InvalidArgument(f"{self.name(key)}[{i}]: expected a string, got "
                                      f"{_type_name(item)} {_short(item)}")
        return tuple("" if item is None else item for item in v)

    def str_slice(self, key: str) -> tuple[str, ...] | None:
        """Docker's ``strslice.StrSlice``: a string is a one-element list; null is None."""
        v = self.raw(key)
        if isinstance(v, str):
            return (v,)
        if v is not None and not isinstance(v, list):
            raise self.bad(key, v, "a string or an array of strings")
        return self.strings(key)

    def string_map(self, key: str) -> tuple[tuple[str, str], ...] | None:
        """A JSON object of strings, as (key, value) pairs in the client's order (a null value
        is ``""``, as Go)."""
        v = self.raw(key)
        if v is None:
            return None
        if not isinstance(v, dict):
            raise self.bad(key, v, "an object of strings")
        for k, item in v.items():
            if item is not None and not isinstance(item, str):
                raise InvalidArgument(f"{self.name(key)}[{k!r}]: expected a string, got "
                                      f"{_type_name(item)} {_short(item)}")
        return tuple((k, "" if item is None else item) for k, item in v.items())

    def obj(self, key: str) -> Fields:
        """The nested object under ``key`` (empty when absent or null)."""
        return Fields(self.raw(key), self.name(key))

    def objects(self, key: str) -> tuple[Fields, ...]:
        """A JSON array of objects."""
        v = self.raw(key)
        if v is None:
            return ()
        if not isinstance(v, list):
            raise self.bad(key, v, "an array of objects")
        return tuple(Fields(item, f"{self.name(key)}[{i}]") if item is not None
                     else Fields({}, f"{self.name(key)}[{i}]") for i, item in enumerate(v))

    def keys_of(self, key: str) -> tuple[str, ...] | None:
        """The keys of an object whose values do not matter (``{"80/tcp": {}}``)."""
        v = self.raw(key)
        if v is None:
            return None
        if not isinstance(v, dict):
            raise self.bad(key, v, "an object")
        return tuple(v)


def _short(value: Any) -> str:
    import json

    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
