"""``engine.restart``: restart policies, Docker's restart decisions and back-off, the decision at
daemon start, and the back-off scheduler driven by a fake sleep."""

from __future__ import annotations

import asyncio

import pytest

from dockyard.engine.restart import (
    RestartPolicy,
    RestartScheduler,
    RestartTracker,
    restart_on_daemon_start,
)
from dockyard.errors import InvalidArgument

# --- policy ----------------------------------------------------------------------------------


@pytest.mark.parametrize("text,name,retries", [
    ("no", "no", 0), ("", "no", 0), ("always", "always", 0), ("unless-stopped", "unless-stopped", 0),
    ("on-failure", "on-failure", 0), ("on-failure:3", "on-failure", 3),
    ("on-failure:0", "on-failure", 0), ("always:0", "always", 0),
])
def test_parse_cli_form(text, name, retries):
    assert RestartPolicy.parse(text) == RestartPolicy(name=name, max_retries=retries)


@pytest.mark.parametrize("text,message", [
    ("always:3", "maximum retry count cannot be used with restart policy 'always'"),
    ("unless-stopped:1", "maximum retry count cannot be used with restart policy 'unless-stopped'"),
    ("no:2", "maximum retry count cannot be used with restart policy 'no'"),
    ("on-failure:x", "invalid restart policy format: maximum retry count must be an integer"),
    ("on-failure:-1", "maximum retry count cannot be negative"),
    (":3", "invalid restart policy format: no policy provided before colon"),
    ("on-failure:1:2", "invalid restart policy format"),
    ("sometimes", "invalid restart policy 'sometimes'"),
])
def test_parse_refuses_what_docker_refuses(text, message):
    with pytest.raises(InvalidArgument, match=message):
        RestartPolicy.parse(text)


def test_validate_refuses_a_restart_policy_with_auto_remove():
    with pytest.raises(InvalidArgument, match="can't create 'AutoRemove' container with restart"):
        RestartPolicy(name="always").validate(auto_remove=True)
    RestartPolicy(name="no").validate(auto_remove=True)
    RestartPolicy(name="").validate(auto_remove=True)  # what old API clients send


def test_docker_json_round_trip_and_type_errors():
    p = RestartPolicy(name="on-failure", max_retries=5)
    assert p.to_docker_json() == {"Name": "on-failure", "MaximumRetryCount": 5}
    assert RestartPolicy.from_docker_json(p.to_docker_json()) == p
    assert RestartPolicy.from_docker_json(None) == RestartPolicy()
    assert RestartPolicy.from_docker_json({"name": "always"}) == RestartPolicy(name="always")
    assert RestartPolicy.from_docker_json({}).is_none
    with pytest.raises(InvalidArgument, match="RestartPolicy.MaximumRetryCount"):
        RestartPolicy.from_docker_json({"Name": "on-failure", "MaximumRetryCount": "3"})
    with pytest.raises(InvalidArgument, match="RestartPolicy.Name"):
        RestartPolicy.from_docker_json({"Name": 1})


# --- tracker ---------------------------------------------------------------------------------

def test_no_never_restarts():
    t = RestartTracker(RestartPolicy.parse("no"))
    assert t.should_restart(1) == (False, 0.0)
    assert t.should_restart(0) == (False, 0.0)
    assert t.restart_count == 0


@pytest.mark.parametrize("name", ["always", "unless-stopped"])
def test_always_and_unless_stopped_restart_on_any_exit_but_a_stop(name):
    t = RestartTracker(RestartPolicy(name=name))
    assert t.should_restart(0) == (True, 0.1)
    assert t.should_restart(137) == (True, 0.2)
    assert t.should_restart(0, manually_stopped=True) == (False, 0.0)
    assert t.should_restart(143, daemon_shutdown=True) == (False, 0.0)
    assert t.restart_count == 2


def test_on_failure_restarts_only_failures_up_to_max_retries():
    t = RestartTracker(RestartPolicy.parse("on-failure:3"))
    assert t.should_restart(0) == (False, 0.0)
    assert [t.should_restart(1)[0] for _ in range(5)] == [True, True, True, False, False]
    assert t.restart_count == 3
    assert t.should_restart(2, manually_stopped=True) == (False, 0.0)


def test_on_failure_zero_means_unlimited_and_persisted_count_is_honoured():
    unlimited = RestartTracker(RestartPolicy.parse("on-failure"))
    assert all(unlimited.should_restart(1)[0] for _ in range(50))
    assert unlimited.restart_count == 50
    resumed = RestartTracker(RestartPolicy.parse("on-failure:3"), restart_count=2)
    assert resumed.should_restart(1)[0] is True
    assert resumed.should_restart(1)[0] is False


def test_backoff_doubles_up_to_one_minute_and_resets_after_a_ten_second_run():
    t = RestartTracker(RestartPolicy(name="always"))
    delays = [t.should_restart(1, run_seconds=0.5)[1] for _ in range(12)]
    assert delays[:4] == [0.1, 0.2, 0.4, 0.8]
    assert delays[-3:] == [51.2, 60.0, 60.0]
    assert t.should_restart(1, run_seconds=9.9)[1] == 60.0
    assert t.should_restart(1, run_seconds=10.0) == (True, 0.1)
    assert t.should_restart(1, run_seconds=1.0) == (True, 0.2)
    assert t.delay == 0.2


