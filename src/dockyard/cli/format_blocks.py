"""Go template blocks for ``--format``: ``{{range}}``, ``{{if}}``, ``{{with}}``, ``{{else}}``,
``{{end}}`` and variables (``{{range $k, $v := .Config.Labels}}{{$k}}={{$v}} {{end}}``,
``{{range .Mounts}}{{.Source}}{{end}}``, ``{{if .State.Running}}up{{else}}down{{end}}``).

``format.Template`` hands its parsed parts here only when they contain a block keyword; actions
are still evaluated by ``format._eval``. A map ranges in key order, as Go's does; truth is Go's
(false, 0, nil and empty strings, lists and maps are false).
"""

from __future__ import annotations

from dockyard.cli.format import _FUNCS, _arg, _eval, _field, _text
from dockyard.errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_OPEN = ("range", "if", "with")


def tree(parts: list, source: str) -> list:
    """Flat parts (text, action tuples) → nested: a block is ``[kind, args, body, else_body]``."""
    root: list = []
    stack: list[tuple[list | None, list]] = [(None, root)]
    for p in parts:
        head = p[0] if isinstance(p, tuple) else None
        if head in _OPEN:
            node = [head, p[1:], [], []]
            stack[-1][1].append(node)
            stack.append((node, node[2]))
        elif head == "else":
            node = stack[-1][0]
            if node is None or len(p) > 1:
                raise InvalidArgument(f"template {source!r}: unexpected {{{{else}}}}")
            stack[-1] = (node, node[3])
        elif head == "end":
            if len(stack) == 1:
                raise InvalidArgument(f"template {source!r}: unexpected {{{{end}}}}")
            stack.pop()
        else:
            stack[-1][1].append(p)
    if len(stack) != 1:
        raise InvalidArgument(f"template {source!r}: unexpected EOF: {{{{end}}}} missing")
    return root


def _var(name: str, env: dict[str, Any], source: str) -> Any:
    base, dot, rest = name.partition(".")
    if base not in env:
        raise InvalidArgument(f"template {source!r}: undefined variable {base!r}")
    return _field(env[base], rest, source) if dot else env[base]


def _subst(tokens: tuple, env: dict[str, Any], source: str) -> tuple:
    """Variables among an action's arguments become literal values."""
    return tuple(("value", _var(t, env, source)) if isinstance(t, str) and t.startswith("$")
                 else t for t in tokens)


def _value(args: tuple, obj: Any, env: dict[str, Any], source: str) -> Any:
    """The raw value of a block's pipeline: a field, a variable, or a function's result."""
    if not args:
        raise InvalidArgument(f"template {source!r}: missing value for a block")
    args = _subst(args, env, source)
    head = args[0]
    if isinstance(head, str) and head in _FUNCS:
        try:
            return _FUNCS[head](*[_arg(t, obj, source) for t in args[1:]])
        except (TypeError, KeyError, IndexError, ValueError) as e:
            raise InvalidArgument(f"template {source!r}: {head}: {e}") from None
    if len(args) != 1:
        raise InvalidArgument(f"template {source!r}: unexpected arguments after {head}")
    return _arg(head, obj, source)


def _truth(value: Any) -> bool:
    return value is not None and value is not False and value != 0 and (
        not hasattr(value, "__len__") or len(value) > 0)


def run(nodes: list, obj: Any, env: dict[str, Any], source: str) -> str:
    out = []
    for n in nodes:
        if isinstance(n, str):
            out.append(n)
        elif isinstance(n, list):
            out.append(_block(n, obj, env, source))
        else:
            head = n[0]
            if isinstance(head, str) and head.startswith("$"):
                if len(n) != 1:
                    raise InvalidArgument(f"template {source!r}: unexpected arguments after "
                                          f"{head}")
                out.append(_text(_var(head, env, source)))
            else:
                out.append(_eval(_subst(n, env, source), obj, source))
    return "".join(out)


def _block(node: list, obj: Any, env: dict[str, Any], source: str) -> str:
    kind, args, body, other = node
    if kind != "range":
        value = _value(args, obj, env, source)
        if not _truth(value):
            return run(other, obj, env, source)
        return run(body, value if kind == "with" else obj, env, source)
    names: list[str] = []
    if ":=" in args:
        i = args.index(":=")
        names = [a.rstrip(",") for a in args[:i] if a != ","]
        args = args[i + 1:]
        if not 1 <= len(names) <= 2 or not all(n.startswith("$") for n in names):
            raise InvalidArgument(f"template {source!r}: bad range variables {names}")
    value = _value(args, obj, env, source)
    if value is None:
        items: list = []
    elif isinstance(value, dict):
        items = sorted(value.items())
    elif isinstance(value, (list, tuple)):
        items = list(enumerate(value))
    elif isinstance(value, int) and not isinstance(value, bool):
        items = [(i, i) for i in range(value)]
    else:
        raise InvalidArgument(f"template {source!r}: range can't iterate over {value!r}")
    if not items:
        return run(other, obj, env, source)
    out = []
    for key, item in items:
        scope = dict(env)
        if len(names) == 2:
            scope[names[0]], scope[names[1]] = key, item
        elif names:
            scope[names[0]] = item
        out.append(run(body, item, scope, source))
    return "".join(out)
