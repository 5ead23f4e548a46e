"""plan_filter: OCI linux.seccomp -> libseccomp numbers and runc's rule expansion (no libseccomp calls)."""

import errno

import pytest

from dockyard.errors import InvalidArgument, NotImplemented
from dockyard.kernel import seccomp as scmp
from dockyard.oci.runtime_spec import Seccomp, SeccompArg, SyscallRule, parse_seccomp
from dockyard.runtime.seccomp import ArgCmp, PlannedRule, action_value, plan_filter


def test_abi_constants_match_seccomp_h():
    assert (scmp.ACT_KILL_PROCESS, scmp.ACT_KILL_THREAD, scmp.ACT_KILL) == (0x80000000, 0, 0)
    assert (scmp.ACT_TRAP, scmp.ACT_NOTIFY, scmp.ACT_LOG, scmp.ACT_ALLOW) == (
        0x00030000, 0x7FC00000, 0x7FFC0000, 0x7FFF0000)
    assert scmp.act_errno(1) == 0x00050001 and scmp.act_errno(0x12345) == 0x00052345
    assert scmp.act_trace(38) == 0x7FF00026
    assert [scmp.CMP_NE, scmp.CMP_LT, scmp.CMP_LE, scmp.CMP_EQ, scmp.CMP_GE, scmp.CMP_GT,
            scmp.CMP_MASKED_EQ] == [1, 2, 3, 4, 5, 6, 7]
    assert (scmp.ATTR_CTL_NNP, scmp.ATTR_CTL_TSYNC, scmp.ATTR_CTL_LOG, scmp.ATTR_CTL_SSB,
            scmp.ATTR_CTL_OPTIMIZE, scmp.ATTR_API_SYSRAWRC, scmp.ATTR_CTL_WAITKILL) == (3, 4, 6, 7, 8, 9, 10)
    assert scmp.action_name(scmp.act_errno(38)) == "ERRNO(38)"
    assert scmp.action_name(scmp.ACT_ALLOW) == "ALLOW"


@pytest.mark.parametrize("name, ret, want", [
    ("SCMP_ACT_ERRNO", None, 0x00050000 | errno.EPERM),
    ("SCMP_ACT_ERRNO", 38, 0x00050000 | 38),
    ("SCMP_ACT_ERRNO", 0, 0x00050000),
    ("SCMP_ACT_TRACE", None, 0x7FF00000 | errno.EPERM),
    ("SCMP_ACT_TRACE", 7, 0x7FF00007),
    ("SCMP_ACT_ALLOW", 5, 0x7FFF0000),  # errnoRet ignored for other actions (as runc)
    ("SCMP_ACT_KILL", None, 0),
    ("SCMP_ACT_KILL_THREAD", None, 0),
    ("SCMP_ACT_KILL_PROCESS", None, 0x80000000),
    ("SCMP_ACT_TRAP", None, 0x00030000),
    ("SCMP_ACT_LOG", None, 0x7FFC0000),
])
def test_action_values(name, ret, want):
    assert action_value(name, ret) == want


def test_errno_out_of_range():
    with pytest.raises(InvalidArgument, match=r"syscalls\[0\].action: errnoRet 70000"):
        plan_filter(Seccomp("SCMP_ACT_ALLOW", syscalls=(SyscallRule(("mkdir",), "SCMP_ACT_ERRNO", 70000),)))


def test_default_errno_and_arches():
    plan = plan_filter(Seccomp("SCMP_ACT_ERRNO", architectures=(
        "SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32", "SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM",
        "SCMP_ARCH_X86")))
    assert plan.default_action == scmp.act_errno(errno.EPERM)
    assert plan.architectures == ("x86_64", "x86", "x32", "aarch64", "arm")
    assert plan.rules == () and plan.optimize == 0
    assert plan_filter(Seccomp("SCMP_ACT_ERRNO", default_errno_ret=38)).default_action == scmp.act_errno(38)


def test_unknown_arch_names_the_field():
    with pytest.raises(InvalidArgument, match=r"linux.seccomp.architectures\[1\]: unknown architecture 'SCMP_ARCH_Z80'"):
        plan_filter(Seccomp("SCMP_ACT_ALLOW", architectures=("SCMP_ARCH_X86_64", "SCMP_ARCH_Z80")))


def test_rules_one_per_name_with_numeric_ops():
    spec = Seccomp("SCMP_ACT_ALLOW", syscalls=(
        SyscallRule(("mkdir", "mkdirat"), "SCMP_ACT_ERRNO"),
        SyscallRule(("personality",), "SCMP_ACT_ERRNO", 38, (SeccompArg(0, 0xFFFFFFFF, "SCMP_CMP_EQ"),)),
        SyscallRule(("clone",), "SCMP_ACT_KILL_PROCESS",
                    args=(SeccompArg(0, 0x7E020000, "SCMP_CMP_MASKED_EQ", 0x10000000),
                          SeccompArg(2, 5, "SCMP_CMP_GT"))),
    ))
    plan = plan_filter(spec)
    eperm = scmp.act_errno(errno.EPERM)
    assert plan.rules == (
        PlannedRule("mkdir", eperm, (), "linux.seccomp.syscalls[0]"),
        PlannedRule("mkdirat", eperm, (), "linux.seccomp.syscalls[0]"),
        PlannedRule("personality", scmp.act_errno(38), (ArgCmp(0, scmp.CMP_EQ, 0xFFFFFFFF, 0),),
                    "linux.seccomp.syscalls[1]"),
        PlannedRule("clone", scmp.ACT_KILL_PROCESS,
                    (ArgCmp(0, scmp.CMP_MASKED_EQ, 0x7E020000, 0x10000000), ArgCmp(2, scmp.CMP_GT, 5, 0)),
                    "linux.seccomp.syscalls[2]"),
    )


