"""libseccomp through ctypes: the ABI constants and a thin, checked binding.

The constants below are libseccomp's ABI (``/usr/include/seccomp.h``, 2.5.x/2.6.x) and cost nothing
to import; ``ctypes`` and the shared library are loaded only when ``libseccomp()`` is first called.
The library is opened by soname (``libseccomp.so.2``), so it must be called while the host's
filesystem is still visible (before ``pivot_root``): compile the filter early, load it late.

Every libseccomp call that fails (they return ``-errno``) raises ``KernelError`` whose operation
names the call and its object, e.g. ``seccomp: add rule for syscall mkdir (ERRNO(1)): Invalid
argument``. A missing library raises ``FailedPrecondition``.
"""

from __future__ import annotations

import errno

from dockyard.errors import FailedPrecondition, KernelError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Iterable

SONAME = "libseccomp.so.2"

# ---------------------------------------------------------------- actions (SCMP_ACT_*)
ACT_KILL_PROCESS = 0x80000000
ACT_KILL_THREAD = 0x00000000
ACT_KILL = ACT_KILL_THREAD
ACT_TRAP = 0x00030000
ACT_NOTIFY = 0x7FC00000
ACT_ERRNO_BASE = 0x00050000
ACT_TRACE_BASE = 0x7FF00000
ACT_LOG = 0x7FFC0000
ACT_ALLOW = 0x7FFF0000


def act_errno(err: int) -> int:
    """``SCMP_ACT_ERRNO(x)``: fail the call with ``err``."""
    return ACT_ERRNO_BASE | (err & 0xFFFF)


def act_trace(msg: int) -> int:
    """``SCMP_ACT_TRACE(x)``: notify a ptrace tracer with ``msg``."""
    return ACT_TRACE_BASE | (msg & 0xFFFF)


def action_name(action: int) -> str:
    """A readable name for an action value, for messages: ``ERRNO(1)``, ``ALLOW``."""
    if action & 0xFFFF0000 == ACT_ERRNO_BASE:
        return f"ERRNO({action & 0xFFFF})"
    if action & 0xFFFF0000 == ACT_TRACE_BASE:
        return f"TRACE({action & 0xFFFF})"
    return {ACT_KILL_PROCESS: "KILL_PROCESS", ACT_KILL_THREAD: "KILL_THREAD", ACT_TRAP: "TRAP",
            ACT_NOTIFY: "NOTIFY", ACT_LOG: "LOG", ACT_ALLOW: "ALLOW"}.get(action, f"{action:#x}")


# ---------------------------------------------------------------- comparisons (enum scmp_compare)
CMP_NE = 1
CMP_LT = 2
CMP_LE = 3
CMP_EQ = 4
CMP_GE = 5
CMP_GT = 6
CMP_MASKED_EQ = 7
CMP_NAMES = {CMP_NE: "NE", CMP_LT: "LT", CMP_LE: "LE", CMP_EQ: "EQ", CMP_GE: "GE", CMP_GT: "GT",
             CMP_MASKED_EQ: "MASKED_EQ"}

# ---------------------------------------------------------------- filter attributes (enum scmp_filter_attr)
ATTR_ACT_DEFAULT = 1
ATTR_ACT_BADARCH = 2
ATTR_CTL_NNP = 3
ATTR_CTL_TSYNC = 4
ATTR_API_TSKIP = 5
ATTR_CTL_LOG = 6
ATTR_CTL_SSB = 7
ATTR_CTL_OPTIMIZE = 8
ATTR_API_SYSRAWRC = 9
ATTR_CTL_WAITKILL = 10  # libseccomp >= 2.6.0 (API level 7)
ATTR_NAMES = {ATTR_ACT_DEFAULT: "ACT_DEFAULT", ATTR_ACT_BADARCH: "ACT_BADARCH", ATTR_CTL_NNP: "CTL_NNP",
              ATTR_CTL_TSYNC: "CTL_TSYNC", ATTR_API_TSKIP: "API_TSKIP", ATTR_CTL_LOG: "CTL_LOG",
              ATTR_CTL_SSB: "CTL_SSB", ATTR_CTL_OPTIMIZE: "CTL_OPTIMIZE",
              ATTR_API_SYSRAWRC: "API_SYSRAWRC", ATTR_CTL_WAITKILL: "CTL_WAITKILL"}

