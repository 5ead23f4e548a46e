"""``Container``: one container as the daemon holds it in memory, and its persisted document.

The document (JSON in ``containers.state``) keeps the create request exactly as the client sent
it (``Request``), so that the typed request is rebuilt by the same parser after a daemon restart,
plus what the engine learned (merged ``Config`` for inspect, process ``Path``/``Args``, volumes)
and the ``State``.
"""

from __future__ import annotations

import asyncio

from dockyard.engine.model import State
from dockyard.leanjson import dumps, loads

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dockyard.engine.create_request import CreateRequest


class Container:
    """Mutable: ``state`` is replaced on each transition (``State.to`` checks it); ``lock``
    serializes start/stop/kill/remove of this container; waiters are futures resolved on exit
    (``next-exit``) and on removal (``removed``)."""

    def __init__(self, *, id: str, name: str, created: float, image_id: str, image_name: str,
                 request: dict, req: CreateRequest, config: dict, host_config: dict, path: str,
                 args: list[str], stop_signal: int, state: State, runtime: str,
                 restart_count: int = 0, volumes: dict[str, str] | None = None,
                 anonymous_volumes: list[str] | None = None, health: dict | None = None) -> None:
        self.id = id
        self.name = name
        self.created = created
        self.image_id = image_id
        self.image_name = image_name
        self.request = request
        self.req = req
        self.config = config
        self.host_config = host_config
        self.path = path
        self.args = args
        self.stop_signal = stop_signal
        self.state = state
        self.runtime = runtime
        self.restart_count = restart_count
        self.volumes = volumes or {}
        self.anonymous_volumes = anonymous_volumes or []
        self.health = health
        self.lock = asyncio.Lock()
        self.exit_waiters: list[asyncio.Future[int]] = []
        self.removed_waiters: list[asyncio.Future[int]] = []
        self.attach_waiters: list[tuple[asyncio.Future[None], asyncio.Future[None]]] = []
        self.watch = None
        self.health_monitor = None
        self.restart_pending = False
        self.stopping = False
        self.attachments: list = []  # network attachments (engine/networking.py), from the DB
        self.net_ifaces: dict[str, str] = {}  # network id -> host veth, while running

    def document(self) -> str:
        return dumps({
            "Request": self.request, "Config": self.config, "HostConfig": self.host_config,
            "Path": self.path, "Args": self.args, "ImageName": self.image_name,
            "StopSignal": self.stop_signal, "State": self.state.to_json(),
            "Runtime": self.runtime, "RestartCount": self.restart_count,
            "Volumes": self.volumes, "AnonymousVolumes": self.anonymous_volumes,
            "Health": self.health, "NetIfaces": self.net_ifaces})

    @classmethod
    def from_document(cls, *, id: str, name: str, created: float, image_id: str, text: str,
                      parse) -> Container:  # noqa: ANN001 - parse_create
        d = loads(text)
        req = parse(d["Request"], name=name)
        covered = {m.destination for m in req.mounts}
        extra = [dest for dest in (d.get("Volumes") or {}) if dest not in covered]
        if extra:  # the image's VOLUMEs, added at create (engine/service.py with_image_volumes)
            from dockyard.engine.create_mounts import MountRequest
            from dockyard.record import replace

            req = replace(req, mounts=(*req.mounts, *(
                MountRequest(kind="volume", destination=dest, origin="image") for dest in extra)))
        c = cls(id=id, name=name, created=created, image_id=image_id,
                   image_name=d.get("ImageName", ""), request=d["Request"], req=req,
                   config=d.get("Config") or {}, host_config=d.get("HostConfig") or {},
                   path=d.get("Path", ""), args=list(d.get("Args") or ()),
                   stop_signal=int(d.get("StopSignal", 15)), state=State.from_json(d["State"]),
                   runtime=d.get("Runtime", ""), restart_count=int(d.get("RestartCount", 0)),
                   volumes=dict(d.get("Volumes") or {}),
                   anonymous_volumes=list(d.get("AnonymousVolumes") or ()),
                   health=d.get("Health"))
        c.net_ifaces = dict(d.get("NetIfaces") or {})
        return c

    def resolve_waiters(self, waiters: list[asyncio.Future[int]], code: int) -> None:
        for f in waiters:
            if not f.done():
                f.set_result(code)
        waiters.clear()
