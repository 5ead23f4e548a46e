"""``/_ping``, ``/version`` and ``/info`` in Docker's shapes (the fields the docker CLI prints).

Why these values: clients read ``Api-Version`` from ``_ping`` to negotiate, and ``docker info``
dereferences nested objects (Plugins, Swarm, RegistryConfig); absent ones would break it, so they
are present with honest empty values.
"""

from __future__ import annotations

import hashlib
import os
import platform
import socket
import time

from aiohttp import web

from dockyard.api.app import API_VERSION, MIN_API_VERSION, services
from dockyard.api.errors import json_response

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dockyard.api.app import Routes
    from dockyard.daemon.wiring import Services

_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386", "ppc64le": "ppc64le",
         "s390x": "s390x", "riscv64": "riscv64"}
GIT_COMMIT = "dockyard"


def _version() -> str:
    from dockyard.runtime.default_spec import VERSION

    return VERSION


def _ping_headers() -> dict[str, str]:
    return {"Api-Version": API_VERSION, "Docker-Experimental": "false", "Ostype": "linux",
            "Builder-Version": "1", "Cache-Control": "no-cache, no-store, must-revalidate",
            "Pragma": "no-cache"}


async def ping(request: web.Request) -> web.Response:
    body = b"" if request.method == "HEAD" else b"OK"
    return web.Response(body=body, content_type="text/plain", charset="utf-8",
                        headers=_ping_headers())


def version_info() -> dict:
    uname = platform.uname()
    build = time.strftime("%Y-%m-%dT%H:%M:%S.000000000+00:00",
                          time.gmtime(os.path.getmtime(__file__)))
    details = {"ApiVersion": API_VERSION, "Arch": _ARCH.get(uname.machine, uname.machine),
               "BuildTime": build, "Experimental": "false", "GitCommit": GIT_COMMIT,
               "GoVersion": f"python{platform.python_version()}", "KernelVersion": uname.release,
               "MinAPIVersion": MIN_API_VERSION, "Os": "linux"}
    return {
        "Platform": {"Name": "dockyard"},
        "Components": [{"Name": "Engine", "Version": _version(), "Details": details}],
        "Version": _version(), "ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": GIT_COMMIT, "GoVersion": details["GoVersion"], "Os": "linux",
        "Arch": details["Arch"], "KernelVersion": uname.release, "BuildTime": build,
    }


async def version(request: web.Request) -> web.Response:
    return json_response(version_info())


def _os_name() -> str:
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.partition("=")[2].strip().strip('"')
    except OSError:
        pass
    return "Linux"


def _mem_total() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _engine_id(root: str) -> str:
    """Stable per host and root (docker keeps a random one in a file; this needs no file)."""
    h = hashlib.sha256(f"{socket.gethostname()}\0{root}".encode()).hexdigest()
    return "-".join(h[i:i + n] for i, n in ((0, 8), (8, 4), (12, 4), (16, 4), (20, 12)))


def info_snapshot(svc: Services) -> dict:
    """The store's part of ``/info``; runs on the store's thread."""
    images = svc.images
    containers = images.db.containers.all()
    return {"images": len(images.db.images.list()), "containers": len(containers),
            "driver": images.snapshotter.driver}


def system_info(svc: Services, counts: dict) -> dict:
    uname = platform.uname()
    cgroup2 = os.path.exists("/sys/fs/cgroup/cgroup.controllers")
    driver = "overlay2" if counts["driver"] == "overlay" else counts["driver"]
    runtimes = {"dockyard-runtime": {"path": "dockyard-runtime"}, "runc": {"path": "runc"}}
    warnings: list[str] = []
    if any(lst.kind == "tcp" for lst in svc.config.listeners):
        warnings.append("WARNING: API is accessible on http://127.0.0.1 without encryption.")
    return {
        "ID": _engine_id(svc.config.root),
        "Containers": counts["containers"], "ContainersRunning": 0, "ContainersPaused": 0,
        "ContainersStopped": counts["containers"], "Images": counts["images"],
        "Driver": driver, "DriverStatus": [],
        "Plugins": {"Volume": ["local"], "Network": ["host", "null"], "Authorization": None,
                    "Log": ["json-file"]},
        "MemoryLimit": True, "SwapLimit": True, "KernelMemory": False, "KernelMemoryTCP": False,
        "CpuCfsPeriod": True, "CpuCfsQuota": True, "CPUShares": True, "CPUSet": True,
        "PidsLimit": True, "IPv4Forwarding": True, "BridgeNfIptables": False,
        "BridgeNfIp6tables": False, "Debug": svc.config.log_level == "debug",
        "NFd": len(os.listdir("/proc/self/fd")), "OomKillDisable": False,
        "NGoroutines": 0, "SystemTime": time.strftime("%Y-%m-%dT%H:%M:%S.000000000Z", time.gmtime()),
        "LoggingDriver": "json-file", "CgroupDriver": "cgroupfs",
        "CgroupVersion": "2" if cgroup2 else "1", "NEventsListener": 0,
        "KernelVersion": uname.release, "OperatingSystem": _os_name(), "OSVersion": "",
        "OSType": "linux", "Architecture": uname.machine, "IndexServerAddress":
        "https://index.docker.io/v1/",
        "RegistryConfig": {"AllowNondistributableArtifactsCIDRs": [],
                           "AllowNondistributableArtifactsHostnames": [],
                           "InsecureRegistryCIDRs": ["127.0.0.0/8"], "IndexConfigs": {},
                           "Mirrors": []},
        "NCPU": os.cpu_count() or 1, "MemTotal": _mem_total(), "GenericResources": None,
        "DockerRootDir": svc.config.root, "HttpProxy": "", "HttpsProxy": "", "NoProxy": "",
        "Name": socket.gethostname(), "Labels": [], "ExperimentalBuild": False,
        "ServerVersion": _version(), "Runtimes": runtimes, "DefaultRuntime": "dockyard-runtime",
        "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive",
                  "ControlAvailable": False, "Error": "", "RemoteManagers": None},
        "LiveRestoreEnabled": True, "Isolation": "", "InitBinary": "",
        "ContainerdCommit": {"ID": "", "Expected": ""}, "RuncCommit": {"ID": "", "Expected": ""},
        "InitCommit": {"ID": "", "Expected": ""},
        "SecurityOptions": ["name=seccomp,profile=builtin"] + (["name=cgroupns"] if cgroup2 else []),
        "Warnings": warnings or None,
        "ProductLicense": "", "DefaultAddressPools": None,
    }


