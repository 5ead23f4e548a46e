"""Health checks: Docker's HEALTHCHECK configuration, the per-container health state and the asyncio
runner that probes a running container (moby ``daemon/health.go``).

Three parts, each usable on its own:

- :class:`HealthConfig` — the image's HEALTHCHECK and the container's ``Config.Healthcheck`` /
  ``--health-*`` flags, :func:`merge` of the two (field by field, the container's non-zero fields
  win), :func:`command` (the argv to exec in the container) and :func:`validate` (Docker's 400s).
- :class:`Health` — ``State.Health`` of ``inspect``: status, failing streak, the last 5 probe
  results; ``to_docker_json`` / ``from_docker_json`` for the API and for persisting it.
- :class:`HealthMonitor` — started when the container starts, stopped when it stops. Every effect
  is injected: ``run_check(argv, timeout)`` execs the probe (and must kill it at ``timeout``),
  ``on_change(health, event)`` publishes/persists, ``clock`` and ``sleep`` keep tests fast.

Docker's rules kept here: the first probe runs one interval after the start (``start_interval``
while inside ``start_period`` and still ``starting``); a failure inside the start period does not
count while the container has never been healthy; ``retries`` consecutive failures make it
``unhealthy``; one success makes it ``healthy``; any exit code but 0 is a failure; a probe past its
timeout fails with exit code -1 and ``Health check exceeded timeout (30s)``; output is capped at
4096 bytes (``...`` appended); stopping the monitor leaves the status ``unhealthy`` (moby does so
"for compatibility").
"""

from __future__ import annotations

import asyncio
import logging
import time

from dockyard.errors import InvalidArgument
from dockyard.record import Record, replace

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from typing import Any

    RunCheck = Callable[[list[str], float], Awaitable[tuple[int, "str | bytes"]]]
    OnChange = Callable[["Health", "str | None"], None]

DEFAULT_INTERVAL = 30.0
DEFAULT_TIMEOUT = 30.0
DEFAULT_START_PERIOD = 0.0
DEFAULT_START_INTERVAL = 5.0
DEFAULT_RETRIES = 3
#: moby ``maxLogEntries`` and ``maxOutputLen``.
MAX_LOG_ENTRIES = 5
MAX_OUTPUT_LEN = 4096
#: moby ``containertypes.MinimumDuration``: a set duration may not be shorter.
MINIMUM_DURATION = 0.001
DEFAULT_SHELL = ("/bin/sh", "-c")

STARTING = "starting"
HEALTHY = "healthy"
UNHEALTHY = "unhealthy"
NONE = "none"

_log = logging.getLogger(__name__)


# --- configuration ---------------------------------------------------------------------------

