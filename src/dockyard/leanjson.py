"""JSON for start-up paths, on the C accelerators of the standard library's ``json`` only.

Why: ``import json`` imports ``re`` (and with it ``enum``, ``functools``, the regex compiler),
~6 ms at every start of ``dockyard-runtime``, which runs once or more per container. The C scanner
and encoder in ``_json`` need none of it. The output is what ``json.dumps`` produces with the same
separators; input is parsed by the same C scanner ``json.loads`` uses. Falls back to ``json``
where ``_json`` is missing (other Python implementations).
"""

from __future__ import annotations

try:
    import _json
except ImportError:  # pragma: no cover - CPython always has it
    _json = None  # type: ignore[assignment]

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_WS = " \t\n\r"


class _ScanContext:
    """The attributes ``_json.make_scanner`` reads from a JSONDecoder."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    memo: dict = {}

    @staticmethod
    def parse_constant(name: str) -> float:
        return {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}[name]


class JSONDecodeError(ValueError):
    pass


def loads(s: str | bytes) -> Any:
    if _json is None:  # pragma: no cover
        import json

        return json.loads(s)
    if isinstance(s, (bytes, bytearray)):
        s = s.decode("utf-8")
    if s.startswith("\ufeff"):
        raise JSONDecodeError("Unexpected UTF-8 BOM")
    scan = _json.make_scanner(_ScanContext)
    i = len(s) - len(s.lstrip(_WS))
    try:
        obj, end = scan(s, i)
    except StopIteration as e:
        raise JSONDecodeError(f"Expecting value at char {e.value}") from None
    except SystemError:
        # _json reports a syntax error inside a value through json.decoder.JSONDecodeError, which
        # it looks up in sys.modules only: without ``json`` imported it raises SystemError. On this
        # error path the import costs nothing that matters; json.loads raises the real error.
        import json

        return json.loads(s)
    end = len(s) - len(s[end:].lstrip(_WS)) if end < len(s) else end
    if end != len(s):
        raise JSONDecodeError(f"Extra data at char {end}")
    return obj


def _default(o: object) -> object:
    raise TypeError(f"Object of type {type(o).__name__} is not JSON serializable")


def _compact(obj: Any) -> str:
    encoder = _json.make_encoder({}, _default, _json.encode_basestring_ascii, None, ": ", ", ",
                                 False, False, True)
    return "".join(encoder(obj, 0))


def _pretty(obj: Any, pad: str, level: int) -> str:
    inner = pad * (level + 1)
    if isinstance(obj, dict) and obj:
        items = [f"{inner}{_compact(str(k))}: {_pretty(v, pad, level + 1)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad * level + "}"
    if isinstance(obj, (list, tuple)) and obj:
        items = [inner + _pretty(v, pad, level + 1) for v in obj]
        return "[\n" + ",\n".join(items) + "\n" + pad * level + "]"
    return _compact(obj)


def _has_non_str_key(obj: Any) -> bool:
    if isinstance(obj, dict):
        return any(not isinstance(k, str) or _has_non_str_key(v) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return any(_has_non_str_key(v) for v in obj)
    return False


def quote(text: str) -> str:
    """``json.dumps(text, ensure_ascii=False)``: a string as a JSON string literal."""
    if _json is None:  # pragma: no cover
        import json

        return json.dumps(text, ensure_ascii=False)
    return _json.encode_basestring(text)


def dumps(obj: Any, indent: int | str | None = None) -> str:
    """Like ``json.dumps(obj, indent=indent)`` (same output for dicts, lists and scalars)."""
    if _json is None:  # pragma: no cover
        import json

        return json.dumps(obj, indent=indent)
    if indent is None:
        return _compact(obj)
    if _has_non_str_key(obj):  # json's key coercions (None -> "null", ...): rare, let json do it
        import json

        return json.dumps(obj, indent=indent)
    return _pretty(obj, " " * indent if isinstance(indent, int) else indent, 0)
