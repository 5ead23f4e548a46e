"""Files the engine reads or patches around the runtime: a bundle's joined namespace paths,
and the cgroup counters that say whether the kernel OOM-killed a container's process."""

from __future__ import annotations


def patch_namespaces(config_path: str, paths: dict[str, str]) -> None:
    """Point the bundle's joined namespaces at their current files (written atomically)."""
    from dockyard.leanjson import dumps, loads
    from dockyard.runtime.state import write_atomic

    with open(config_path, "rb") as f:
        spec = loads(f.read())
    for ns in spec.get("linux", {}).get("namespaces", []):
        if ns.get("type") in paths:
            ns["path"] = paths[ns["type"]]
    write_atomic(config_path, dumps(spec).encode())


def oom_killed(cid: str, cgroup_root: str = "/sys/fs/cgroup") -> bool:
    """Whether the kernel OOM-killed a process of the container (v1 memory.oom_control's
    ``oom_kill``, v2 memory.events' ``oom_kill``), read before the runtime removes the cgroup."""
    for path in (f"{cgroup_root}/memory/dockyard/{cid}/memory.oom_control",
                 f"{cgroup_root}/dockyard/{cid}/memory.events"):
        try:
            with open(path) as f:
                for line in f:
                    key, _, value = line.partition(" ")
                    if key == "oom_kill" and value.strip().isdigit():
                        return int(value) > 0
        except OSError:
            continue
    return False
