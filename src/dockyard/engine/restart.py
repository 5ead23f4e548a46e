"""Restart policies: ``--restart no|always|unless-stopped|on-failure[:N]`` (moby
``restartmanager`` and ``daemon/monitor.go``).

- :class:`RestartPolicy` — the policy record, its CLI form (:meth:`RestartPolicy.parse`), the
  API's ``HostConfig.RestartPolicy`` JSON and the engine's checks at create (:meth:`validate`).
- :class:`RestartTracker` — per container, no I/O: after each exit, whether to restart and after
  what delay; counts ``RestartCount``.
- :func:`restart_on_daemon_start` — which stopped containers the daemon starts when it starts.
- :class:`RestartScheduler` — asyncio timers for the back-off; the container is "restarting"
  while one is pending; cancelled when the user stops or removes the container meanwhile.

Docker's behaviour, kept: the delay starts at 100 ms and doubles with each consecutive restart up
to 1 minute; a run of 10 s or more resets it to 100 ms. ``on-failure`` restarts only on a
non-zero exit, at most N times (0 = no limit). A container the user stopped (``stop``/``kill``)
or that was stopped by the daemon shutting down is not restarted by the exit handler. ``docker
start``/``restart`` by the user resets the count and the delay.

At daemon start (moby ``daemon.restore`` → ``Container.ShouldRestart``), for a container that
was started at least once and is not running: ``always`` restarts it even if the user had stopped
it (Docker's documentation: "If it is manually stopped, it is restarted only when Docker daemon
restarts"); ``unless-stopped`` restarts it unless the user had stopped it; ``on-failure``
restarts it when its last exit was a failure (non-zero) the daemon did not see — it exited while
the daemon was down, and the retry count is not used up — but not when the user had stopped it;
``no`` never. Docker then starts it as a user start would, so ``RestartCount`` goes back to 0.

The ``on-failure`` rule is a choice: Docker's documentation says on-failure "doesn't restart the
container if the daemon restarts", while moby's code restarts any on-failure container whose
last exit code is non-zero, including one the user stopped (exit 137/143; moby#35166, #47846).
Here containers outlive the daemon, so a failure exit while it was down is a missed on-failure
event and is acted on; a user's stop is respected, as the documentation intends.
"""

from __future__ import annotations

import asyncio
import logging

from dockyard.errors import InvalidArgument
from dockyard.record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from typing import Any

NO = "no"
ALWAYS = "always"
UNLESS_STOPPED = "unless-stopped"
ON_FAILURE = "on-failure"
POLICIES = (NO, ALWAYS, UNLESS_STOPPED, ON_FAILURE)

#: moby restartmanager: ``defaultTimeout``, ``maxRestartTimeout``, ``backoffMultiplier``, and
#: the run time after which the back-off starts over.
INITIAL_DELAY = 0.1
MAX_DELAY = 60.0
BACKOFF_MULTIPLIER = 2
RESET_AFTER = 10.0

_log = logging.getLogger(__name__)


class RestartPolicy(Record):
    """``HostConfig.RestartPolicy``. ``name`` ``""`` (what old API clients send) means ``no``."""

    name: str = NO
    max_retries: int = 0

    @property
    def is_none(self) -> bool:
        return self.name in (NO, "")

    @classmethod
    def parse(cls, text: str) -> RestartPolicy:
        """The CLI's ``--restart`` value: ``no``, ``always``, ``unless-stopped``,
        ``on-failure``, ``on-failure:3`` (docker/cli ``ParseRestartPolicy``), then checked as
        the engine does (:meth:`validate`)."""
        name, sep, count = text.partition(":")
        if sep and not name:
            raise InvalidArgument(
                "invalid restart policy format: no policy provided before colon")
        if ":" in count:
            raise InvalidArgument(f"invalid restart policy format: {text!r}")
        retries = 0
        if count:
            try:
                retries = int(count, 10)
            except ValueError:
                raise InvalidArgument(
                    "invalid restart policy format: maximum retry count must be an integer"
                ) from None
        policy = cls(name=name or NO, max_retries=retries)
        policy.validate()
        return policy

    def validate(self, auto_remove: bool = False) -> None:
        """The engine's check at create (moby 20.10 ``verifyContainerSettings``), with Docker's
        texts; ``auto_remove`` is ``--rm`` (``HostConfig.AutoRemove``)."""
        if self.name in (ALWAYS, UNLESS_STOPPED, NO):
            if self.max_retries != 0:
                raise InvalidArgument(
                    f"maximum retry count cannot be used with restart policy '{self.name}'")
        elif self.name == ON_FAILURE:
            if self.max_retries < 0:
                raise InvalidArgument("maximum retry count cannot be negative")
        elif self.name != "":
            raise InvalidArgument(f"invalid restart policy '{self.name}'")
        if auto_remove and not self.is_none:
            raise InvalidArgument("can't create 'AutoRemove' container with restart policy")

    def to_docker_json(self) -> dict:
        return {"Name": self.name, "MaximumRetryCount": self.max_retries}

    @classmethod
    def from_docker_json(cls, d: Any, path: str = "HostConfig.RestartPolicy") -> RestartPolicy:
        """From the API body (None → ``no``). Type errors name the field; call :meth:`validate`
        for the engine's rules."""
        if d is None:
            return cls()
        if not isinstance(d, dict):
            raise InvalidArgument(f"{path}: expected an object")
        fold = {k.lower(): v for k, v in d.items()}
        name = d["Name"] if "Name" in d else fold.get("name")
        count = d["MaximumRetryCount"] if "MaximumRetryCount" in d else fold.get(
            "maximumretrycount")
        if name is None:
            name = ""
        if not isinstance(name, str):
            raise InvalidArgument(f"{path}.Name: expected a string")
        if count is None:
            count = 0
        if isinstance(count, bool) or not isinstance(count, (int, float)) or count != int(count):
            raise InvalidArgument(f"{path}.MaximumRetryCount: expected an integer")
        return cls(name=name, max_retries=int(count))


