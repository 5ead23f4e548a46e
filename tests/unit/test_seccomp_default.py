"""dockyard's default seccomp profile and Docker-format profiles (engine/seccomp_default.py)."""

from __future__ import annotations

import json

import pytest

from dockyard.engine.seccomp_default import ALL_SYSCALLS, default_profile, from_docker_profile
from dockyard.errors import InvalidArgument
from dockyard.oci.spec_builder import DEFAULT_CAPABILITIES


def _allowed(profile: dict) -> set[str]:
    return {n for sc in profile["syscalls"] if sc["action"] == "SCMP_ACT_ALLOW" and
            not sc.get("args") for n in sc["names"]}


def test_default_denies_keyrings_mounts_and_namespaces_for_default_caps():
    p = default_profile(DEFAULT_CAPABILITIES, machine="x86_64")
    assert p["defaultAction"] == "SCMP_ACT_ERRNO" and p["defaultErrnoRet"] == 1
    assert p["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    allowed = _allowed(p)
    for name in ("keyctl", "add_key", "mount", "umount2", "unshare", "setns", "bpf", "ptrace",
                 "kexec_load", "init_module", "reboot", "settimeofday", "userfaultfd",
                 "io_uring_setup", "open_by_handle_at", "fsopen", "pivot_root"):
        assert name not in allowed, name
    for name in ("read", "write", "openat", "execve", "futex", "mmap", "socket", "chroot",
                 "sethostname", "wait4", "statx", "rseq"):
        assert name in allowed, name


def test_clone_only_without_namespace_flags_and_clone3_is_enosys():
    p = default_profile(DEFAULT_CAPABILITIES, machine="x86_64")
    clone = [sc for sc in p["syscalls"] if sc["names"] == ["clone"]]
    assert clone and clone[0]["args"][0]["op"] == "SCMP_CMP_MASKED_EQ"
    assert clone[0]["args"][0]["value"] & 0x10000000  # CLONE_NEWUSER is masked
    clone3 = [sc for sc in p["syscalls"] if sc["names"] == ["clone3"]]
    assert clone3[0]["action"] == "SCMP_ACT_ERRNO" and clone3[0]["errnoRet"] == 38


def test_capabilities_allow_their_syscalls_again():
    caps = (*DEFAULT_CAPABILITIES, "CAP_SYS_ADMIN", "CAP_SYS_PTRACE", "CAP_SYS_TIME")
    allowed = _allowed(default_profile(caps, machine="x86_64"))
    assert {"mount", "unshare", "setns", "ptrace", "process_vm_readv", "settimeofday",
            "clone", "clone3"} <= allowed
    assert "keyctl" not in allowed and "kexec_load" not in allowed  # never, whatever the caps


def test_unknown_machine_gets_no_arch_list_but_the_same_rules():
    p = default_profile(DEFAULT_CAPABILITIES, machine="riscv64")
    assert p["architectures"] == [] and _allowed(p) <= ALL_SYSCALLS


def test_docker_format_profile_filters_by_caps_and_arch():
    profile = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "archMap": [{"architecture": "SCMP_ARCH_X86_64",
                     "subArchitectures": ["SCMP_ARCH_X86"]}],
        "syscalls": [
            {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["mount"], "action": "SCMP_ACT_ALLOW",
             "includes": {"caps": ["CAP_SYS_ADMIN"]}},
            {"names": ["chmod"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
             "excludes": {"caps": ["CAP_FOWNER"]}},
            {"name": "getpid", "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["arm64"]}},
        ]}
    out = from_docker_profile(json.dumps(profile), ("CAP_CHOWN",), machine="x86_64")
    assert out["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"]
    names = [sc["names"] for sc in out["syscalls"]]
    assert names == [["read", "write"], ["chmod"]]
    assert out["syscalls"][1]["errnoRet"] == 13
    admin = from_docker_profile(json.dumps(profile), ("CAP_SYS_ADMIN", "CAP_FOWNER"),
                                machine="x86_64")
    assert [sc["names"] for sc in admin["syscalls"]] == [["read", "write"], ["mount"]]


@pytest.mark.parametrize("text", ["not json", "[]", '{"syscalls": []}',
                                  '{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [1]}',
                                  '{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{}]}'])
def test_bad_docker_profiles_are_refused(text):
    with pytest.raises(InvalidArgument, match="seccomp profile"):
        from_docker_profile(text, ())
