"""dockyard's default seccomp profile, and Docker-format profiles (``--security-opt seccomp=FILE``).

Default-deny (``SCMP_ACT_ERRNO``/EPERM): the allow list is every syscall of the Linux syscall
table (from the kernel's uapi headers: ``asm/unistd_64.h`` and ``asm-generic/unistd.h``) except
those Docker documents as blocked by its default profile — kernel keyrings, mounting and namespace
creation, module loading, kexec, reboot, clock setting, raw I/O ports, BPF and perf, ptrace and
cross-process memory access, swap, quotas, accounting, userfaultfd, io_uring, the new mount API —
each allowed again when the container holds the capability that governs it, as Docker does. A
syscall the table does not know (a newer kernel's) is denied: that is what default-deny buys.

``clone`` is allowed only without namespace flags (unless CAP_SYS_ADMIN); ``clone3`` answers
ENOSYS so that libcs fall back to ``clone``, whose flags can be checked. ``personality`` is limited
to the values Docker allows. Privileged containers and ``seccomp=unconfined`` get no filter.
"""

from __future__ import annotations

import platform

from dockyard.errors import InvalidArgument

#: The Linux syscall table (x86_64 and the generic table used by arm64 and newer ports).
_TABLE = """
accept accept4 access acct add_key adjtimex afs_syscall alarm arch_prctl bind bpf brk capget
capset chdir chmod chown chroot clock_adjtime clock_getres clock_gettime clock_nanosleep
clock_settime clone clone3 close close_range connect copy_file_range creat create_module
delete_module dup dup2 dup3 epoll_create epoll_create1 epoll_ctl epoll_ctl_old epoll_pwait
epoll_pwait2 epoll_wait epoll_wait_old eventfd eventfd2 execve execveat exit exit_group faccessat
faccessat2 fadvise64 fallocate fanotify_init fanotify_mark fchdir fchmod fchmodat fchown fchownat
fcntl fdatasync fgetxattr finit_module flistxattr flock fork fremovexattr fsconfig fsetxattr
fsmount fsopen fspick fstat fstatfs fsync ftruncate futex futex_waitv futimesat get_kernel_syms
get_mempolicy get_robust_list get_thread_area getcpu getcwd getdents getdents64 getegid geteuid
getgid getgroups getitimer getpeername getpgid getpgrp getpid getpmsg getppid getpriority
getrandom getresgid getresuid getrlimit getrusage getsid getsockname getsockopt gettid
gettimeofday getuid getxattr init_module inotify_add_watch inotify_init inotify_init1
inotify_rm_watch io_cancel io_destroy io_getevents io_pgetevents io_setup io_submit
io_uring_enter io_uring_register io_uring_setup ioctl ioperm iopl ioprio_get ioprio_set kcmp
kexec_file_load kexec_load keyctl kill landlock_add_rule landlock_create_ruleset
landlock_restrict_self lchown lgetxattr link linkat listen listxattr llistxattr lookup_dcookie
lremovexattr lseek lsetxattr lstat madvise mbind membarrier memfd_create memfd_secret
migrate_pages mincore mkdir mkdirat mknod mknodat mlock mlock2 mlockall mmap modify_ldt mount
mount_setattr move_mount move_pages mprotect mq_getsetattr mq_notify mq_open mq_timedreceive
mq_timedsend mq_unlink mremap msgctl msgget msgrcv msgsnd msync munlock munlockall munmap
name_to_handle_at nanosleep newfstatat nfsservctl open open_by_handle_at open_tree openat openat2
pause perf_event_open personality pidfd_getfd pidfd_open pidfd_send_signal pipe pipe2 pivot_root
pkey_alloc pkey_free pkey_mprotect poll ppoll prctl pread64 preadv preadv2 prlimit64
process_madvise process_mrelease process_vm_readv process_vm_writev pselect6 ptrace putpmsg
pwrite64 pwritev pwritev2 query_module quotactl quotactl_fd read readahead readlink readlinkat
readv reboot recvfrom recvmmsg recvmsg remap_file_pages removexattr rename renameat renameat2
request_key restart_syscall rmdir rseq rt_sigaction rt_sigpending rt_sigprocmask rt_sigqueueinfo
rt_sigreturn rt_sigsuspend rt_sigtimedwait rt_tgsigqueueinfo sched_get_priority_max
sched_get_priority_min sched_getaffinity sched_getattr sched_getparam sched_getscheduler
sched_rr_get_interval sched_setaffinity sched_setattr sched_setparam sched_setscheduler
sched_yield seccomp security select semctl semget semop semtimedop sendfile sendmmsg sendmsg
sendto set_mempolicy set_mempolicy_home_node set_robust_list set_thread_area set_tid_address
setdomainname setfsgid setfsuid setgid setgroups sethostname setitimer setns setpgid setpriority
setregid setresgid setresuid setreuid setrlimit setsid setsockopt settimeofday setuid setxattr
shmat shmctl shmdt shmget shutdown sigaltstack signalfd signalfd4 socket socketpair splice stat
statfs statx swapoff swapon symlink symlinkat sync sync_file_range syncfs sysfs sysinfo syslog
tee tgkill time timer_create timer_delete timer_getoverrun timer_gettime timer_settime
timerfd_create timerfd_gettime timerfd_settime times tkill truncate tuxcall umask umount2 uname
unlink unlinkat unshare uselib userfaultfd ustat utime utimensat utimes vfork vhangup vmsplice
vserver wait4 waitid write writev
clock_adjtime64 clock_getres_time64 clock_gettime64 clock_nanosleep_time64 clock_settime64
fadvise64_64 fcntl64 fstat64 fstatat64 fstatfs64 ftruncate64 futex_time64 io_pgetevents_time64
llseek _llseek lstat64 mmap2 mq_timedreceive_time64 mq_timedsend_time64 ppoll_time64
pselect6_time64 recvmmsg_time64 rt_sigtimedwait_time64 sched_rr_get_interval_time64
semtimedop_time64 sendfile64 stat64 statfs64 sync_file_range2 timer_gettime64 timer_settime64
timerfd_gettime64 timerfd_settime64 truncate64 utimensat_time64 umount
"""
ALL_SYSCALLS = frozenset(_TABLE.split())