def test_rule_equal_to_default_is_skipped():
    plan = plan_filter(Seccomp("SCMP_ACT_ERRNO", syscalls=(
        SyscallRule(("read",), "SCMP_ACT_ALLOW"),
        SyscallRule(("mkdir",), "SCMP_ACT_ERRNO"),  # ERRNO(EPERM) == default: skipped
        SyscallRule(("clone3",), "SCMP_ACT_ERRNO", 38),  # different errno: kept
    )))
    assert [(r.syscall, r.action) for r in plan.rules] == [
        ("read", scmp.ACT_ALLOW), ("clone3", scmp.act_errno(38))]
    # KILL and KILL_THREAD are the same action
    plan = plan_filter(Seccomp("SCMP_ACT_KILL", syscalls=(SyscallRule(("read",), "SCMP_ACT_KILL_THREAD"),)))
    assert plan.rules == ()


def test_same_index_conditions_split_into_separate_rules():
    # Docker's default profile: personality with several EQ values on arg 0
    args = tuple(SeccompArg(0, v, "SCMP_CMP_EQ") for v in (0x0, 0x8, 0x20008)) + (
        SeccompArg(1, 3, "SCMP_CMP_NE"),)
    plan = plan_filter(Seccomp("SCMP_ACT_ERRNO", syscalls=(
        SyscallRule(("personality",), "SCMP_ACT_ALLOW", args=args),)))
    # runc: once any index repeats, *every* condition becomes a rule of its own
    assert [r.args for r in plan.rules] == [
        (ArgCmp(0, scmp.CMP_EQ, 0x0),), (ArgCmp(0, scmp.CMP_EQ, 0x8),),
        (ArgCmp(0, scmp.CMP_EQ, 0x20008),), (ArgCmp(1, scmp.CMP_NE, 3),)]
    assert {r.syscall for r in plan.rules} == {"personality"}


def test_flags_deduplicated_and_optimize_for_long_profiles():
    spec = Seccomp("SCMP_ACT_ALLOW", flags=("SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_TSYNC",
                                            "SECCOMP_FILTER_FLAG_LOG"),
                   syscalls=tuple(SyscallRule((f"sc{i}",), "SCMP_ACT_ERRNO") for i in range(9)))
    plan = plan_filter(spec)
    assert plan.flags == ("SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_TSYNC")
    assert plan.optimize == 2
    assert plan_filter(Seccomp("SCMP_ACT_ALLOW", syscalls=spec.syscalls[:8])).optimize == 0


def test_notify_is_not_implemented():
    with pytest.raises(NotImplemented, match="SCMP_ACT_NOTIFY"):
        plan_filter(Seccomp("SCMP_ACT_NOTIFY", listener_path="/run/l.sock"))
    with pytest.raises(NotImplemented, match=r"syscalls\[0\].action: SCMP_ACT_NOTIFY"):
        plan_filter(Seccomp("SCMP_ACT_ALLOW", listener_path="/run/l.sock",
                            syscalls=(SyscallRule(("mkdir",), "SCMP_ACT_NOTIFY"),)))


def test_empty_syscall_name_rejected():
    with pytest.raises(InvalidArgument, match=r"syscalls\[0\].names\[1\]: empty string"):
        plan_filter(Seccomp("SCMP_ACT_ALLOW", syscalls=(SyscallRule(("mkdir", ""), "SCMP_ACT_ERRNO"),)))


def test_from_parsed_config():
    spec = parse_seccomp({
        "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
        "architectures": ["SCMP_ARCH_X86_64"], "flags": ["SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
        "syscalls": [
            {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["socket"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 40, "op": "SCMP_CMP_NE"}]},
            {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
        ],
    })
    plan = plan_filter(spec)
    assert plan.default_action == scmp.act_errno(1)
    assert plan.flags == ("SECCOMP_FILTER_FLAG_SPEC_ALLOW",)
    assert [(r.syscall, scmp.action_name(r.action), r.args) for r in plan.rules] == [
        ("read", "ALLOW", ()), ("write", "ALLOW", ()),
        ("socket", "ALLOW", (ArgCmp(0, scmp.CMP_NE, 40),)),
        ("clone3", "ERRNO(38)", ()),
    ]


def test_plan_import_does_not_load_ctypes():
    import subprocess
    import sys

    code = ("import sys; import dockyard.runtime.seccomp as s; import dockyard.oci.runtime_spec as r; "
            "s.plan_filter(r.Seccomp('SCMP_ACT_ERRNO', syscalls=(r.SyscallRule(('read',), 'SCMP_ACT_ALLOW'),))); "
            "print('ctypes' in sys.modules, 'typing' in sys.modules, 'dataclasses' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False", "False"]
