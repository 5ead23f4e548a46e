"""``engine.health``: HEALTHCHECK config and merge, the Health state, and the probe runner driven
by virtual time (a fake clock and sleep; no real waiting)."""

from __future__ import annotations

import asyncio
import heapq

import pytest

from dockyard.engine import health as h
from dockyard.engine.health import Health, HealthConfig, HealthLogEntry, HealthMonitor
from dockyard.errors import InvalidArgument
from dockyard.oci.image_config import Healthcheck

T0 = 1_000_000.0


class VirtualTime:
    """A clock and an ``asyncio``-compatible sleep that only move when the test advances time."""

    def __init__(self, now: float = T0) -> None:
        self.now = now
        self._sleepers: list = []
        self._seq = 0

    def clock(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        fut = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + delay, self._seq, fut))
        self._seq += 1
        await fut

    @staticmethod
    async def settle() -> None:
        for _ in range(20):
            await asyncio.sleep(0)

    async def advance_to(self, t: float) -> None:
        """Wake every sleeper due by ``t`` in deadline order, letting tasks run in between."""
        while True:
            await self.settle()
            while self._sleepers and self._sleepers[0][2].done():
                heapq.heappop(self._sleepers)
            if not self._sleepers or self._sleepers[0][0] > t:
                break
            when, _, fut = heapq.heappop(self._sleepers)
            self.now = max(self.now, when)
            fut.set_result(None)
        self.now = max(self.now, t)
        await self.settle()


class Probe:
    """A fake ``run_check``: answers from a script (exit code, output, seconds it takes)."""

    def __init__(self, vt: VirtualTime, results=((0, "ok"),), takes: float = 0.0) -> None:
        self.vt = vt
        self.results = list(results)
        self.takes = takes
        self.calls: list[tuple[float, list[str], float]] = []
        self.cancelled = 0

    async def __call__(self, argv: list[str], timeout: float):
        self.calls.append((self.vt.now, argv, timeout))
        result = self.results[min(len(self.calls), len(self.results)) - 1]
        try:
            if self.takes:
                await self.vt.sleep(self.takes)
            if isinstance(result, BaseException):
                raise result
            return result
        except asyncio.CancelledError:
            self.cancelled += 1
            raise


class Changes:
    def __init__(self) -> None:
        self.seen: list[tuple[Health, str | None]] = []

    def __call__(self, health: Health, event: str | None) -> None:
        self.seen.append((health, event))

    @property
    def events(self) -> list[str]:
        return [e for _, e in self.seen if e]


def run(scenario):
    """Run ``scenario(vt)`` (an async function) on a fresh loop with fresh virtual time."""
    vt = VirtualTime()
    return asyncio.run(scenario(vt))


def make(vt, cfg, probe=None, **kw):
    probe = probe or Probe(vt)
    changes = Changes()
    mon = HealthMonitor(cfg, probe, changes, clock=vt.clock, sleep=vt.sleep, **kw)
    return mon, probe, changes


# --- the runner ------------------------------------------------------------------------------

def test_first_success_makes_starting_container_healthy():
    cfg = HealthConfig(test=("CMD-SHELL", "wget -q localhost"), interval=10.0)

    async def scenario(vt):
        mon, probe, changes = make(vt, cfg)
        mon.start()
        assert mon.health.status == "starting"
        await vt.advance_to(T0 + 9.5)
        assert probe.calls == []  # the first probe waits one interval, as Docker's does
        await vt.advance_to(T0 + 10)
        assert probe.calls == [(T0 + 10, ["/bin/sh", "-c", "wget -q localhost"], 30.0)]
        assert mon.health.status == "healthy"
        assert changes.events == ["health_status: healthy"]
        await vt.advance_to(T0 + 30)
        assert [c[0] for c in probe.calls] == [T0 + 10, T0 + 20, T0 + 30]
        assert changes.events == ["health_status: healthy"]  # no event without a change
        assert [e for _, e in changes.seen] == ["health_status: healthy", None, None]
        final = await mon.stop()
        assert final.status == "unhealthy" and not mon.running

    run(scenario)


