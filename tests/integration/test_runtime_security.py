"""dockyard-runtime on the real kernel: the security checklist (items 19-32) and bad inputs.

What the container can reach is asserted from inside it (busybox), what it must not change is
asserted on the host. Every refused spec must fail with one line naming the field, exit 1, and
leave no state, cgroup or mount behind.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat

import pytest

from runtime_util import assert_nothing_left, assert_refused, run, run_ok

from helpers import default_spec

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")

CG = "/sys/fs/cgroup"
MOUNTS = default_spec()["mounts"]
DEFAULT_CAPS = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]


# ------------------------------------------------------------------ helpers


#: Host paths where a mount escaping a container would land in these tests (exact match).
_WATCHED = ("/", "/tmp", "/proc", "/dev", "/sys", "/sub", "/etc")


def host_mounts(*under: os.PathLike) -> set[str]:
    """The host's mount points that matter here: ``_WATCHED`` and anything below ``under``
    (other sessions on this host mount and unmount elsewhere concurrently)."""
    prefixes = tuple(str(u) for u in under)
    with open("/proc/self/mountinfo") as f:
        points = {line.split()[4] for line in f}
    return {p for p in points if p in _WATCHED or p.startswith(prefixes)}


def created(runtime, b) -> int:
    """``create`` the container (its init waits on exec.fifo); returns the init's host pid."""
    runtime.run("create", "--bundle", b.path, b.id, timeout=30)
    st = runtime.state(b.id)
    assert st["status"] == "created"
    return st["pid"]


def delete(runtime, cid: str) -> None:
    runtime.run("delete", "--force", cid, timeout=30)
    assert_nothing_left(runtime, cid)


def with_tmp(*extra: dict) -> list[dict]:
    """The default mounts plus a writable tmpfs on /tmp (the shared rootfs is read-only)."""
    return MOUNTS + [{"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"}, *extra]


# ------------------------------------------------------------------ masked and read-only paths


def test_masked_paths_are_unreadable(make_bundle, runtime):
    script = ("wc -c < /proc/keys; wc -c < /proc/timer_list; ls -A /sys/firmware | wc -l; "
              "ls -A /proc/acpi | wc -l; touch /proc/acpi/x; echo touch=$?; "
              "if [ -e /proc/kcore ]; then wc -c < /proc/kcore; else echo no-kcore; fi")
    r = run(runtime, make_bundle(["sh", "-c", script]))
    lines = r.stdout.split()
    assert lines[:4] == ["0", "0", "0", "0"], r.stdout + r.stderr
    assert "touch=1" in lines and "Read-only file system" in r.stderr
    if os.path.exists("/proc/kcore"):
        assert lines[-1] == "0"


def test_readonly_paths_are_not_writable(make_bundle, runtime):
    before = open("/proc/sys/kernel/domainname").read()
    sysrq = os.path.exists("/proc/sysrq-trigger")  # absent without CONFIG_MAGIC_SYSRQ
    script = ("echo evil > /proc/sys/kernel/domainname; echo d=$?; "
              + ("echo h > /proc/sysrq-trigger; echo s=$?; " if sysrq else "")
              + "grep -E ' /proc/(sys|sysrq-trigger) ' /proc/self/mountinfo")
    r = run(runtime, make_bundle(["sh", "-c", script]))
    assert "d=1" in r.stdout, r.stdout + r.stderr
    assert r.stderr.count("Read-only file system") == 1 + sysrq, r.stderr
    infos = [ln for ln in r.stdout.splitlines() if " - " in ln]
    assert len(infos) == 1 + sysrq, r.stdout
    for line in infos:
        assert "ro" in line.split()[5].split(","), line
    assert open("/proc/sys/kernel/domainname").read() == before


# ------------------------------------------------------------------ seccomp


def _seccomp(*rules: dict) -> dict:
    return {"linux": {"seccomp": {"defaultAction": "SCMP_ACT_ALLOW", "architectures": [],
                                  "syscalls": list(rules)}}}


