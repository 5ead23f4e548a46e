"""Engine events: the bus the services publish to, and Docker's event filters and JSON shape.

Why a ring plus bounded per-subscriber queues: ``docker events --since`` replays the past, so the
bus keeps the last ``RING_SIZE`` events (dockerd keeps 256); a subscriber that stops reading must
not make the daemon's memory grow, so one whose queue passes ``QUEUE_LIMIT`` is dropped (its stream
ends, a warning is logged) instead of buffering without bound.

Everything here runs on the daemon's event loop; code on another thread (the store thread) calls
``publish_threadsafe``. The filter functions are pure.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time

from dockyard.errors import InvalidArgument
from dockyard.record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

log = logging.getLogger("dockyard.events")

RING_SIZE = 1024
QUEUE_LIMIT = 4096

#: filter keys docker accepts on /events (swarm ones never match here, as on a non-swarm dockerd)
FILTER_KEYS = frozenset(("config", "container", "daemon", "event", "image", "label", "network",
                         "node", "plugin", "scope", "secret", "service", "type", "volume"))
_FUZZY_EVENTS = frozenset(("health_status", "exec_create", "exec_start"))
_NAMED_KINDS = ("container", "daemon", "plugin", "volume", "network", "node", "service", "secret",
                "config")


class Event(Record):
    """One engine event. ``action`` may carry a detail after ':' (``health_status: healthy``)."""

    type: str
    action: str
    actor_id: str
    attributes: Mapping[str, str]
    scope: str = "local"
    time_nano: int = 0

    @property
    def time(self) -> int:
        return self.time_nano // 1_000_000_000


def to_json(event: Event) -> dict:
    """Docker's events.Message, with the legacy ``status``/``id``/``from`` that dockerd still
    fills for container (and, without ``from``, image) events."""
    out: dict = {}
    if event.type in ("container", "image"):
        out["status"] = event.action
        if event.actor_id:
            out["id"] = event.actor_id
        if event.type == "container" and event.attributes.get("image"):
            out["from"] = event.attributes["image"]
    out["Type"] = event.type
    out["Action"] = event.action
    out["Actor"] = {"ID": event.actor_id, "Attributes": dict(event.attributes)}
    out["scope"] = event.scope
    out["time"] = event.time
    out["timeNano"] = event.time_nano
    return out


def container_attributes(name: str, image: str, labels: Mapping[str, str] | None = None,
                         **extra: str) -> dict[str, str]:
    """A container event's attributes as dockerd builds them: the container's labels, then
    ``image`` (as the user gave it) and ``name`` (no leading "/"), then the action's own
    (``exitCode`` for die, ``signal`` for kill, ``execID`` for exec_*)."""
    out = dict(labels or {})
    if image:
        out["image"] = image
    out["name"] = name.lstrip("/")
    out.update(extra)
    return out


# ---------------------------------------------------------------------------------- filters

class EventFilter(Record):
    """Docker's ``filters`` for /events, as {key: values}. Empty: everything matches."""

    args: Mapping[str, tuple[str, ...]] = {}


def parse_event_filters(raw: Mapping[str, list[str]]) -> EventFilter:
    """Validate parsed ``filters`` (see ``api.images.parse_filters``) against docker's keys."""
    for key in raw:
        if key not in FILTER_KEYS:
            raise InvalidArgument(f"invalid filter '{key}'")
    return EventFilter({k: tuple(v) for k, v in raw.items() if v})


def _exact(f: EventFilter, key: str, *sources: str) -> bool:
    values = f.args.get(key)
    return not values or any(s in values for s in sources)


def _fuzzy(f: EventFilter, key: str, *sources: str) -> bool:
    """dockerd's FuzzyMatch: a value equal to the source or a prefix of it."""
    values = f.args.get(key)
    if not values:
        return True
    return any(s == v or (s and s.startswith(v)) for s in sources for v in values)


def _labels(f: EventFilter, attributes: Mapping[str, str]) -> bool:
    """Every ``label`` value must hold: ``k`` present, or ``k=v`` equal."""
    for value in f.args.get("label", ()):
        k, eq, v = value.partition("=")
        if k not in attributes or (eq and attributes[k] != v):
            return False
    return True