#: Blocked unless the capability is held (Docker's default profile; docs "Significant syscalls
#: blocked by the default profile").
BY_CAPABILITY: dict[str, frozenset[str]] = {
    "CAP_SYS_ADMIN": frozenset((
        "bpf", "clone3", "fanotify_init", "fsconfig", "fsmount", "fsopen", "fspick",
        "lookup_dcookie", "mount", "mount_setattr", "move_mount", "name_to_handle_at", "open_tree",
        "perf_event_open", "quotactl", "quotactl_fd", "setns", "umount", "umount2", "unshare")),
    "CAP_SYS_BOOT": frozenset(("reboot",)),
    "CAP_SYS_CHROOT": frozenset(("chroot",)),
    "CAP_SYS_MODULE": frozenset(("delete_module", "init_module", "finit_module")),
    "CAP_SYS_PACCT": frozenset(("acct",)),
    "CAP_SYS_PTRACE": frozenset(("kcmp", "pidfd_getfd", "process_madvise", "process_vm_readv",
                                 "process_vm_writev", "ptrace")),
    "CAP_SYS_RAWIO": frozenset(("iopl", "ioperm")),
    "CAP_SYS_TIME": frozenset(("settimeofday", "stime", "clock_settime", "clock_settime64",
                               "adjtimex", "clock_adjtime", "clock_adjtime64")),
    "CAP_SYS_TTY_CONFIG": frozenset(("vhangup",)),
    "CAP_SYS_NICE": frozenset(("get_mempolicy", "mbind", "set_mempolicy",
                               "set_mempolicy_home_node", "migrate_pages", "move_pages")),
    "CAP_SYSLOG": frozenset(("syslog",)),
    "CAP_DAC_READ_SEARCH": frozenset(("open_by_handle_at",)),
}
#: Never allowed by the default profile, whatever the capabilities.
ALWAYS_BLOCKED = frozenset((
    "add_key", "keyctl", "request_key", "kexec_load", "kexec_file_load", "create_module",
    "get_kernel_syms", "query_module", "nfsservctl", "swapon", "swapoff", "sysfs", "_sysctl",
    "uselib", "userfaultfd", "ustat", "vm86", "vm86old", "afs_syscall", "tuxcall", "security",
    "vserver", "putpmsg", "getpmsg", "io_uring_enter", "io_uring_register", "io_uring_setup",
    "pivot_root", "clone", "clone3", "personality"))
_CLONE_NAMESPACES = 0x7E020000  # CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET
_PERSONALITIES = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)
_ENOSYS = 38

_ARCHES = {
    "x86_64": ("SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"),
    "aarch64": ("SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"),
}


