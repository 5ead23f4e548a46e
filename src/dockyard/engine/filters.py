"""``GET /containers/json`` selection: ``all``, ``limit``, ``filters`` as dockerd applies them.

Filters (JSON ``{"key": ["value", ...]}`` or the old ``{"key": {"value": true}}``): ``id``
(prefix), ``name`` (regular expression searched in the name, as dockerd), ``status``, ``label``
(``key`` or ``key=value``), ``ancestor`` (image name, id or id prefix; the image or its tags),
``exited`` (exit code; only exited containers), ``health``, ``before``/``since`` (container),
``volume`` (name or destination), ``network``, ``is-task``. Values of one key are OR-ed, keys
AND-ed. Unknown keys are an error (dockerd: "invalid filter").
"""

from __future__ import annotations

import re

from dockyard.errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from dockyard.engine.container import Container

KEYS = frozenset(("id", "name", "status", "label", "ancestor", "exited", "health", "before",
                  "since", "volume", "network", "is-task", "publish", "expose"))
STATUSES = ("created", "restarting", "running", "removing", "paused", "exited", "dead")
HEALTH = ("starting", "healthy", "unhealthy", "none")


def parse_filters(text: str | None) -> dict[str, list[str]]:
    """Docker's ``filters`` query parameter."""
    from dockyard.leanjson import loads

    if not text:
        return {}
    try:
        raw = loads(text)
    except ValueError as e:
        raise InvalidArgument(f"invalid filters {text!r}: {e}") from None
    if not isinstance(raw, dict):
        raise InvalidArgument(f"invalid filters {text!r}: expected a JSON object")
    out: dict[str, list[str]] = {}
    for key, value in raw.items():
        if isinstance(value, dict):
            values = [k for k, v in value.items() if v]
        elif isinstance(value, list):
            values = [str(v) for v in value]
        else:
            raise InvalidArgument(f"invalid filter {key!r}: expected a list of values")
        out[key] = values
    return out


def select(containers: Sequence[Container], *, include_stopped: bool, limit: int,
           filters: dict[str, list[str]], image_matches: Callable[[str, str], bool],
           resolve: Callable[[str], Container]) -> list[Container]:
    """``containers`` newest first; the ones to list, in that order."""
    for key in filters:
        if key not in KEYS:
            raise InvalidArgument(f"invalid filter '{key}'")
    for s in filters.get("status", ()):
        if s not in STATUSES:
            raise InvalidArgument(f"invalid filter 'status={s}'")
    for h in filters.get("health", ()):
        if h not in HEALTH:
            raise InvalidArgument(f"Unrecognised filter value for health: {h}")
    exited: list[int] = []
    for e in filters.get("exited", ()):
        try:
            exited.append(int(e))
        except ValueError:
            raise InvalidArgument(f"invalid filter 'exited={e}'") from None
    names = []
    for n in filters.get("name", ()):
        try:
            names.append(re.compile(n))
        except re.error as e:
            raise InvalidArgument(f"invalid filter 'name={n}': {e}") from None
    before = [resolve(r).created for r in filters.get("before", ())]
    since = [resolve(r).created for r in filters.get("since", ())]
    if filters.get("status") or exited or limit > 0 or before or since:
        include_stopped = True
    out: list[Container] = []
    for c in containers:
        st = c.state.status
        if not include_stopped and st not in ("running", "paused", "restarting"):
            continue
        if filters.get("id") and not any(c.id.startswith(i) for i in filters["id"]):
            continue
        if names and not any(p.search("/" + c.name) or p.search(c.name) for p in names):
            continue
        if filters.get("status") and st not in filters["status"]:
            continue
        if exited and (st != "exited" or c.state.exit_code not in exited):
            continue
        if filters.get("label") and not _labels_match(c, filters["label"]):
            continue
        if filters.get("ancestor") and not any(image_matches(a, c.image_id)
                                              for a in filters["ancestor"]):
            continue
        if filters.get("health"):
            h = (c.health or {}).get("Status") or "none"
            if h not in filters["health"]:
                continue
        if before and not all(c.created < b for b in before):
            continue
        if since and not all(c.created > s for s in since):
            continue
        if filters.get("volume") and not _volume_match(c, filters["volume"]):
            continue
        if filters.get("network") and (c.req.network_mode or "default") not in filters["network"]:
            continue
        if filters.get("is-task") and "true" in filters["is-task"]:
            continue
        out.append(c)
        if limit > 0 and len(out) >= limit:
            break
    return out


def _labels_match(c: Container, wanted: list[str]) -> bool:
    labels = c.config.get("Labels") or {}
    for w in wanted:
        key, eq, value = w.partition("=")
        if key not in labels or (eq and labels[key] != value):
            return False
    return True


def _volume_match(c: Container, wanted: list[str]) -> bool:
    for w in wanted:
        for dest, src in c.volumes.items():
            if w == dest or w in src.split("/"):
                return True
        for m in c.req.mounts:
            if w in (m.destination, m.source):
                return True
    return False