class HealthConfig(Record):
    """Docker's ``HealthConfig``. ``test``: ``()`` (inherit the image's), ``("NONE",)`` (disabled),
    ``("CMD", arg, ...)`` or ``("CMD-SHELL", command)``. Durations in seconds; 0 means "the
    default" (and, for :func:`merge`, "not set"), so the record keeps what the user gave and
    ``inspect`` shows it unchanged; the ``effective_*`` properties apply the defaults."""

    test: tuple[str, ...] = ()
    interval: float = 0.0
    timeout: float = 0.0
    start_period: float = 0.0
    start_interval: float = 0.0
    retries: int = 0

    @property
    def enabled(self) -> bool:
        """A probe runs: ``CMD`` or ``CMD-SHELL`` (moby ignores unknown kinds with a warning)."""
        return bool(self.test) and self.test[0] in ("CMD", "CMD-SHELL")

    @property
    def effective_interval(self) -> float:
        return self.interval or DEFAULT_INTERVAL

    @property
    def effective_timeout(self) -> float:
        return self.timeout or DEFAULT_TIMEOUT

    @property
    def effective_start_period(self) -> float:
        return self.start_period or DEFAULT_START_PERIOD

    @property
    def effective_start_interval(self) -> float:
        return self.start_interval or DEFAULT_START_INTERVAL

    @property
    def effective_retries(self) -> int:
        return self.retries if self.retries > 0 else DEFAULT_RETRIES

    def to_docker_json(self) -> dict:
        """``Config.Healthcheck`` as the API shows it: nanoseconds, zero fields omitted."""
        out: dict = {}
        if self.test:
            out["Test"] = list(self.test)
        for key, seconds in (("Interval", self.interval), ("Timeout", self.timeout),
                             ("StartPeriod", self.start_period),
                             ("StartInterval", self.start_interval)):
            if seconds:
                out[key] = _to_ns(seconds)
        if self.retries:
            out["Retries"] = self.retries
        return out

    @classmethod
    def from_docker_json(cls, d: Any, path: str = "Healthcheck") -> HealthConfig | None:
        """From the API's ``Config.Healthcheck`` (or an image config's ``Healthcheck``): durations
        in nanoseconds; ``null`` gives None. Keys match case-insensitively, as Go's decoder does.
        Type errors raise ``InvalidArgument`` naming the field; ranges are :func:`validate`'s."""
        if d is None:
            return None
        if not isinstance(d, dict):
            raise InvalidArgument(f"{path}: expected an object, got {_json_type(d)}")
        fold = {k.lower(): k for k in d}

        def get(key: str) -> Any:
            return d[key] if key in d else d.get(fold.get(key.lower(), key))

        test = get("Test")
        if test is None:
            test = []
        if not isinstance(test, list) or not all(isinstance(t, str) for t in test):
            raise InvalidArgument(f"{path}.Test: expected an array of strings")
        values: dict = {}
        for key, field in (("Interval", "interval"), ("Timeout", "timeout"),
                           ("StartPeriod", "start_period"), ("StartInterval", "start_interval"),
                           ("Retries", "retries")):
            v = get(key)
            if v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v != int(v):
                raise InvalidArgument(f"{path}.{key}: expected an integer, got {_json_type(v)}")
            values[field] = int(v) if field == "retries" else int(v) / 1e9
        return cls(test=tuple(test), **values)


def from_image(healthcheck: Any) -> HealthConfig | None:
    """The image config's HEALTHCHECK: None, a Docker-JSON dict (nanoseconds), or
    ``dockyard.oci.image_config.Healthcheck`` (nanoseconds, as images store them)."""
    if healthcheck is None or isinstance(healthcheck, HealthConfig):
        return healthcheck
    if isinstance(healthcheck, dict):
        return HealthConfig.from_docker_json(healthcheck, "image config Healthcheck")
    return HealthConfig(
        test=tuple(healthcheck.test), interval=healthcheck.interval / 1e9,
        timeout=healthcheck.timeout / 1e9, start_period=healthcheck.start_period / 1e9,
        start_interval=healthcheck.start_interval / 1e9, retries=healthcheck.retries)


def from_cli(cmd: str = "", interval: float = 0.0, timeout: float = 0.0, retries: int = 0,
             start_period: float = 0.0, start_interval: float = 0.0,
             no_healthcheck: bool = False) -> HealthConfig | None:
    """``docker run --health-cmd/--health-interval/.../--no-healthcheck`` (docker/cli's rules):
    None when no flag is given (the image's check applies); ``--health-cmd`` becomes
    ``CMD-SHELL``; a duration flag alone keeps the image's command."""
    given = bool(cmd) or any((interval, timeout, retries, start_period, start_interval))
    if no_healthcheck:
        if given:
            raise InvalidArgument("--no-healthcheck conflicts with --health-* options")
        return HealthConfig(test=("NONE",))
    if not given:
        return None
    for flag, value in (("interval", interval), ("timeout", timeout), ("retries", retries),
                        ("start-period", start_period), ("start-interval", start_interval)):
        if value < 0:
            raise InvalidArgument(f"--health-{flag} cannot be negative")
    return HealthConfig(test=("CMD-SHELL", cmd) if cmd else (), interval=interval,
                        timeout=timeout, start_period=start_period,
                        start_interval=start_interval, retries=retries)


