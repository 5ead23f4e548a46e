"""Shared test helpers: ids, runc's default spec, bundles, a runtime driver, the leak check.

Import from any test file as ``from helpers import ...`` (tests/conftest.py puts this directory on
sys.path). Nothing here imports dockyard: the helpers are the oracle the product is checked against.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Mapping

# --------------------------------------------------------------------------------------------------
# ids

#: Four hex digits that mark every id this pytest process makes (see :func:`unique_id`), so the
#: leak check can tell this session's objects from those of a concurrent session on the same host.
SESSION_TAG = secrets.token_hex(2)
_ID_RE = re.compile(r"dy([0-9a-f]{4})[0-9a-f]{6}")


def unique_id() -> str:
    """A fresh 12-character container id, ``dy<session tag><6 random hex>``.

    Short enough to derive interface names from, valid for runc (``[\\w+-.]``).
    """
    return f"dy{SESSION_TAG}{secrets.token_hex(3)}"


# --------------------------------------------------------------------------------------------------
# specs

_DEFAULT_CAPS = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]


def default_spec() -> dict:
    """A new copy of the config.json that ``runc spec`` (1.1) writes."""
    return {
        "ociVersion": "1.0.2-dev",
        "process": {
            "terminal": True,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "TERM=xterm",
            ],
            "cwd": "/",
            "capabilities": {
                k: list(_DEFAULT_CAPS) for k in ("bounding", "effective", "permitted", "ambient")
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "runc",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
        ],
        "linux": {
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
                "/proc/scsi",
            ],
            "readonlyPaths": [
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
            ],
        },
    }


class _Remove:
    def __repr__(self) -> str:
        return "REMOVE"


#: Use as an override value to delete a key: ``deep_merge(spec, {"linux": {"seccomp": REMOVE}})``.
REMOVE: Any = _Remove()


def deep_merge(base: Mapping, overrides: Mapping) -> dict:
    """A new dict: ``base`` with ``overrides`` applied.

    Mappings merge key by key, recursively; any other value (lists included) replaces the old one;
    :data:`REMOVE` deletes the key. Neither argument is modified.
    """
    out = copy.deepcopy(dict(base))
    for key, value in overrides.items():
        if value is REMOVE:
            out.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


# --------------------------------------------------------------------------------------------------
# rootfs and bundles

HOST_BUSYBOX = Path("/bin/busybox")
ROOTFS_DIRS = ("proc", "sys", "dev", "tmp", "etc", "root", "run", "var")


def build_busybox_rootfs(dest: Path, busybox: Path = HOST_BUSYBOX) -> Path:
    """Make ``dest`` a minimal rootfs: a static busybox, its applets as symlinks in /bin."""
    bindir = dest / "bin"
    bindir.mkdir(parents=True)
    shutil.copy2(busybox, bindir / "busybox")
    applets = subprocess.run([str(busybox), "--list"], check=True, capture_output=True,
                             text=True).stdout.split()
    for name in applets:
        if name != "busybox":
            (bindir / name).symlink_to("busybox")
    for name in ROOTFS_DIRS:
        (dest / name).mkdir(exist_ok=True)
    (dest / "tmp").chmod(0o1777)
    (dest / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n")
    (dest / "etc/group").write_text("root:x:0:\nnogroup:x:65534:\n")
    return dest


@dataclasses.dataclass(frozen=True)
class Bundle:
    path: Path        # the bundle directory (pass as --bundle)
    id: str           # a fresh container id the bundle was made for
    config: dict      # what was written to config.json
    rootfs: Path      # absolute root.path

    def rewrite(self, **overrides: Any) -> "Bundle":
        """Deep-merge more overrides into config.json; returns the updated Bundle."""
        config = deep_merge(self.config, overrides)
        write_json(self.path / "config.json", config)
        return dataclasses.replace(self, config=config)


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n")


def make_bundle(directory: Path, shared_rootfs: Path, args: list[str] | None = None, *,
                id: str | None = None, private_rootfs: bool = False, **overrides: Any) -> Bundle:
    """Write ``directory/config.json``: runc's default spec set up for tests, then ``overrides``.

    Test defaults: ``process.terminal`` false, ``process.args`` = ``args`` (default ``["true"]``),
    ``hostname`` = the id, ``linux.cgroupsPath`` = ``/dockyard-test/<id>``, and ``root`` = the
    shared read-only rootfs, or a writable private copy in ``directory/rootfs`` when
    ``private_rootfs``. Overrides are deep-merged (see :func:`deep_merge`).
    """
    cid = id or unique_id()
    directory.mkdir(parents=True, exist_ok=True)
    if private_rootfs:
        rootfs = directory / "rootfs"
        shutil.copytree(shared_rootfs, rootfs, symlinks=True)
    else:
        rootfs = shared_rootfs
    config = deep_merge(default_spec(), {
        "process": {"terminal": False, "args": list(args or ["true"])},
        "root": {"path": str(rootfs), "readonly": not private_rootfs},
        "hostname": cid,
        "linux": {"cgroupsPath": f"/dockyard-test/{cid}"},
    })
    config = deep_merge(config, overrides)
    write_json(directory / "config.json", config)
    return Bundle(path=directory, id=cid, config=config, rootfs=rootfs)


# --------------------------------------------------------------------------------------------------
# driving a runtime (dockyard-runtime or runc) through its command line

RUNTIME_NAMES = ("dockyard", "runc")


def runtime_binary(name: str) -> Path:
    """Where the named runtime's executable is (it may not exist)."""
    if name == "dockyard":
        # The console script installed next to this interpreter (the venv's bin/), not a PATH hit.
        return Path(sys.executable).parent / "dockyard-runtime"
    if name == "runc":
        return Path(shutil.which("runc") or "/usr/sbin/runc")
    raise ValueError(f"unknown runtime {name!r}; expected one of {RUNTIME_NAMES}")


