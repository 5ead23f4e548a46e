"""The aiohttp application: every route at ``/PATH`` and ``/v{1.NN}/PATH``, checked versions,
errors as ``{"message": ...}``.

Version negotiation as dockerd: the ``_ping`` headers tell a client our ``Api-Version``; a client
then prefixes its paths with the version it chose. Paths without a prefix use the newest version;
an older prefix down to ``MIN_API_VERSION`` is accepted; anything else is a 400 with docker's text.
"""

from __future__ import annotations

import re

from aiohttp import web

from dockyard.api.errors import error_response, errors_middleware

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from dockyard.daemon.wiring import Services

    Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

API_VERSION = "1.45"
MIN_API_VERSION = "1.24"
SERVICES = web.AppKey("services", object)
_VERSION_RE = re.compile(r"\A(\d+)\.(\d+)\Z")


def _as_tuple(v: str) -> tuple[int, int]:
    m = _VERSION_RE.match(v)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def check_version(version: str) -> str | None:
    """Docker's message for an unsupported version, or None."""
    if not _VERSION_RE.match(version):
        return f"invalid API version {version!r}"
    if _as_tuple(version) > _as_tuple(API_VERSION):
        return (f"client version {version} is too new. Maximum supported API version is "
                f"{API_VERSION}")
    if _as_tuple(version) < _as_tuple(MIN_API_VERSION):
        return (f"client version {version} is too old. Minimum supported API version is "
                f"{MIN_API_VERSION}, please upgrade your client to a newer version")
    return None


@web.middleware
async def version_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    version = request.match_info.get("version")
    if version is not None:
        problem = check_version(version)
        if problem is not None:
            return error_response(400, problem)
    return await handler(request)


def services(request: web.Request) -> Services:
    return request.app[SERVICES]  # type: ignore[return-value]


def api_version(request: web.Request) -> str:
    return request.match_info.get("version") or API_VERSION


class Routes:
    """Registers each handler at its path and at ``/v{version}`` + path."""

    def __init__(self, app: web.Application) -> None:
        self.app = app

    def add(self, method: str, path: str, handler: Handler) -> None:
        router = self.app.router
        for p in (path, r"/v{version:[0-9]+\.[0-9]+}" + path):
            if method == "GET":
                router.add_get(p, handler)  # HEAD too
            else:
                router.add_route(method, p, handler)


def make_app(svc: Services) -> web.Application:
    from dockyard.api import containers, events, images, system, volumes
    from dockyard.api import container_files
    from dockyard.api import exec as exec_api

    app = web.Application(middlewares=[errors_middleware, version_middleware],
                          client_max_size=1024**2)
    app[SERVICES] = svc
    routes = Routes(app)
    system.register(routes)
    images.register(routes)
    volumes.register(routes)
    from dockyard.api import networks
    networks.register(routes)
    events.register(routes)
    container_files.register(routes)
    containers.register(routes)
    exec_api.register(routes)
    return app
