"""``engine.events``: Docker's event JSON, its filters, since/until replay and the live bus."""

from __future__ import annotations

import asyncio
import threading

import pytest

from dockyard.engine import events as ev_mod
from dockyard.engine.events import (
    Event,
    EventBus,
    container_attributes,
    matches,
    parse_event_filters,
    parse_event_time,
    to_json,
)
from dockyard.errors import InvalidArgument

CID = "4f3c" + "a" * 60
IMG = "sha256:" + "b" * 64


def cev(action: str, **attrs: str) -> Event:
    base = {"image": "busybox", "name": "web"}
    base.update(attrs)
    return Event("container", action, CID, base, "local", 1_700_000_000_123_456_789)


def f(**kw: list[str]):
    return parse_event_filters(kw)


# ---------------------------------------------------------------------------- JSON

def test_container_event_json_has_dockers_shape_and_legacy_fields():
    assert to_json(cev("start")) == {
        "status": "start", "id": CID, "from": "busybox",
        "Type": "container", "Action": "start",
        "Actor": {"ID": CID, "Attributes": {"image": "busybox", "name": "web"}},
        "scope": "local", "time": 1_700_000_000, "timeNano": 1_700_000_000_123_456_789}


def test_image_event_has_status_and_id_but_no_from():
    j = to_json(Event("image", "tag", IMG, {"name": "x:1"}, "local", 5_000_000_000))
    assert j["status"] == "tag" and j["id"] == IMG and "from" not in j
    assert j["time"] == 5 and j["Actor"]["Attributes"] == {"name": "x:1"}


def test_volume_event_has_no_legacy_fields():
    j = to_json(Event("volume", "create", "v1", {"driver": "local"}, "local", 1))
    assert set(j) == {"Type", "Action", "Actor", "scope", "time", "timeNano"}


# ---------------------------------------------------------------------------- filters

def test_empty_filter_matches_everything():
    assert matches(f(), cev("die"))


def test_type_and_event_filters():
    assert matches(f(type=["container"], event=["start", "die"]), cev("die"))
    assert not matches(f(type=["image"]), cev("die"))
    assert not matches(f(event=["start"]), cev("stop"))


def test_event_filter_health_status_matches_the_detailed_action():
    e = cev("health_status: healthy")
    assert matches(f(event=["health_status"]), e)
    assert matches(f(event=["health_status: healthy"]), e)
    assert not matches(f(event=["health_status: unhealthy"]), e)
    assert matches(f(event=["exec_start"]), cev("exec_start: sh -c x"))
    # an ordinary event name is exact, not a prefix
    assert not matches(f(event=["sta"]), cev("start"))


def test_container_filter_matches_id_prefix_or_name():
    assert matches(f(container=["web"]), cev("start"))
    assert matches(f(container=[CID[:12]]), cev("start"))
    assert matches(f(container=[CID]), cev("start"))
    assert not matches(f(container=["db"]), cev("start"))
    img = Event("image", "tag", IMG, {"name": "x:1"}, "local", 1)
    assert not matches(f(container=["web"]), img)


def test_image_filter_matches_container_image_attribute_and_image_events():
    assert matches(f(image=["busybox"]), cev("start", image="busybox:latest"))
    assert matches(f(image=["busybox:latest"]), cev("start", image="busybox:latest"))
    assert not matches(f(image=["alpine"]), cev("start"))
    tag = Event("image", "tag", IMG, {"name": "x:1"}, "local", 1)
    assert matches(f(image=["x"]), tag) and matches(f(image=["x:1"]), tag)
    assert matches(f(image=[IMG]), tag)
    assert not matches(f(image=["y"]), tag)


def test_label_filter_key_or_key_value_all_must_hold():
    e = cev("start", tier="web", env="prod")
    assert matches(f(label=["tier"]), e)
    assert matches(f(label=["tier=web", "env=prod"]), e)
    assert not matches(f(label=["tier=db"]), e)
    assert not matches(f(label=["tier", "owner"]), e)


def test_volume_network_daemon_scope_filters():
    vol = Event("volume", "mount", "data", {"container": CID, "driver": "local"}, "local", 1)
    assert matches(f(volume=["data"]), vol)
    assert not matches(f(volume=["other"]), vol)
    assert not matches(f(volume=["data"]), cev("start"))
    net = Event("network", "connect", "n" * 64, {"name": "bridge"}, "local", 1)
    assert matches(f(network=["bridge"]), net) and matches(f(network=["nnn"]), net)
    assert matches(f(scope=["local"]), net) and not matches(f(scope=["swarm"]), net)
    d = Event("daemon", "reload", "D1", {"name": "host"}, "local", 1)
    assert matches(f(daemon=["host"]), d) and not matches(f(daemon=["x"]), d)


def test_unknown_filter_key_is_refused_with_dockers_text():
    with pytest.raises(InvalidArgument, match="invalid filter 'foo'"):
        parse_event_filters({"foo": ["x"]})