def test_retries_consecutive_failures_make_it_unhealthy_and_a_success_heals():
    cfg = HealthConfig(test=("CMD", "probe", "--quick"), interval=5.0, retries=3)

    async def scenario(vt):
        probe = Probe(vt, results=[(1, "down")] * 3 + [(0, "up")])
        mon, probe, changes = make(vt, cfg, probe)
        mon.start()
        await vt.advance_to(T0 + 10)
        assert (mon.health.status, mon.health.failing_streak) == ("starting", 2)
        assert changes.events == []
        await vt.advance_to(T0 + 15)
        assert (mon.health.status, mon.health.failing_streak) == ("unhealthy", 3)
        assert changes.events == ["health_status: unhealthy"]
        await vt.advance_to(T0 + 20)
        assert (mon.health.status, mon.health.failing_streak) == ("healthy", 0)
        assert changes.events == ["health_status: unhealthy", "health_status: healthy"]
        assert probe.calls[0][1] == ["probe", "--quick"]
        await mon.stop()

    run(scenario)


def test_any_nonzero_exit_code_is_a_failure_and_healthy_needs_retries_failures_to_flip():
    cfg = HealthConfig(test=("CMD", "x"), interval=1.0, retries=2)

    async def scenario(vt):
        probe = Probe(vt, results=[(0, ""), (2, "reserved"), (0, ""), (7, ""), (2, "")])
        mon, _, changes = make(vt, cfg, probe)
        mon.start()
        await vt.advance_to(T0 + 2)
        assert (mon.health.status, mon.health.failing_streak) == ("healthy", 1)
        await vt.advance_to(T0 + 3)
        assert (mon.health.status, mon.health.failing_streak) == ("healthy", 0)
        await vt.advance_to(T0 + 5)
        assert (mon.health.status, mon.health.failing_streak) == ("unhealthy", 2)
        assert changes.events == ["health_status: healthy", "health_status: unhealthy"]
        await mon.stop()

    run(scenario)


def test_start_period_failures_do_not_count_and_probes_use_start_interval():
    cfg = HealthConfig(test=("CMD", "x"), interval=30.0, start_period=60.0, start_interval=5.0,
                       retries=1)

    async def scenario(vt):
        mon, probe, changes = make(vt, cfg, Probe(vt, results=[(1, "not yet")]))
        mon.start()
        await vt.advance_to(T0 + 55)
        assert [c[0] - T0 for c in probe.calls] == [5 * i for i in range(1, 12)]
        assert (mon.health.status, mon.health.failing_streak) == ("starting", 0)
        assert changes.events == []
        await vt.advance_to(T0 + 60)  # this probe starts at the end of the start period
        assert (mon.health.status, mon.health.failing_streak) == ("unhealthy", 1)
        await vt.advance_to(T0 + 100)
        assert [c[0] - T0 for c in probe.calls][-2:] == [60, 90]  # back to the interval
        await mon.stop()

    run(scenario)


def test_success_inside_start_period_is_healthy_at_once_then_failures_count():
    cfg = HealthConfig(test=("CMD", "x"), interval=30.0, start_period=60.0, start_interval=5.0,
                       retries=1)

    async def scenario(vt):
        probe = Probe(vt, results=[(1, ""), (0, ""), (1, "")])
        mon, probe, changes = make(vt, cfg, probe)
        mon.start()
        await vt.advance_to(T0 + 10)
        assert mon.health.status == "healthy"
        await vt.advance_to(T0 + 40)  # the start period no longer shields a healthy container
        assert [c[0] - T0 for c in probe.calls] == [5, 10, 40]
        assert mon.health.status == "unhealthy"
        assert changes.events == ["health_status: healthy", "health_status: unhealthy"]
        await mon.stop()

    run(scenario)


def test_defaults_apply_when_fields_are_zero():
    cfg = HealthConfig(test=("CMD", "x"))

    async def scenario(vt):
        mon, probe, _ = make(vt, cfg, Probe(vt, results=[(1, "")]))
        mon.start()
        await vt.advance_to(T0 + 90)
        assert [(c[0] - T0, c[2]) for c in probe.calls] == [(30, 30.0), (60, 30.0), (90, 30.0)]
        assert mon.health.status == "unhealthy"
        await mon.stop()

    run(scenario)