@pytest.mark.parametrize("nnp", [True, False])
def test_seccomp_blocks_a_syscall_with_eperm(make_bundle, runtime, nnp):
    # Without no_new_privileges the filter is loaded while the init still has CAP_SYS_ADMIN.
    rule = {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}
    b = make_bundle(["sh", "-c", "mkdir /tmp/x; echo mkdir=$?; touch /tmp/y && echo touched; "
                     "grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status"],
                    mounts=with_tmp(), process={"noNewPrivileges": nnp}, **_seccomp(rule))
    r = run(runtime, b)
    assert "mkdir=1" in r.stdout and "touched" in r.stdout, r.stdout + r.stderr
    assert "mkdir: can't create directory '/tmp/x': Operation not permitted" in r.stderr
    assert "Seccomp:\t2" in r.stdout and f"NoNewPrivs:\t{int(nnp)}" in r.stdout, r.stdout


def test_seccomp_default_errno_is_eperm(make_bundle, runtime):
    rule = {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}
    b = make_bundle(["mkdir", "/tmp/x"], mounts=with_tmp(), **_seccomp(rule))
    r = run(runtime, b)
    assert r.returncode == 1 and "Operation not permitted" in r.stderr, r.stderr


def test_seccomp_argument_condition(make_bundle, runtime):
    # personality(PER_LINUX32 = 8) is refused; personality(PER_LINUX = 0) is not.
    rule = {"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
            "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]}
    b = make_bundle(["sh", "-c", "linux32 uname -m; echo l32=$?; linux64 uname -m; echo l64=$?"],
                    **_seccomp(rule))
    r = run(runtime, b)
    assert "l32=1" in r.stdout and "l64=0" in r.stdout, r.stdout + r.stderr
    assert "Permission denied" in r.stderr  # errnoRet 13 = EACCES
    assert os.uname().machine in r.stdout


# ------------------------------------------------------------------ no_new_privileges


@pytest.fixture
def suid_bundle(make_bundle):
    """A private rootfs with /bin/busybox-suid (mode 4755, root): busybox runs it as ``busybox``.
    ping keeps the setuid euid (busybox marks it BB_SUID_MAYBE); the bounding set has CAP_NET_RAW,
    the other sets do not, so only an escalated (setuid-root) ping can open its raw socket."""

    def make(no_new_privileges: bool):
        b = make_bundle(["sh", "-c", "grep NoNewPrivs /proc/self/status; "
                         "/bin/busybox-suid ping -c1 -W5 127.0.0.1; echo suid-ping=$?; "
                         "/bin/ping -c1 -W5 127.0.0.1; echo ping=$?"],
                        private_rootfs=True,
                        process={"user": {"uid": 1000, "gid": 1000},
                                 "noNewPrivileges": no_new_privileges,
                                 "capabilities": {"bounding": DEFAULT_CAPS + ["CAP_NET_RAW"],
                                                  "effective": DEFAULT_CAPS, "permitted": DEFAULT_CAPS,
                                                  "inheritable": [], "ambient": []}})
        suid = b.rootfs / "bin/busybox-suid"
        shutil.copy2(b.rootfs / "bin/busybox", suid)
        os.chown(suid, 0, 0)
        os.chmod(suid, 0o4755)
        return b

    return make


def test_setuid_binary_escalates_without_no_new_privileges(suid_bundle, runtime):
    r = run(runtime, suid_bundle(False))
    assert "NoNewPrivs:\t0" in r.stdout, r.stdout + r.stderr
    assert "suid-ping=0" in r.stdout and "1 packets received" in r.stdout, r.stdout + r.stderr
    assert "ping=1" in r.stdout  # the ordinary ping has no privilege to use


def test_setuid_binary_does_not_escalate_with_no_new_privileges(suid_bundle, runtime):
    r = run(runtime, suid_bundle(True))
    assert "NoNewPrivs:\t1" in r.stdout, r.stdout + r.stderr
    assert "suid-ping=1" in r.stdout and "ping=1" in r.stdout, r.stdout + r.stderr
    assert "packets received" not in r.stdout
    assert re.search(r"permission denied|operation not permitted", r.stderr, re.I), r.stderr


# ------------------------------------------------------------------ symlinked /proc, /dev, /sys
# (CVE-2019-19921)


@pytest.mark.parametrize("name,target", [
    ("proc", "/tmp"), ("proc", "/"), ("proc", "tmp"), ("proc", "../../../../../../../../tmp"),
    ("dev", "/tmp"), ("dev", "/"), ("sys", "/tmp"),
])
def test_symlinked_special_dir_is_refused(make_bundle, runtime, name, target):
    b = make_bundle(private_rootfs=True)
    (b.rootfs / name).rmdir()
    (b.rootfs / name).symlink_to(target)
    mounts = host_mounts(b.path)
    assert_refused(runtime, b, f"/{name}", "symlink")
    assert host_mounts(b.path) == mounts
    assert os.listdir(b.rootfs / "tmp") == []


def test_symlinked_dev_null_is_replaced_not_followed(make_bundle, runtime, tmp_path):
    """Without a /dev mount the runtime populates the image's /dev: a /dev/null symlink to a host
    file must be replaced by the device, never written through."""
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    b = make_bundle(["sh", "-c", "echo overwritten > /dev/null; ls -l /dev/null"], private_rootfs=True,
                    mounts=[m for m in MOUNTS if not m["destination"].startswith("/dev")])
    (b.rootfs / "dev/null").symlink_to(victim)
    out = run_ok(runtime, b)
    assert out.startswith("c"), out  # a character device
    assert victim.read_text() == "precious\n"


# ------------------------------------------------------------------ mount destinations through symlinks


def test_mount_destination_symlink_stays_in_rootfs(make_bundle, runtime, tmp_path):
    hostdir, hostdir2 = tmp_path / "hostdir", tmp_path / "hostdir2"
    for d in (hostdir, hostdir2):
        d.mkdir()
        (d / "precious").write_text("host data\n")
    src = tmp_path / "src"
    src.mkdir()
    (src / "from-src").write_text("bound\n")
    b = make_bundle(["sh", "-c", "touch /evil/marker && ls -A /evil; ls -A /evil2; touch /evil2/x; "
                     "echo t=$?; ls -A /evil3"],
                    private_rootfs=True,
                    mounts=MOUNTS + [
                        {"destination": "/evil", "type": "tmpfs", "source": "tmpfs"},
                        {"destination": "/evil2", "type": "bind", "source": str(src),
                         "options": ["rbind", "ro"]},
                        {"destination": "/evil3/sub", "type": "tmpfs", "source": "tmpfs"},
                    ])
    (b.rootfs / "evil").symlink_to(hostdir)  # absolute: the host's path
    (b.rootfs / "evil2").symlink_to("../../../../../../../../.." + str(hostdir2))  # relative escape
    (b.rootfs / "evil3").symlink_to("/")
    mounts = host_mounts(tmp_path)
    r = run(runtime, b)
    lines = r.stdout.split()
    assert lines[:2] == ["marker", "from-src"], r.stdout + r.stderr  # /evil is the tmpfs, /evil2 the bind
    assert "t=1" in lines  # the ro bind
    assert "precious" not in lines
    # The host directory is untouched; the mount points were made inside the rootfs instead.
    for d in (hostdir, hostdir2):
        assert sorted(os.listdir(d)) == ["precious"]
        assert (d / "precious").read_text() == "host data\n"
        assert (b.rootfs / str(d).lstrip("/")).is_dir()
    assert (b.rootfs / "sub").is_dir() and not os.path.exists("/sub")
    assert host_mounts(tmp_path) == mounts
    assert_nothing_left(runtime, b.id)


def test_file_bind_onto_symlink_to_host_file(make_bundle, runtime, tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    src = tmp_path / "src-file"
    src.write_text("from bind source\n")
    b = make_bundle(["cat", "/etc/hostname"], private_rootfs=True,
                    mounts=MOUNTS + [{"destination": "/etc/hostname", "type": "bind",
                                      "source": str(src), "options": ["bind", "ro"]}])
    (b.rootfs / "etc/hostname").symlink_to(victim)
    mounts = host_mounts(tmp_path)
    r = run(runtime, b)
    # Either refused cleanly or bound inside the rootfs: never onto the host file.
    if r.returncode == 0:
        assert r.stdout == "from bind source\n"
    else:
        assert len(r.stderr.strip().splitlines()) == 1 and "/etc/hostname" in r.stderr, r.stderr
    assert victim.read_text() == "precious\n"
    assert host_mounts(tmp_path) == mounts
    assert_nothing_left(runtime, b.id)


# ------------------------------------------------------------------ the runtime's own process (CVE-2019-5736)


def test_waiting_init_is_not_reachable_from_a_container_in_its_pid_namespace(make_bundle, runtime):
    a = make_bundle(["true"])
    pid = created(runtime, a)
    try:
        # Listing /proc/1/fd is allowed (root owns the directory); following the links is not.
        # fd 3+ include A's exec.fifo: writing it would start A.
        script = ("cat /proc/1/exe > /dev/null; echo exe=$?; readlink /proc/1/exe; echo link=$?; "
                  "cat /proc/1/environ > /dev/null; echo env=$?; "
                  "for n in $(ls /proc/1/fd); do readlink /proc/1/fd/$n && echo fd-readable; "
                  "[ $n -gt 2 ] && echo 0 > /proc/1/fd/$n && echo fd-writable; done; "
                  "cat /proc/1/cmdline | tr '\\0' ' '; echo")
        b = make_bundle(["sh", "-c", script],
                        linux={"namespaces": [{"type": "pid", "path": f"/proc/{pid}/ns/pid"},
                                              {"type": "mount"}, {"type": "network"}, {"type": "ipc"},
                                              {"type": "uts"}]})
        r = run(runtime, b)
        for probe in ("exe", "link", "env"):
            assert f"{probe}=1" in r.stdout, r.stdout + r.stderr
        assert "fd-readable" not in r.stdout and "fd-writable" not in r.stdout, r.stdout
        assert r.stderr.count("Permission denied") >= 3, r.stderr
        assert "can't create /proc/1/fd/3: Permission denied" in r.stderr
        assert "python" in r.stdout.lower() or "dockyard" in r.stdout  # pid 1 is A's waiting init
        assert runtime.state(a.id)["status"] == "created"
    finally:
        delete(runtime, a.id)


# ------------------------------------------------------------------ cwd through leaked fds (CVE-2024-21626)


@pytest.mark.parametrize("fd", range(3, 10))
def test_cwd_through_proc_self_fd_never_reaches_the_host(make_bundle, runtime, fd):
    b = make_bundle(["sh", "-c", "pwd; ls -a; ls -a ..; ls -a ../../.."],
                    process={"cwd": f"/proc/self/fd/{fd}"})
    (b.path / "bundle-marker").write_text("x")
    r = run(runtime, b)
    text = r.stdout + r.stderr
    for host_only in ("config.json", "bundle-marker", "state.json", "exec.fifo", "pytest-of-root"):
        assert host_only not in text, text
    assert "unreachable" not in text
    if r.returncode != 0:
        assert "process.cwd" in r.stderr or "cwd" in r.stderr, r.stderr
    assert_nothing_left(runtime, b.id)


@pytest.mark.parametrize("fd", range(3, 10))
def test_exec_cwd_through_proc_self_fd_never_reaches_the_host(make_bundle, runtime, fd):
    b = make_bundle(["sleep", "1000"])
    (b.path / "bundle-marker").write_text("x")
    runtime.run("run", "--detach", "--bundle", b.path, b.id, timeout=30)
    try:
        r = runtime.run("exec", "--cwd", f"/proc/self/fd/{fd}", b.id, "sh", "-c",
                        "pwd; ls -a ..; ls -a ../../..", check=False, timeout=30)
        text = r.stdout + r.stderr
        for host_only in ("config.json", "bundle-marker", "state.json", "pytest-of-root"):
            assert host_only not in text, text
        assert "unreachable" not in text
    finally:
        delete(runtime, b.id)


def test_cwd_through_a_symlink_or_onto_a_file_is_confined(make_bundle, runtime, tmp_path):
    hostdir = tmp_path / "hostdir"
    hostdir.mkdir()
    (hostdir / "precious").write_text("x")
    b = make_bundle(["sh", "-c", "pwd; ls -a"], private_rootfs=True, process={"cwd": "/evil"})
    (b.rootfs / "evil").symlink_to(hostdir)
    r = run(runtime, b)
    assert "precious" not in r.stdout + r.stderr
    if r.returncode == 0:  # the link resolves inside the container's root
        assert r.stdout.splitlines()[0] == str(hostdir)
    assert_nothing_left(runtime, b.id)
    b = make_bundle(["true"], process={"cwd": "/etc/passwd"})
    r = run(runtime, b)
    assert r.returncode != 0
    assert "process.cwd" in r.stderr and "/etc/passwd" in r.stderr, r.stderr
    assert_nothing_left(runtime, b.id)


def test_exec_user_minus_one_is_refused(make_bundle, runtime):
    b = make_bundle(["sleep", "1000"])
    runtime.run("run", "--detach", "--bundle", b.path, b.id, timeout=30)
    try:
        for user in ("-1", "4294967295", "1000:-1", "1000:4294967295"):
            r = runtime.run("exec", "--user", user, b.id, "id", "-u", check=False, timeout=30)
            assert r.returncode == 1 and "exec --user" in r.stderr, (user, r.stdout, r.stderr)
        assert runtime.run("exec", "--user", "1000:1000", b.id, "id", "-u", timeout=30).stdout == "1000\n"
    finally:
        delete(runtime, b.id)


def test_exec_cap_does_not_leak_into_inheritable(make_bundle, runtime):
    """CVE-2022-29162: caps added by ``exec --cap`` go to bounding/effective/permitted only."""
    b = make_bundle(["sleep", "1000"])
    runtime.run("run", "--detach", "--bundle", b.path, b.id, timeout=30)
    try:
        out = runtime.run("exec", "--cap", "CAP_NET_RAW", b.id, "cat", "/proc/self/status",
                          timeout=30).stdout
        caps = {ln.split(":")[0]: int(ln.split()[1], 16) for ln in out.splitlines() if ln.startswith("Cap")}
        raw = 1 << 13
        assert caps["CapEff"] & raw and caps["CapPrm"] & raw and caps["CapBnd"] & raw, caps
        assert caps["CapInh"] == 0 and caps["CapAmb"] == 0, caps
    finally:
        delete(runtime, b.id)


def test_host_network_container_sees_no_runtime_abstract_socket(make_bundle, runtime):
    """Checklist 32: with the host's network namespace, no runtime control socket is reachable."""
    b = make_bundle(["sh", "-c", "grep -c . /proc/net/unix; grep -i dockyard /proc/net/unix; true"],
                    linux={"namespaces": [{"type": t} for t in ("pid", "ipc", "uts", "mount")]})
    out = run_ok(runtime, b)  # the foreground runtime is alive while this runs
    assert int(out.split()[0]) >= 1
    assert "dockyard" not in out.lower()


# ------------------------------------------------------------------ fd hygiene (runc create.bats)


def test_created_init_holds_no_host_fds(make_bundle, runtime):
    b = make_bundle(["true"])
    pid = created(runtime, b)
    try:
        fds = {}
        for name in os.listdir(f"/proc/{pid}/fd"):
            try:
                fds[int(name)] = os.readlink(f"/proc/{pid}/fd/{name}")
            except FileNotFoundError:
                pass
        extra = {fd: target for fd, target in fds.items() if fd > 2}
        fifo = str(runtime.root / b.id / "exec.fifo")
        assert set(fds) >= {0, 1, 2}
        assert all(target == fifo for target in extra.values()), extra
        assert len(extra) <= 1, extra
        for fd, target in fds.items():
            if target.startswith("/"):
                try:
                    mode = os.stat(f"/proc/{pid}/fd/{fd}").st_mode
                except OSError:
                    continue
                assert not stat.S_ISDIR(mode), f"fd {fd} is a directory: {target}"
            assert "state.json" not in target and "config.json" not in target, target
    finally:
        delete(runtime, b.id)


# ------------------------------------------------------------------ values that must never be interpreted


SHELLISH = {
    "SUBST": "$(touch /tmp/pwned-subst)",
    "BACKTICK": "`touch /tmp/pwned-tick`",
    "CHAIN": "a; touch /tmp/pwned-semi && echo x || echo y | cat > /tmp/pwned-pipe",
    "QUOTES": "'\"\\ $HOME ${PATH}",
    "NEWLINE": "line1\nline2",
    "GLOB": "* ? [a-z]",
}


def test_env_and_args_are_passed_verbatim(make_bundle, runtime):
    env = default_spec()["process"]["env"] + [f"{k}={v}" for k, v in SHELLISH.items()]
    b = make_bundle(["env"], mounts=with_tmp(), process={"env": env})
    out = run_ok(runtime, b)
    for k, v in SHELLISH.items():
        assert f"{k}={v}\n" in out, (k, out)
    args = ["echo", "$(id)", "`id`", "*", ";", "&&", "|", ">", "/tmp/x"]
    assert run_ok(runtime, make_bundle(args)) == " ".join(args[1:]) + "\n"


def test_annotations_and_hook_env_reach_hooks_verbatim(make_bundle, runtime, tmp_path):
    marker = tmp_path / "pwned"
    evil = f"$(touch {marker}) `touch {marker}`; touch {marker}"
    out_state, out_env = tmp_path / "state.out", tmp_path / "env.out"
    hooks = {"createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", f"cat > {out_state}"]}],
             "poststop": [{"path": "/bin/sh", "args": ["sh", "-c", f'printf %s "$EVIL" > {out_env}'],
                           "env": [f"EVIL={evil}"]}]}
    b = make_bundle(annotations={"org.example.evil": evil}, hooks=hooks)
    run_ok(runtime, b)
    state = json.loads(out_state.read_text())
    assert state["annotations"]["org.example.evil"] == evil
    assert state["id"] == b.id
    assert out_env.read_text() == evil
    assert not marker.exists()


