"""A container's state and its Docker-shaped views (inspect, list, wait).

``State`` is a frozen record replaced on every transition; ``TRANSITIONS`` is the state machine
(DESIGN §5): a transition it does not list is a bug, raised as ``Conflict``.

    created ──start──▶ running ──exit──▶ exited ──start──▶ running
       │                 │  ▲                │
       │            pause│  │unpause         │ restart policy: exited ──▶ restarting ──▶ running
       │                 ▼  │                │
       │               paused               ▼
       └────────────────────────────────▶ removing ──▶ (gone)
    any start that fails ──▶ exited (ExitCode 126/127/128, Error set) as dockerd does
"""

from __future__ import annotations

import time

from dockyard.errors import Conflict
from dockyard.record import Record

ZERO_TIME = "0001-01-01T00:00:00Z"

TRANSITIONS: dict[str, frozenset[str]] = {
    "created": frozenset({"running", "removing", "exited"}),
    "running": frozenset({"paused", "exited", "removing"}),
    "paused": frozenset({"running", "exited", "removing"}),
    "exited": frozenset({"running", "restarting", "removing", "exited"}),
    "restarting": frozenset({"running", "exited", "removing"}),
    "removing": frozenset({"exited", "created"}),  # back when a removal fails
    "dead": frozenset({"removing"}),
}


def rfc3339(ts: float) -> str:
    """Docker's RFC 3339 with nanoseconds in UTC (``2024-01-02T03:04:05.123456789Z``)."""
    if ts <= 0:
        return ZERO_TIME
    whole = int(ts)
    nanos = int(round((ts - whole) * 1e9))
    if nanos >= 1_000_000_000:
        whole, nanos = whole + 1, nanos - 1_000_000_000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{nanos:09d}Z"


class State(Record):
    status: str = "created"
    pid: int = 0
    exit_code: int = 0
    error: str = ""
    oom_killed: bool = False
    started_at: float = 0.0
    finished_at: float = 0.0
    monitor_pid: int = 0
    manually_stopped: bool = False  # docker stop/kill by the user: no restart, unless-stopped too

    def to(self, status: str, **changes: object) -> State:
        if status not in TRANSITIONS.get(self.status, frozenset()):
            raise Conflict(f"container state {self.status} cannot become {status}")
        from dockyard.record import replace

        return replace(self, status=status, **changes)

    @property
    def running(self) -> bool:
        return self.status in ("running", "paused")

    def to_json(self) -> dict:
        return {"status": self.status, "pid": self.pid, "exit_code": self.exit_code,
                "error": self.error, "oom_killed": self.oom_killed,
                "started_at": self.started_at, "finished_at": self.finished_at,
                "monitor_pid": self.monitor_pid, "manually_stopped": self.manually_stopped}

    @classmethod
    def from_json(cls, d: dict) -> State:
        return cls(status=str(d.get("status", "created")), pid=int(d.get("pid", 0)),
                   exit_code=int(d.get("exit_code", 0)), error=str(d.get("error", "")),
                   oom_killed=bool(d.get("oom_killed", False)),
                   started_at=float(d.get("started_at", 0.0)),
                   finished_at=float(d.get("finished_at", 0.0)),
                   monitor_pid=int(d.get("monitor_pid", 0)),
                   manually_stopped=bool(d.get("manually_stopped", False)))


def docker_state(state: State, health: dict | None) -> dict:
    """``State`` of ``GET /containers/{id}/json``."""
    out = {"Status": state.status, "Running": state.status in ("running", "paused"),
           "Paused": state.status == "paused", "Restarting": state.status == "restarting",
           "OOMKilled": state.oom_killed, "Dead": state.status == "dead",
           "Pid": state.pid if state.running else 0, "ExitCode": state.exit_code,
           "Error": state.error, "StartedAt": rfc3339(state.started_at),
           "FinishedAt": rfc3339(state.finished_at)}
    if health is not None:
        out["Health"] = health
    return out


def human_duration(seconds: float) -> str:
    """Docker's go-units HumanDuration, as dockerd uses it for the ``Status`` column."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    m = s // 60
    if m == 1:
        return "About a minute"
    if m < 60:
        return f"{m} minutes"
    h = round(s / 3600)
    if h == 1:
        return "About an hour"
    if h < 48:
        return f"{h} hours"
    if h < 24 * 7 * 2:
        return f"{h // 24} days"
    if h < 24 * 30 * 2:
        return f"{h // 24 // 7} weeks"
    if h < 24 * 365 * 2:
        return f"{h // 24 // 30} months"
    return f"{h // 24 // 365} years"


def status_text(state: State, health_status: str | None, now: float) -> str:
    """The ``Status`` column of ``docker ps`` (dockerd's ``State.String``)."""
    if state.status == "paused":
        return f"Up {human_duration(now - state.started_at)} (Paused)"
    if state.status == "running":
        text = f"Up {human_duration(now - state.started_at)}"
        if health_status == "starting":
            return f"{text} (health: starting)"
        if health_status in ("healthy", "unhealthy"):
            return f"{text} ({health_status})"
        return text
    if state.status == "restarting":
        return f"Restarting ({state.exit_code}) {human_duration(now - state.finished_at)} ago"
    if state.status == "removing":
        return "Removal In Progress"
    if state.status == "dead":
        return "Dead"
    if state.status == "created" or state.finished_at <= 0:
        return "Created"
    return f"Exited ({state.exit_code}) {human_duration(now - state.finished_at)} ago"
