"""``files_view``: a container's files held still for ``docker cp``, ``diff``, ``export`` and
``commit`` (the contract ``api/container_files.py`` codes against).

    async with files_view(containers, "web", pause=True) as view:
        view.rootfs   mounted for the duration (a stopped container's rootfs is mounted here and
                      unmounted again at the end, as dockerd mounts it for cp/export)
        view.upper    the container's overlay upper dir (its changes)

Why the container's lock is held: start, stop, rm and rename wait until the view closes, so a
temporary mount is never unmounted under a container that started meanwhile, nor the bundle
removed while a tar streams out of it. A container that exits meanwhile unmounts its rootfs
lazily (detached): the file work holds directory fds and finishes on the detached mount.

``pause`` (``docker commit``'s default) freezes a running container through the runtime while
the view is open, so its processes cannot change (or swap) files under the layer writer.
"""

from __future__ import annotations

import contextlib

from dockyard.errors import Conflict
from dockyard.record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from typing import Any


class FilesView(Record):
    id: str
    image_id: str
    rootfs: str
    upper: str
    read_only: bool
    running: bool
    config: Any = None      # the container's Docker ``Config`` dict (User, Cmd, Env, ...)


@contextlib.asynccontextmanager
async def files_view(containers: Any, ref: str, *, pause: bool = False) -> AsyncIterator[FilesView]:
    """The view of container ``ref`` (``NotFound`` in Docker's words if there is none) on a
    ``ContainerService`` (``get``, ``call``, ``store``, ``images``, ``runtimes``)."""
    from dockyard.engine import runtime_cmd
    from dockyard.image.bundle import mount_rootfs, unmount_rootfs

    c = containers.get(ref)
    bundle = containers.store.container(c.id)
    async with c.lock:
        await containers.cleaned(c)  # an exit's unmount must not race this view's mount
        if c.state.status == "removing":
            raise Conflict(f"container {c.id} is marked for removal")
        running = c.state.status in ("running", "paused")
        mounted = await containers.call(mount_rootfs, containers.images, c.image_id, bundle)
        paused = False
        try:
            if pause and c.state.status == "running":
                await runtime_cmd.pause(containers.runtimes[c.runtime], c.id)
                paused = True
            yield FilesView(id=c.id, image_id=c.image_id, rootfs=f"{bundle}/rootfs",
                            upper=f"{bundle}/upper",
                            read_only=bool((c.host_config or {}).get("ReadonlyRootfs")),
                            running=running, config=c.config)
        finally:
            try:
                if paused and c.state.status in ("running", "paused"):
                    await runtime_cmd.resume(containers.runtimes[c.runtime], c.id)
            finally:
                if mounted and c.state.status not in ("running", "paused"):
                    await containers.call(unmount_rootfs, containers.images, bundle)