class CommandFailed(subprocess.CalledProcessError):
    """A runtime command failed; str() shows the command, exit status, stdout and stderr."""

    def __str__(self) -> str:
        return (f"{' '.join(map(str, self.cmd))} exited {self.returncode}\n"
                f"--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}")


def _read_back(f) -> str:
    f.seek(0)
    return f.read().decode(errors="replace")


class Runtime:
    """Runs ``<binary> --root <root> ...``; every call gets the same private state directory."""

    def __init__(self, binary: Path | str, root: Path | str, name: str | None = None):
        self.binary = Path(binary)
        self.root = Path(root)
        self.name = name or self.binary.name

    def argv(self, *args: Any) -> list[str]:
        return [str(self.binary), "--root", str(self.root), *map(str, args)]

    def run(self, *args: Any, check: bool = True, input: str | None = None,
            timeout: float = 60, **kwargs: Any) -> subprocess.CompletedProcess:
        """Run one command to completion; returns text stdout/stderr unless redirected in kwargs.

        Output is captured in temporary files, not pipes: after ``create`` the container holds the
        runtime's stdio, and a pipe would not reach EOF until it exits. stdin is /dev/null unless
        ``input`` is given. With ``check``, a non-zero exit raises :class:`CommandFailed`.
        """
        if input is None:
            kwargs.setdefault("stdin", subprocess.DEVNULL)
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            kwargs.setdefault("stdout", out)
            kwargs.setdefault("stderr", err)
            data = None if input is None else input.encode()
            proc = subprocess.run(self.argv(*args), input=data, timeout=timeout, **kwargs)
            proc.stdout, proc.stderr = (_read_back(f) if kwargs[k] is f else None
                                        for k, f in (("stdout", out), ("stderr", err)))
        if check and proc.returncode != 0:
            raise CommandFailed(proc.returncode, proc.args, proc.stdout, proc.stderr)
        return proc

    def popen(self, *args: Any, **kwargs: Any) -> subprocess.Popen:
        """Start a command without waiting (e.g. a foreground ``run`` to signal later)."""
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        return subprocess.Popen(self.argv(*args), **kwargs)

    def state(self, container_id: str) -> dict:
        return json.loads(self.run("state", container_id).stdout)

    def wait_status(self, container_id: str, status: str, timeout: float = 10) -> dict:
        """Poll ``state`` until the container has ``status``; returns the last state."""
        deadline = time.monotonic() + timeout
        while True:
            st = self.state(container_id)
            if st.get("status") == status or time.monotonic() > deadline:
                assert st.get("status") == status, f"{container_id}: {st} after {timeout}s"
                return st
            time.sleep(0.02)

    def containers(self) -> list[str]:
        """Ids that have state in --root (runc's layout: one directory per container)."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir())

    def cleanup(self) -> None:
        """Force-delete every container left in --root (test teardown)."""
        for cid in self.containers():
            self.run("delete", "--force", cid, check=False, timeout=30)


# --------------------------------------------------------------------------------------------------
# the leak check: what dockyard may leave on the host, before and after a session

_PROC_MARKERS = ("dockyard-runtime", "dockyard daemon")
_BASETEMP_RE = re.compile(r"/pytest-of-[^/]+/pytest-\d+")


def _cmd_lines(argv: list[str]) -> list[str]:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return out.stdout.splitlines() if out.returncode == 0 else []


def _mounts(basetemp: str) -> set[str]:
    found = set()
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            mountpoint = fields[4]
            fstype, source = fields[fields.index("-") + 1:fields.index("-") + 3]
            text = f"{mountpoint} {source}"
            netns_pin = fstype == "nsfs" and "/netns/" in mountpoint  # any exec-root/netns/<id>
            if "dockyard" in text or mountpoint.startswith(basetemp) or netns_pin:
                found.add(f"{mountpoint} (from {source})")
    return found


def _cgroups(root: Path = Path("/sys/fs/cgroup"), depth: int = 4) -> set[str]:
    found = set()

    def walk(path: Path, level: int) -> None:
        try:
            entries = list(os.scandir(path))
        except OSError:
            return
        for e in entries:
            if e.is_dir(follow_symlinks=False):
                if "dockyard" in e.path[len(str(root)):]:
                    found.add(e.path)
                if level < depth:
                    walk(Path(e.path), level + 1)

    walk(root, 1)
    return found


def _ancestors() -> set[int]:
    pids, pid = set(), os.getpid()
    while pid > 1:
        pids.add(pid)
        try:
            with open(f"/proc/{pid}/stat") as f:
                pid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return pids


def _read(path: str) -> str:
    with open(path, "rb") as f:
        return f.read().replace(b"\0", b" ").decode(errors="replace").strip()


def _processes() -> set[str]:
    """dockyard-runtime / daemon processes, and any process inside a cgroup named dockyard*."""
    found, mine = set(), _ancestors()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) in mine:
            continue
        try:
            cmd = _read(f"/proc/{entry.name}/cmdline")
            cgroups = {line.split(":", 2)[2] for line in _read(f"/proc/{entry.name}/cgroup").split()
                       if "dockyard" in line}
        except (OSError, IndexError):
            continue
        if any(m in cmd for m in _PROC_MARKERS) or cgroups:
            where = f" [cgroup {' '.join(sorted(cgroups))}]" if cgroups else ""
            found.add(f"pid {entry.name}: {cmd}{where}")
    return found


def host_snapshot(basetemp: Path | str) -> dict[str, set[str]]:
    """Everything of dockyard's kind on this host now, by kind."""
    return {
        "mounts": _mounts(str(basetemp)),
        "cgroups": _cgroups(),
        "netns": {line.split()[0] for line in _cmd_lines(["ip", "netns", "list"]) if line.strip()},
        "veths": {line.split(":")[1].strip().split("@")[0]
                  for line in _cmd_lines(["ip", "-o", "link", "show", "type", "veth"]) if ":" in line},
        "nftables": {line for line in _cmd_lines(["nft", "list", "tables"]) if "dockyard" in line},
        "bridges": {name for line in _cmd_lines(["ip", "-o", "link", "show", "type", "bridge"])
                    if ":" in line
                    for name in [line.split(":")[1].strip().split("@")[0]]
                    if name == "dockyard0" or name.startswith("dy-")},
        "processes": _processes(),
    }


