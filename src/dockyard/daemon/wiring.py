"""The one composition root: from a ``DaemonConfig`` to the services the API calls.

Why a single worker thread: SQLite connections belong to the thread that opened them and the store
is not built for concurrent writers, so the ``ImageService`` is opened, used and closed on one
dedicated thread; the event loop hands it work through ``Services.call`` and never blocks.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
from dataclasses import dataclass, field

from dockyard.engine.events import EventBus
from dockyard.errors import Unavailable

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar

    from dockyard.daemon.config import DaemonConfig
    from dockyard.engine.volumes import VolumeService
    from dockyard.image.service import ImageService

    T = TypeVar("T")


@dataclass
class Services:
    config: DaemonConfig
    images: ImageService
    volumes: VolumeService
    worker: concurrent.futures.ThreadPoolExecutor
    started: float = 0.0
    events: EventBus = field(default_factory=EventBus)
    containers: Any = None  # ContainerService, made on the event loop by ``start_engine``
    networks: Any = None  # NetworkService (records and IPAM; store thread), made by ``build``

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking store operation on the store's thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.worker, functools.partial(fn, *args, **kwargs))

    def close(self) -> None:
        """Close the store on its own thread (releasing the root's lock), then stop the thread."""
        try:
            self.worker.submit(self.images.close).result()
        finally:
            self.worker.shutdown(wait=True)


async def start_engine(services: Services) -> None:
    """On the event loop: the container service, with every container re-adopted or its exit
    recorded and restart policies applied."""
    from dockyard.daemon.config import own_runtime, runtime_paths
    from dockyard.engine.runtime_cmd import Runtime
    from dockyard.engine.service import ContainerService
    from dockyard.errors import InvalidArgument

    config = services.config
    paths = runtime_paths(config)
    if config.runtime not in paths:
        raise InvalidArgument(f"default runtime {config.runtime} is not installed")
    own = own_runtime()
    runtimes = {name: Runtime(name=name, path=path, root=f"{config.exec_root}/runtimes/{name}",
                              inproc=path == own)
                for name, path in paths.items()}
    net = None
    if services.networks is not None:
        from dockyard.engine.networking import Networking
        from dockyard.network.dns import DNSServer, Resolver, host_upstreams

        resolver = Resolver()
        net = Networking(networks=services.networks, call=services.call,
                         exec_root=config.exec_root, resolver=resolver,
                         table=config.firewall_table,
                         dns=DNSServer(resolver, upstreams=host_upstreams()))
    svc = ContainerService(store=services.images.store, images=services.images,
                           call=services.call, runtimes=runtimes, default_runtime=config.runtime,
                           exit_dir=f"{config.exec_root}/exits", events=services.events,
                           volumes=services.volumes, net=net)
    services.containers = svc
    await svc.load()
    if net is not None:
        for c in svc.containers.values():
            c.attachments = await services.call(services.networks.endpoints_of, c.id)
        await net.reconcile(list(svc.containers.values()))
    await services.call(services.volumes.sweep_mounts)


def _open_images(root: str) -> ImageService:
    from dockyard.image.service import ImageService

    try:
        return ImageService.open(root, lock_timeout=0)
    except Unavailable as e:
        raise Unavailable(f"cannot start the daemon: root {root} is in use: {e}. Is another "
                          "dockyard daemon running on it? Stop it, or pass another --root.") from None


def _volumes(images: ImageService) -> VolumeService:
    from dockyard.engine.volumes import VolumeService

    volumes = VolumeService(images.store, images.db)
    volumes.recover()
    return volumes


def _networks(images: ImageService, config: DaemonConfig) -> Any:
    """The network records with the pre-defined networks in place. ``--bip`` and
    ``--default-address-pool`` come from the config when it has them."""
    from dockyard.network.hostroutes import host_routes
    from dockyard.network.service import NetworkService

    networks = NetworkService(images.db, host_routes=host_routes,
                              default_bridge_subnet=config.bip or None,
                              address_pools=list(config.default_address_pools) or None,
                              default_bridge=config.bridge)
    networks.ensure_defaults()
    return networks


def build(config: DaemonConfig) -> Services:
    """Open every service the daemon needs. Raises ``Unavailable`` if the root is locked."""
    import time

    worker = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="store")
    try:
        images = worker.submit(_open_images, config.root).result()
        volumes = worker.submit(_volumes, images).result()
        networks = worker.submit(_networks, images, config).result()
    except BaseException:
        worker.shutdown(wait=True)
        raise
    return Services(config=config, images=images, volumes=volumes, worker=worker,
                    started=time.time(), networks=networks)
