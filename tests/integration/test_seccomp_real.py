"""Real libseccomp and capabilities in forked children (root).

Every filter and capability change happens in a child made with os.fork; the child reports through
a pipe as JSON and always leaves with os._exit.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import socket

import pytest

from dockyard.errors import FailedPrecondition, KernelError
from dockyard.kernel.syscalls import LibcSyscalls
from dockyard.oci.runtime_spec import Capabilities, Seccomp, SeccompArg, SyscallRule
from dockyard.runtime import capabilities as caps
from dockyard.runtime import seccomp

_libc = ctypes.CDLL(None, use_errno=True)
_libc.personality.argtypes = [ctypes.c_ulong]
_libc.personality.restype = ctypes.c_int


def in_child(fn) -> object:
    """Run ``fn`` in a forked child; return its JSON result, or re-raise its error text."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.close(r)
            try:
                out = {"ok": fn()}
            except BaseException as e:  # noqa: BLE001 - reported to the parent
                out = {"error": f"{type(e).__name__}: {e}"}
            os.write(w, json.dumps(out).encode())
        except BaseException:  # noqa: BLE001
            code = 1
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, f"child died: status {status:#x}"
    got = json.loads(data)
    if "error" in got:
        raise AssertionError(f"child failed: {got['error']}")
    return got["ok"]


def _errno_of(call) -> int:
    try:
        call()
    except OSError as e:
        return e.errno
    return 0


def _personality(value: int) -> int:
    rc = _libc.personality(value)
    return ctypes.get_errno() if rc == -1 else 0


SPEC = Seccomp(
    "SCMP_ACT_ALLOW",
    architectures=("SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"),
    syscalls=(
        SyscallRule(("mkdir", "mkdirat", "no_such_syscall_xyz"), "SCMP_ACT_ERRNO"),
        SyscallRule(("personality",), "SCMP_ACT_ERRNO", args=(SeccompArg(0, 0xFFFFFFFF, "SCMP_CMP_EQ"),)),
        SyscallRule(("rmdir", "unlinkat"), "SCMP_ACT_ERRNO", errno_ret=errno.ENOSYS),
        SyscallRule(("getpid",), "SCMP_ACT_ALLOW"),  # == default: skipped
    ),
)


@pytest.fixture(scope="module", autouse=True)
def _needs_libseccomp():
    try:
        seccomp.compile_filter(Seccomp("SCMP_ACT_ALLOW")).release()
    except FailedPrecondition as e:
        pytest.skip(str(e))


@pytest.mark.parametrize("nnp", [True, False])
def test_filter_blocks_mkdir_and_arg_matched_personality(tmp_path, nnp):
    target = str(tmp_path / "d")
    os.mkdir(tmp_path / "exists")

    def child():
        f = seccomp.compile_filter(SPEC)
        skipped = list(f.skipped)
        seccomp.load(f, no_new_privileges=nnp)
        with open("/proc/self/status") as s:
            status = dict(line.split(":\t", 1) for line in s.read().splitlines() if ":\t" in line)
        return {
            "skipped": skipped,
            "mode": status["Seccomp"].strip(),
            "nnp": status["NoNewPrivs"].strip(),
            "mkdir": _errno_of(lambda: os.mkdir(target)),
            "rmdir": _errno_of(lambda: os.rmdir(str(tmp_path / "exists"))),
            "listdir": _errno_of(lambda: os.listdir(str(tmp_path))),
            "personality_ffffffff": _personality(0xFFFFFFFF),
            "personality_0": _personality(0),  # another argument value: allowed
            "getpid": os.getpid() > 0,
        }

    got = in_child(child)
    assert got["skipped"] == ["no_such_syscall_xyz"]
    assert got["mode"] == "2"  # SECCOMP_MODE_FILTER
    assert got["nnp"] == ("1" if nnp else "0")
    assert got["mkdir"] == errno.EPERM
    assert got["rmdir"] == errno.ENOSYS
    assert got["listdir"] == 0
    assert got["personality_ffffffff"] == errno.EPERM
    assert got["personality_0"] == 0
    assert got["getpid"] is True
    assert not os.path.exists(target)
    assert os.path.isdir(tmp_path / "exists")
    # the parent is untouched
    os.mkdir(target)


def test_loading_without_nnp_needs_cap_sys_admin():
    def child():
        sys = LibcSyscalls()
        now = sys.capget()
        sys.capset(type(now)(now.effective & ~(1 << 21), now.permitted, now.inheritable))
        f = seccomp.compile_filter(SPEC)
        try:
            seccomp.load(f, no_new_privileges=False)
        except KernelError as e:
            return {"errno": e.errno, "msg": str(e)}
        return {"errno": 0}

    got = in_child(child)
    assert got["errno"] == errno.EACCES
    assert "needs CAP_SYS_ADMIN" in got["msg"] and "before dropping capabilities" in got["msg"]