NR_SCMP_ERROR = -1  # __NR_SCMP_ERROR: seccomp_syscall_resolve_name's "unknown syscall"
ARCH_NATIVE = 0


class LibSeccomp:
    """The loaded library. Get the shared instance with ``libseccomp()``."""

    def __init__(self, soname: str = SONAME) -> None:
        import ctypes

        try:
            lib = ctypes.CDLL(soname, use_errno=True)
        except OSError as e:
            raise FailedPrecondition(f"seccomp: cannot load {soname} (install libseccomp2): {e}") from None

        class ArgCmp(ctypes.Structure):  # struct scmp_arg_cmp
            _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int),
                        ("datum_a", ctypes.c_uint64), ("datum_b", ctypes.c_uint64)]

        class Version(ctypes.Structure):  # struct scmp_version
            _fields_ = [("major", ctypes.c_uint), ("minor", ctypes.c_uint), ("micro", ctypes.c_uint)]

        u32, vp, i = ctypes.c_uint32, ctypes.c_void_p, ctypes.c_int
        sig: dict[str, tuple[Any, list]] = {
            "seccomp_version": (ctypes.POINTER(Version), []),
            "seccomp_api_get": (ctypes.c_uint, []),
            "seccomp_init": (vp, [u32]),
            "seccomp_release": (None, [vp]),
            "seccomp_arch_add": (i, [vp, u32]),
            "seccomp_arch_exist": (i, [vp, u32]),
            "seccomp_arch_native": (u32, []),
            "seccomp_arch_resolve_name": (u32, [ctypes.c_char_p]),
            "seccomp_syscall_resolve_name": (i, [ctypes.c_char_p]),
            "seccomp_rule_add_array": (i, [vp, u32, i, ctypes.c_uint, ctypes.POINTER(ArgCmp)]),
            "seccomp_attr_set": (i, [vp, i, u32]),
            "seccomp_attr_get": (i, [vp, i, ctypes.POINTER(u32)]),
            "seccomp_load": (i, [vp]),
            "seccomp_export_bpf": (i, [vp, i]),
            "seccomp_export_pfc": (i, [vp, i]),
        }
        for name, (restype, argtypes) in sig.items():
            fn = getattr(lib, name)
            fn.restype, fn.argtypes = restype, argtypes
        self.soname = soname
        self._lib = lib
        self._ctypes = ctypes
        self._ArgCmp = ArgCmp

    # -------------------------------------------------------- library-wide queries

    def version(self) -> tuple[int, int, int]:
        v = self._lib.seccomp_version().contents
        return (v.major, v.minor, v.micro)

    def api_level(self) -> int:
        """``seccomp_api_get()``: what the library *and the running kernel* support (0 = unknown)."""
        return int(self._lib.seccomp_api_get())

    def arch_native(self) -> int:
        return int(self._lib.seccomp_arch_native())

    def arch_resolve_name(self, name: str) -> int:
        """The ``SCMP_ARCH_*`` token for a libseccomp arch name (``x86_64``); 0 if unknown."""
        return int(self._lib.seccomp_arch_resolve_name(name.encode()))

    def syscall_resolve_name(self, name: str) -> int:
        """The native syscall number (or a negative pseudo-number for a syscall only other
        architectures have); ``NR_SCMP_ERROR`` (-1) if libseccomp does not know the name."""
        return int(self._lib.seccomp_syscall_resolve_name(name.encode()))

    def init(self, default_action: int) -> FilterContext:
        ctx = self._lib.seccomp_init(default_action)
        if not ctx:
            # NULL: an action this library/kernel does not accept (or no memory); errno is not set.
            raise KernelError(f"seccomp: create filter with default action {action_name(default_action)}",
                              errno.EINVAL)
        return FilterContext(self, ctx)