def _familiar_name(image: str) -> str:
    """The repository without tag (``busybox:1`` -> ``busybox``), as dockerd's stripTag."""
    from dockyard.oci.reference import parse_reference

    try:
        return parse_reference(image).familiar_name()
    except Exception:  # noqa: BLE001 - an id or anything unparsable compares as itself
        return image


def _image(f: EventFilter, ev: Event) -> bool:
    """The actor id, or the image name (``image`` attribute of container events, ``name`` of
    image events), each also without its tag."""
    values = f.args.get("image")
    if not values:
        return True
    name = ev.attributes.get("name" if ev.type == "image" else "image", "")
    candidates = [c for c in (ev.actor_id, name) if c]
    return (any(c in values for c in candidates)
            or any(_familiar_name(c) in values for c in candidates))


def _event(f: EventFilter, action: str) -> bool:
    values = f.args.get("event")
    if not values:
        return True
    if action in values:
        return True
    if any(v in _FUZZY_EVENTS for v in values):  # dockerd #25798: health_status matches "x: y"
        return any(action.startswith(v) for v in values)
    return False


def matches(f: EventFilter, ev: Event) -> bool:
    """dockerd's events Filter.Include: ``container``, ``volume``, ``network`` (and the other
    object kinds) match the actor's id or ``name`` attribute, exactly or as a prefix."""
    if not f.args:
        return True
    return (_event(f, ev.action) and _exact(f, "type", ev.type) and _exact(f, "scope", ev.scope)
            and all(_fuzzy(f, kind, ev.actor_id, ev.attributes.get("name", ""))
                    for kind in _NAMED_KINDS if kind in f.args)
            and _image(f, ev) and _labels(f, ev.attributes))


# ---------------------------------------------------------------------------------- time

def parse_event_time(text: str | None) -> int | None:
    """``since``/``until`` as nanoseconds: unix seconds with an optional fraction (what the docker
    CLI sends), or RFC 3339. None when absent or empty."""
    if text is None or text == "":
        return None
    sec, dot, frac = text.partition(".")
    if sec.lstrip("-").isdigit() and (not dot or frac.isdigit()):
        ns = int(sec) * 1_000_000_000
        if frac:
            ns += int(frac[:9].ljust(9, "0")) * (-1 if sec.startswith("-") else 1)
        return ns
    return _rfc3339_ns(text)


def _rfc3339_ns(text: str) -> int:
    import datetime
    import re

    m = re.fullmatch(r"(\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d)(?:\.(\d+))?([Zz]|[+-]\d\d:\d\d)?", text)
    if m is None:
        raise InvalidArgument(f"invalid timestamp {text!r}: use unix seconds or RFC 3339")
    tz = m.group(3) or "Z"
    base = datetime.datetime.fromisoformat(m.group(1).replace("t", "T").replace(" ", "T")
                                           + ("+00:00" if tz in "Zz" else tz))
    frac = int((m.group(2) or "0")[:9].ljust(9, "0"))
    return int(base.timestamp()) * 1_000_000_000 + frac


# ---------------------------------------------------------------------------------- the bus

