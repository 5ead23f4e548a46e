"""The spec builder against what dockerd writes for ``docker run``.

``DOCKERD_20_10`` is the config.json dockerd 20.10.24 (Debian's docker.io) handed to containerd on
this machine for ``docker run -d --network none IMG sleep 100`` with an image imported from a
busybox rootfs (no Env, no Cmd), container id ``CID``; trimmed only of what the builder leaves to
other layers (documented in ``oci/spec_builder.py``): the resolv.conf/hostname/hosts bind mounts,
the libnetwork prestart hook, the seccomp profile, the absolute root path and zero-valued resource
fields. The other cases were captured the same way with the flags named in each test.
"""

from __future__ import annotations

import copy
import signal

import pytest

from dockyard import errors
from dockyard.oci.image_config import ContainerConfig, ImageConfig
from dockyard.oci.runtime_spec import CAPABILITIES, Mount, parse_spec
from dockyard.oci.spec_builder import (
    DEFAULT_CAPABILITIES, ResolvedUser, RunOptions, Ulimit, build_spec, capabilities, merge_env,
    parse_numeric_user, parse_signal, process_args, stop_signal)
from dockyard.record import replace

CID = "08f33919ba900c51e9582d4ee34db602a91ac106c4f4d83d30c08eac8781c7c9"
CAPS = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
        "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
        "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"]