def validate(cfg: HealthConfig | None) -> None:
    """The engine's checks at create (moby ``validateHealthCheck``), raising ``InvalidArgument``
    with Docker's text, e.g. ``Interval in Healthcheck cannot be less than 1ms``."""
    if cfg is None:
        return
    for name, value in (("Interval", cfg.interval), ("Timeout", cfg.timeout),
                        ("StartPeriod", cfg.start_period), ("StartInterval", cfg.start_interval)):
        if value != 0 and value < MINIMUM_DURATION:
            raise InvalidArgument(f"{name} in Healthcheck cannot be less than 1ms")
    if cfg.retries < 0:
        raise InvalidArgument("Retries in Healthcheck cannot be negative")


def merge(image: HealthConfig | None, container: HealthConfig | None) -> HealthConfig | None:
    """The container's effective check (moby ``daemon.merge``): no container config → the
    image's; otherwise each zero/empty container field takes the image's value. A container
    ``("NONE",)`` stays (and disables); an empty container ``test`` inherits the image's."""
    if container is None:
        return image
    if image is None:
        return container
    return HealthConfig(
        test=container.test or image.test,
        interval=container.interval or image.interval,
        timeout=container.timeout or image.timeout,
        start_period=container.start_period or image.start_period,
        start_interval=container.start_interval or image.start_interval,
        retries=container.retries or image.retries,
    )


def command(cfg: HealthConfig, shell: tuple[str, ...] | list[str] = ()) -> list[str]:
    """The argv to exec in the container: ``CMD a b`` → ``[a, b]``; ``CMD-SHELL c`` →
    ``[*shell, c]`` where ``shell`` is the container's ``Config.Shell`` or ``/bin/sh -c``."""
    if not cfg.enabled:
        raise InvalidArgument(f"health check {list(cfg.test)!r}: not a CMD or CMD-SHELL check")
    args = list(cfg.test[1:])
    if cfg.test[0] == "CMD-SHELL":
        return [*(shell or DEFAULT_SHELL), *args]
    return args


# --- state -----------------------------------------------------------------------------------

class HealthLogEntry(Record):
    """One probe: wall-clock start and end (epoch seconds), exit code, output (capped)."""

    start: float
    end: float
    exit_code: int
    output: str = ""

    def to_docker_json(self) -> dict:
        return {"Start": rfc3339nano(self.start), "End": rfc3339nano(self.end),
                "ExitCode": self.exit_code, "Output": self.output}


class Health(Record):
    """``State.Health``. ``status``: ``starting`` | ``healthy`` | ``unhealthy`` | ``none`` (the
    last is the ``ps --filter health=none`` value for a container without a check; ``inspect``
    then has no ``Health`` at all)."""

    status: str = STARTING
    failing_streak: int = 0
    log: tuple[HealthLogEntry, ...] = ()

    def to_docker_json(self) -> dict:
        return {"Status": self.status, "FailingStreak": self.failing_streak,
                "Log": [e.to_docker_json() for e in self.log]}

    @classmethod
    def from_docker_json(cls, d: dict) -> Health:
        """Back from ``to_docker_json`` (for state persisted as Docker JSON)."""
        log = tuple(HealthLogEntry(start=parse_rfc3339(e["Start"]), end=parse_rfc3339(e["End"]),
                                   exit_code=int(e["ExitCode"]), output=e.get("Output") or "")
                    for e in d.get("Log") or ())
        return cls(status=d.get("Status") or STARTING,
                   failing_streak=int(d.get("FailingStreak") or 0), log=log)

    def ps_text(self) -> str:
        """What ``ps`` shows in parentheses after ``Up 2 minutes``."""
        return "health: starting" if self.status == STARTING else self.status


def health_status(health: Health | None) -> str:
    """The ``ps --filter health=`` value: the status, or ``none`` without a health check."""
    return NONE if health is None else health.status


def cap_output(output: str | bytes) -> str:
    """Docker's ``limitedBuffer``: at most 4096 bytes of output, then ``...`` when cut."""
    data = output.encode("utf-8", "replace") if isinstance(output, str) else bytes(output)
    if len(data) <= MAX_OUTPUT_LEN:
        return data.decode("utf-8", "replace")
    return data[:MAX_OUTPUT_LEN].decode("utf-8", "ignore") + "..."


