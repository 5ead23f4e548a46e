"""Host devices for a container: ``--device`` nodes and the block devices that I/O limits name
(``--device-read-bps`` …, ``--blkio-weight-device``), resolved to major:minor on this host."""

from __future__ import annotations

import os
import stat

from dockyard.errors import InvalidArgument
from dockyard.oci.spec_builder import BlockLimit, HostDevice

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def _node(path: str, what: str) -> os.stat_result:
    try:
        st = os.stat(path)
    except OSError as e:
        raise InvalidArgument(f"{what} {path}: {e.strerror}") from None
    if not (stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)):
        raise InvalidArgument(f"{what} {path}: not a device node")
    return st


def host_devices(req: Any) -> tuple[HostDevice, ...]:
    """``HostConfig.Devices``: each a node (or a directory of nodes, one level, as docker)."""
    out: list[HostDevice] = []
    for d in req.devices:
        access = d.cgroup_permissions or "rwm"
        if not set(access) <= set("rwm"):
            raise InvalidArgument(f"invalid device mode {access!r} for {d.path_on_host}")
        if os.path.isdir(d.path_on_host):
            for name in sorted(os.listdir(d.path_on_host)):
                src = os.path.join(d.path_on_host, name)
                if os.path.isdir(src):
                    continue
                try:
                    st = _node(src, "device")
                except InvalidArgument:
                    continue
                dest = os.path.join(d.path_in_container or d.path_on_host, name)
                out.append(_device(dest, st, access))
            continue
        st = _node(d.path_on_host, "error gathering device information while adding custom "
                   "device")
        out.append(_device(d.path_in_container or d.path_on_host, st, access))
    return tuple(out)


def _device(dest: str, st: os.stat_result, access: str) -> HostDevice:
    return HostDevice(path=dest, type="b" if stat.S_ISBLK(st.st_mode) else "c",
                      major=os.major(st.st_rdev), minor=os.minor(st.st_rdev),
                      file_mode=stat.S_IMODE(st.st_mode), uid=st.st_uid, gid=st.st_gid,
                      access=access)


def block_limits(req: Any) -> tuple[BlockLimit, ...]:
    out: list[BlockLimit] = []
    for kind, items in (("throttleReadBpsDevice", req.device_read_bps),
                        ("throttleWriteBpsDevice", req.device_write_bps),
                        ("throttleReadIOPSDevice", req.device_read_iops),
                        ("throttleWriteIOPSDevice", req.device_write_iops)):
        for t in items:
            st = _node(t.path, "block I/O limit device")
            if not stat.S_ISBLK(st.st_mode):
                raise InvalidArgument(f"block I/O limit device {t.path}: not a block device")
            out.append(BlockLimit(kind, os.major(st.st_rdev), os.minor(st.st_rdev), t.rate))
    for w in req.blkio_weight_devices:
        st = _node(w.path, "blkio weight device")
        out.append(BlockLimit("weightDevice", os.major(st.st_rdev), os.minor(st.st_rdev),
                              w.weight))
    return tuple(out)
