"""From a create request's mounts to runtime-spec mounts (what dockerd puts in config.json).

Binds become ``rbind`` mounts (``bind`` with ``BindOptions.NonRecursive``) with ``ro`` and the
propagation (default ``rprivate``); a ``-v`` bind whose host directory is missing gets it created
(root, 0755), as dockerd does; a ``--mount type=bind`` with a missing source is an error. tmpfs
mounts carry their options. Volumes are resolved by the caller to a host directory
(``volume_dirs``: destination → directory) and bound like a bind.
"""

from __future__ import annotations

import os

from dockyard.errors import InvalidArgument
from dockyard.oci.runtime_spec import Mount

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from dockyard.engine.create_mounts import MountRequest


def spec_mounts(requests: Sequence[MountRequest], volume_dirs: Mapping[str, str]) -> tuple[Mount, ...]:
    out: list[Mount] = []
    for m in requests:
        if m.kind == "tmpfs":
            opts = list(m.tmpfs_options) or ["noexec", "nosuid", "nodev"]
            if m.tmpfs_size and not any(o.startswith("size=") for o in opts):
                opts.append(f"size={m.tmpfs_size}")
            if m.tmpfs_mode is not None and not any(o.startswith("mode=") for o in opts):
                opts.append(f"mode={m.tmpfs_mode:o}")
            if m.read_only and "ro" not in opts:
                opts.append("ro")
            out.append(Mount(destination=m.destination, type="tmpfs", source="tmpfs",
                             options=tuple(opts)))
            continue
        if m.kind == "bind":
            source = m.source
            if not os.path.lexists(source):
                if not m.create_source:
                    raise InvalidArgument(f"invalid mount config for type \"bind\": bind source "
                                          f"path does not exist: {source}")
                os.makedirs(source, mode=0o755, exist_ok=True)
        elif m.kind == "volume":
            source = volume_dirs.get(m.destination, "")
            if not source:
                raise InvalidArgument(f"mount {m.destination}: volume {m.source or '(anonymous)'} "
                                      "has no directory")
        else:
            raise InvalidArgument(f"mount {m.destination}: unknown type {m.kind!r}")
        opts = ["bind" if m.non_recursive else "rbind", "ro" if m.read_only else "rw",
                m.propagation or "rprivate"]
        out.append(Mount(destination=m.destination, type="bind", source=source,
                         options=tuple(opts)))
    return tuple(out)


def docker_mounts(requests: Sequence[MountRequest], volume_dirs: Mapping[str, str]) -> list[dict]:
    """``Mounts`` of ``docker inspect`` / ``docker ps``."""
    out: list[dict] = []
    for m in requests:
        if m.kind == "tmpfs" and m.origin == "tmpfs":
            continue  # --tmpfs mounts are not listed by docker inspect; --mount type=tmpfs are
        if m.kind == "tmpfs":
            out.append({"Type": "tmpfs", "Source": "", "Destination": m.destination,
                        "Mode": m.mode, "RW": not m.read_only, "Propagation": ""})
        elif m.kind == "bind":
            out.append({"Type": "bind", "Source": m.source, "Destination": m.destination,
                        "Mode": m.mode, "RW": not m.read_only,
                        "Propagation": m.propagation or "rprivate"})
        else:
            src = volume_dirs.get(m.destination, "")
            name = os.path.basename(os.path.dirname(src)) if src else m.source
            out.append({"Type": "volume", "Name": name, "Source": src,
                        "Destination": m.destination, "Driver": m.driver or "local",
                        "Mode": m.mode or "z", "RW": not m.read_only, "Propagation": ""})
    return out