def record_result(health: Health, entry: HealthLogEntry, retries: int,
                  in_start_period: bool) -> Health:
    """The state after one probe (moby ``handleProbeResult``). ``in_start_period``: the probe
    started inside the container's start period; then a failure while still ``starting`` does
    not count. Pure."""
    log = (*health.log, entry)[-MAX_LOG_ENTRIES:]
    if entry.exit_code == 0:
        return Health(status=HEALTHY, failing_streak=0, log=log)
    if health.status == STARTING and in_start_period:
        return Health(status=health.status, failing_streak=health.failing_streak, log=log)
    streak = health.failing_streak + 1
    status = UNHEALTHY if streak >= retries else health.status
    return Health(status=status, failing_streak=streak, log=log)


# --- runner ----------------------------------------------------------------------------------

class HealthMonitor:
    """Probes one running container until :meth:`stop`.

    ``run_check(argv, timeout)`` execs ``argv`` in the container and returns ``(exit_code,
    output)``; it must kill the probe at ``timeout`` seconds (the monitor also gives up on it
    then, cancelling the coroutine, so a hung ``run_check`` cannot stall the loop). An exception
    from it is a failed probe with exit code -1 and the error as output, as in moby.
    ``on_change(health, event)`` runs after every probe; ``event`` is ``"health_status: healthy"``
    / ``"health_status: unhealthy"`` when the status changed, else None. ``started_at``: the
    container's ``StartedAt`` (epoch seconds; default: ``clock()`` at :meth:`start`), so that a
    monitor re-attached after a daemon restart keeps the start period right. ``initial``: the
    persisted health, whose log is kept (moby keeps it across restarts); status and streak reset
    to ``starting``/0. A disabled ``cfg`` (None, ``NONE``, no test) makes a monitor that does
    nothing and whose ``health`` is None.
    """

    def __init__(self, cfg: HealthConfig | None, run_check: RunCheck, on_change: OnChange, *,
                 clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
                 shell: tuple[str, ...] | list[str] = (), started_at: float | None = None,
                 initial: Health | None = None) -> None:
        self._cfg = cfg if cfg is not None and cfg.enabled else None
        self._run_check = run_check
        self._on_change = on_change
        self._clock = clock
        self._sleep = sleep
        self._argv = command(self._cfg, shell) if self._cfg is not None else []
        self._started_at = started_at
        self._health: Health | None = None
        if self._cfg is not None:
            self._health = Health(status=STARTING, failing_streak=0,
                                  log=initial.log if initial is not None else ())
        self._task: asyncio.Task | None = None

    @property
    def health(self) -> Health | None:
        """The current state (``starting`` right after :meth:`start`); None when disabled."""
        return self._health

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start probing (needs a running event loop). A second call does nothing."""
        if self._cfg is None or self._task is not None:
            return
        if self._started_at is None:
            self._started_at = self._clock()
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> Health | None:
        """Stop probing (a probe in flight is cancelled and its result dropped) and return the
        final state: ``unhealthy``, as moby leaves a stopped container's health. The caller
        persists it with the container's stopped state; ``on_change`` is not called."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
            except Exception:  # noqa: BLE001 - the loop logs its own errors; never fail a stop
                _log.exception("health monitor ended with an error")
        if self._health is not None and task is not None:
            self._health = replace(self._health, status=UNHEALTHY)
        return self._health

    def _in_start_period(self, at: float) -> bool:
        assert self._cfg is not None and self._started_at is not None
        return at - self._started_at < self._cfg.effective_start_period

    def _next_interval(self) -> float:
        assert self._cfg is not None and self._health is not None
        if self._health.status == STARTING and self._in_start_period(self._clock()):
            return self._cfg.effective_start_interval
        return self._cfg.effective_interval

    async def _loop(self) -> None:
        cfg = self._cfg
        assert cfg is not None
        while True:
            await self._sleep(self._next_interval())
            entry = await self._probe(cfg)
            self._handle(cfg, entry)

    async def _probe(self, cfg: HealthConfig) -> HealthLogEntry:
        timeout = cfg.effective_timeout
        start = self._clock()
        check = asyncio.ensure_future(self._run_check(list(self._argv), timeout))
        timer = asyncio.ensure_future(self._sleep(timeout))
        try:
            await asyncio.wait((check, timer), return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            _abandon(check)
            timer.cancel()
            raise
        timer.cancel()
        if not check.done():
            _abandon(check)
            return HealthLogEntry(start=start, end=self._clock(), exit_code=-1,
                                  output=f"Health check exceeded timeout ({go_duration(timeout)})")
        exc = check.exception()
        if exc is not None:
            return HealthLogEntry(start=start, end=self._clock(), exit_code=-1,
                                  output=cap_output(str(exc) or type(exc).__name__))
        exit_code, output = check.result()
        return HealthLogEntry(start=start, end=self._clock(), exit_code=int(exit_code),
                              output=cap_output(output))

    def _handle(self, cfg: HealthConfig, entry: HealthLogEntry) -> None:
        old = self._health
        assert old is not None
        new = record_result(old, entry, cfg.effective_retries, self._in_start_period(entry.start))
        self._health = new
        event = f"health_status: {new.status}" if new.status != old.status else None
        try:
            self._on_change(new, event)
        except Exception:  # noqa: BLE001 - a failing listener must not end the checks
            _log.exception("health on_change callback failed")


def _abandon(task: asyncio.Future) -> None:
    """Cancel a probe we no longer wait for; swallow its eventual result or error."""
    task.cancel()
    task.add_done_callback(lambda t: t.cancelled() or t.exception())


# --- formatting helpers ----------------------------------------------------------------------

def _to_ns(seconds: float) -> int:
    return int(round(seconds * 1e9))


def _json_type(v: Any) -> str:
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"
    return {str: "string", list: "array", dict: "object"}.get(type(v), type(v).__name__)


def _frac(n: int, unit: int) -> str:
    whole, rest = divmod(n, unit)
    if not rest:
        return str(whole)
    digits = str(rest).rjust(len(str(unit)) - 1, "0").rstrip("0")
    return f"{whole}.{digits}"


def go_duration(seconds: float) -> str:
    """Go's ``time.Duration.String()``: ``30s``, ``1m0s``, ``1.5s``, ``500ms``, ``1h0m0s``."""
    ns = _to_ns(seconds)
    if ns == 0:
        return "0s"
    sign, ns = ("-", -ns) if ns < 0 else ("", ns)
    if ns < 1000:
        return f"{sign}{ns}ns"
    if ns < 1_000_000:
        return f"{sign}{_frac(ns, 1000)}\u00b5s"
    if ns < 1_000_000_000:
        return f"{sign}{_frac(ns, 1_000_000)}ms"
    hours, rest = divmod(ns, 3600 * 10**9)
    minutes, rest = divmod(rest, 60 * 10**9)
    out = f"{_frac(rest, 10**9)}s"
    if hours or minutes:
        out = f"{minutes}m{out}"
    if hours:
        out = f"{hours}h{out}"
    return sign + out


def rfc3339nano(t: float) -> str:
    """Go's RFC3339Nano in UTC (trailing zeros of the fraction dropped):
    ``2026-11-28T06:00:01.5Z``. A float epoch holds microseconds, so that is the precision."""
    whole, frac = divmod(round(t * 1e6), 10**6)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
    if frac:
        text += "." + f"{frac:06d}".rstrip("0")
    return text + "Z"


def parse_rfc3339(text: str) -> float:
    """Epoch seconds from an RFC 3339 time with an optional fraction and a ``Z`` or ±hh:mm."""
    import calendar

    s = text.strip()
    offset = 0
    if s.endswith(("Z", "z")):
        s = s[:-1]
    elif len(s) > 6 and s[-6] in "+-" and s[-3] == ":":
        offset = (int(s[-5:-3]) * 3600 + int(s[-2:]) * 60) * (1 if s[-6] == "+" else -1)
        s = s[:-6]
    frac = 0.0
    if "." in s:
        s, digits = s.split(".", 1)
        frac = int(digits) / 10 ** len(digits) if digits else 0.0
    try:
        tm = time.strptime(s, "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        raise InvalidArgument(f"invalid RFC 3339 time {text!r}") from None
    return calendar.timegm(tm) - offset + frac
