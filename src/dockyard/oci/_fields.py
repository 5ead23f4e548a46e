"""Reading fields of decoded JSON with errors that name the field (the OCI parsers' helpers).

Every failure is ``InvalidArgument("config.json: <field path>: <what is wrong>")``.
"""

from __future__ import annotations

from dockyard.errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def _fail(path: str, msg: str) -> InvalidArgument:
    return InvalidArgument(f"config.json: {path.lstrip('.') or '(top level)'}: {msg}")


def _obj(v: Any, path: str) -> dict:
    if not isinstance(v, dict):
        raise _fail(path, f"expected an object, got {type(v).__name__}")
    return v


def _get(d: dict, key: str, kind: type | tuple, path: str, default: Any = None) -> Any:
    v = d.get(key)
    if v is None:
        return default
    if kind is int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise _fail(f"{path}.{key}", f"expected an integer, got {v!r}")
    elif kind is float:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise _fail(f"{path}.{key}", f"expected a number, got {v!r}")
    elif not isinstance(v, kind):
        want = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise _fail(f"{path}.{key}", f"expected {want}, got {type(v).__name__}")
    return v


def _uint(d: dict, key: str, path: str, default: int | None = None) -> int | None:
    v = _get(d, key, int, path)
    if v is None:
        return default
    if v < 0:
        raise _fail(f"{path}.{key}", f"must not be negative, got {v}")
    return v


def _strs(d: dict, key: str, path: str) -> tuple[str, ...]:
    v = _get(d, key, list, path, [])
    for i, s in enumerate(v):
        if not isinstance(s, str):
            raise _fail(f"{path}.{key}[{i}]", f"expected a string, got {s!r}")
    return tuple(v)


def _list(d: dict, key: str, path: str) -> list[tuple[str, dict]]:
    v = _get(d, key, list, path, [])
    return [(f"{path}.{key}[{i}]", _obj(x, f"{path}.{key}[{i}]")) for i, x in enumerate(v)]


def _str_map(d: dict, key: str, path: str) -> tuple[tuple[str, str], ...]:
    v = _obj(d.get(key) or {}, f"{path}.{key}")
    for k, x in v.items():
        if not isinstance(x, str):
            raise _fail(f"{path}.{key}.{k}", f"expected a string, got {x!r}")
    return tuple(v.items())


def _abs(p: str, path: str) -> str:
    if not p.startswith("/"):
        raise _fail(path, f"must be an absolute path, got {p!r}")
    return p