def _not_ours(item: str, basetemp: str) -> bool:
    """True when ``item`` names another pytest session's temp dir or ids, not ours, or is a shared
    test cgroup parent."""
    if os.path.basename(item) in TEST_CGROUP_PARENTS:
        return True
    ours = _BASETEMP_RE.search(basetemp)
    if any(ours is None or m.group(0) != ours.group(0) for m in _BASETEMP_RE.finditer(item)):
        return True
    tags = {m.group(1) for m in _ID_RE.finditer(item)}
    return bool(tags) and SESSION_TAG not in tags


def new_objects(before: Mapping[str, set[str]], basetemp: Path | str,
                snapshot: Callable[[Path | str], dict[str, set[str]]] = host_snapshot,
                settle: float = 3.0) -> dict[str, set[str]]:
    """Objects present now that were not in ``before``, waiting up to ``settle`` s for them to go."""
    deadline = time.monotonic() + settle
    while True:
        now = snapshot(basetemp)
        leaks = {kind: {i for i in items - before.get(kind, set())
                        if not _not_ours(i, str(basetemp))}
                 for kind, items in now.items()}
        leaks = {k: v for k, v in leaks.items() if v}
        if not leaks or time.monotonic() > deadline:
            return leaks
        time.sleep(0.25)


TEST_CGROUP_PARENTS = ("dockyard-test", "dockyard")  # "dockyard": the engine's cgroup parent


def remove_test_cgroup_parents(parents: tuple[str, ...] = TEST_CGROUP_PARENTS) -> None:
    """rmdir the shared parent cgroups of the tests' cgroupsPath where empty (best effort).

    Runtimes, runc too, remove a container's own cgroup but leave its parents; the leak check
    ignores these parents and reports any container cgroup left inside them.
    """
    root = Path("/sys/fs/cgroup")
    hierarchies = [root] + [h for h in root.iterdir() if h.is_dir()]
    for path in (h / p for h in hierarchies for p in parents):
        try:
            path.rmdir()
        except OSError:
            pass  # absent, or still holds a cgroup: that one is reported