class RestartTracker:
    """One container's restart manager: feed it every exit, it answers ``(restart, delay)``.

    ``restart_count`` is Docker's ``RestartCount``: automatic restarts since the user last
    started the container; pass the persisted value when re-creating the tracker after a daemon
    restart so ``on-failure:N`` keeps counting. The back-off delay is not persisted (nor is it in
    Docker).
    """

    def __init__(self, policy: RestartPolicy, restart_count: int = 0) -> None:
        self.policy = policy
        self.restart_count = restart_count
        self._delay = 0.0

    @property
    def delay(self) -> float:
        """The delay of the last decided restart (0 before the first)."""
        return self._delay

    def should_restart(self, exit_code: int, *, manually_stopped: bool = False,
                       daemon_shutdown: bool = False,
                       run_seconds: float = 0.0) -> tuple[bool, float]:
        """Decide after an exit. ``manually_stopped``: the user stopped/killed it;
        ``daemon_shutdown``: the daemon stopped it while shutting down; ``run_seconds``: how long
        it ran (``FinishedAt - StartedAt``). On ``True`` the count has been incremented and
        ``delay`` is the back-off in seconds; the caller shows the container as restarting,
        persists ``restart_count`` and schedules the start."""
        if _is_none(self.policy) or manually_stopped or daemon_shutdown:
            return False, 0.0
        if self.policy.name == ON_FAILURE:
            limit = self.policy.max_retries
            restart = exit_code != 0 and (limit == 0 or self.restart_count < limit)
        else:  # always, unless-stopped
            restart = True
        if not restart:
            return False, 0.0
        if run_seconds >= RESET_AFTER or self._delay == 0:
            self._delay = INITIAL_DELAY
        else:
            self._delay = min(self._delay * BACKOFF_MULTIPLIER, MAX_DELAY)
        self.restart_count += 1
        return True, self._delay

    def reset(self) -> None:
        """The user started or restarted the container: count and delay start over."""
        self.restart_count = 0
        self._delay = 0.0


def restart_on_daemon_start(policy: RestartPolicy, *, exit_code: int, manually_stopped: bool,
                            has_been_started: bool = True, restart_count: int = 0) -> bool:
    """Whether the daemon, when it starts, starts this not-running container (see the module
    docstring). ``has_been_started``: it ran at least once (a created-only container stays
    created); ``restart_count``: its persisted ``RestartCount`` (for ``on-failure:N``)."""
    if _is_none(policy) or not has_been_started:
        return False
    if policy.name == ALWAYS:
        return True
    if policy.name == UNLESS_STOPPED:
        return not manually_stopped
    if policy.name == ON_FAILURE:
        limit = policy.max_retries
        return (exit_code != 0 and not manually_stopped
                and (limit == 0 or restart_count < limit))
    return False


def _is_none(policy: Any) -> bool:
    """Any record with ``name``/``max_retries`` is accepted (e.g. a request-parsing copy)."""
    return policy.name in (NO, "")


class RestartScheduler:
    """Back-off timers, one per container: after ``delay`` seconds, ``await restart()``.

    :meth:`cancel` stops a pending back-off (user ``stop``/``rm`` meanwhile); once ``restart()``
    has begun it runs to its end (it is a start, which the container service serializes).
    ``on_error(container_id, exc)`` receives a failed restart (default: logged); Docker then
    leaves the container exited. ``sleep`` is injectable for tests.
    """

    def __init__(self, *, sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
                 on_error: Callable[[str, BaseException], None] | None = None) -> None:
        self._sleep = sleep
        self._on_error = on_error
        self._waiting: dict[str, asyncio.Task] = {}
        self._running: set[asyncio.Task] = set()
        self._closed = False

    def schedule(self, container_id: str, delay: float,
                 restart: Callable[[], Awaitable[None]]) -> None:
        """Start ``container_id``'s back-off (replacing a pending one). Needs a running loop."""
        if self._closed:
            raise RuntimeError("restart scheduler is closed")
        self.cancel(container_id)
        task = asyncio.get_running_loop().create_task(self._run(container_id, delay, restart))
        self._waiting[container_id] = task
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    def pending(self, container_id: str) -> bool:
        """A back-off is in progress: the container's state is ``restarting``."""
        return container_id in self._waiting

    def cancel(self, container_id: str) -> bool:
        """Drop a pending back-off; False when there was none (or the restart already began)."""
        task = self._waiting.pop(container_id, None)
        if task is None:
            return False
        task.cancel()
        return True

    async def close(self) -> None:
        """Cancel every pending back-off and wait for restarts already under way."""
        self._closed = True
        for cid in list(self._waiting):
            self.cancel(cid)
        while self._running:
            await asyncio.gather(*list(self._running), return_exceptions=True)

    async def _run(self, container_id: str, delay: float,
                   restart: Callable[[], Awaitable[None]]) -> None:
        await self._sleep(delay)
        if self._waiting.get(container_id) is not asyncio.current_task():
            return
        del self._waiting[container_id]
        try:
            await restart()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - reported, never lost in a task
            if self._on_error is not None:
                self._on_error(container_id, exc)
            else:
                _log.error("restart of container %s failed: %s", container_id, exc)
