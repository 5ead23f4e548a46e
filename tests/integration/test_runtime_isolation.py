"""dockyard-runtime on the real kernel: resource limits and isolation, seen from inside the container.

Every test runs busybox commands in a container and asserts on what they print (or on the host's
view of the container's cgroup), then checks that nothing is left: no state, no cgroup directory.
Runtime commands always have a timeout; the ``runtime`` fixture force-deletes leftovers.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from runtime_util import assert_nothing_left, assert_refused, run, run_ok

from helpers import REMOVE, default_spec

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")

CG = "/sys/fs/cgroup"
MiB = 1 << 20
DEFAULT_CAPS = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
MOUNTS = default_spec()["mounts"]


# ------------------------------------------------------------------ helpers


def poll(fn, what: str, timeout: float = 20.0, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        got = fn()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def read(path) -> str:
    with open(path) as f:
        return f.read()


def stat_fields(text: str) -> dict[str, int]:
    return {k: int(v) for k, v in (line.split() for line in text.splitlines() if line.strip())}


def kill_and_delete(runtime, cid: str) -> None:
    """Kill every process of a detached container, wait until its cgroup is empty, delete it."""
    procs = f"{CG}/pids/dockyard-test/{cid}/cgroup.procs"

    def empty() -> bool:
        runtime.run("kill", "--all", cid, "KILL", check=False, timeout=30)
        try:
            return read(procs).split() == []
        except OSError:
            return True

    poll(empty, f"every process of {cid} to die", timeout=30, interval=0.2)
    runtime.run("delete", "--force", cid, timeout=30)
    assert_nothing_left(runtime, cid)


def status_field(text: str, key: str) -> list[str]:
    for line in text.splitlines():
        if line.startswith(key + ":"):
            return line.split(":", 1)[1].split()
    raise AssertionError(f"{key} not in {text!r}")


def mountinfo_line(mountinfo: str, mountpoint: str) -> list[str]:
    lines = [ln.split() for ln in mountinfo.splitlines() if ln.split()[4:5] == [mountpoint]]
    assert lines, f"{mountpoint} not mounted:\n{mountinfo}"
    return lines[-1]


def has_memsw() -> bool:
    return os.path.exists(f"{CG}/memory/memory.memsw.limit_in_bytes")


def need_controller(name: str) -> None:
    if not os.path.isdir(f"{CG}/{name}") or os.path.exists(f"{CG}/cgroup.controllers"):
        pytest.skip(f"needs the cgroup v1 {name} controller mounted at {CG}/{name}")


# ------------------------------------------------------------------ resource limits


def test_fork_bomb_is_stopped_by_pids_limit_and_container_stays_controllable(make_bundle, runtime):
    need_controller("pids")
    script = "exec 2>/tmp/bomb.log; f(){ f|f& }; f; exec sleep 1000"
    b = make_bundle(["sh", "-c", script], private_rootfs=True,
                    linux={"resources": {"pids": {"limit": 20}}})
    r = run(runtime, b, "--detach", timeout=30)
    assert r.returncode == 0, r.stderr
    try:
        log = b.rootfs / "tmp/bomb.log"
        text = poll(lambda: log.exists() and "can't fork" in log.read_text() and log.read_text(),
                    "the shell to report a failed fork")
        assert "Resource temporarily unavailable" in text
        pids = f"{CG}/pids/dockyard-test/{b.id}"
        assert read(f"{pids}/pids.max").strip() == "20"
        assert int(read(f"{pids}/pids.current")) <= 20
        assert int(read(f"{pids}/pids.events").split()[1]) > 0  # "max <count of refused forks>"
        assert runtime.state(b.id)["status"] == "running"
    finally:
        kill_and_delete(runtime, b.id)


def _memory_limits() -> dict:
    need_controller("memory")
    mem = {"limit": 32 * MiB}
    if has_memsw():
        mem["swap"] = 32 * MiB  # memory+swap equal to memory: no swap
    return {"linux": {"resources": {"memory": mem}}}


def test_memory_hog_init_is_oom_killed(make_bundle, runtime):
    # dd's 200 MiB buffer is filled from /dev/zero: the init itself is the hog.
    b = make_bundle(["dd", "if=/dev/zero", "of=/dev/null", "bs=200M", "count=1"], **_memory_limits())
    r = run(runtime, b, timeout=60)
    assert r.returncode == 137, f"exit {r.returncode}: {r.stderr}"
    assert_nothing_left(runtime, b.id)


def test_memory_hog_child_is_oom_killed_and_counted(make_bundle, runtime):
    # The hog volunteers as the OOM killer's victim, so the shell that reports survives. (Not a
    # pipe: a writer still charging pipe buffers while the victim exits can make a second OOM.)
    script = ("sh -c 'echo 1000 > /proc/self/oom_score_adj; "
              "exec dd if=/dev/zero of=/dev/null bs=200M count=1'; "
              "echo rc=$?; "
              "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/memory/memory.oom_control")
    b = make_bundle(["sh", "-c", script], **_memory_limits())
    out = run_ok(runtime, b)
    assert "rc=137" in out
    assert str(32 * MiB) in out.split()
    oom = dict(line.split() for line in out.splitlines() if len(line.split()) == 2)
    assert int(oom.get("oom_kill", "1")) >= 1, out  # oom_kill appeared in 4.13
    assert oom["under_oom"] == "0"


def test_cpu_quota_throttles(make_bundle, runtime):
    need_controller("cpu")
    b = make_bundle(["sh", "-c", "while :; do :; done"],
                    linux={"resources": {"cpu": {"quota": 10000, "period": 100000}},
                           "namespaces": [{"type": t} for t in
                                          ("pid", "network", "ipc", "uts", "mount", "cgroup")]})
    r = run(runtime, b, "--detach", timeout=30)
    assert r.returncode == 0, r.stderr
    try:
        host = f"{CG}/cpu/dockyard-test/{b.id}"
        assert read(f"{host}/cpu.cfs_quota_us").strip() == "10000"
        stats = poll(lambda: (s := stat_fields(read(f"{host}/cpu.stat")))["nr_throttled"] > 0 and s,
                     "cpu.stat nr_throttled > 0")
        assert stats["throttled_time"] > 0
        # The same counters from inside, through the cgroup namespace's own cgroup mount.
        inside = runtime.run("exec", b.id, "sh", "-c",
                             "cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.stat",
                             timeout=60).stdout
        lines = inside.splitlines()
        assert lines[0] == "10000"
        assert stat_fields("\n".join(lines[1:]))["nr_throttled"] > 0
    finally:
        kill_and_delete(runtime, b.id)


# ------------------------------------------------------------------ devices and capabilities


def test_block_device_node_cannot_be_opened(make_bundle, runtime):
    script = ("mknod /tmp/sda b 8 0 && echo made-sda; head -c1 /tmp/sda; "
              "mknod /tmp/mem c 1 1 && echo made-mem; head -c1 /tmp/mem; "
              "head -c3 /dev/zero | wc -c; ls -A /dev")
    caps = DEFAULT_CAPS + ["CAP_MKNOD"]
    b = make_bundle(["sh", "-c", script],
                    process={"capabilities": {k: caps for k in ("bounding", "effective", "permitted")}},
                    mounts=MOUNTS + [
                        {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"}])
    r = run(runtime, b)
    # mknod is allowed (CAP_MKNOD, device cgroup "m"), opening is not (device cgroup deny).
    assert "made-sda" in r.stdout and "made-mem" in r.stdout, r.stdout + r.stderr
    assert "head: /tmp/sda: Operation not permitted" in r.stderr
    assert "head: /tmp/mem: Operation not permitted" in r.stderr
    lines = r.stdout.split()
    assert "3" in lines  # allowed devices still work
    dev = set(lines[lines.index("3") + 1:])
    assert dev == {"null", "zero", "full", "random", "urandom", "tty", "fd", "stdin", "stdout",
                   "stderr", "pts", "ptmx", "shm", "mqueue"}, dev


def test_mknod_without_cap_mknod_fails(make_bundle, runtime):
    b = make_bundle(["mknod", "/tmp/sda", "b", "8", "0"],
                    mounts=MOUNTS + [
                        {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"}])
    r = run(runtime, b)
    assert r.returncode != 0
    assert "Operation not permitted" in r.stderr


def test_default_capabilities_are_exactly_the_spec(make_bundle, runtime):
    out = run_ok(runtime, make_bundle(["cat", "/proc/self/status"]))
    want = (1 << 29) | (1 << 5) | (1 << 10)  # AUDIT_WRITE, KILL, NET_BIND_SERVICE
    for key in ("CapPrm", "CapEff", "CapBnd"):
        assert int(status_field(out, key)[0], 16) == want, key
    # runc's default spec lists ambient caps but no inheritable ones: neither set is raised.
    assert int(status_field(out, "CapInh")[0], 16) == 0
    assert int(status_field(out, "CapAmb")[0], 16) == 0
    assert status_field(out, "NoNewPrivs") == ["1"]


def test_dropped_cap_net_raw_is_missing_and_added_one_works(make_bundle, runtime):
    ping = ["ping", "-c1", "-W5", "127.0.0.1"]
    r = run(runtime, make_bundle(ping))
    assert r.returncode != 0
    assert re.search(r"permission denied|operation not permitted", r.stderr, re.I), r.stderr
    caps = DEFAULT_CAPS + ["CAP_NET_RAW"]
    b = make_bundle(ping, process={"capabilities": {
        k: caps for k in ("bounding", "effective", "permitted", "inheritable", "ambient")}})
    out = run_ok(runtime, b)
    assert "1 packets received" in out  # a new network namespace has lo up


# ------------------------------------------------------------------ process attributes


def test_only_stdio_fds_reach_the_container(make_bundle, runtime):
    out = run_ok(runtime, make_bundle(["ls", "/proc/self/fd"]))
    fds = set(out.split())
    assert {"0", "1", "2"} <= fds <= {"0", "1", "2", "3"}, fds  # 3: ls's own directory fd
    # The init itself (sh stays pid 1 because a command follows ls).
    out = run_ok(runtime, make_bundle(["sh", "-c", "ls /proc/1/fd; true"]))
    assert set(out.split()) == {"0", "1", "2"}, out


def test_hostname_and_domainname(make_bundle, runtime):
    b = make_bundle(["sh", "-c", "hostname; cat /proc/sys/kernel/domainname"],
                    hostname="box-one", domainname="example.test")
    assert run_ok(runtime, b).split() == ["box-one", "example.test"]
    assert os.uname().nodename != "box-one"


def test_user_groups_and_umask(make_bundle, runtime):
    script = "id -u; id -g; id -G; umask; grep Groups /proc/self/status"
    b = make_bundle(["sh", "-c", script], process={"user": {
        "uid": 1000, "gid": 1001, "additionalGids": [5, 2000], "umask": 0o027}})
    lines = run_ok(runtime, b).splitlines()
    assert lines[0] == "1000"
    assert lines[1] == "1001"
    assert set(lines[2].split()) == {"1001", "5", "2000"}
    assert lines[3] == "0027"
    assert set(lines[4].split()[1:]) == {"5", "2000"}


def test_rlimit_nofile(make_bundle, runtime):
    b = make_bundle(["sh", "-c", "ulimit -n; ulimit -Hn"],
                    process={"rlimits": [{"type": "RLIMIT_NOFILE", "soft": 1000, "hard": 1000}]})
    assert run_ok(runtime, b).split() == ["1000", "1000"]


@pytest.mark.parametrize("command", ["run", "create"])
def test_rlimit_above_our_hard_limit_is_refused(make_bundle, runtime, command):
    import resource

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard == resource.RLIM_INFINITY:
        pytest.skip("RLIMIT_NOFILE hard limit of the test process is unlimited")
    with open("/proc/self/status") as f:
        if int(status_field(f.read(), "CapEff")[0], 16) >> 24 & 1:
            pytest.skip("the test process has CAP_SYS_RESOURCE: it may raise its hard limit")
    b = make_bundle(["true"], process={"rlimits": [
        {"type": "RLIMIT_NOFILE", "soft": 1024, "hard": hard * 4}]})
    r = runtime.run(command, "--bundle", b.path, b.id, check=False, timeout=30)
    assert r.returncode != 0, r.stdout
    assert "process.rlimits" in r.stderr and "RLIMIT_NOFILE" in r.stderr, r.stderr
    if command == "create":
        assert r.returncode == 1
    assert_nothing_left(runtime, b.id)


def test_oom_score_adj(make_bundle, runtime):
    b = make_bundle(["cat", "/proc/self/oom_score_adj"], process={"oomScoreAdj": 500})
    assert run_ok(runtime, b).strip() == "500"


@pytest.mark.parametrize("forward", ["1", "0"])
def test_namespaced_sysctl_is_set_in_the_container_only(make_bundle, runtime, forward):
    # (A new network namespace copies ip_forward from the host's: test both values.)
    fwd, port = "/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/ipv4/ip_unprivileged_port_start"
    host_before = read(fwd), read(port)
    b = make_bundle(["cat", fwd, port],
                    linux={"sysctl": {"net.ipv4.ip_forward": forward,
                                      "net.ipv4.ip_unprivileged_port_start": "99"}})
    assert run_ok(runtime, b).split() == [forward, "99"]
    assert (read(fwd), read(port)) == host_before


def test_host_wide_sysctl_is_refused(make_bundle, runtime):
    before = read("/proc/sys/vm/swappiness")
    b = make_bundle(linux={"sysctl": {"vm.swappiness": "7"}})
    assert_refused(runtime, b, "linux.sysctl.vm.swappiness")
    assert read("/proc/sys/vm/swappiness") == before


# ------------------------------------------------------------------ root and mounts


def test_readonly_root(make_bundle, runtime):
    r = run(runtime, make_bundle(["touch", "/x"]))
    assert r.returncode != 0
    assert "Read-only file system" in r.stderr


def test_writable_private_root(make_bundle, runtime):
    b = make_bundle(["sh", "-c", "echo hello > /made-inside && cat /made-inside"], private_rootfs=True)
    assert run_ok(runtime, b).strip() == "hello"
    assert (b.rootfs / "made-inside").read_text() == "hello\n"


def test_bind_mount_options_and_propagation(make_bundle, runtime, tmp_path):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "file").write_text("from the host\n")
    prog = src / "prog"
    prog.write_text("#!/bin/sh\necho ran\n")
    prog.chmod(0o755)
    # A mount below the source: rbind carries it in.
    subprocess_run(["mount", "-t", "tmpfs", "-o", "size=1m", "sub-tmpfs", str(src / "sub")])
    try:
        (src / "sub/inner").write_text("inner\n")
        script = ("cat /data/file /data/sub/inner; /data/prog; echo exec=$?; "
                  "touch /data/new; echo touch=$?; cat /proc/self/mountinfo")
        mounts = MOUNTS + [
            {"destination": "/data", "type": "bind", "source": str(src),
             "options": ["rbind", "ro", "nosuid", "nodev", "noexec", "rshared"]},
            {"destination": "/plain", "type": "bind", "source": str(src), "options": ["bind", "rprivate"]},
        ]
        r = run(runtime, make_bundle(["sh", "-c", script], mounts=mounts))
        out = r.stdout
        assert "from the host" in out and "inner" in out, r.stdout + r.stderr
        assert "exec=126" in out and "Permission denied" in r.stderr  # noexec
        assert "touch=1" in out and "Read-only file system" in r.stderr  # ro
        data = mountinfo_line(out, "/data")
        opts = set(data[5].split(","))
        assert {"ro", "nosuid", "nodev", "noexec"} <= opts, data
        assert any(f.startswith("shared:") for f in data[6:data.index("-")]), data
        assert [ln for ln in out.splitlines() if ln.split()[4:5] == ["/data/sub"]], "rbind lost the submount"
        plain = mountinfo_line(out, "/plain")
        assert "rw" in plain[5].split(",")
        assert not any(":" in f for f in plain[6:plain.index("-")]), plain  # private: no peer group
        assert not [ln for ln in out.splitlines() if ln.split()[4:5] == ["/plain/sub"]], \
            "bind is not recursive"
        assert not (src / "new").exists()
    finally:
        subprocess_run(["umount", str(src / "sub")])


def subprocess_run(argv: list[str]) -> None:
    import subprocess

    subprocess.run(argv, check=True, timeout=30, capture_output=True)


def test_tmpfs_mount_size_and_mode(make_bundle, runtime):
    script = ("stat -c %a /scratch; dd if=/dev/zero of=/scratch/f bs=1k count=2048; "
              "echo dd=$?; grep ' /scratch ' /proc/self/mountinfo")
    mounts = MOUNTS + [
        {"destination": "/scratch", "type": "tmpfs", "source": "tmpfs",
         "options": ["size=1m", "mode=1770", "nosuid"]}]
    r = run(runtime, make_bundle(["sh", "-c", script], mounts=mounts))
    lines = r.stdout.splitlines()
    assert lines[0] == "1770", r.stdout + r.stderr
    assert "dd=1" in lines and "No space left on device" in r.stderr
    info = lines[-1].split()
    assert "nosuid" in info[5].split(",")
    assert "size=1024k" in info[-1].split(","), info


def test_tmpcopyup_keeps_the_image_content(make_bundle, runtime, busybox_rootfs):
    before = sorted(os.listdir(busybox_rootfs / "etc"))
    script = "cat /etc/passwd; echo new > /etc/added; ls /etc; grep ' /etc ' /proc/self/mountinfo"
    mounts = MOUNTS + [
        {"destination": "/etc", "type": "tmpfs", "source": "tmpfs", "options": ["tmpcopyup", "mode=755"]}]
    out = run_ok(runtime, make_bundle(["sh", "-c", script], mounts=mounts))
    assert "root:x:0:0:root:/root:/bin/sh" in out
    assert {"passwd", "group", "added"} <= set(out.split())
    assert " - tmpfs " in out
    assert sorted(os.listdir(busybox_rootfs / "etc")) == before  # the image is untouched


# ------------------------------------------------------------------ namespaces


@pytest.fixture
def userns_rootfs(busybox_rootfs):
    """A private rootfs owned by host uid/gid 100000, in a directory that uid can traverse (pytest's
    basetemp is 0700, which an unmapped root in a user namespace cannot enter)."""
    top = Path(tempfile.mkdtemp(prefix="dockyard-userns-"))
    try:
        top.chmod(0o711)
        rootfs = top / "rootfs"
        shutil.copytree(busybox_rootfs, rootfs, symlinks=True)
        for dirpath, dirnames, filenames in os.walk(rootfs):
            for name in [dirpath, *(os.path.join(dirpath, n) for n in dirnames + filenames)]:
                os.lchown(name, 100000, 100000)
        yield rootfs
    finally:
        shutil.rmtree(top, ignore_errors=True)


def test_user_namespace_mapping(make_bundle, runtime, userns_rootfs):
    if not os.path.exists("/proc/self/ns/user"):
        pytest.skip("kernel without user namespaces")
    mapping = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    b = make_bundle(["sh", "-c", "id -u; id -g; cat /proc/self/uid_map /proc/self/gid_map; exec sleep 1000"],
                    root={"path": str(userns_rootfs), "readonly": False},
                    linux={"namespaces": [{"type": t} for t in
                                          ("pid", "network", "ipc", "uts", "mount", "user")],
                           "uidMappings": mapping, "gidMappings": mapping})
    log = Path(tempfile.mkstemp(prefix="dockyard-userns-out-")[1])
    try:
        with open(log, "w") as out:
            r = runtime.run("run", "--detach", "--bundle", b.path, b.id, check=False, timeout=30,
                            stdout=out)
        assert r.returncode == 0, r.stderr
        try:
            text = poll(lambda: len(log.read_text().splitlines()) >= 4 and log.read_text(),
                        "the container's output")
            lines = text.splitlines()
            assert lines[:2] == ["0", "0"]
            assert lines[2].split() == ["0", "100000", "65536"]
            assert lines[3].split() == ["0", "100000", "65536"]
            pid = runtime.state(b.id)["pid"]
            status = poll(lambda: "sleep" in read(f"/proc/{pid}/cmdline") and read(f"/proc/{pid}/status"),
                          "the init to exec sleep")
            assert status_field(status, "Uid") == ["100000"] * 4
            assert status_field(status, "Gid") == ["100000"] * 4
        finally:
            kill_and_delete(runtime, b.id)
    finally:
        log.unlink()


def test_user_namespace_with_tmpcopyup_and_container_hooks(make_bundle, runtime, userns_rootfs):
    """What the init imports lazily (shutil, subprocess) must not be looked up as the mapped uid."""
    mapping = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    b = make_bundle(["sh", "-c", "id -u; ls /etc"],
                    root={"path": str(userns_rootfs), "readonly": False},
                    mounts=MOUNTS + [{"destination": "/etc", "type": "tmpfs", "source": "tmpfs",
                                      "options": ["tmpcopyup"]}],
                    hooks={"createContainer": [{"path": "/bin/true"}],
                           "startContainer": [{"path": "/bin/true"}]},
                    linux={"namespaces": [{"type": t} for t in
                                          ("pid", "network", "ipc", "uts", "mount", "user")],
                           "uidMappings": mapping, "gidMappings": mapping})
    assert run_ok(runtime, b).split() == ["0", "group", "passwd"]


def test_join_existing_namespaces_by_path(make_bundle, runtime):
    a = make_bundle(["sleep", "1000"], hostname="alpha-host")
    r = run(runtime, a, "--detach", timeout=30)
    assert r.returncode == 0, r.stderr
    try:
        pid = runtime.state(a.id)["pid"]
        kinds = {"uts": "uts", "network": "net", "ipc": "ipc"}
        b = make_bundle(["sh", "-c", "hostname; for n in uts net ipc; do readlink /proc/self/ns/$n; done"],
                        hostname=REMOVE,
                        linux={"namespaces": [{"type": "pid"}, {"type": "mount"}] + [
                            {"type": t, "path": f"/proc/{pid}/ns/{n}"} for t, n in kinds.items()]})
        lines = run_ok(runtime, b).split()
        assert lines[0] == "alpha-host"
        assert lines[1:] == [os.readlink(f"/proc/{pid}/ns/{n}") for n in ("uts", "net", "ipc")]
        assert lines[2] != os.readlink("/proc/self/ns/net")
    finally:
        kill_and_delete(runtime, a.id)


def test_cgroup_namespace_shows_root_paths(make_bundle, runtime):
    b = make_bundle(["cat", "/proc/self/cgroup"],
                    linux={"namespaces": [{"type": t} for t in
                                          ("pid", "network", "ipc", "uts", "mount", "cgroup")]})
    lines = run_ok(runtime, b).splitlines()
    assert lines and all(line.rsplit(":", 1)[1] == "/" for line in lines), lines
    c = make_bundle(["cat", "/proc/self/cgroup"])
    assert f"/dockyard-test/{c.id}" in run_ok(runtime, c)


@pytest.mark.parametrize("field,override", [
    ("process.apparmorProfile", {"process": {"apparmorProfile": "docker-default"}}),
    ("process.selinuxLabel", {"process": {"selinuxLabel": "system_u:system_r:container_t:s0"}}),
    ("linux.mountLabel", {"linux": {"mountLabel": "system_u:object_r:container_file_t:s0"}}),
])
def test_lsm_request_is_refused(make_bundle, runtime, field, override):
    if field.startswith("process.a") and os.path.exists("/sys/kernel/security/apparmor"):
        pytest.skip("AppArmor is enabled on this host")
    if not field.startswith("process.a") and os.path.exists("/sys/fs/selinux/enforce"):
        pytest.skip("SELinux is enabled on this host")
    assert_refused(runtime, make_bundle(**override), field)
