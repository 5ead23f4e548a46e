"""``Record``: frozen, typed value objects that cost nothing to define.

Why not ``dataclasses``: importing it and decorating the ~35 classes of the runtime spec costs
20-30 ms per process start (``dataclasses`` pulls in ``inspect`` and ``exec``s generated methods for
every class), and ``dockyard-runtime`` starts once per container with a budget of ~45 ms (runc's
time). A ``Record`` subclass declares fields as annotations with optional defaults, exactly like a
frozen dataclass; type checkers treat it as one through ``dataclass_transform``. Defaults must be
immutable (tuples, None, other records), which frozen records make natural.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's: importing typing costs ~7 ms at start-up
if TYPE_CHECKING:
    from typing import Any, dataclass_transform
else:
    def dataclass_transform(**_kw):
        return lambda cls: cls

_MISSING = object()


@dataclass_transform(frozen_default=True, kw_only_default=False)
class Record:
    _fields: tuple[str, ...] = ()
    _defaults: dict[str, Any] = {}

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        fields = list(cls._fields)
        defaults = dict(cls._defaults)
        for name, ann in cls.__dict__.get("__annotations__", {}).items():
            if name.startswith("_") or str(ann).startswith("ClassVar"):
                continue
            if name not in fields:
                fields.append(name)
            if name in cls.__dict__:
                defaults[name] = cls.__dict__[name]
            elif defaults:
                raise TypeError(f"{cls.__name__}.{name}: a field without default follows one with a default")
        cls._fields = tuple(fields)
        cls._defaults = defaults

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        fields = self._fields
        if len(args) > len(fields):
            raise TypeError(f"{type(self).__name__}() takes {len(fields)} arguments, got {len(args)}")
        values = dict(zip(fields, args))
        for k, v in kwargs.items():
            if k not in fields:
                raise TypeError(f"{type(self).__name__}() has no field {k!r}")
            if k in values:
                raise TypeError(f"{type(self).__name__}() got {k!r} twice")
            values[k] = v
        setter = object.__setattr__
        for name in fields:
            v = values.get(name, _MISSING)
            if v is _MISSING:
                v = self._defaults.get(name, _MISSING)
                if v is _MISSING:
                    raise TypeError(f"{type(self).__name__}() missing field {name!r}")
            setter(self, name, v)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is frozen: cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is frozen: cannot delete {name!r}")

    def _astuple(self) -> tuple:
        return tuple(getattr(self, f) for f in self._fields)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._astuple() == other._astuple()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self).__name__, self._astuple()))

    def __repr__(self) -> str:
        inner = ", ".join(f"{f}={getattr(self, f)!r}" for f in self._fields)
        return f"{type(self).__name__}({inner})"


def replace(rec: Any, **changes: Any) -> Any:
    """A copy of ``rec`` with some fields changed (like ``dataclasses.replace``)."""
    values = {f: getattr(rec, f) for f in rec._fields}
    values.update(changes)
    return type(rec)(**values)
