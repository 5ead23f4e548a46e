"""Output formatting shared by the CLI's verbs: tables, Docker's ``--format`` templates, units.

``--format`` takes the subset of Go's text/template that people use with docker: ``{{.Field}}``,
nested ``{{.A.B}}``, ``{{json .}}`` / ``{{json .X}}``, ``{{upper .X}}``, ``{{lower .X}}``,
``{{title .X}}``, ``{{join .X ","}}``, ``{{index .X "key"}}``, ``{{printf "%s" .X}}``, the
``table`` prefix (a header row from the field names, columns aligned) and the ``\\t`` escape.
Anything else fails with a message naming the template, never silently.
"""

from __future__ import annotations

import time

from dockyard.engine.model import human_duration  # the daemon's Status texts use it too
from dockyard.errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any

_UNITS = ("B", "kB", "MB", "GB", "TB", "PB")


def human_size(n: float) -> str:
    """Docker's go-units HumanSize: decimal units, 3 significant digits ("5.2MB", "128kB")."""
    i = 0
    while n >= 1000 and i < len(_UNITS) - 1:
        n /= 1000.0
        i += 1
    return f"{n:.4g}{_UNITS[i]}"


def ago(timestamp: float, now: float | None = None) -> str:
    return human_duration((time.time() if now is None else now) - timestamp) + " ago"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], padding: int = 3,
          min_width: int = 10) -> str:
    """Columns aligned like Go's tabwriter with docker's settings (min width 10, padding 3)."""
    all_rows = [list(headers)] + [list(r) for r in rows]
    widths = [max(len(r[i]) for r in all_rows) for i in range(len(headers))]
    lines = []
    for r in all_rows:
        cells = [c.ljust(max(w + padding, min_width)) for c, w in zip(r[:-1], widths)] + [r[-1]]
        lines.append("".join(cells).rstrip())
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ templates


class Template:
    """A parsed ``--format`` template; ``render(obj)`` for one object, ``render_all`` for a list."""

    def __init__(self, text: str, headers: Mapping[str, str] | None = None) -> None:
        """``headers`` maps a field name to its column title (docker: ID -> "IMAGE ID")."""
        self.headers = dict(headers or {})
        self.source = text
        self.is_table = text.startswith("table")
        body = text[5:].lstrip() if self.is_table else text
        self.parts = _parse(body.replace("\\t", "\t").replace("\\n", "\n"), text)
        self.tree = None  # range/if/with/else/end and variables: dockyard.cli.format_blocks
        if any(isinstance(p, tuple) and (p[0] in ("range", "if", "with", "else", "end")
                                         or str(p[0]).startswith("$")) for p in self.parts):
            from dockyard.cli.format_blocks import tree

            self.tree = tree(self.parts, text)

    def render(self, obj: Any) -> str:
        if self.tree is not None:
            from dockyard.cli.format_blocks import run

            return run(self.tree, obj, {"$": obj}, self.source)
        return "".join(p if isinstance(p, str) else _eval(p, obj, self.source) for p in self.parts)

    def header(self) -> str:
        """For ``table``: each action's last field name, upper-cased, in the action's place."""
        out = []
        for p in self.parts:
            if isinstance(p, str):
                out.append(p)
            else:
                name = next((a for a in reversed(p) if isinstance(a, str) and a.startswith(".")), "")
                field = name.rsplit(".", 1)[-1]
                out.append(self.headers.get(field) or _header_name(field) if name else "")
        return "".join(out)

    def render_all(self, objs: Sequence[Any]) -> str:
        lines = [self.render(o) for o in objs]
        if not self.is_table:
            return "".join(line + "\n" for line in lines)
        rows = [self.header()] + lines
        if not any("\t" in r for r in rows):
            return "".join(r + "\n" for r in rows)
        split = [r.split("\t") for r in rows]
        ncol = max(len(r) for r in split)
        split = [r + [""] * (ncol - len(r)) for r in split]
        return table(split[0], split[1:])