def test_reset_after_a_user_start_clears_count_and_delay():
    t = RestartTracker(RestartPolicy(name="on-failure", max_retries=2))
    t.should_restart(1)
    t.should_restart(1)
    assert t.should_restart(1)[0] is False
    t.reset()
    assert t.restart_count == 0
    assert t.should_restart(1) == (True, 0.1)


# --- daemon start ----------------------------------------------------------------------------

@pytest.mark.parametrize("policy,exit_code,manually_stopped,expected", [
    ("no", 1, False, False),
    ("always", 0, False, True), ("always", 143, False, True),
    ("always", 0, True, True),  # Docker: a stopped "always" container comes back with the daemon
    ("unless-stopped", 143, False, True), ("unless-stopped", 0, True, False),
    ("on-failure", 1, False, True), ("on-failure", 0, False, False),
    ("on-failure", 137, True, False),  # a user's stop stays respected (see the module doc)
])
def test_restart_on_daemon_start(policy, exit_code, manually_stopped, expected):
    assert restart_on_daemon_start(RestartPolicy(name=policy), exit_code=exit_code,
                                   manually_stopped=manually_stopped) is expected


def test_daemon_start_skips_never_started_containers_and_spent_retries():
    assert not restart_on_daemon_start(RestartPolicy(name="always"), exit_code=0,
                                       manually_stopped=False, has_been_started=False)
    assert not restart_on_daemon_start(RestartPolicy.parse("on-failure:2"), exit_code=1,
                                       manually_stopped=False, restart_count=2)
    assert restart_on_daemon_start(RestartPolicy.parse("on-failure:2"), exit_code=1,
                                   manually_stopped=False, restart_count=1)


# --- scheduler -------------------------------------------------------------------------------

class GatedSleep:
    """A sleep that ends only when the test opens its gate; records the delays asked for."""

    def __init__(self) -> None:
        self.delays: list[float] = []
        self._gates: list[asyncio.Future] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        gate = asyncio.get_running_loop().create_future()
        self._gates.append(gate)
        await gate

    def open_all(self) -> None:
        for g in self._gates:
            if not g.done():
                g.set_result(None)


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


def test_scheduled_restart_runs_after_its_delay():
    async def scenario():
        sleep = GatedSleep()
        sched = RestartScheduler(sleep=sleep)
        started: list[str] = []

        async def restart():
            started.append("c1")

        sched.schedule("c1", 0.4, restart)
        await settle()
        assert sleep.delays == [0.4] and started == [] and sched.pending("c1")
        sleep.open_all()
        await settle()
        assert started == ["c1"] and not sched.pending("c1")
        assert sched.cancel("c1") is False
        await sched.close()

    asyncio.run(scenario())


def test_cancel_during_backoff_prevents_the_restart():
    async def scenario():
        sleep = GatedSleep()
        sched = RestartScheduler(sleep=sleep)
        started: list[str] = []

        async def restart():
            started.append("c1")

        sched.schedule("c1", 60.0, restart)
        await settle()
        assert sched.cancel("c1") is True
        assert not sched.pending("c1")
        sleep.open_all()
        await settle()
        assert started == []
        assert sched.cancel("c1") is False
        await sched.close()

    asyncio.run(scenario())


def test_rescheduling_replaces_the_pending_restart():
    async def scenario():
        sleep = GatedSleep()
        sched = RestartScheduler(sleep=sleep)
        calls: list[str] = []

        def restarter(tag):
            async def restart():
                calls.append(tag)
            return restart

        sched.schedule("c1", 0.1, restarter("first"))
        sched.schedule("c1", 0.2, restarter("second"))
        sched.schedule("c2", 0.1, restarter("other"))
        await settle()
        sleep.open_all()
        await settle()
        assert sorted(calls) == ["other", "second"]
        await sched.close()

    asyncio.run(scenario())


def test_a_failed_restart_is_reported_not_lost():
    async def scenario():
        sleep = GatedSleep()
        errors: list[tuple[str, str]] = []
        sched = RestartScheduler(sleep=sleep, on_error=lambda cid, exc: errors.append(
            (cid, str(exc))))

        async def restart():
            raise RuntimeError("runtime create failed")

        sched.schedule("c1", 0.1, restart)
        await settle()
        sleep.open_all()
        await settle()
        assert errors == [("c1", "runtime create failed")]
        await sched.close()

    asyncio.run(scenario())


def test_close_cancels_backoffs_and_waits_for_restarts_under_way():
    async def scenario():
        sleep = GatedSleep()
        sched = RestartScheduler(sleep=sleep)
        finish = asyncio.get_running_loop().create_future()
        done: list[str] = []

        async def slow_restart():
            await finish
            done.append("slow")

        async def never():
            done.append("never")

        sched.schedule("slow", 0.1, slow_restart)
        await settle()
        sleep.open_all()
        await settle()  # "slow" is now restarting; "idle" is still backing off
        sched.schedule("idle", 30.0, never)
        await settle()
        closing = asyncio.ensure_future(sched.close())
        await settle()
        assert not closing.done() and not sched.pending("idle")
        finish.set_result(None)
        await closing
        sleep.open_all()
        await settle()
        assert done == ["slow"]
        with pytest.raises(RuntimeError, match="closed"):
            sched.schedule("late", 0.1, never)

    asyncio.run(scenario())