class FilterContext:
    """One ``scmp_filter_ctx``. Not thread-safe; ``release()`` frees it (idempotent)."""

    def __init__(self, lib: LibSeccomp, ctx: int) -> None:
        self._lib = lib
        self._ctx: int | None = ctx

    def _handle(self) -> int:
        if self._ctx is None:
            raise FailedPrecondition("seccomp: the filter was already released")
        return self._ctx

    @staticmethod
    def _check(rc: int, operation: str) -> int:
        if rc < 0:
            raise KernelError(f"seccomp: {operation}", -rc)
        return rc

    def arch_add(self, token: int, name: str = "") -> None:
        """Add an architecture; one already present (the native one) is not an error."""
        rc = self._lib._lib.seccomp_arch_add(self._handle(), token)
        if rc == -errno.EEXIST:
            return
        self._check(rc, f"add architecture {name or hex(token)}")

    def arch_exist(self, token: int) -> bool:
        rc = self._lib._lib.seccomp_arch_exist(self._handle(), token)
        if rc == -errno.EEXIST:  # "does not exist" in libseccomp's words
            return False
        self._check(rc, f"query architecture {token:#x}")
        return True

    def attr_set(self, attr: int, value: int) -> None:
        rc = self._lib._lib.seccomp_attr_set(self._handle(), attr, value)
        self._check(rc, f"set filter attribute {ATTR_NAMES.get(attr, attr)}={value}")

    def attr_get(self, attr: int) -> int:
        ct = self._lib._ctypes
        out = ct.c_uint32(0)
        rc = self._lib._lib.seccomp_attr_get(self._handle(), attr, ct.byref(out))
        self._check(rc, f"get filter attribute {ATTR_NAMES.get(attr, attr)}")
        return out.value

    def rule_add(self, syscall: int, action: int, args: Iterable[tuple[int, int, int, int]] = (),
                 what: str = "") -> None:
        """``seccomp_rule_add_array``; ``args`` are ``(index, op, datum_a, datum_b)`` and are ANDed.
        ``what`` names the rule in the error message (defaults to the syscall number)."""
        conds = list(args)
        arr = (self._lib._ArgCmp * max(len(conds), 1))()
        for k, (index, op, a, b) in enumerate(conds):
            arr[k].arg, arr[k].op, arr[k].datum_a, arr[k].datum_b = index, op, a, b
        rc = self._lib._lib.seccomp_rule_add_array(self._handle(), action, syscall, len(conds), arr)
        if rc < 0:
            cond = " && ".join(f"arg{i} {CMP_NAMES.get(op, op)} {a:#x}" + (f"/{b:#x}" if op == CMP_MASKED_EQ else "")
                               for i, op, a, b in conds)
            self._check(rc, f"add rule for syscall {what or syscall} ({action_name(action)}"
                            f"{' if ' + cond if cond else ''})")

    def load(self) -> None:
        self._check(self._lib._lib.seccomp_load(self._handle()), "load filter into the kernel")

    def export_bpf(self, fd: int) -> None:
        self._check(self._lib._lib.seccomp_export_bpf(self._handle(), fd), "export BPF")

    def export_pfc(self, fd: int) -> None:
        self._check(self._lib._lib.seccomp_export_pfc(self._handle(), fd), "export PFC")

    def release(self) -> None:
        if self._ctx is not None:
            self._lib._lib.seccomp_release(self._ctx)
            self._ctx = None

    def __enter__(self) -> FilterContext:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


_LIB: LibSeccomp | None = None


def libseccomp() -> LibSeccomp:
    """The process-wide binding, loaded on first use. Raises ``FailedPrecondition`` if absent."""
    global _LIB
    if _LIB is None:
        _LIB = LibSeccomp()
    return _LIB