# ------------------------------------------------------------------ bad inputs


def _namespaces(*extra: dict) -> dict:
    return {"linux": {"namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")]
                      + list(extra)}}


BAD_SPECS = {
    "missing root.path": ({"root": {"path": "/nonexistent/dockyard-rootfs"}}, ["root.path"]),
    "empty mount destination": (
        {"mounts": MOUNTS + [{"destination": "", "type": "tmpfs", "source": "tmpfs"}]},
        ["mounts[7].destination"]),
    "non-bind mount without type": (
        {"mounts": MOUNTS + [{"destination": "/x", "source": "tmpfs"}]}, ["mounts[7].type"]),
    "unknown namespace type": (_namespaces({"type": "bogus"}), ["linux.namespaces[5].type", "bogus"]),
    "duplicate namespace": (_namespaces({"type": "pid"}), ["linux.namespaces[5].type", "duplicate"]),
    "uid mappings without user namespace": (
        {"linux": {"uidMappings": [{"containerID": 0, "hostID": 100000, "size": 1}],
                   "gidMappings": [{"containerID": 0, "hostID": 100000, "size": 1}]}},
        ["linux.uidMappings"]),
    "unknown capability": ({"process": {"capabilities": {"bounding": ["CAP_BOGUS"]}}},
                           ["process.capabilities.bounding[0]", "CAP_BOGUS"]),
    "rlimit soft above hard": (
        {"process": {"rlimits": [{"type": "RLIMIT_NOFILE", "soft": 2048, "hard": 1024}]}},
        ["process.rlimits[0]"]),
    "unknown rlimit type": ({"process": {"rlimits": [{"type": "RLIMIT_BOGUS", "soft": 1, "hard": 1}]}},
                            ["process.rlimits[0].type", "RLIMIT_BOGUS"]),
    "ociVersion 2.0": ({"ociVersion": "2.0.0"}, ["ociVersion", "2.0.0"]),
    "unknown seccomp action": (
        {"linux": {"seccomp": {"defaultAction": "SCMP_ACT_BOGUS"}}}, ["linux.seccomp.defaultAction"]),
    "relative cwd": ({"process": {"cwd": "relative"}}, ["process.cwd"]),
    # (uid_t)-1 means "unchanged" to setresuid: the container would run as root (checklist 20).
    "uid 4294967295": ({"process": {"user": {"uid": 4294967295, "gid": 1000}}}, ["process.user.uid"]),
    "gid 4294967295": ({"process": {"user": {"uid": 1000, "gid": 4294967295}}}, ["process.user.gid"]),
    "huge additional gid": ({"process": {"user": {"uid": 1000, "gid": 1000, "additionalGids": [2**32]}}},
                            ["process.user.additionalGids[0]"]),
    "negative uid": ({"process": {"user": {"uid": -1, "gid": 0}}}, ["process.user.uid"]),
}