def _header_name(field: str) -> str:
    out = []
    for i, ch in enumerate(field):  # CamelCase -> CAMEL CASE, as docker's headers ("IMAGE ID")
        if ch.isupper() and i and not field[i - 1].isupper():
            out.append(" ")
        out.append(ch.upper())
    return "".join(out)


def _parse(text: str, source: str) -> list:
    parts: list = []
    i = 0
    while True:
        j = text.find("{{", i)
        if j < 0:
            if "}}" in text[i:]:
                raise InvalidArgument(f"template {source!r}: unexpected '}}}}'")
            parts.append(text[i:])
            return [p for p in parts if p != ""]
        parts.append(text[i:j])
        k = text.find("}}", j)
        if k < 0:
            raise InvalidArgument(f"template {source!r}: unclosed action")
        parts.append(_tokens(text[j + 2:k].strip("- ").strip(), source))
        i = k + 2


def _tokens(action: str, source: str) -> tuple:
    out: list = []
    i = 0
    while i < len(action):
        c = action[i]
        if c.isspace():
            i += 1
        elif c == '"':
            j = action.find('"', i + 1)
            if j < 0:
                raise InvalidArgument(f"template {source!r}: unterminated string")
            out.append(("str", action[i + 1:j]))
            i = j + 1
        else:
            j = i
            while j < len(action) and not action[j].isspace():
                j += 1
            out.append(action[i:j])
            i = j
    if not out:
        raise InvalidArgument(f"template {source!r}: empty action")
    return tuple(out)


def _field(obj: Any, path: str, source: str) -> Any:
    value = obj
    for name in [p for p in path.split(".") if p]:
        if isinstance(value, dict):
            if name not in value:
                raise InvalidArgument(f"template {source!r}: no field {name!r}")
            value = value[name]
        elif hasattr(value, name):
            value = getattr(value, name)
        else:
            raise InvalidArgument(f"template {source!r}: can't evaluate field {name}")
    return value


def _arg(tok: Any, obj: Any, source: str) -> Any:
    if isinstance(tok, tuple):
        return tok[1]
    if tok.startswith("."):
        return _field(obj, tok, source)
    raise InvalidArgument(f"template {source!r}: unexpected {tok!r}")


def _text(value: Any) -> str:
    if value is None:
        return "<no value>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(_text(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{_text(v)}" for k, v in sorted(value.items())) + "]"
    return str(value)


def _json(value: object) -> str:
    import json  # only here: json imports re (~4 ms per command)

    return json.dumps(value, separators=(",", ":"))


_FUNCS = {
    "json": lambda v: _json(v),
    "upper": lambda v: _text(v).upper(),
    "lower": lambda v: _text(v).lower(),
    "title": lambda v: _text(v).title(),
    "join": lambda v, sep: sep.join(_text(x) for x in v),
    "index": lambda v, key: v[key] if not isinstance(v, (list, tuple)) else v[int(key)],
    "printf": lambda fmt, *args: fmt.replace("%v", "%s") % tuple(args),
    "len": lambda v: len(v),
}


def _eval(tokens: tuple, obj: Any, source: str) -> str:
    head = tokens[0]
    if isinstance(head, str) and head.startswith("."):
        value = _field(obj, head, source)
        if len(tokens) != 1:
            if not callable(value):  # a method with arguments: {{.Label "com.example"}}
                raise InvalidArgument(f"template {source!r}: unexpected arguments after {head}")
            return _text(value(*[_arg(t, obj, source) for t in tokens[1:]]))
        return _text(value)
    if isinstance(head, str) and head in _FUNCS:
        args = [_arg(t, obj, source) for t in tokens[1:]]
        try:
            result = _FUNCS[head](*args)
        except (TypeError, KeyError, IndexError, ValueError) as e:
            raise InvalidArgument(f"template {source!r}: {head}: {e}") from None
        return result if isinstance(result, str) else _text(result)
    raise InvalidArgument(f"template {source!r}: function {head!r} not defined")


def render(template: str, objs: Sequence[Any], headers: Mapping[str, str] | None = None) -> str:
    return Template(template, headers).render_all(objs)
