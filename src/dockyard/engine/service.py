"""``ContainerService``: the containers of one daemon — create, remove, rename, find, and loading
(re-adopting) them when the daemon starts. Lifecycle (start/stop/kill/exit/restart) is in
``engine/lifecycle.py``, the Docker-shaped views in ``engine/views.py``.

Threads: the service lives on the event loop. Everything that touches SQLite or the image store
runs on the store thread through ``call`` (DESIGN: one writer); runtime and monitor processes are
asyncio subprocesses.
"""

from __future__ import annotations

import logging
import os
import time

from dockyard.engine.container import Container
from dockyard.engine.create_opts import (
    INIT_PATH, bounding_set, familiar, with_image_volumes, with_init, with_seccomp)
from dockyard.engine.lifecycle import Lifecycle
from dockyard.engine.model import State
from dockyard.errors import AlreadyExists, Conflict, DockyardError, InvalidArgument, NotFound
from dockyard.oci.runtime_spec import Mount

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from typing import Any

    from dockyard.engine.events import EventBus
    from dockyard.engine.runtime_cmd import Runtime
    from dockyard.image.service import ImageService
    from dockyard.store import Store

log = logging.getLogger("dockyard.engine")


class ContainerService(Lifecycle):
    def __init__(self, *, store: Store, images: ImageService, call: Callable[..., Awaitable[Any]],
                 runtimes: dict[str, Runtime], default_runtime: str, exit_dir: str,
                 events: EventBus | None = None, volumes: Any = None,
                 net: Any = None) -> None:
        self.store = store
        self.images = images
        self.call = call
        self.runtimes = runtimes
        self.default_runtime = default_runtime
        self.exit_dir = exit_dir
        self.events = events
        self.volumes = volumes
        self.net = net  # engine/networking.Networking, or None: every container is --network none
        self.containers: dict[str, Container] = {}
        self._names: dict[str, str] = {}  # name -> id, includes names reserved by creates
        self._closing = False
        os.makedirs(exit_dir, mode=0o700, exist_ok=True)
        for rt in runtimes.values():
            os.makedirs(rt.root, mode=0o700, exist_ok=True)

    # ------------------------------------------------------------ lookup

    def get(self, ref: str) -> Container:
        """By full id, name (with or without '/'), or unique id prefix — Docker's order."""
        if not ref:
            raise NotFound("No such container: ")
        c = self.containers.get(ref)
        if c is not None:
            return c
        cid = self._names.get(ref.lstrip("/"))
        if cid is not None and cid in self.containers:
            return self.containers[cid]
        matches = [c for cid, c in self.containers.items() if cid.startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise InvalidArgument(f"multiple IDs found with provided prefix: {ref}")
        raise NotFound(f"No such container: {ref}")

    def all(self) -> list[Container]:
        return sorted(self.containers.values(), key=lambda c: c.created, reverse=True)

    def publish(self, c: Container, action: str, **extra: str) -> None:
        if self.events is None:
            return
        attrs = dict(c.config.get("Labels") or {})  # labels first: name/image win, as dockerd
        attrs.update(image=c.image_name, name=c.name)
        attrs.update(extra)
        self.events.publish("container", action, c.id, attrs)

    async def persist(self, c: Container) -> None:
        await self.call(self.images.db.containers.set_document, c.id, c.document())

    # ------------------------------------------------------------ create

    async def create(self, body: bytes | dict, *, name: str = "",
                     api_version: str = "1.45") -> tuple[Container, list[str]]:
        """A new container from a ``POST /containers/create`` body; ``(container, warnings)``."""
        from dockyard.engine.create_request import parse_create
        from dockyard.engine.names import generate_name, new_id

        req = parse_create(body, name=name, api_version=api_version)
        request = body if isinstance(body, dict) else _loads_body(body)
        cid = new_id()
        name = req.name or generate_name(self._names)
        if name in self._names:
            raise Conflict(f'Conflict. The container name "/{name}" is already in use by container '
                           f'"{self._names[name]}". You have to remove (or rename) that container '
                           "to be able to reuse that name.")
        self._names[name] = cid  # reserved while the create runs
        rt_name = req.runtime or self.default_runtime
        if rt_name not in self.runtimes:
            raise InvalidArgument(f"unknown or invalid runtime name: {rt_name}")
        try:
            made = await self.call(self._create_on_store, req, cid, name, request, rt_name)
        except BaseException:
            self._names.pop(name, None)
            raise
        c: Container = made
        self.containers[cid] = c
        self.publish(c, "create")
        return c, list(req.warnings)

    def _create_on_store(self, req: Any, cid: str, name: str, request: dict,
                         rt_name: str) -> Container:
        """On the store thread: image, volumes, bundle, row; undone on any failure."""
        from dockyard.engine.mounts import spec_mounts
        from dockyard.engine.views import merged_config
        from dockyard.image.bundle import create_bundle, remove_bundle
        from dockyard.record import replace

        try:
            image = self.images.resolve(req.image)
        except NotFound:
            raise NotFound(f"No such image: {familiar(req.image)}") from None
        image_config = self.images.config(image)
        req = with_image_volumes(req, image_config)
        volume_dirs, anonymous = self._prepare_volumes(req, cid)
        bundle = None
        try:
            from dockyard.engine.devices import block_limits, host_devices

            joins = self.namespace_joins(req)
            net_mounts: tuple = ()
            if self.net is not None and req.network_mode != "none" and \
                    not req.network_mode.startswith("container:"):
                cdir = self.store.container(cid)
                net_mounts = tuple(Mount(destination=f"/etc/{n}", type="bind",
                                         source=f"{cdir}/{n}", options=("rbind", "rprivate"))
                                   for n in ("hosts", "resolv.conf", "hostname"))
                if self.net.has_stack_mode(req.network_mode):
                    joins = (*joins, ("network", self.net.netns_path(cid)))

            opts = replace(req.run, mounts=(*spec_mounts(req.mounts, volume_dirs), *net_mounts),
                           devices=host_devices(req), block_limits=block_limits(req),
                           blkio_weight=req.blkio_weight,
                           memory_swappiness=req.memory_swappiness,
                           masked_paths=req.masked_paths, readonly_paths=req.readonly_paths,
                           namespace_paths=(*req.run.namespace_paths, *joins))
            if req.init:
                opts = with_init(opts, image_config)
            if opts.privileged or "ALL" in (c.upper() for c in opts.cap_add):
                opts = replace(opts, host_capabilities=bounding_set())
            opts = with_seccomp(opts, req)
            if self.net is not None and self.net.has_stack_mode(req.network_mode):
                from dockyard.oci.spec_builder import NETWORK_SYSCTLS

                opts = replace(opts, sysctls=(*NETWORK_SYSCTLS, *opts.sysctls))
            bundle = create_bundle(self.images, str(image.id), self.store.container(cid),
                                   container_id=cid, opts=opts)
            names = self._volume_names(req, anonymous, volume_dirs)
            nocopy = {m.destination for m in req.mounts if m.kind == "volume" and m.nocopy}
            for dest, vol in names.items():
                self.volumes.copy_up(vol, bundle.rootfs, dest, nocopy=dest in nocopy)
            spec = _read_spec(bundle.path)
            args = list(spec["process"]["args"])
            if req.init and args[:2] == [INIT_PATH, "--"] and len(args) > 2:
                args = args[2:]  # as dockerd: Path/Args are the command, not the init before it
            config = merged_config(req, image_config, hostname=spec.get("hostname", ""))
            c = Container(id=cid, name=name, created=time.time(), image_id=str(image.id),
                          image_name=req.image, request=request, req=req, config=config,
                          host_config=req.host_config, path=args[0], args=args[1:],
                          stop_signal=bundle.stop_signal, state=State(), runtime=rt_name,
                          volumes=volume_dirs, anonymous_volumes=anonymous)
            with self.images.db.transaction():
                self.images.db.containers.add(cid, name, image.id, state=c.document(),
                                              created=c.created)
                for dest, vol in names.items():
                    self.volumes.repo.attach(cid, vol, dest)
                if net_mounts:
                    c.attachments = self.net.attach_on_create(req, cid, name)
                    self.net.files(req, cid, spec.get("hostname") or cid[:12], c.attachments,
                                   self.store.container(cid), self._links(req))
            return c
        except BaseException:
            if bundle is not None:
                try:
                    remove_bundle(self.images, bundle, detach=True)
                except Exception:  # noqa: BLE001 - the original error matters more
                    log.exception("create %s: cleaning up the bundle failed", cid)
            try:
                self.images.db.containers.delete(cid)
            except NotFound:
                pass
            self._release_volumes(volume_dirs, req, anonymous, cid)
            raise

    def _release_volumes(self, dirs: dict[str, str], req: Any, anonymous: list[str],
                         cid: str) -> None:
        if self.volumes is None or not dirs:
            return
        for dest, name in self._volume_names(req, anonymous, dirs).items():
            try:
                self.volumes.unmount_if_unused(name, cid)
            except DockyardError:
                log.exception("create %s: releasing volume %s failed", cid, name)
        self.volumes.remove_anonymous(anonymous)

    def _prepare_volumes(self, req: Any, cid: str) -> tuple[dict[str, str], list[str]]:
        """Host directories for the request's volume mounts (destination → dir); anonymous
        volumes are created here. Needs the volume service; none configured: volumes refused."""
        dirs: dict[str, str] = {}
        anonymous: list[str] = []
        wanted = [m for m in req.mounts if m.kind == "volume"]
        if not wanted:
            return dirs, anonymous
        if self.volumes is None:
            raise InvalidArgument("volumes are not available in this daemon")
        try:
            for m in wanted:
                if m.source:
                    vol = self.volumes.create(m.source, labels=m.labels,
                                              options=m.driver_options)
                else:
                    vol = self.volumes.create("", anonymous=True)
                    anonymous.append(vol.name)
                dirs[m.destination] = self.volumes.mount_for_container(vol.name, cid)
        except BaseException:
            self._release_volumes(dirs, req, anonymous, cid)
            raise
        return dirs, anonymous

    def _volume_names(self, req: Any, anonymous: list[str], dirs: dict[str, str]) -> dict[str, str]:
        out: dict[str, str] = {}
        anon = iter(anonymous)
        for m in req.mounts:
            if m.kind == "volume" and m.destination in dirs:
                out[m.destination] = m.source or next(anon)
        return out

    def _links(self, req: Any) -> list[tuple[str, tuple[str, ...]]]:
        """``--link name[:alias]`` on the default bridge: ``(ip, (alias, short id, name))``."""
        out = []
        for link in req.links:
            ref, _, alias = link.partition(":")
            try:
                target = self.get(ref.lstrip("/"))
            except NotFound:
                raise InvalidArgument(f"could not get container for {ref}") from None
            ip = next((a.endpoint.ip for a in getattr(target, "attachments", ()) or ()
                       if a.endpoint.ip), "")
            if not target.state.running or not ip:
                raise InvalidArgument(f"Cannot link to a non running container: /{target.name} "
                                      f"AS /{alias or target.name}")
            out.append((ip, tuple(dict.fromkeys((alias or target.name, target.id[:12],
                                                  target.name)))))
        return out

    def namespace_joins(self, req: Any) -> tuple[tuple[str, str], ...]:
        """``--network/--pid/--ipc container:<name>``: the running target's namespace files."""
        out: list[tuple[str, str]] = []
        for kind, mode, flag in (("network", req.network_mode, "network"),
                                 ("pid", req.pid_mode, "pid"), ("ipc", req.ipc_mode, "ipc")):
            if not mode.startswith("container:"):
                continue
            ref = mode.split(":", 1)[1]
            try:
                target = self.get(ref)
            except NotFound:  # 400, not 404: a 404 to create makes the docker CLI pull the image
                raise InvalidArgument(f"No such container: {ref} (--{flag} container:{ref})") \
                    from None
            if not target.state.running or target.state.pid <= 0:
                raise Conflict(f"cannot join the {kind} namespace of container {ref}: "
                               f"Container {target.id} is not running")
            ns = {"network": "net"}.get(kind, kind)
            out.append((kind, f"/proc/{target.state.pid}/ns/{ns}"))
        return tuple(out)

    # ------------------------------------------------------------ remove, rename

    async def remove(self, ref: str, *, force: bool = False, volumes: bool = False) -> None:
        c = self.get(ref)
        async with c.lock:
            if c.state.running or c.state.status == "restarting":
                if not force:
                    raise Conflict(f"You cannot remove a {_running_word(c)} container {c.id}. "
                                   "Stop the container before attempting removal or force remove")
                await self._kill_and_wait(c)
            self.cancel_restart(c)
            await self.cleaned(c)
            if c.state.status == "removing":
                raise Conflict(f"removal of container {c.name} is already in progress")
            previous = c.state
            c.state = c.state.to("removing")
            try:
                await self.call(self._remove_on_store, c, volumes)
            except BaseException:
                c.state = previous
                raise
            self.containers.pop(c.id, None)
            if self._names.get(c.name) == c.id:
                del self._names[c.name]
        self.publish(c, "destroy")
        c.resolve_waiters(c.removed_waiters, c.state.exit_code)

    def _remove_on_store(self, c: Container, volumes: bool) -> None:
        from dockyard.image.bundle import Bundle, remove_bundle

        path = self.store.container(c.id)
        if os.path.isdir(path):
            b = Bundle(path=path, id=c.id, image_id=c.image_id, rootfs=f"{path}/rootfs",
                       upper=f"{path}/upper", work=f"{path}/work", stop_signal=c.stop_signal)
            remove_bundle(self.images, b, detach=True)
        try:
            os.unlink(self.paths(c).exit_file)  # conmon's record of the last exit
        except FileNotFoundError:
            pass
        mounted = self.volumes.repo.mounts_of(c.id) if self.volumes is not None else []
        anonymous = self.volumes.anonymous_of(c.id) if self.volumes is not None else []
        try:
            self.images.db.containers.delete(c.id)
        except NotFound:
            pass
        if self.volumes is not None:
            for name, _ in mounted:
                self.volumes.unmount_if_unused(name, c.id)
            if volumes:
                self.volumes.remove_anonymous(anonymous)

    async def rename(self, ref: str, new_name: str) -> None:
        from dockyard.engine.create_request import validate_name

        c = self.get(ref)
        new = validate_name(new_name) if new_name else ""
        if not new:
            raise InvalidArgument("Neither old nor new names may be empty")
        if new == c.name:
            raise Conflict("Renaming a container with the same name as its current name")
        if new in self._names:
            raise Conflict(f'Conflict. The container name "/{new}" is already in use by container '
                           f'"{self._names[new]}". You have to remove (or rename) that container '
                           "to be able to reuse that name.")
        old = c.name
        self._names[new] = c.id
        try:
            await self.call(self.images.db.containers.rename, c.id, new)
        except BaseException:
            del self._names[new]
            raise
        del self._names[old]
        c.name = new
        self.publish(c, "rename", oldName=f"/{old}")

    # ------------------------------------------------------------ network hooks (api/networks)

    async def network_connected(self, c: Container, net: Any, ep: Any) -> None:
        if self.net is not None:
            await self.net.connect_running(c, net, ep)
            c.attachments = await self.call(self.net.networks.endpoints_of, c.id)
            await self.persist(c)

    async def network_disconnected(self, c: Container, net: Any, ep: Any) -> None:
        if self.net is not None:
            await self.net.disconnect_running(c, net, ep)
            c.attachments = await self.call(self.net.networks.endpoints_of, c.id)
            await self.persist(c)

    async def network_removed(self, net: Any) -> None:
        if self.net is not None:
            await self.net.network_removed(net)

    # ------------------------------------------------------------ update, prune

    async def update(self, ref: str, data: dict) -> list[str]:
        """``POST /containers/{id}/update``: resources and the restart policy, applied to a
        running container through the runtime and kept for its next starts."""
        from dockyard.engine import runtime_cmd
        from dockyard.engine.create_request import parse_create
        from dockyard.leanjson import dumps
        from dockyard.oci.spec_builder import resources

        c = self.get(ref)
        request = dict(c.request)
        host = dict(request.get("HostConfig") or {})
        for key, value in data.items():
            if key not in UPDATABLE:
                raise InvalidArgument(f"update container {c.name}: {key} cannot be updated")
            host[key] = value
        request["HostConfig"] = host
        async with c.lock:
            req = parse_create(request, name=c.name)
            if c.req.auto_remove and req.restart.name not in ("", "no"):
                raise InvalidArgument("Restart policy cannot be updated because AutoRemove is "
                                      "enabled for the container")
            if set(data) - {"RestartPolicy"}:
                res = resources(req.run)
                if c.state.running:
                    await runtime_cmd.update(self.runtimes[c.runtime], c.id, dumps(res).encode())
                # the next starts run the bundle's spec: it gets the new limits too
                await self.call(_write_resources, self.store.container(c.id), res)
            c.request, c.req, c.host_config = request, req, req.host_config
            await self.persist(c)
        self.publish(c, "update")
        return []

    async def prune(self, filters: dict[str, list[str]]) -> tuple[list[str], int]:
        """``POST /containers/prune``: every stopped container (``until``, ``label`` filters)."""
        from dockyard.engine.logs import parse_time_filter
        from dockyard.snapshot.fsutil import disk_usage

        for key in filters:
            if key not in ("until", "label", "label!"):
                raise InvalidArgument(f"invalid filter '{key}'")
        now = time.time()
        until = [parse_time_filter(u, now) for u in filters.get("until", ())]
        deleted: list[str] = []
        space = 0
        for c in list(self.containers.values()):
            if c.state.running or c.state.status in ("restarting", "removing"):
                continue
            if until and not all(c.created < u for u in until):
                continue
            labels = c.config.get("Labels") or {}
            if not _labels_ok(labels, filters.get("label", ()), filters.get("label!", ())):
                continue
            try:
                size = disk_usage(f"{self.store.container(c.id)}/upper")
            except OSError:
                size = 0
            try:
                await self.remove(c.id)
            except DockyardError as e:
                log.error("prune: removing container %s failed: %s", c.id, e)
                continue
            deleted.append(c.id)
            space += size
        return deleted, space

    # ------------------------------------------------------------ health checks

    def start_health(self, c: Container) -> None:
        """Start the container's health monitor (image HEALTHCHECK merged with --health-*)."""
        import asyncio

        from dockyard.engine.health import Health, HealthConfig, HealthMonitor

        cfg = HealthConfig.from_docker_json(c.config.get("Healthcheck"))
        if cfg is None or not cfg.enabled:
            return

        async def run_check(cmd: list[str], timeout: float) -> tuple[int, str]:
            return await self.exec_probe(c, cmd, timeout)

        def on_change(health: Health, event: str | None) -> None:
            c.health = health.to_docker_json()
            asyncio.get_running_loop().create_task(self._persist_quietly(c))
            if event:
                self.publish(c, event)

        initial = Health.from_docker_json(c.health) if c.health else None
        m = HealthMonitor(cfg, run_check, on_change, shell=tuple(c.config.get("Shell") or ()),
                          started_at=c.state.started_at, initial=initial)
        c.health_monitor = m
        m.start()
        if m.health is not None:
            c.health = m.health.to_docker_json()

    async def _persist_quietly(self, c: Container) -> None:
        if c.id not in self.containers:
            return
        try:
            await self.persist(c)
        except DockyardError as e:
            log.error("container %s: saving its health failed: %s", c.id, e)

    async def exec_probe(self, c: Container, cmd: list[str], timeout: float) -> tuple[int, str]:
        """Run ``cmd`` in the container (the runtime's exec), output capped; killed at
        ``timeout`` (then the check counts as failed)."""
        import asyncio

        rt = self.runtimes[c.runtime]
        proc = await asyncio.create_subprocess_exec(
            *rt.argv("exec", c.id, *cmd), stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), timeout)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
            raise
        return proc.returncode if proc.returncode is not None else -1, \
            out[:4096].decode(errors="replace")

    # ------------------------------------------------------------ daemon start

    async def load(self) -> None:
        """Read every container row; re-adopt running ones whose monitor lives, record the exit
        of those that ended while the daemon was away, then apply restart policies."""
        from dockyard.engine.create_request import parse_create

        rows = await self.call(self.images.db.containers.all)
        await self.call(self._remove_orphans_on_store, {row.id for row in rows})
        for row in rows:
            try:
                c = Container.from_document(id=row.id, name=row.name, created=row.created,
                                            image_id=str(row.image_id), text=row.state,
                                            parse=parse_create)
            except (DockyardError, ValueError, KeyError) as e:
                log.error("container %s (%s): unreadable record, skipped: %s", row.id, row.name, e)
                continue
            if c.runtime not in self.runtimes:
                c.runtime = self.default_runtime
            self.containers[c.id] = c
            self._names[c.name] = c.id
        for c in list(self.containers.values()):
            try:
                await self.adopt(c)
            except DockyardError as e:
                log.error("container %s: re-adopting failed: %s", c.id, e)
        for c in list(self.containers.values()):
            if c.req.auto_remove and c.state.status in ("created", "exited"):
                await self._auto_remove(c)  # as dockerd's restore: a --rm container not running
                continue
            await self.restart_on_daemon_start(c)


    def _remove_orphans_on_store(self, known: set[str]) -> None:
        """(store thread, daemon start) Remove container directories that have no row: a create
        the daemon died in (its rootfs mounted, its row never written)."""
        from dockyard.image.bundle import unmount_rootfs
        from dockyard.snapshot.fsutil import remove_tree

        parent = os.path.dirname(self.store.container("0"))
        try:
            names = os.listdir(parent)
        except FileNotFoundError:
            return
        for name in names:
            path = f"{parent}/{name}"
            if name in known or not os.path.isdir(path):
                continue
            log.warning("container directory %s has no record (a create the daemon died in): "
                        "removed", name)
            try:
                unmount_rootfs(self.images, path)
                remove_tree(path)
            except (OSError, DockyardError) as e:
                log.error("removing the unrecorded container directory %s failed: %s", path, e)