def architectures(machine: str | None = None) -> list[str]:
    return list(_ARCHES.get(machine or platform.machine(), ()))


def default_profile(capabilities: list[str] | tuple[str, ...], *,
                    machine: str | None = None) -> dict:
    """The runtime-spec ``linux.seccomp`` of a container holding ``capabilities``."""
    caps = set(capabilities)
    blocked = set(ALWAYS_BLOCKED)
    for cap, names in BY_CAPABILITY.items():
        if cap not in caps:
            blocked |= names
    allowed = sorted(ALL_SYSCALLS - blocked)
    syscalls: list[dict] = [{"names": allowed, "action": "SCMP_ACT_ALLOW"}]
    if "CAP_SYS_ADMIN" in caps:
        syscalls.append({"names": ["clone", "clone3"], "action": "SCMP_ACT_ALLOW"})
    else:
        syscalls.append({"names": ["clone"], "action": "SCMP_ACT_ALLOW", "args": [
            {"index": 0, "value": _CLONE_NAMESPACES, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]})
        syscalls.append({"names": ["clone3"], "action": "SCMP_ACT_ERRNO",
                         "errnoRet": _ENOSYS})
    for value in _PERSONALITIES:
        syscalls.append({"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                         "args": [{"index": 0, "value": value, "op": "SCMP_CMP_EQ"}]})
    return {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
            "architectures": architectures(machine), "syscalls": syscalls}


def from_docker_profile(text: str, capabilities: list[str] | tuple[str, ...], *,
                        machine: str | None = None) -> dict:
    """A Docker-format profile (``--security-opt seccomp=profile.json``: ``defaultAction``,
    ``architectures`` or ``archMap``, ``syscalls`` with ``names``/``name``, ``action``, ``args``,
    ``errnoRet`` and ``includes``/``excludes`` by ``caps`` and ``arches``) as the runtime-spec
    object for this container's capabilities and this machine."""
    from dockyard.leanjson import loads

    try:
        raw = loads(text)
    except ValueError as e:
        raise InvalidArgument(f"seccomp profile: invalid JSON: {e}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("defaultAction"), str):
        raise InvalidArgument("seccomp profile: expected an object with a defaultAction")
    arch = machine or platform.machine()
    mine = architectures(arch)
    archs = list(raw.get("architectures") or ())
    for entry in raw.get("archMap") or ():
        if isinstance(entry, dict) and entry.get("architecture") in mine[:1]:
            archs = [entry["architecture"], *entry.get("subArchitectures", ())]
    caps = set(capabilities)
    out_calls: list[dict] = []
    for i, sc in enumerate(raw.get("syscalls") or ()):
        if not isinstance(sc, dict):
            raise InvalidArgument(f"seccomp profile: syscalls[{i}] is not an object")
        if not _applies(sc.get("includes") or {}, caps, mine, True) or \
                _applies(sc.get("excludes") or {}, caps, mine, False):
            continue
        names = list(sc.get("names") or ([sc["name"]] if sc.get("name") else []))
        if not names or not isinstance(sc.get("action"), str):
            raise InvalidArgument(f"seccomp profile: syscalls[{i}] needs names and an action")
        entry = {"names": names, "action": sc["action"]}
        if sc.get("args"):
            entry["args"] = sc["args"]
        if sc.get("errnoRet") is not None:
            entry["errnoRet"] = sc["errnoRet"]
        out_calls.append(entry)
    out = {"defaultAction": raw["defaultAction"], "architectures": archs, "syscalls": out_calls}
    if raw.get("defaultErrnoRet") is not None:
        out["defaultErrnoRet"] = raw["defaultErrnoRet"]
    if raw.get("flags"):
        out["flags"] = raw["flags"]
    return out


def _applies(cond: dict, caps: set[str], arches: list[str], empty: bool) -> bool:
    """``includes`` (all given conditions hold) / ``excludes`` (any given condition holds)."""
    want_caps = cond.get("caps") or []
    want_arches = cond.get("arches") or []
    if not want_caps and not want_arches:
        return empty
    names = {a.replace("SCMP_ARCH_", "").lower() for a in arches} | {platform.machine()}
    cap_ok = all(c in caps for c in want_caps) if empty else any(c in caps for c in want_caps)
    arch_ok = any(a in names or a in arches for a in want_arches)
    if empty:
        return (not want_caps or cap_ok) and (not want_arches or arch_ok)
    return (bool(want_caps) and cap_ok) or (bool(want_arches) and arch_ok)