@pytest.mark.parametrize("case", list(BAD_SPECS))
@pytest.mark.parametrize("command", ["run", "create"])
def test_bad_spec_is_refused(make_bundle, runtime, case, command):
    overrides, needles = BAD_SPECS[case]
    b = make_bundle(**overrides)
    r = runtime.run(command, "--bundle", b.path, b.id, check=False, timeout=30)
    err = r.stderr.strip()
    assert r.returncode == 1, f"exit {r.returncode}\n{r.stdout}\n{err}"
    assert len(err.splitlines()) == 1, err
    for n in needles:
        assert n in err, f"{n!r} not in {err!r}"
    assert runtime.run("list", "-q", timeout=30).stdout == ""
    assert_nothing_left(runtime, b.id)


def test_relative_and_dotdot_mount_destinations_stay_under_the_root(make_bundle, runtime):
    """runtime-spec 1.1: a relative destination is relative to "/" (deprecated, not an error);
    ".." cannot climb out of the container's root."""
    mounts = MOUNTS + [{"destination": "relative/dir", "type": "tmpfs", "source": "tmpfs"},
                       {"destination": "/../../../../escape", "type": "tmpfs", "source": "tmpfs"}]
    b = make_bundle(["sh", "-c", "grep -E ' /(relative/dir|escape) ' /proc/self/mountinfo | wc -l"],
                    private_rootfs=True, mounts=mounts)
    assert run_ok(runtime, b).strip() == "2"
    assert (b.rootfs / "relative/dir").is_dir() and (b.rootfs / "escape").is_dir()
    assert not os.path.exists("/escape") and not os.path.exists(b.path.parent / "escape")


def test_invalid_json_is_refused(make_bundle, runtime):
    b = make_bundle()
    (b.path / "config.json").write_text('{"ociVersion": "1.0.2", "process": {')
    err = assert_refused(runtime, b, "config.json", "invalid JSON")
    assert runtime.run("list", "-q", timeout=30).stdout == ""
    assert "Traceback" not in err