def test_hung_check_fails_at_its_timeout_and_is_cancelled():
    cfg = HealthConfig(test=("CMD", "sleep", "1000"), interval=10.0, timeout=3.0, retries=1)

    async def scenario(vt):
        probe = Probe(vt, results=[(0, "too late")], takes=1000.0)
        mon, probe, changes = make(vt, cfg, probe)
        mon.start()
        await vt.advance_to(T0 + 13)
        assert probe.calls[0][2] == 3.0
        assert probe.cancelled == 1
        assert mon.health.status == "unhealthy"
        entry = mon.health.log[-1]
        assert (entry.start, entry.end, entry.exit_code) == (T0 + 10, T0 + 13, -1)
        assert entry.output == "Health check exceeded timeout (3s)"
        assert changes.events == ["health_status: unhealthy"]
        await vt.advance_to(T0 + 26)  # the loop goes on after a timeout
        assert len(probe.calls) == 2 and probe.cancelled == 2
        await mon.stop()

    run(scenario)


def test_default_timeout_text_matches_docker():
    async def scenario(vt):
        mon, _, _ = make(vt, HealthConfig(test=("CMD", "x"), interval=1.0),
                         Probe(vt, takes=100.0))
        mon.start()
        await vt.advance_to(T0 + 31)
        assert mon.health.log[0].output == "Health check exceeded timeout (30s)"
        await mon.stop()

    run(scenario)


def test_check_that_raises_is_a_failure_with_its_message():
    async def scenario(vt):
        probe = Probe(vt, results=[RuntimeError("exec: no such file: wget")])
        mon, _, _ = make(vt, HealthConfig(test=("CMD", "wget"), interval=1.0), probe)
        mon.start()
        await vt.advance_to(T0 + 1)
        entry = mon.health.log[0]
        assert (entry.exit_code, entry.output) == (-1, "exec: no such file: wget")
        assert mon.health.failing_streak == 1
        await mon.stop()

    run(scenario)


def test_log_keeps_the_last_five_results_and_caps_output():
    big = "x" * 5000

    async def scenario(vt):
        results = [(0, f"run {i}") for i in range(1, 7)] + [(0, big)]
        mon, _, changes = make(vt, HealthConfig(test=("CMD", "x"), interval=1.0),
                               Probe(vt, results=results))
        mon.start()
        await vt.advance_to(T0 + 7)
        outputs = [e.output for e in mon.health.log]
        assert outputs[:4] == ["run 3", "run 4", "run 5", "run 6"]
        assert outputs[4] == "x" * 4096 + "..."
        assert len(changes.seen) == 7
        await mon.stop()

    run(scenario)


def test_none_or_missing_test_disables_the_monitor():
    for cfg in (HealthConfig(test=("NONE",)), HealthConfig(), None,
                h.merge(HealthConfig(test=("CMD", "x")), HealthConfig(test=("NONE",)))):
        async def scenario(vt, cfg=cfg):
            mon, probe, changes = make(vt, cfg)
            mon.start()
            await vt.advance_to(T0 + 3600)
            assert probe.calls == [] and changes.seen == []
            assert mon.health is None and not mon.running
            assert await mon.stop() is None

        run(scenario)


def test_stop_cancels_a_probe_in_flight_without_reporting_it():
    async def scenario(vt):
        probe = Probe(vt, takes=5.0)
        mon, probe, changes = make(vt, HealthConfig(test=("CMD", "x"), interval=1.0), probe)
        mon.start()
        await vt.advance_to(T0 + 2)
        assert len(probe.calls) == 1
        final = await mon.stop()
        assert probe.cancelled == 1
        assert final == Health(status="unhealthy", failing_streak=0, log=())
        await vt.advance_to(T0 + 100)
        assert len(probe.calls) == 1 and changes.seen == []

    run(scenario)


def test_readopted_monitor_keeps_the_log_and_the_real_start_time():
    old = Health(status="unhealthy", failing_streak=4,
                 log=(HealthLogEntry(start=T0 - 100, end=T0 - 99, exit_code=1, output="old"),))
    cfg = HealthConfig(test=("CMD", "x"), interval=20.0, start_period=60.0, start_interval=2.0)

    async def scenario(vt):
        mon, probe, _ = make(vt, cfg, started_at=T0 - 600, initial=old)
        assert mon.health == Health(status="starting", failing_streak=0, log=old.log)
        mon.start()
        await vt.advance_to(T0 + 20)
        assert [c[0] for c in probe.calls] == [T0 + 20]  # start period long over: interval
        assert [e.output for e in mon.health.log] == ["old", "ok"]
        await mon.stop()

    run(scenario)