# ---------------------------------------------------------------------------- time parsing

@pytest.mark.parametrize("text,ns", [
    ("1700000000", 1_700_000_000_000_000_000),
    ("1700000000.5", 1_700_000_000_500_000_000),
    ("1700000000.000000001", 1_700_000_000_000_000_001),
    ("2023-11-14T22:13:20Z", 1_700_000_000_000_000_000),
    ("2023-11-14T22:13:20.25Z", 1_700_000_000_250_000_000),
    ("2023-11-15T00:13:20+02:00", 1_700_000_000_000_000_000),
])
def test_parse_event_time(text, ns):
    assert parse_event_time(text) == ns


def test_parse_event_time_absent_and_bad():
    assert parse_event_time(None) is None and parse_event_time("") is None
    with pytest.raises(InvalidArgument, match="invalid timestamp"):
        parse_event_time("yesterday")


# ---------------------------------------------------------------------------- the bus

async def drain(sub, timeout: float = 0.05) -> list[Event]:
    out = []
    while (e := await sub.get(timeout)) is not None:
        out.append(e)
    return out


def test_subscribe_without_since_sees_only_live_events():
    async def run():
        bus = EventBus()
        bus.publish("container", "create", CID)
        sub = bus.subscribe()
        bus.publish("container", "start", CID)
        got = await drain(sub)
        sub.close()
        return [e.action for e in got], bus.subscriber_count

    actions, count = asyncio.run(run())
    assert actions == ["start"] and count == 0


def test_since_replays_buffered_events_then_live_ones_filtered():
    async def run():
        bus = EventBus()
        bus.publish("container", "create", CID, time_nano=1_000)
        bus.publish("image", "tag", IMG, time_nano=2_000)
        bus.publish("container", "start", CID, time_nano=3_000)
        sub = bus.subscribe(since_ns=2_000, filters=f(type=["container"]))
        bus.publish("container", "die", CID)
        bus.publish("image", "untag", IMG)
        got = await drain(sub)
        sub.close()
        return [e.action for e in got]

    assert asyncio.run(run()) == ["start", "die"]


def test_until_in_the_past_replays_and_ends():
    async def run():
        bus = EventBus()
        for i, a in enumerate(["create", "start", "die"]):
            bus.publish("container", a, CID, time_nano=(i + 1) * 1_000_000_000)
        sub = bus.subscribe(since=0, until=2.0)
        got = [e.action async for e in sub]
        return got, sub.finished, bus.subscriber_count

    got, finished, count = asyncio.run(run())
    assert got == ["create", "start"] and finished and count == 0


def test_until_in_the_future_ends_the_live_stream():
    import time

    async def run():
        bus = EventBus()
        sub = bus.subscribe(until=time.time() + 0.2)
        bus.publish("container", "start", CID)
        return [e.action async for e in sub]

    assert asyncio.run(run()) == ["start"]


def test_since_after_until_is_invalid():
    async def run():
        EventBus().subscribe(since=10, until=5)

    with pytest.raises(InvalidArgument, match="since"):
        asyncio.run(run())


def test_ring_is_bounded():
    bus = EventBus(ring_size=3)
    for i in range(5):
        bus.publish("container", f"a{i}", CID)
    assert [e.action for e in bus.recent()] == ["a2", "a3", "a4"]


def test_slow_subscriber_is_dropped_not_buffered(monkeypatch, caplog):
    monkeypatch.setattr(ev_mod, "QUEUE_LIMIT", 5)

    async def run():
        bus = EventBus()
        slow = bus.subscribe()
        fast = bus.subscribe()
        for i in range(8):
            bus.publish("container", f"a{i}", CID)
            await fast.get(0)
        first = await slow.get(0.01)
        return first, slow.dropped, bus.subscriber_count

    first, dropped, count = asyncio.run(run())
    assert first is None and dropped and count == 1
    assert "dropping a subscriber" in caplog.text


def test_publish_threadsafe_delivers_on_the_loop_with_the_callers_time():
    async def run():
        bus = EventBus()
        sub = bus.subscribe()
        t = threading.Thread(target=bus.publish_threadsafe,
                             args=("image", "load", IMG, {"name": IMG}))
        t.start()
        t.join()
        e = await sub.get(2.0)
        sub.close()
        return e

    e = asyncio.run(run())
    assert e is not None and e.action == "load" and e.attributes == {"name": IMG}
    assert e.time_nano > 0


def test_container_attributes_as_dockerd_builds_them():
    attrs = container_attributes("/web", "busybox", {"tier": "x", "name": "label-loses"},
                                 exitCode="3")
    assert attrs == {"tier": "x", "name": "web", "image": "busybox", "exitCode": "3"}
    j = to_json(Event("container", "die", CID, attrs, "local", 1))
    assert j["from"] == "busybox" and j["Actor"]["Attributes"]["exitCode"] == "3"
