"""runc and dockyard-runtime side by side: the same bundle, the same probe, the same view inside.

One table, :data:`CASES`, drives the probe tests: each case is spec overrides (deep-merged into runc's
default spec by ``make_bundle``), a probe (a busybox ``sh -c`` script, stderr folded into stdout), a
normalizer, and optionally the exit status both must have. Each runtime gets its own ``--root``, its
own bundle, container id and cgroup path; the outputs are normalized and must be equal.

Normalizers only remove what is inherently per run: the container id (also inside cgroup paths),
the bundle directory, pids, times, mount ids, the device numbers of anonymous filesystems and tmpfs
sizes. Anything else that differs is a behaviour difference: fixed in dockyard-runtime, or (when
deliberate and better) documented in the table as a :class:`Deliberate` — dockyard must then show
exactly runc's output with that one documented change — never skipped.

After the table: lifecycle and signals with ``create``/``start``/``kill``/``state``, and errors.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any, Callable

import pytest

import helpers
from helpers import Runtime, runtime_binary

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.skipif(not runtime_binary("runc").exists(), reason="runc not installed"),
    pytest.mark.timeout(120),
]

RUNTIMES = ("runc", "dockyard")
PROBE_TIMEOUT = 30  # seconds for one `run` of a probe

MiB = 1 << 20
NO_PID_NS = [{"type": t} for t in ("network", "ipc", "uts", "mount")]
WITH_CGROUP_NS = [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount", "cgroup")]


# --------------------------------------------------------------------------------------------------
# normalizers: (text, ctx) -> text. ctx names what is per-run: the container id, the bundle dir.

@dataclasses.dataclass(frozen=True)
class Ctx:
    id: str
    bundle: Path
    rootfs: Path


def per_run(text: str, ctx: Ctx) -> str:
    """The container id (hostname, cgroup path component, ...) and the bundle directory."""
    return text.replace(str(ctx.bundle), "<BUNDLE>").replace(ctx.id, "<ID>")


def as_is(text: str, ctx: Ctx) -> str:
    return per_run(text, ctx)


def sorted_lines(text: str, ctx: Ctx) -> str:
    return "\n".join(sorted(per_run(text, ctx).splitlines()))


def mountinfo(text: str, ctx: Ctx) -> str:
    """/proc/self/mountinfo as sorted (mount point, fs type, per-mount options, super options).

    Mount ids, parent ids, major:minor (anonymous for tmpfs/proc/...), the root within the source
    fs, the source and the optional propagation fields are per run; of the super options the tmpfs
    ``size=``/``nr_inodes=`` (pages, host dependent) are too.
    """
    rows = []
    for line in per_run(text, ctx).splitlines():
        if " - " not in line:
            rows.append(line)
            continue
        left, right = line.split(" - ", 1)
        f, r = left.split(), right.split()
        mount_point, mount_opts = f[4], f[5]
        fstype, super_opts = r[0], r[2] if len(r) > 2 else ""
        super_opts = ",".join(o for o in super_opts.split(",")
                              if not o.startswith(("size=", "nr_inodes=")))
        rows.append(f"{mount_point} {fstype} {mount_opts} {super_opts}")
    return "\n".join(sorted(rows))


_LS_RE = re.compile(r"^(?P<mode>\S+)\s+\d+\s+(?P<owner>\S+)\s+(?P<group>\S+)\s+"
                    r"(?:(?P<major>\d+),\s+(?P<minor>\d+)|(?P<size>\d+))\s+"
                    r"\S+\s+\S+\s+\S+\s+(?P<name>.*)$")


def ls_dev(text: str, ctx: Ctx) -> str:
    """``ls -la`` as (name, mode/type, owner, group, major:minor or '-'), sorted; times dropped."""
    rows = []
    for line in per_run(text, ctx).splitlines():
        m = _LS_RE.match(line)
        if not m:
            rows.append(line)  # "total N" and anything unexpected stays, verbatim
            continue
        dev = f"{m['major']}:{m['minor']}" if m["major"] else "-"
        rows.append(f"{m['name']} {m['mode']} {m['owner']}:{m['group']} {dev}")
    return "\n".join(sorted(rows))


# --------------------------------------------------------------------------------------------------
# the table

@dataclasses.dataclass(frozen=True)
class Deliberate:
    """A documented, deliberate difference: dockyard must print runc's output with ``old`` (a
    regex, per line) replaced by ``new`` — exactly that, and runc must still show ``old``."""
    why: str
    old: str
    new: str

    def apply(self, runc_stdout: str) -> str:
        out, n = re.subn(self.old, self.new, runc_stdout, flags=re.M)
        assert n, f"documented difference no longer seen in runc's output ({self.why}):\n{runc_stdout}"
        return out


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    probe: str                                   # busybox sh script; its stderr goes to stdout
    overrides: dict[str, Any] = dataclasses.field(default_factory=dict)
    normalize: Callable[[str, Ctx], str] = as_is
    exit_code: int | None = None                 # when set, both must exit with it
    private_rootfs: bool = False
    caller_umask: int | None = None              # the runtime command's own umask
    deliberate: tuple[Deliberate, ...] = ()      # documented differences (see Deliberate)


EXTRA_CAPS = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_CHOWN", "CAP_DAC_OVERRIDE",
              "CAP_SETUID", "CAP_SETGID", "CAP_NET_ADMIN", "CAP_SYS_ADMIN", "CAP_SYS_PTRACE"]
CAP_LINES = "grep -E '^Cap(Inh|Prm|Eff|Bnd|Amb)' /proc/self/status"
STATUS_IDS = "grep -E '^(Uid|Gid|Groups):' /proc/self/status"
SECCOMP_LINES = "grep -E '^(NoNewPrivs|Seccomp|Seccomp_filters):' /proc/self/status"
CGROUP_FILES = ("memory/memory.limit_in_bytes pids/pids.max cpu/cpu.cfs_quota_us "
                "cpu/cpu.cfs_period_us cpu/cpu.shares devices/devices.list")
CGROUP_PROBE = (f"cd /sys/fs/cgroup && for f in {CGROUP_FILES}; do echo \"== $f\"; cat $f; done; "
                "echo '== ls'; ls /sys/fs/cgroup")
LIMITS = {"linux": {"resources": {
    "memory": {"limit": 64 * MiB},
    "pids": {"limit": 50},
    "cpu": {"quota": 50000, "period": 100000, "shares": 512},
    "devices": [{"allow": False, "access": "rwm"}],
}}}

# Deliberate differences (dockyard follows the spec where runc 1.1 does not):
DOMAINNAME = Deliberate(
    "runc 1.1 ignores the spec's domainname (runc 1.2 sets it); dockyard sets it, as the spec says",
    r"^\(none\)$", "example.org")
CGROUP_TMPFS_RO = Deliberate(
    "a read-only /sys/fs/cgroup mount (the default spec's 'ro') is read-only in dockyard, its tmpfs "
    "included; runc 1.1 makes only the hierarchies below it read-only and leaves the tmpfs writable",
    r"^(/sys/fs/cgroup tmpfs )rw,", r"\1ro,")
TMPFS_MODE_OPTION = Deliberate(
    "a tmpfs's mode= option wins over the mode of the directory it covers; runc 1.1 chmods the "
    "tmpfs to the directory's mode anyway (fixed in runc 1.2: 'Fix tmpfs mode opts when dir "
    "already exists')", r"^drwxr-xr-x$", "drwx------")

CASES: list[Case] = [
    Case("hostname", "hostname; uname -n; cat /proc/sys/kernel/hostname /proc/sys/kernel/domainname",
         {"hostname": "probe-host", "domainname": "example.org"}, deliberate=(DOMAINNAME,)),
    Case("hostname-default", "hostname; cat /proc/sys/kernel/domainname"),  # the id: normalized
    Case("id-default", f"id; {STATUS_IDS}"),
    Case("id-user", f"id; {STATUS_IDS}",
         {"process": {"user": {"uid": 1000, "gid": 1000, "additionalGids": [10, 2000]}}}),
    Case("caps-default", CAP_LINES),
    Case("caps-extra", CAP_LINES,
         {"process": {"capabilities": {"bounding": EXTRA_CAPS, "effective": EXTRA_CAPS,
                                       "permitted": EXTRA_CAPS, "inheritable": EXTRA_CAPS,
                                       "ambient": ["CAP_NET_ADMIN", "CAP_KILL"]}}}),
    Case("caps-user-ambient", f"{CAP_LINES}; {STATUS_IDS}",
         {"process": {"user": {"uid": 1000, "gid": 1000},
                      "capabilities": {"bounding": EXTRA_CAPS, "effective": EXTRA_CAPS,
                                       "permitted": EXTRA_CAPS, "inheritable": ["CAP_NET_ADMIN"],
                                       "ambient": ["CAP_NET_ADMIN"]}}}),
    Case("nnp-seccomp-default", SECCOMP_LINES),
    Case("nnp-off", SECCOMP_LINES, {"process": {"noNewPrivileges": False}}),
    Case("seccomp-profile", f"{SECCOMP_LINES}; mkdir /tmp/x; echo mkdir=$?",
         {"linux": {"seccomp": {
             "defaultAction": "SCMP_ACT_ALLOW",
             "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
             "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}}}),
    Case("mountinfo", "cat /proc/self/mountinfo", normalize=mountinfo,
         deliberate=(CGROUP_TMPFS_RO,)),
    Case("mountinfo-cgroupns", "cat /proc/self/mountinfo",
         {"linux": {"namespaces": WITH_CGROUP_NS}}, normalize=mountinfo,
         deliberate=(CGROUP_TMPFS_RO,)),
    Case("dev", "ls -la /dev /dev/pts /dev/shm /dev/mqueue", normalize=ls_dev),
    Case("cgroup-limits-cgroupns", CGROUP_PROBE,
         {"linux": {**LIMITS["linux"], "namespaces": WITH_CGROUP_NS}}),
    Case("cgroup-limits", CGROUP_PROBE, LIMITS),
    Case("proc-self-cgroup-cgroupns", "cat /proc/self/cgroup", {"linux": {"namespaces": WITH_CGROUP_NS}},
         normalize=sorted_lines),
    Case("proc-self-cgroup", "cat /proc/self/cgroup", normalize=sorted_lines),
    Case("masked-paths",
         "cat /proc/kcore | wc -c; ls -la /sys/firmware | wc -l; ls /sys/firmware; cat /proc/keys; "
         "echo keys=$?; cat /proc/timer_list | wc -c; ls /proc/scsi; echo scsi=$?"),
    Case("readonly-paths",
         "touch /proc/sys/kernel/x; echo touch=$?; echo 1 > /proc/sysrq-trigger; echo sysrq=$?; "
         "echo 1 > /proc/sys/kernel/panic; echo panic=$?; cat /proc/sys/kernel/ostype"),
    Case("mountinfo-extra-mounts", "cat /proc/self/mountinfo; touch /mnt/x; echo bind=$?; "
         "touch /run/x && echo tmpfs=$?; ls -ld /run | cut -c1-10",
         {"mounts": [*helpers.default_spec()["mounts"],
                     {"destination": "/run", "type": "tmpfs", "source": "tmpfs",
                      "options": ["nosuid", "nodev", "mode=700", "size=1m"]},
                     {"destination": "/mnt", "type": "bind", "source": "/etc",
                      "options": ["rbind", "ro", "nosuid"]}]},
         normalize=mountinfo, deliberate=(CGROUP_TMPFS_RO, TMPFS_MODE_OPTION)),
    Case("readonly-root", "touch /x; echo root=$?; touch /tmp/x; echo tmp=$?"),
    Case("pid-ns", "echo $$; for p in /proc/[0-9]*; do echo $p $(cat $p/comm); done"),  # builtins
    Case("tmpfs-on-existing-dir", "cat /proc/self/mountinfo; ls -ld /root | cut -c1-10",
         {"mounts": [*helpers.default_spec()["mounts"],
                     {"destination": "/root", "type": "tmpfs", "source": "tmpfs",
                      "options": ["nosuid", "nodev"]}]},
         normalize=mountinfo, deliberate=(CGROUP_TMPFS_RO,)),
    Case("net-ns", "ls /sys/class/net; cat /sys/class/net/lo/flags /sys/class/net/lo/operstate"),
    Case("sysctl", "cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/msgmax",
         {"linux": {"sysctl": {"net.ipv4.ip_forward": "1", "kernel.msgmax": "65536"}}}),
    Case("oom-score-adj-default", "cat /proc/self/oom_score_adj"),
    Case("oom-score-adj", "cat /proc/self/oom_score_adj", {"process": {"oomScoreAdj": 500}}),
    Case("rlimits-default", "ulimit -a"),
    Case("rlimits-custom", "ulimit -a; ulimit -Hn; ulimit -Sn",
         {"process": {"rlimits": [{"type": "RLIMIT_NOFILE", "soft": 512, "hard": 2048},
                                  {"type": "RLIMIT_NPROC", "soft": 100, "hard": 200},
                                  {"type": "RLIMIT_CORE", "soft": 0, "hard": 0}]}}),
    Case("umask-default", "umask"),
    Case("umask-077", "umask", {"process": {"user": {"umask": 0o077}}}),
    Case("umask-default-caller-077", "umask", caller_umask=0o077),  # not inherited: 0022
    Case("umask-027-caller-077", "umask", {"process": {"user": {"umask": 0o027}}},
         caller_umask=0o077),
    Case("cwd", "pwd", {"process": {"cwd": "/tmp"}}),
    Case("cwd-missing", "pwd; ls -ld /work/here | cut -c1-10",
         {"process": {"cwd": "/work/here"}}, private_rootfs=True),
    Case("env", "env | sort", {"process": {"env": ["PATH=/bin", "FOO=bar baz", "EMPTY="]}}),
    Case("env-user-home", "env | sort",
         {"process": {"user": {"uid": 1000, "gid": 1000}, "env": ["PATH=/bin"]}}),
    Case("env-home-given", "env | sort", {"process": {"env": ["PATH=/bin", "HOME=/tmp"]}}),
    Case("env-home-empty", "env | sort", {"process": {"env": ["PATH=/bin", "HOME="]}}),
    Case("exit-0", "exit 0", exit_code=0),
    Case("exit-1", "exit 1", exit_code=1),
    Case("exit-42", "exit 42", exit_code=42),
    Case("exit-127-missing-command", "nosuchcommand", exit_code=127),
    # With a pid namespace the shell is pid 1, and the kernel drops signals that pid 1 sends itself
    # without a handler, SIGKILL too: the shell survives. Without one, it dies of the signal.
    Case("kill-9-self-pid1", "kill -9 $$; echo survived", exit_code=0),
    Case("kill-9-self", "kill -9 $$; echo survived", {"linux": {"namespaces": NO_PID_NS}},
         exit_code=137),
    Case("kill-term-self", "kill $$; echo survived", {"linux": {"namespaces": NO_PID_NS}},
         exit_code=143),
    Case("kill-term-self-pid1", "kill $$; echo survived", exit_code=0),
]


# --------------------------------------------------------------------------------------------------
# running one bundle with both runtimes

@pytest.fixture
def runtimes(tmp_path: Path):
    rts = {name: Runtime(runtime_binary(name), tmp_path / f"{name}-state", name=name)
           for name in RUNTIMES}
    for name, rt in rts.items():
        if not rt.binary.exists():
            pytest.skip(f"{name} not installed at {rt.binary}")
    yield rts
    for rt in rts.values():
        rt.cleanup()


@dataclasses.dataclass(frozen=True)
class Outcome:
    exit_code: int
    stdout: str
    stderr: str


def run_probe(rt: Runtime, bundle, normalize: Callable[[str, Ctx], str],
              umask: int | None = None) -> Outcome:
    kwargs = {} if umask is None else {"umask": umask}
    proc = rt.run("run", "--bundle", bundle.path, bundle.id, check=False, timeout=PROBE_TIMEOUT,
                  **kwargs)
    ctx = Ctx(bundle.id, bundle.path, bundle.rootfs)
    return Outcome(proc.returncode, normalize(proc.stdout, ctx), per_run(proc.stderr, ctx))


def explain(runc: Outcome, dockyard: Outcome) -> str:
    """A readable difference: exit codes, then a unified diff of stdout and of stderr."""
    lines = [f"exit code: runc {runc.exit_code}, dockyard {dockyard.exit_code}"]
    for field in ("stdout", "stderr"):
        a, b = getattr(runc, field), getattr(dockyard, field)
        if a != b:
            lines += [f"--- {field}"] + list(difflib.unified_diff(
                a.splitlines(), b.splitlines(), "runc", "dockyard", lineterm="", n=2))
    return "\n".join(lines)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_same_view(case: Case, runtimes, make_bundle):
    outcomes = {}
    for name, rt in runtimes.items():
        b = make_bundle(["sh", "-c", f"exec 2>&1; {case.probe}"],
                        private_rootfs=case.private_rootfs, **case.overrides)
        outcomes[name] = run_probe(rt, b, case.normalize, case.caller_umask)
    runc, dockyard = outcomes["runc"], outcomes["dockyard"]
    for difference in case.deliberate:
        runc = dataclasses.replace(runc, stdout=difference.apply(runc.stdout))
    assert dockyard == runc, explain(runc, dockyard)
    if case.exit_code is not None:
        assert runc.exit_code == case.exit_code, runc


# --------------------------------------------------------------------------------------------------
# lifecycle: create/start/kill, state

def wait_for(predicate: Callable[[], bool], timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


TRAP_SCRIPT = "trap 'echo got USR1; exit 7' USR1; echo ready; while :; do sleep 0.1; done"


def state_view(st: dict, bundle) -> dict:
    """The parts of a state document that do not vary per run."""
    return {"keys": sorted(st), "status": st["status"], "id_matches": st["id"] == bundle.id,
            "pid_positive": st["pid"] > 0 if st["status"] != "stopped" else st["pid"] >= 0,
            "bundle": st["bundle"] == str(bundle.path), "rootfs": st["rootfs"] == str(bundle.rootfs)}


def test_create_start_kill_trap(runtimes, make_bundle, tmp_path: Path):
    """create → start → kill USR1: the trap runs; the state sequence is created, running, stopped."""
    views = {}
    for name, rt in runtimes.items():
        b = make_bundle(["sh", "-c", TRAP_SCRIPT])
        out = tmp_path / f"{name}.out"
        with open(out, "wb") as f:
            rt.run("create", "--bundle", b.path, b.id, stdout=f, stderr=subprocess.STDOUT, timeout=30)
        seq = [state_view(rt.state(b.id), b)]
        rt.run("start", b.id, timeout=30)
        seq.append(state_view(rt.wait_status(b.id, "running"), b))
        assert wait_for(lambda: b"ready" in out.read_bytes()), f"{name}: {out.read_bytes()!r}"
        rt.run("kill", b.id, "USR1", timeout=30)
        seq.append(state_view(rt.wait_status(b.id, "stopped"), b))
        rt.run("delete", b.id, timeout=30)
        views[name] = {"states": seq, "output": out.read_text(), "after_delete": rt.containers()}
    assert views["dockyard"] == views["runc"]
    assert [s["status"] for s in views["runc"]["states"]] == ["created", "running", "stopped"]
    assert views["runc"]["output"] == "ready\ngot USR1\n"


@pytest.mark.parametrize("signal, expected", [("USR1", 7), ("KILL", 137), ("TERM", 0)],
                         ids=["trap-USR1", "KILL", "TERM-pid1-ignored"])
def test_run_kill_exit_code(runtimes, make_bundle, tmp_path: Path, signal: str, expected: int):
    """A foreground ``run``: its exit status after ``kill`` (TERM is ignored by a handler-less pid 1,
    so a second kill, KILL, ends it: 137)."""
    codes = {}
    for name, rt in runtimes.items():
        b = make_bundle(["sh", "-c", TRAP_SCRIPT])
        out = tmp_path / f"{name}-{signal}.out"
        with open(out, "wb") as f:
            proc = rt.popen("run", "--bundle", b.path, b.id, stdout=f, stderr=subprocess.STDOUT)
        try:
            assert wait_for(lambda: b"ready" in out.read_bytes()), f"{name}: {out.read_bytes()!r}"
            rt.run("kill", b.id, signal, timeout=30)
            try:
                code = proc.wait(timeout=2 if signal == "TERM" else 20)
                still_running_after_term = False
            except subprocess.TimeoutExpired:
                still_running_after_term = True
                rt.run("kill", b.id, "KILL", timeout=30)
                code = proc.wait(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
        codes[name] = (code, still_running_after_term, out.read_text())
    assert codes["dockyard"] == codes["runc"]
    if signal == "TERM":
        assert codes["runc"][:2] == (137, True)
    else:
        assert codes["runc"][0] == expected


def test_state_after_run_detached(runtimes, make_bundle):
    """``run --detach``: running, then stopped when the process exits; same keys as runc."""
    views = {}
    for name, rt in runtimes.items():
        b = make_bundle(["sh", "-c", "sleep 0.5"])
        rt.run("run", "--detach", "--bundle", b.path, b.id, timeout=30)
        seq = [state_view(rt.state(b.id), b)]
        seq.append(state_view(rt.wait_status(b.id, "stopped"), b))
        listed = json.loads(rt.run("list", "--format", "json", timeout=30).stdout)
        rt.run("delete", b.id, timeout=30)
        views[name] = {"states": seq, "list_keys": sorted(listed[0]) if listed else None}
    assert views["dockyard"] == views["runc"]


# --------------------------------------------------------------------------------------------------
# spec

def test_spec_default(runtimes, tmp_path: Path):
    """``spec`` writes runc's example config.json, but for three deliberate differences."""
    specs = {}
    for name, rt in runtimes.items():
        d = tmp_path / f"spec-{name}"
        d.mkdir()
        rt.run("spec", "--bundle", d, timeout=30)
        specs[name] = json.loads((d / "config.json").read_text())
    expected = specs["runc"]
    # Deliberate: dockyard's own name as the example hostname (runc writes "runc").
    assert expected["hostname"] == "runc"
    expected["hostname"] = "dockyard"
    # Deliberate: dockyard declares the runtime-spec version it implements (runc 1.1: 1.0.2-dev).
    expected["ociVersion"] = specs["dockyard"]["ociVersion"]
    # Deliberate: a cgroup namespace on every host (runc 1.1 adds one only on cgroup v2 hosts), so
    # the example container never sees the host's cgroup paths.
    if {"type": "cgroup"} not in expected["linux"]["namespaces"]:
        expected["linux"]["namespaces"].append({"type": "cgroup"})
    assert specs["dockyard"] == expected


# --------------------------------------------------------------------------------------------------
# errors

@pytest.mark.parametrize("command", ["run", "create"])
def test_missing_executable(runtimes, make_bundle, command: str):
    results = {}
    for name, rt in runtimes.items():
        b = make_bundle(["no-such-executable"])
        proc = rt.run(command, "--bundle", b.path, b.id, check=False, timeout=30)
        results[name] = proc
        assert proc.returncode != 0, f"{name}: {proc}"
        assert "executable file not found" in proc.stderr, f"{name}: {proc.stderr}"
        assert "no-such-executable" in proc.stderr, f"{name}: {proc.stderr}"
        assert rt.containers() == [], f"{name} left state behind: {rt.containers()}"


@pytest.mark.parametrize("command", ["run", "create"])
def test_missing_root_path(runtimes, make_bundle, tmp_path: Path, command: str):
    for name, rt in runtimes.items():
        b = make_bundle(root={"path": str(tmp_path / "no-such-rootfs")})
        proc = rt.run(command, "--bundle", b.path, b.id, check=False, timeout=30)
        assert proc.returncode != 0, f"{name}: {proc}"
        assert proc.stderr.strip(), f"{name}: no message"
        assert rt.containers() == [], f"{name} left state behind: {rt.containers()}"
