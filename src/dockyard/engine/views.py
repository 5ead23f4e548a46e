"""Docker-shaped views of a container: ``GET /containers/{id}/json`` and ``GET /containers/json``
items, and the image-config merge dockerd does at create (what ``docker inspect`` shows as
``Config``)."""

from __future__ import annotations

import os
import shlex

from dockyard.engine.model import docker_state, rfc3339, status_text

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from dockyard.engine.container import Container
    from dockyard.oci.image_config import ImageConfig


def merged_config(req: Any, image: ImageConfig, *, hostname: str) -> dict:
    """dockerd's ``merge(userConf, imageConf)``: unset fields of the request take the image's."""
    from dockyard.image.inspect import container_config

    user = dict(req.config)
    img = container_config(image.config)
    if not user.get("User"):
        user["User"] = img.get("User", "")
    if img.get("ExposedPorts"):
        user["ExposedPorts"] = {**img["ExposedPorts"], **(user.get("ExposedPorts") or {})}
    env = list(user.get("Env") or [])
    keys = {e.split("=", 1)[0] for e in env}
    for e in img.get("Env") or ():
        if e.split("=", 1)[0] not in keys:
            env.append(e)
    user["Env"] = env or None
    if img.get("Labels"):
        user["Labels"] = {**img["Labels"], **(user.get("Labels") or {})}
    if not user.get("Entrypoint"):
        if not user.get("Cmd"):
            user["Cmd"] = img.get("Cmd")
        if user.get("Entrypoint") is None:
            user["Entrypoint"] = img.get("Entrypoint")
    if not user.get("WorkingDir"):
        user["WorkingDir"] = img.get("WorkingDir", "")
    if img.get("Volumes"):
        user["Volumes"] = {**img["Volumes"], **(user.get("Volumes") or {})}
    if not user.get("StopSignal") and img.get("StopSignal"):
        user["StopSignal"] = img["StopSignal"]
    if user.get("OnBuild") is None:
        user["OnBuild"] = img.get("OnBuild")
    if img.get("Healthcheck") and not user.get("Healthcheck"):
        user["Healthcheck"] = img["Healthcheck"]
    if not user.get("Hostname"):
        user["Hostname"] = hostname
    return user


def _health_status(c: Container) -> str | None:
    return (c.health or {}).get("Status")


def command_text(c: Container) -> str:
    """``Command`` of ``docker ps`` as dockerd builds it: an argument with a space is put in
    single quotes (``sh -c 'exit 3'``); the CLI quotes and truncates the whole."""
    path, args = c.path, c.args
    if not args:
        return path
    return " ".join([path, *(f"'{a}'" if " " in a else a for a in args)])


def inspect(c: Container, *, log_path: str, rootfs: str, upper: str, work: str,
            mounts: list[dict], size: tuple[int, int] | None = None,
            network: dict | None = None) -> dict:
    host = dict(c.host_config)
    d = f"{os.path.dirname(log_path)}"
    stacked = c.req.network_mode != "none" and not c.req.network_mode.startswith("container:")
    out: dict = {
        "Id": c.id,
        "Created": rfc3339(c.created),
        "Path": c.path,
        "Args": c.args,
        "State": docker_state(c.state, c.health),
        "Image": c.image_id,
        "ResolvConfPath": f"{d}/resolv.conf" if stacked else "",
        "HostnamePath": f"{d}/hostname" if stacked else "",
        "HostsPath": f"{d}/hosts" if stacked else "",
        "LogPath": log_path if c.req.log.type != "none" else "",
        "Name": "/" + c.name,
        "RestartCount": c.restart_count,
        "Driver": "overlay2",
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": list(getattr(c, "exec_ids", ()) or ()) or None,
        "HostConfig": host,
        "GraphDriver": {"Name": "overlay2", "Data": {
            "MergedDir": rootfs, "UpperDir": upper, "WorkDir": work}},
        "Mounts": mounts,
        "Config": c.config,
        "NetworkSettings": network if network is not None else network_settings(c),
    }
    if size is not None:
        out["SizeRw"], out["SizeRootFs"] = size
    return out


def network_settings(c: Container) -> dict:
    mode = c.req.network_mode or "default"
    networks: dict = {}
    if mode in ("host", "none"):
        networks[mode] = {"IPAMConfig": None, "Links": None, "Aliases": None, "MacAddress": "",
                          "NetworkID": "", "EndpointID": "", "Gateway": "", "IPAddress": "",
                          "IPPrefixLen": 0, "IPv6Gateway": "", "GlobalIPv6Address": "",
                          "GlobalIPv6PrefixLen": 0, "DriverOpts": None, "DNSNames": None}
    return {"Bridge": "", "SandboxID": "", "SandboxKey": "", "HairpinMode": False,
            "LinkLocalIPv6Address": "", "LinkLocalIPv6PrefixLen": 0, "Ports": {},
            "SecondaryIPAddresses": None, "SecondaryIPv6Addresses": None, "EndpointID": "",
            "Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "IPAddress": "",
            "IPPrefixLen": 0, "IPv6Gateway": "", "MacAddress": "", "Networks": networks}


def summary(c: Container, *, now: float, mounts: list[dict], size: tuple[int, int] | None = None,
            network: dict | None = None, ports: list[dict] | None = None) -> dict:
    """One item of ``GET /containers/json``."""
    out: dict = {
        "Id": c.id,
        "Names": ["/" + c.name],
        "Image": c.image_name or c.image_id,
        "ImageID": c.image_id,
        "Command": command_text(c),
        "Created": int(c.created),
        "Ports": ports or [],
        "Labels": dict(c.config.get("Labels") or {}),
        "State": c.state.status,
        "Status": status_text(c.state, _health_status(c), now),
        "HostConfig": {"NetworkMode": c.req.network_mode or "default"},
        "NetworkSettings": {"Networks": (network or network_settings(c))["Networks"]},
        "Mounts": [{k: v for k, v in m.items() if k != "Mode" or m.get("Type") != "tmpfs"}
                   for m in mounts],
    }
    if size is not None:
        out["SizeRw"], out["SizeRootFs"] = size
    return out


def quote_command(c: Container) -> str:
    return " ".join(shlex.quote(a) for a in [c.path, *c.args])