def test_default_errno_ret_and_kill_rules_compile():
    spec = Seccomp("SCMP_ACT_ERRNO", default_errno_ret=errno.ENOSYS, flags=(
        "SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"),
        syscalls=tuple(SyscallRule((n,), "SCMP_ACT_ALLOW") for n in (
            "read", "write", "openat", "close", "exit_group", "mmap", "brk", "futex", "rt_sigaction")) + (
            SyscallRule(("ptrace",), "SCMP_ACT_KILL_PROCESS"),
            SyscallRule(("personality",), "SCMP_ACT_ALLOW",
                        args=(SeccompArg(0, 0, "SCMP_CMP_EQ"), SeccompArg(0, 8, "SCMP_CMP_EQ"))),
            SyscallRule(("socket",), "SCMP_ACT_ALLOW",
                        args=(SeccompArg(1, 0xF, "SCMP_CMP_MASKED_EQ", 2), SeccompArg(0, 40, "SCMP_CMP_NE"))),
        ))
    with seccomp.compile_filter(spec) as f:
        assert f.plan.optimize == 2
        bpf = f.export_bpf()
        assert len(bpf) % 8 == 0 and len(bpf) > 8 * 10  # struct sock_filter is 8 bytes


def test_wait_killable_recv_is_a_clear_error_when_unsupported():
    spec = Seccomp("SCMP_ACT_ALLOW", flags=("SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",))
    if "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV" in seccomp.supported_flags():
        seccomp.compile_filter(spec).release()
    else:
        with pytest.raises(FailedPrecondition, match="WAIT_KILLABLE_RECV needs libseccomp >= 2.6.0"):
            seccomp.compile_filter(spec)


def test_features():
    feats = seccomp.features()
    assert feats["enabled"] is True
    assert seccomp.libseccomp_version().count(".") == 2
    assert feats["annotations"]["io.github.seccomp.libseccomp.version"] == seccomp.libseccomp_version()
    assert {"SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_LOG"} <= set(feats["actions"])
    assert "SCMP_ACT_NOTIFY" not in feats["actions"]
    assert {"SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32", "SCMP_ARCH_AARCH64"} <= set(feats["archs"])
    assert {"SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG",
            "SECCOMP_FILTER_FLAG_SPEC_ALLOW"} <= set(feats["supportedFlags"])
    assert feats["operators"][3] == "SCMP_CMP_EQ"


def _raw_socket() -> int:
    try:
        socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP).close()
    except PermissionError:
        return errno.EPERM
    return 0


def test_dropping_net_raw_forbids_raw_sockets():
    if _raw_socket() != 0:
        pytest.skip("the test process itself cannot open a raw socket")
    with open("/proc/self/status") as f:
        have = caps.parse_status_caps(f.read())["permitted"]  # e.g. no CAP_SYS_RESOURCE here
    without = tuple(c for c in have if c != "CAP_NET_RAW")
    spec = Capabilities(bounding=without, effective=without, permitted=without)

    def child():
        sys = LibcSyscalls()
        caps.drop_bounding(sys, spec)
        caps.apply(sys, spec)
        with open("/proc/self/status") as s:
            now = caps.parse_status_caps(s.read())
        return {"raw": _raw_socket(), "caps": {k: list(v) for k, v in now.items()}}

    got = in_child(child)
    assert got["raw"] == errno.EPERM
    for kind in ("bounding", "effective", "permitted"):
        assert "CAP_NET_RAW" not in got["caps"][kind]
        assert "CAP_SYS_ADMIN" in got["caps"][kind]
    assert got["caps"]["ambient"] == []
    assert _raw_socket() == 0  # the parent still can


def test_ambient_caps_raised_for_real():
    """Bounding, capset and ambient raise through LibcSyscalls, as /proc/self/status shows them."""
    keep = ("CAP_NET_BIND_SERVICE", "CAP_KILL")
    spec = Capabilities(bounding=keep, effective=keep, permitted=keep, inheritable=keep, ambient=keep)

    def child():
        sys = LibcSyscalls()
        caps.drop_bounding(sys, spec)
        caps.apply(sys, spec)
        with open("/proc/self/status") as s:
            return {k: list(v) for k, v in caps.parse_status_caps(s.read()).items()}

    got = in_child(child)
    want = ["CAP_KILL", "CAP_NET_BIND_SERVICE"]
    assert got == {"inheritable": want, "permitted": want, "effective": want, "bounding": want,
                   "ambient": want}