class Subscription:
    """A subscriber's replay plus live events; registered on creation, ``close()`` it when done.

    Iterate it (``async for``), or call ``get(timeout)`` to also notice a gone client between
    events. It ends at ``until`` or when the bus drops it for falling behind.
    """

    def __init__(self, bus: EventBus, replay: list[Event], f: EventFilter,
                 until_ns: int | None) -> None:
        self._bus = bus
        self._queue: collections.deque[Event] = collections.deque(replay)
        self._filter = f
        self._until_ns = until_ns
        self._wake = asyncio.Event()
        self.dropped = False
        self.closed = False

    def offer(self, ev: Event) -> None:
        if self.closed or not matches(self._filter, ev):
            return
        if len(self._queue) >= QUEUE_LIMIT:
            log.warning("events: dropping a subscriber %d events behind", len(self._queue))
            self.dropped = True
            self.close()
            return
        self._queue.append(ev)
        self._wake.set()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._bus._unsubscribe(self)
        self._wake.set()

    @property
    def finished(self) -> bool:
        """Nothing more will come: closed/dropped with nothing queued, or ``until`` is past."""
        if self._queue and not self.dropped:
            return False
        return self.closed or (self._until_ns is not None and time.time_ns() >= self._until_ns)

    async def get(self, timeout: float | None = None) -> Event | None:
        """The next event; None on ``timeout`` or at the end (then ``finished`` is true)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self._queue and not self.dropped:
                return self._queue.popleft()
            if self.finished:
                self.close()
                return None
            wait = None
            if self._until_ns is not None:
                wait = max(0.0, (self._until_ns - time.time_ns()) / 1e9)
            if deadline is not None:
                left = max(0.0, deadline - time.monotonic())
                wait = left if wait is None else min(wait, left)
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), wait)
            except asyncio.TimeoutError:
                if deadline is not None and time.monotonic() >= deadline and not self._queue:
                    return None

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Event:
        ev = await self.get()
        if ev is None:
            raise StopAsyncIteration
        return ev

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


class EventBus:
    """Publishes engine events to subscribers and keeps the recent ones for ``since``."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None,
                 ring_size: int = RING_SIZE) -> None:
        self._loop = loop
        self._ring: collections.deque[Event] = collections.deque(maxlen=ring_size)
        self._subs: list[Subscription] = []

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """The loop ``publish_threadsafe`` hands events to (else: the first loop that uses us)."""
        self._loop = loop

    def close_all(self) -> None:
        """End every subscription (daemon shutdown)."""
        for sub in list(self._subs):
            sub.close()

    def _bind(self) -> None:
        if self._loop is None:
            try:
                self._loop = asyncio.get_running_loop()
            except RuntimeError:
                pass

    def publish(self, type: str, action: str, actor_id: str,  # noqa: A002 - docker's word
                attributes: Mapping[str, str] | None = None, *, scope: str = "local",
                time_nano: int | None = None) -> Event:
        """Record and deliver one event (on the loop's thread)."""
        self._bind()
        ev = Event(type, action, actor_id, dict(attributes or {}), scope,
                   time.time_ns() if time_nano is None else time_nano)
        self._ring.append(ev)
        for sub in list(self._subs):
            sub.offer(ev)
        return ev

    def publish_threadsafe(self, type: str, action: str, actor_id: str,  # noqa: A002
                           attributes: Mapping[str, str] | None = None, *,
                           scope: str = "local") -> None:
        """``publish`` from another thread; the event keeps the time of this call."""
        now = time.time_ns()
        attrs = dict(attributes or {})
        loop = self._loop
        if loop is None or loop.is_closed():  # no loop yet: no subscriber can exist either
            self.publish(type, action, actor_id, attrs, scope=scope, time_nano=now)
            return
        loop.call_soon_threadsafe(lambda: self.publish(type, action, actor_id, attrs, scope=scope,
                                                       time_nano=now))

    def recent(self) -> list[Event]:
        return list(self._ring)

    def subscribe(self, since: float | None = None, until: float | None = None,
                  filters: EventFilter | None = None, *, since_ns: int | None = None,
                  until_ns: int | None = None) -> Subscription:
        """Replay buffered events (as dockerd: only when ``since`` or ``until`` is given; time in
        [since, until]), then live ones until ``until``. An ``until`` in the past gives the
        replay only. Times are unix seconds, or exact nanoseconds through ``*_ns``."""
        self._bind()
        f = filters or EventFilter()
        if since_ns is None and since is not None:
            since_ns = round(since * 1e9)
        if until_ns is None and until is not None:
            until_ns = round(until * 1e9)
        if since_ns is not None and until_ns is not None and until_ns < since_ns:
            raise InvalidArgument("events: `since` time cannot be after `until` time")
        replay: list[Event] = []
        if since_ns is not None or until_ns is not None:
            lo = since_ns or 0
            replay = [ev for ev in self._ring if ev.time_nano >= lo
                      and (until_ns is None or ev.time_nano <= until_ns) and matches(f, ev)]
        sub = Subscription(self, replay, f, until_ns)
        if until_ns is not None and until_ns <= time.time_ns():
            sub.closed = True  # past events only
        else:
            self._subs.append(sub)
        return sub

    def _unsubscribe(self, sub: Subscription) -> None:
        try:
            self._subs.remove(sub)
        except ValueError:
            pass

    @property
    def subscriber_count(self) -> int:
        return len(self._subs)