def test_a_failing_listener_does_not_stop_the_checks():
    def boom(health, event):
        raise ValueError("store down")

    async def scenario(vt):
        probe = Probe(vt)
        mon = HealthMonitor(HealthConfig(test=("CMD", "x"), interval=1.0), probe, boom,
                            clock=vt.clock, sleep=vt.sleep)
        mon.start()
        await vt.advance_to(T0 + 3)
        assert len(probe.calls) == 3 and mon.health.status == "healthy"
        await mon.stop()

    run(scenario)


def test_container_shell_is_used_for_cmd_shell():
    async def scenario(vt):
        mon, probe, _ = make(vt, HealthConfig(test=("CMD-SHELL", "true"), interval=1.0),
                             shell=["/bin/bash", "-euc"])
        mon.start()
        await vt.advance_to(T0 + 1)
        assert probe.calls[0][1] == ["/bin/bash", "-euc", "true"]
        await mon.stop()

    run(scenario)


# --- state -----------------------------------------------------------------------------------

def test_health_docker_json_shape_and_round_trip():
    health = Health(status="healthy", failing_streak=0, log=(
        HealthLogEntry(start=1764309601.5, end=1764309601.75, exit_code=0, output="fine\n"),))
    assert health.to_docker_json() == {
        "Status": "healthy", "FailingStreak": 0,
        "Log": [{"Start": "2025-11-28T06:00:01.5Z", "End": "2025-11-28T06:00:01.75Z",
                 "ExitCode": 0, "Output": "fine\n"}]}
    assert Health.from_docker_json(health.to_docker_json()) == health
    assert Health().to_docker_json() == {"Status": "starting", "FailingStreak": 0, "Log": []}


def test_parse_rfc3339_reads_offsets_and_nanoseconds():
    assert h.parse_rfc3339("2025-11-28T07:00:01.000000001+01:00") == pytest.approx(1764309601.0)
    assert h.parse_rfc3339("2025-11-28T06:00:01Z") == 1764309601.0
    with pytest.raises(InvalidArgument):
        h.parse_rfc3339("yesterday")


def test_ps_text_and_filter_status():
    assert Health(status="starting").ps_text() == "health: starting"
    assert Health(status="unhealthy").ps_text() == "unhealthy"
    assert h.health_status(None) == "none"
    assert h.health_status(Health(status="healthy")) == "healthy"


def test_record_result_failing_streak_grows_past_retries():
    e = HealthLogEntry(start=0, end=0, exit_code=1)
    state = Health(status="unhealthy", failing_streak=3)
    assert h.record_result(state, e, 3, in_start_period=True).failing_streak == 4


@pytest.mark.parametrize("seconds,text", [
    (30, "30s"), (60, "1m0s"), (90, "1m30s"), (1.5, "1.5s"), (0.5, "500ms"), (0.0015, "1.5ms"),
    (3600, "1h0m0s"), (3723.25, "1h2m3.25s"), (0, "0s"), (2e-6, "2\u00b5s"), (5e-9, "5ns"),
])
def test_go_duration(seconds, text):
    assert h.go_duration(seconds) == text


def test_cap_output_counts_bytes_not_characters():
    text = "\u00e9" * 3000  # 6000 bytes
    capped = h.cap_output(text)
    assert capped == "\u00e9" * 2048 + "..."
    assert h.cap_output(b"abc") == "abc"


# --- configuration ---------------------------------------------------------------------------

def test_merge_container_fields_override_the_image_field_by_field():
    image = HealthConfig(test=("CMD", "img"), interval=10.0, timeout=5.0, start_period=1.0,
                         start_interval=2.0, retries=4)
    assert h.merge(image, None) == image
    assert h.merge(None, HealthConfig(test=("CMD", "c"))) == HealthConfig(test=("CMD", "c"))
    assert h.merge(None, None) is None
    assert h.merge(image, HealthConfig(interval=3.0, retries=9)) == HealthConfig(
        test=("CMD", "img"), interval=3.0, timeout=5.0, start_period=1.0, start_interval=2.0,
        retries=9)
    merged = h.merge(image, HealthConfig(test=("CMD-SHELL", "curl -f x")))
    assert merged.test == ("CMD-SHELL", "curl -f x") and merged.interval == 10.0
    disabled = h.merge(image, HealthConfig(test=("NONE",)))
    assert disabled.test == ("NONE",) and not disabled.enabled
    assert not h.merge(HealthConfig(test=("NONE",)), None).enabled