#: HostConfig fields ``docker update`` may change.
UPDATABLE = frozenset((
    "CpuShares", "Memory", "CgroupParent", "BlkioWeight", "CpuPeriod", "CpuQuota",
    "CpuRealtimePeriod", "CpuRealtimeRuntime", "CpusetCpus", "CpusetMems", "MemoryReservation",
    "MemorySwap", "KernelMemory", "NanoCpus", "PidsLimit", "RestartPolicy", "BlkioWeightDevice",
    "BlkioDeviceReadBps", "BlkioDeviceWriteBps", "BlkioDeviceReadIOps", "BlkioDeviceWriteIOps",
    "Devices", "DeviceCgroupRules", "DeviceRequests", "MemorySwappiness", "OomKillDisable",
    "Ulimits", "CpuCount", "CpuPercent", "IOMaximumIOps", "IOMaximumBandwidth"))


def _labels_ok(labels: dict, want: tuple[str, ...] | list[str], unwanted: tuple[str, ...] |
               list[str]) -> bool:
    def has(spec: str) -> bool:
        key, eq, value = spec.partition("=")
        return key in labels and (not eq or labels[key] == value)
    return all(has(w) for w in want) and not any(has(u) for u in unwanted)


def _running_word(c: Container) -> str:
    return {"paused": "paused", "restarting": "restarting"}.get(c.state.status, "running")


def _loads_body(body: bytes) -> dict:
    from dockyard.leanjson import loads

    try:
        d = loads(body.decode() if body else "{}")
    except (ValueError, UnicodeDecodeError) as e:
        raise InvalidArgument(f"invalid JSON in the request body: {e}") from None
    if not isinstance(d, dict):
        raise InvalidArgument("invalid JSON in the request body: expected an object")
    return d


def _read_spec(bundle: str) -> dict:
    from dockyard.leanjson import loads

    with open(f"{bundle}/config.json", "rb") as f:
        return loads(f.read())


def _write_resources(bundle: str, res: dict) -> None:
    """(store thread) The bundle's spec with ``linux.resources`` replaced, written atomically."""
    from dockyard.leanjson import dumps

    spec = _read_spec(bundle)
    spec.setdefault("linux", {})["resources"] = res
    tmp = f"{bundle}/config.json.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with open(fd, "w") as f:
        f.write(dumps(spec))
    os.replace(tmp, f"{bundle}/config.json")


__all__ = ["AlreadyExists", "ContainerService"]