async def info(request: web.Request) -> web.Response:
    svc = services(request)
    counts = await svc.call(info_snapshot, svc)
    out = system_info(svc, counts)
    if svc.containers is not None:
        states = [c.state.status for c in svc.containers.containers.values()]
        out["Containers"] = len(states)
        out["ContainersRunning"] = states.count("running") + states.count("restarting")
        out["ContainersPaused"] = states.count("paused")
        out["ContainersStopped"] = len(states) - out["ContainersRunning"] - \
            out["ContainersPaused"]
        out["Runtimes"] = {name: {"path": rt.path} for name, rt in svc.containers.runtimes.items()}
        out["DefaultRuntime"] = svc.containers.default_runtime
    return json_response(out)


def _df(svc: Services) -> dict:
    from dockyard.api.images import summary_json
    from dockyard.image import maintenance

    rows = maintenance.disk_usage(svc.images)
    images = [summary_json(s) for s in svc.images.list(all=True)]
    return {"LayersSize": rows[0].size if rows else 0, "Images": images, "Containers": [],
            "Volumes": [], "BuildCache": [],
            "DockyardSummary": [{"Type": r.type, "TotalCount": r.total, "Active": r.active,
                                 "Size": r.size, "Reclaimable": r.reclaimable} for r in rows]}


async def system_df(request: web.Request) -> web.Response:
    """``GET /system/df``: Docker's shape (images, containers with their writable layer's size,
    volumes with usage) plus ``DockyardSummary``, the four rows ``dockyard system df`` prints
    (shared layers counted once)."""
    import asyncio

    from dockyard.api.volumes import volume_json
    from dockyard.engine.mounts import docker_mounts
    from dockyard.engine.views import summary
    from dockyard.snapshot.fsutil import disk_usage

    svc = services(request)
    out = await svc.call(_df, svc)
    if svc.containers is not None:
        loop = asyncio.get_running_loop()
        now = time.time()
        sizes = {i["Id"]: i.get("Size", 0) for i in out["Images"]}
        rows = []
        for c in svc.containers.all():
            rw = await loop.run_in_executor(
                None, disk_usage, f"{svc.containers.store.container(c.id)}/upper")
            rows.append(summary(c, now=now, mounts=docker_mounts(c.req.mounts, c.volumes),
                                size=(rw, rw + sizes.get(c.image_id, 0))))
        out["Containers"] = rows
    vols = await svc.call(svc.volumes.df)
    out["Volumes"] = [volume_json(v, u) for v, u in vols]
    return json_response(out)


def _check(svc: Services, repair: bool) -> dict:
    from dockyard.image import maintenance

    r = maintenance.check(svc.images, repair=repair)
    return {"Checked": [[what, n] for what, n in r.checked], "Problems": list(r.problems),
            "Repairs": list(r.repairs), "Remaining": list(r.remaining), "Ok": r.ok}


async def system_check(request: web.Request) -> web.Response:
    """``POST /dockyard/system/check?repair=1``: dockyard's store check (200 even with problems:
    the report says so)."""
    repair = request.query.get("repair", "").lower() not in ("", "0", "false", "no")
    svc = services(request)
    return json_response(await svc.call(_check, svc, repair))


def register(routes: Routes) -> None:
    routes.add("GET", "/_ping", ping)
    routes.add("GET", "/version", version)
    routes.add("GET", "/info", info)
    routes.add("GET", "/system/df", system_df)
    routes.add("POST", "/dockyard/system/check", system_check)