DOCKERD_20_10 = {
    "ociVersion": "1.0.2-dev",
    "process": {
        "user": {"uid": 0, "gid": 0, "additionalGids": [0]},
        "args": ["sleep", "100"],
        "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "HOSTNAME=08f33919ba90"],
        "cwd": "/",
        "capabilities": {"bounding": CAPS, "effective": CAPS, "permitted": CAPS},
        "oomScoreAdj": 0,
    },
    "root": {"path": "rootfs"},
    "hostname": "08f33919ba90",
    "mounts": [
        {"destination": "/proc", "type": "proc", "source": "proc",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs",
         "options": ["nosuid", "noexec", "nodev", "ro"]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["ro", "nosuid", "noexec", "nodev"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=67108864"]},
    ],
    "linux": {
        "sysctl": {"net.ipv4.ip_unprivileged_port_start": "0",
                   "net.ipv4.ping_group_range": "0 2147483647"},
        "resources": {"devices": [
            {"allow": False, "access": "rwm"},
            {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rwm"},
            {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
            {"allow": True, "type": "c", "major": 1, "minor": 9, "access": "rwm"},
            {"allow": True, "type": "c", "major": 1, "minor": 8, "access": "rwm"},
            {"allow": True, "type": "c", "major": 5, "minor": 0, "access": "rwm"},
            {"allow": True, "type": "c", "major": 5, "minor": 1, "access": "rwm"},
            {"allow": False, "type": "c", "major": 10, "minor": 229, "access": "rwm"},
        ]},
        "cgroupsPath": f"/docker/{CID}",
        "namespaces": [{"type": "mount"}, {"type": "network"}, {"type": "uts"}, {"type": "pid"},
                       {"type": "ipc"}],
        "maskedPaths": ["/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys",
                        "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                        "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
                        "/sys/devices/virtual/powercap"],  # Docker 25+
        "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                          "/proc/sysrq-trigger"],
    },
}


def image(**config) -> ImageConfig:
    return ImageConfig(architecture="amd64", os="linux", config=ContainerConfig(**config))


def opts(**kw) -> RunOptions:
    kw.setdefault("container_id", CID)
    kw.setdefault("cgroup_parent", "/docker")
    return RunOptions(**kw)


def expected(**changes) -> dict:
    """DOCKERD_20_10 with dotted-path changes: ``expected(**{"process.cwd": "/x"})``."""
    out = copy.deepcopy(DOCKERD_20_10)
    for path, value in changes.items():
        *parents, last = path.split(".")
        node = out
        for p in parents:
            node = node[p]
        if value is DELETE:
            del node[last]
        else:
            node[last] = value
    return out


DELETE = object()


def test_docker_run_default() -> None:
    spec = build_spec(image(), opts(cmd=("sleep", "100")))
    assert spec == DOCKERD_20_10
    parse_spec(spec)  # the runtime's parser takes it


def test_docker_run_with_flags() -> None:
    """``-u 65534 -w /tmp/x -e A=b --read-only -m 64m --pids-limit 50 --cpus 0.5 --cap-drop
    NET_RAW --cap-add SYS_ADMIN --hostname hh --ulimit nofile=100:200 --oom-score-adj 10``;
    65534 is nobody in the image's /etc/passwd (gid 65534)."""
    caps = [c for c in CAPS if c != "CAP_NET_RAW"] + ["CAP_SYS_ADMIN"]
    spec = build_spec(image(), opts(
        cmd=("sleep", "100"), user="65534", working_dir="/tmp/x", env=("A=b",), read_only=True,
        memory=64 << 20, pids_limit=50, nano_cpus=500_000_000, cap_drop=("NET_RAW",),
        cap_add=("SYS_ADMIN",), hostname="hh", ulimits=(Ulimit("nofile", 100, 200),),
        oom_score_adj=10), user=ResolvedUser(65534, 65534, (65534,)))
    want = expected(**{
        "process.user": {"uid": 65534, "gid": 65534, "additionalGids": [65534]},
        "process.env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                        "HOSTNAME=hh", "A=b"],
        "process.cwd": "/tmp/x",
        "process.capabilities": {"bounding": caps},  # non-root: bounding only
        "process.rlimits": [{"type": "RLIMIT_NOFILE", "hard": 200, "soft": 100}],
        "process.oomScoreAdj": 10,
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "hh",
        "linux.resources": {**DOCKERD_20_10["linux"]["resources"],
                            "memory": {"limit": 67108864, "swap": 134217728},
                            "cpu": {"quota": 50000, "period": 100000},
                            "pids": {"limit": 50}},
    })
    assert spec == want
    assert list(spec["process"]) == ["user", "args", "env", "cwd", "capabilities", "rlimits",
                                     "oomScoreAdj"]  # dockerd's order
    parse_spec(spec)


def test_host_network_and_tty() -> None:
    """``--network host -t``: no network namespace (dockerd joins its own via a path), no
    network sysctls, TERM=xterm, the host's hostname (passed by the caller)."""
    spec = build_spec(image(), opts(cmd=("sleep", "100"), network="host", tty=True, hostname="vm"))
    want = expected(**{
        "process.env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                        "HOSTNAME=vm", "TERM=xterm"],
        "hostname": "vm",
        "linux.sysctl": DELETE,
        "linux.namespaces": [{"type": "mount"}, {"type": "uts"}, {"type": "pid"}, {"type": "ipc"}],
    })
    want["process"] = {"terminal": True, **want["process"]}
    assert spec == want


def test_image_config_used() -> None:
    cfg = image(env=("PATH=/opt/bin", "LANG=C"), entrypoint=("/entry",), cmd=("--serve",),
                working_dir="/srv/app", user="0:0")
    spec = build_spec(cfg, opts())
    assert spec["process"]["args"] == ["/entry", "--serve"]
    assert spec["process"]["env"] == ["PATH=/opt/bin", f"HOSTNAME={CID[:12]}", "LANG=C"]
    assert spec["process"]["cwd"] == "/srv/app"
    assert spec["process"]["user"] == {"uid": 0, "gid": 0, "additionalGids": [0]}


@pytest.mark.parametrize("entrypoint, cmd, want", [
    (None, None, ["/entry", "--serve"]),
    (None, ("x", "y"), ["/entry", "x", "y"]),
    (("/other",), None, ["/other"]),  # a new entrypoint drops the image's Cmd
    (("/other",), ("a",), ["/other", "a"]),
    (("",), ("echo", "hi"), ["echo", "hi"]),  # --entrypoint ""
    ((), None, ["--serve"]),  # Entrypoint [] in the API: cleared, image Cmd kept
])
def test_entrypoint_cmd_merge(entrypoint, cmd, want) -> None:
    cfg = image(entrypoint=("/entry",), cmd=("--serve",))
    assert process_args(cfg, opts(entrypoint=entrypoint, cmd=cmd)) == want


def test_no_command() -> None:
    with pytest.raises(errors.InvalidArgument, match="No command specified"):
        build_spec(image(), opts())
    with pytest.raises(errors.InvalidArgument, match="No command specified"):
        process_args(image(cmd=("sh",)), opts(entrypoint=("",)))


def test_env_merge() -> None:
    env = merge_env(("PATH=/img", "A=1", "B=2", "C=3"), ("B=run", "C", "D=4", "HOSTNAME=x"),
                    hostname="h", tty=True)
    # run env first (image keys it sets dropped), a bare key unsets, defaults replaced in place
    assert env == ["PATH=/img", "HOSTNAME=x", "TERM=xterm", "B=run", "D=4", "A=1"]
    assert merge_env((), ("PATH",), hostname="h", tty=False) == ["HOSTNAME=h"]
    with pytest.raises(errors.InvalidArgument, match="invalid environment variable '=x'"):
        merge_env((), ("=x",), hostname="h", tty=False)


@pytest.mark.parametrize("user, want", [
    ("", ResolvedUser(0, 0, (0,))),
    ("1000", ResolvedUser(1000, 0, (0,))),
    ("1000:50", ResolvedUser(1000, 50, (50,))),
    ("2147483647:2147483647", ResolvedUser(2**31 - 1, 2**31 - 1, (2**31 - 1,))),
])
def test_numeric_user(user, want) -> None:
    assert parse_numeric_user(user) == want


@pytest.mark.parametrize("user, match", [
    ("nobody", "must be resolved"),
    ("0:wheel", "must be resolved"),
    ("-1", "out of range"),
    ("1:-1", "out of range"),
    ("+5", "out of range"),
    ("4294967295", "out of range"),  # (uid_t)-1 would leave the process root
    ("2147483648", "out of range"),
    ("99999999999999999999", "out of range"),
    (":5", "empty user"),
    ("5:", "empty group"),
])
def test_user_refused(user, match) -> None:
    """Checklist item 20: never root by accident — names need the container's files, and ids
    outside Docker's range are refused, not wrapped."""
    with pytest.raises(errors.InvalidArgument, match=match):
        build_spec(image(cmd=("sh",)), opts(user=user))


def test_image_user_name_needs_resolution() -> None:
    with pytest.raises(errors.InvalidArgument, match="'app'"):
        build_spec(image(cmd=("sh",), user="app"), opts())
    spec = build_spec(image(cmd=("sh",), user="app"), opts(),
                      user=ResolvedUser(100, 101, (101, 5)))
    assert spec["process"]["user"] == {"uid": 100, "gid": 101, "additionalGids": [101, 5]}
    with pytest.raises(errors.InvalidArgument, match="out of range"):
        build_spec(image(cmd=("sh",)), opts(), user=ResolvedUser(-1, 0))


def test_capabilities() -> None:
    assert capabilities(opts()) == list(DEFAULT_CAPABILITIES)
    assert capabilities(opts(cap_drop=("all",), cap_add=("net_admin", "CAP_CHOWN"))) == [
        "CAP_NET_ADMIN", "CAP_CHOWN"]
    every = capabilities(opts(cap_add=("ALL",), cap_drop=("SYS_ADMIN",)))
    assert "CAP_SYS_ADMIN" not in every and len(every) == len(CAPABILITIES) - 1
    assert capabilities(opts(cap_add=("CHOWN",))) == list(DEFAULT_CAPABILITIES)  # no duplicate
    with pytest.raises(errors.InvalidArgument, match="unknown capability: 'BOGUS'"):
        capabilities(opts(cap_add=("BOGUS",)))


def test_privileged() -> None:
    spec = build_spec(image(cmd=("sh",)), opts(privileged=True))
    assert spec["process"]["capabilities"]["bounding"] == list(CAPABILITIES)
    assert "maskedPaths" not in spec["linux"] and "readonlyPaths" not in spec["linux"]
    assert spec["linux"]["resources"]["devices"] == [{"allow": True, "access": "rwm"}]
    sys_mounts = {m["destination"]: m["options"] for m in spec["mounts"]}
    assert "ro" not in sys_mounts["/sys"] and "ro" not in sys_mounts["/sys/fs/cgroup"]


def test_namespaces_modes_and_joins() -> None:
    spec = build_spec(image(cmd=("sh",)), opts(pid="host", ipc="host", uts="host",
                                              cgroupns="private"))
    assert spec["linux"]["namespaces"] == [{"type": "mount"}, {"type": "network"},
                                           {"type": "cgroup"}]
    assert "hostname" not in spec  # --uts host: the host's name stays
    shm = [m for m in spec["mounts"] if m["destination"] == "/dev/shm"]
    assert shm == [{"destination": "/dev/shm", "type": "bind", "source": "/dev/shm",
                    "options": ["rbind", "rprivate"]}]
    joined = build_spec(image(cmd=("sh",)), opts(namespace_paths=(("network", "/proc/9/ns/net"),)))
    assert joined["linux"]["namespaces"][1] == {"type": "network", "path": "/proc/9/ns/net"}
    assert "sysctl" not in joined["linux"]  # another container's namespace: its settings
    with pytest.raises(errors.InvalidArgument, match="invalid network mode 'weird'"):
        build_spec(image(cmd=("sh",)), opts(network="weird"))
    with pytest.raises(errors.InvalidArgument, match="cannot join a 'user' namespace"):
        build_spec(image(cmd=("sh",)), opts(namespace_paths=(("user", "/proc/1/ns/user"),)))


def test_user_mounts_replace_defaults_and_sort() -> None:
    mounts = (Mount("/data/sub", "bind", "/h/sub", ("rbind",)),
              Mount("/data", "bind", "/h/data", ("rbind", "ro")),
              Mount("/dev/shm", "tmpfs", "tmpfs", ("size=1m",)),
              Mount("/etc/resolv.conf", "bind", "/h/resolv.conf", ("rbind", "rprivate")))
    spec = build_spec(image(cmd=("sh",)), opts(mounts=mounts))
    dests = [m["destination"] for m in spec["mounts"]]
    assert dests == ["/proc", "/dev", "/dev/pts", "/sys", "/sys/fs/cgroup", "/dev/mqueue",
                     "/data", "/data/sub", "/dev/shm", "/etc/resolv.conf"]
    dev = build_spec(image(cmd=("sh",)), opts(mounts=(Mount("/dev", "bind", "/dev", ("rbind",)),)))
    assert [m["destination"] for m in dev["mounts"]] == ["/proc", "/sys", "/sys/fs/cgroup", "/dev"]


def test_cgroups_path_and_limits() -> None:
    spec = build_spec(image(cmd=("sh",)), opts(cgroup_parent="/dockyard", cpu_shares=512,
                                              memory=10 << 20, memory_swap=-1,
                                              cpuset_cpus="0-1", oom_kill_disable=True))
    assert spec["linux"]["cgroupsPath"] == f"/dockyard/{CID}"
    res = spec["linux"]["resources"]
    assert res["memory"] == {"limit": 10 << 20, "swap": -1, "disableOOMKiller": True}
    assert res["cpu"] == {"shares": 512, "cpus": "0-1"}
    assert build_spec(image(cmd=("sh",)), RunOptions(container_id="c1"))["linux"]["cgroupsPath"] \
        == "/dockyard/c1"
    parse_spec(spec)


@pytest.mark.parametrize("kw, match", [
    ({"memory": 1 << 20}, "Minimum memory limit allowed is 6MB"),
    ({"memory": 64 << 20, "memory_swap": 32 << 20}, "Minimum memoryswap limit"),
    ({"memory_swap": 64 << 20}, "always set the Memory limit"),
    ({"nano_cpus": 10**9, "cpu_period": 1000}, "Conflicting options"),
    ({"ulimits": (Ulimit("bogus", 1, 1),)}, "invalid ulimit type: bogus"),
    ({"ulimits": (Ulimit("nofile", 10, 5),)}, "soft limit 10"),
    ({"oom_score_adj": 1001}, "range for oom score adj"),
    ({"working_dir": "rel/dir"}, "needs to be an absolute path"),
    ({"hostname": "x" * 65}, "invalid hostname"),
    ({"container_id": ""}, "container id is required"),
    ({"container_id": "../x"}, "invalid container id"),
])
def test_refused_options(kw, match) -> None:
    with pytest.raises(errors.InvalidArgument, match=match):
        build_spec(image(cmd=("sh",)), opts(**kw))


def test_read_only_terminal_console_annotations() -> None:
    spec = build_spec(image(cmd=("sh",)), opts(tty=True, console_size=(24, 80), read_only=True,
                                              annotations=(("a", "b"),), no_new_privileges=True,
                                              sysctls=(("net.core.somaxconn", "1024"),)))
    assert spec["process"]["terminal"] is True
    assert spec["process"]["consoleSize"] == {"height": 24, "width": 80}
    assert spec["process"]["noNewPrivileges"] is True
    assert spec["root"] == {"path": "rootfs", "readonly": True}
    assert spec["annotations"] == {"a": "b"}
    assert spec["linux"]["sysctl"]["net.core.somaxconn"] == "1024"
    parse_spec(spec)


def test_no_rlimits_by_default() -> None:
    """No ulimit given: the process keeps the caller's limits (nofile included)."""
    assert "rlimits" not in build_spec(image(cmd=("sh",)), opts())["process"]


def test_stop_signal() -> None:
    assert stop_signal(image(), opts()) == signal.SIGTERM
    assert stop_signal(image(stop_signal="SIGQUIT"), opts()) == signal.SIGQUIT
    assert stop_signal(image(stop_signal="SIGQUIT"), opts(stop_signal="usr1")) == signal.SIGUSR1
    assert parse_signal("9") == 9
    assert parse_signal("SIGRTMIN+3") == signal.SIGRTMIN + 3
    for bad in ("SIGNOPE", "0", "999", "", "SIG_DFL"):
        with pytest.raises(errors.InvalidArgument, match="invalid signal"):
            parse_signal(bad)


def test_options_are_records() -> None:
    base = opts(cmd=("a",))
    assert replace(base, cmd=("b",)).cmd == ("b",) and base.cmd == ("a",)