def test_effective_values_use_docker_defaults():
    cfg = HealthConfig(test=("CMD", "x"))
    assert (cfg.effective_interval, cfg.effective_timeout, cfg.effective_start_period,
            cfg.effective_start_interval, cfg.effective_retries) == (30.0, 30.0, 0.0, 5.0, 3)


def test_from_image_accepts_the_image_record_a_dict_or_none():
    rec = Healthcheck(test=("CMD-SHELL", "true"), interval=5_000_000_000, timeout=2_000_000_000,
                      start_period=1_500_000_000, start_interval=100_000_000, retries=2)
    expected = HealthConfig(test=("CMD-SHELL", "true"), interval=5.0, timeout=2.0,
                            start_period=1.5, start_interval=0.1, retries=2)
    assert h.from_image(rec) == expected
    assert h.from_image({"Test": ["CMD-SHELL", "true"], "Interval": 5_000_000_000,
                         "Timeout": 2_000_000_000, "StartPeriod": 1_500_000_000,
                         "StartInterval": 100_000_000, "Retries": 2}) == expected
    assert h.from_image(None) is None


def test_config_docker_json_omits_zero_fields_and_round_trips():
    cfg = HealthConfig(test=("CMD", "x"), interval=1.5, retries=2)
    assert cfg.to_docker_json() == {"Test": ["CMD", "x"], "Interval": 1_500_000_000, "Retries": 2}
    assert HealthConfig.from_docker_json(cfg.to_docker_json()) == cfg
    assert HealthConfig().to_docker_json() == {}
    assert HealthConfig.from_docker_json({"test": ["NONE"], "interval": None}) == HealthConfig(
        test=("NONE",))
    assert HealthConfig.from_docker_json(None) is None


@pytest.mark.parametrize("body,field", [
    ({"Test": "CMD true"}, "Healthcheck.Test"), ({"Test": [1]}, "Healthcheck.Test"),
    ({"Interval": "30s"}, "Healthcheck.Interval"), ({"Retries": 1.5}, "Healthcheck.Retries"),
    ([], "Healthcheck"),
])
def test_config_docker_json_type_errors_name_the_field(body, field):
    with pytest.raises(InvalidArgument, match=field):
        HealthConfig.from_docker_json(body)


@pytest.mark.parametrize("cfg,message", [
    (HealthConfig(interval=0.0005), "Interval in Healthcheck cannot be less than 1ms"),
    (HealthConfig(timeout=-1.0), "Timeout in Healthcheck cannot be less than 1ms"),
    (HealthConfig(start_period=1e-6), "StartPeriod in Healthcheck cannot be less than 1ms"),
    (HealthConfig(start_interval=1e-4), "StartInterval in Healthcheck cannot be less than 1ms"),
    (HealthConfig(retries=-1), "Retries in Healthcheck cannot be negative"),
])
def test_validate_refuses_what_docker_refuses(cfg, message):
    with pytest.raises(InvalidArgument, match=message):
        h.validate(cfg)


def test_validate_accepts_defaults_and_minimums():
    h.validate(None)
    h.validate(HealthConfig(test=("CMD", "x"), interval=0.001, timeout=0.0, retries=0))


def test_command_forms():
    assert h.command(HealthConfig(test=("CMD", "a", "b c"))) == ["a", "b c"]
    assert h.command(HealthConfig(test=("CMD-SHELL", "a && b"))) == ["/bin/sh", "-c", "a && b"]
    with pytest.raises(InvalidArgument):
        h.command(HealthConfig(test=("NONE",)))


def test_from_cli_follows_docker_cli():
    assert h.from_cli() is None
    assert h.from_cli(no_healthcheck=True) == HealthConfig(test=("NONE",))
    assert h.from_cli(cmd="curl -f localhost", interval=5.0, retries=2) == HealthConfig(
        test=("CMD-SHELL", "curl -f localhost"), interval=5.0, retries=2)
    assert h.from_cli(timeout=3.0) == HealthConfig(timeout=3.0)  # keeps the image's command
    with pytest.raises(InvalidArgument, match="--no-healthcheck conflicts with --health-"):
        h.from_cli(cmd="true", no_healthcheck=True)
    with pytest.raises(InvalidArgument, match="--health-retries cannot be negative"):
        h.from_cli(retries=-1)
