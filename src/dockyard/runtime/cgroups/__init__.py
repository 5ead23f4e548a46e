"""cgroups for the OCI runtime: v1 and v2 managers behind one interface.

``open_manager(root)`` picks the manager for the host (``detect``); ``manager.create(path)``
returns a :class:`~dockyard.runtime.cgroups.base.Cgroup` handle; ``handle.paths()`` and
``handle.created()`` go into the container state, and ``load(paths, created)`` reopens the
same cgroup in a later process (kill, pause, delete). The pure conversion of
``linux.resources`` into file writes is in :mod:`.resources`.

Only the manager for the detected version is imported: this runs at every container start.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dockyard.runtime.cgroups.base import Cgroup, Manager

DEFAULT_ROOT = "/sys/fs/cgroup"
PROC_SELF_CGROUP = "/proc/self/cgroup"


def detect(root: str = DEFAULT_ROOT) -> str:
    """"v2" when ``root`` itself is a cgroup2 mount (it has cgroup.controllers), else "v1".

    A hybrid host (v1 controllers plus a controller-less cgroup2 at root/unified) is "v1".
    """
    return "v2" if os.path.exists(root.rstrip("/") + "/cgroup.controllers") else "v1"


def open_manager(root: str = DEFAULT_ROOT, proc_self_cgroup: str = PROC_SELF_CGROUP) -> Manager:
    if detect(root) == "v2":
        from dockyard.runtime.cgroups.v2 import V2Manager

        return V2Manager(root, proc_self_cgroup)
    from dockyard.runtime.cgroups.v1 import V1Manager

    return V1Manager(root, proc_self_cgroup)


def load(paths: dict[str, str], created: dict[str, str] | None = None,
         root: str = DEFAULT_ROOT) -> Cgroup:
    """Reopen a cgroup saved as ``paths()``/``created()``; the version follows from the keys
    (v2 stores its one directory under "")."""
    if "" in paths:
        from dockyard.runtime.cgroups.v2 import V2Manager

        return V2Manager(root).load(paths, created)
    from dockyard.runtime.cgroups.v1 import V1Manager

    return V1Manager(root).load(paths, created)
