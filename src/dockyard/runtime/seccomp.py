"""Seccomp for the container process: OCI ``linux.seccomp`` → plan → libseccomp filter → kernel.

Two halves:

* ``plan_filter(spec)`` is pure: it maps OCI names to libseccomp's numbers (actions with their
  errno, comparison operators, architecture names) and expands the rules the way runc does, without
  touching libseccomp. Unit tests live on it.
* ``compile_filter(spec)`` builds a libseccomp filter from the plan (resolving syscall names for
  this architecture); ``load(filter, no_new_privileges)`` puts it into the kernel.

Semantics follow runc (libcontainer/seccomp/seccomp_linux.go):

* the errno for ``SCMP_ACT_ERRNO`` (rule ``errnoRet`` / ``defaultErrnoRet``) and ``SCMP_ACT_TRACE``
  defaults to ``EPERM``; ``errnoRet`` on other actions is ignored;
* a rule whose action (errno included) equals the default action is skipped (libseccomp refuses it);
* a syscall name libseccomp does not know is skipped, not an error (``CompiledFilter.skipped``);
* conditions on one rule are ANDed; but if two conditions use the same argument index (which an AND
  could never satisfy in libseccomp), *every* condition of that rule becomes a rule of its own;
* flags map to filter attributes (TSYNC, LOG, SPEC_ALLOW→SSB, WAIT_KILLABLE_RECV→WAITKILL, the last
  needing libseccomp >= 2.6); an unsupported flag is an error naming it;
* with more than 8 syscall entries the binary-tree optimization is requested (best effort);
* ``SCMP_ACT_NOTIFY`` (user notification through ``listenerPath``) is not implemented.

Not done (runc's ``patchbpf``): runc patches the BPF so that syscalls newer than any in the profile
return ENOSYS instead of the default action. Profiles that need it (clone3) name the syscall with
``errnoRet: 38`` themselves, as Docker's default profile does.

Where the init calls it: libseccomp is opened by soname, so ``compile_filter`` must run while the
host's filesystem is visible (before ``pivot_root``). Loading follows runc's order: with
``no_new_privileges`` the filter is loaded as late as possible, just before ``execve``; without it,
loading is privileged (the kernel requires CAP_SYS_ADMIN unless no_new_privs is set), so the caller
must load it *before* dropping capabilities and changing user.
"""

from __future__ import annotations

import os

from dockyard.errors import FailedPrecondition, InvalidArgument, KernelError, NotImplemented
from dockyard.kernel import seccomp as scmp
from dockyard.record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from dockyard.oci.runtime_spec import Seccomp

EPERM = 1
_PATH = "linux.seccomp"

# OCI architecture names → libseccomp's names (seccomp_arch_resolve_name).
OCI_ARCHES = {
    "SCMP_ARCH_X86": "x86", "SCMP_ARCH_X86_64": "x86_64", "SCMP_ARCH_X32": "x32",
    "SCMP_ARCH_ARM": "arm", "SCMP_ARCH_AARCH64": "aarch64",
    "SCMP_ARCH_LOONGARCH64": "loongarch64", "SCMP_ARCH_M68K": "m68k",
    "SCMP_ARCH_MIPS": "mips", "SCMP_ARCH_MIPS64": "mips64", "SCMP_ARCH_MIPS64N32": "mips64n32",
    "SCMP_ARCH_MIPSEL": "mipsel", "SCMP_ARCH_MIPSEL64": "mipsel64",
    "SCMP_ARCH_MIPSEL64N32": "mipsel64n32",
    "SCMP_ARCH_PPC": "ppc", "SCMP_ARCH_PPC64": "ppc64", "SCMP_ARCH_PPC64LE": "ppc64le",
    "SCMP_ARCH_S390": "s390", "SCMP_ARCH_S390X": "s390x",
    "SCMP_ARCH_PARISC": "parisc", "SCMP_ARCH_PARISC64": "parisc64",
    "SCMP_ARCH_RISCV64": "riscv64", "SCMP_ARCH_SH": "sh", "SCMP_ARCH_SHEB": "sheb",
}
OPERATORS = {
    "SCMP_CMP_NE": scmp.CMP_NE, "SCMP_CMP_LT": scmp.CMP_LT, "SCMP_CMP_LE": scmp.CMP_LE,
    "SCMP_CMP_EQ": scmp.CMP_EQ, "SCMP_CMP_GE": scmp.CMP_GE, "SCMP_CMP_GT": scmp.CMP_GT,
    "SCMP_CMP_MASKED_EQ": scmp.CMP_MASKED_EQ,
}
# OCI flag → (filter attribute, minimum libseccomp API level, minimum libseccomp version)
FLAG_ATTRIBUTES = {
    "SECCOMP_FILTER_FLAG_TSYNC": (scmp.ATTR_CTL_TSYNC, 2, (2, 2, 0)),
    "SECCOMP_FILTER_FLAG_LOG": (scmp.ATTR_CTL_LOG, 3, (2, 4, 0)),
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": (scmp.ATTR_CTL_SSB, 4, (2, 5, 0)),
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": (scmp.ATTR_CTL_WAITKILL, 7, (2, 6, 0)),
}
# OCI action → minimum libseccomp API level (NOTIFY is left out: not implemented)
_ACTION_API = {
    "SCMP_ACT_KILL": 1, "SCMP_ACT_KILL_THREAD": 1, "SCMP_ACT_TRAP": 1, "SCMP_ACT_ERRNO": 1,
    "SCMP_ACT_TRACE": 1, "SCMP_ACT_ALLOW": 1, "SCMP_ACT_KILL_PROCESS": 3, "SCMP_ACT_LOG": 3,
}
_OPTIMIZE_ABOVE = 8  # runc: binary tree only for longer profiles (libseccomp <= 2.5.4 bug with 0 rules)


# ---------------------------------------------------------------- the plan (pure)


class ArgCmp(Record):
    """One ``struct scmp_arg_cmp``: for MASKED_EQ ``datum_a`` is the mask, ``datum_b`` the value."""

    index: int
    op: int
    datum_a: int
    datum_b: int = 0


class PlannedRule(Record):
    syscall: str
    action: int
    args: tuple[ArgCmp, ...] = ()
    origin: str = ""  # "linux.seccomp.syscalls[3]", for messages


class FilterPlan(Record):
    default_action: int
    architectures: tuple[str, ...] = ()  # libseccomp names, e.g. "x86_64"
    flags: tuple[str, ...] = ()  # OCI flag names, deduplicated, in spec order
    optimize: int = 0  # SCMP_FLTATR_CTL_OPTIMIZE level to request (0 = leave the default)
    rules: tuple[PlannedRule, ...] = ()


def _fail(path: str, msg: str) -> InvalidArgument:
    return InvalidArgument(f"config.json: {path}: {msg}")


def action_value(name: str, errno_ret: int | None, path: str = _PATH) -> int:
    """The libseccomp value of an OCI action; ``errno_ret`` applies to ERRNO and TRACE (default EPERM)."""
    if name == "SCMP_ACT_NOTIFY":
        raise NotImplemented(
            f"config.json: {path}: SCMP_ACT_NOTIFY (seccomp user notification via listenerPath) "
            "is not supported by dockyard-runtime")
    if name in ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE"):
        err = EPERM if errno_ret is None else errno_ret
        if not 0 <= err <= 0xFFFF:
            raise _fail(path, f"errnoRet {err} is out of range (0..65535)")
        return scmp.act_errno(err) if name == "SCMP_ACT_ERRNO" else scmp.act_trace(err)
    simple = {"SCMP_ACT_KILL": scmp.ACT_KILL, "SCMP_ACT_KILL_THREAD": scmp.ACT_KILL_THREAD,
              "SCMP_ACT_KILL_PROCESS": scmp.ACT_KILL_PROCESS, "SCMP_ACT_TRAP": scmp.ACT_TRAP,
              "SCMP_ACT_ALLOW": scmp.ACT_ALLOW, "SCMP_ACT_LOG": scmp.ACT_LOG}
    if name not in simple:
        raise _fail(path, f"unknown seccomp action {name!r}")
    return simple[name]


def plan_filter(spec: Seccomp) -> FilterPlan:
    """Translate ``linux.seccomp`` into libseccomp terms. Raises ``InvalidArgument`` naming the
    field for values libseccomp cannot take, ``NotImplemented`` for SCMP_ACT_NOTIFY."""
    default = action_value(spec.default_action, spec.default_errno_ret, f"{_PATH}.defaultAction")
    arches: list[str] = []
    for i, oci in enumerate(spec.architectures):
        name = OCI_ARCHES.get(oci)
        if name is None:
            raise _fail(f"{_PATH}.architectures[{i}]", f"unknown architecture {oci!r}")
        if name not in arches:
            arches.append(name)
    flags: list[str] = []
    for i, flag in enumerate(spec.flags):
        if flag not in FLAG_ATTRIBUTES:
            raise _fail(f"{_PATH}.flags[{i}]", f"unknown seccomp flag {flag!r}")
        if flag not in flags:
            flags.append(flag)
    rules: list[PlannedRule] = []
    for i, call in enumerate(spec.syscalls):
        origin = f"{_PATH}.syscalls[{i}]"
        action = action_value(call.action, call.errno_ret, f"{origin}.action")
        if action == default:
            continue  # redundant, and libseccomp would refuse it
        conds = []
        for j, a in enumerate(call.args):
            op = OPERATORS.get(a.op)
            if op is None:
                raise _fail(f"{origin}.args[{j}].op", f"unknown comparison {a.op!r}")
            if not 0 <= a.index <= 5:
                raise _fail(f"{origin}.args[{j}].index", f"must be 0..5, got {a.index}")
            for field, v in (("value", a.value), ("valueTwo", a.value_two)):
                if not 0 <= v < 1 << 64:
                    raise _fail(f"{origin}.args[{j}].{field}", f"{v} does not fit in 64 bits")
            conds.append(ArgCmp(a.index, op, a.value, a.value_two))
        indexes = [c.index for c in conds]
        if len(set(indexes)) < len(indexes):
            groups = [(c,) for c in conds]  # runc: one rule per condition
        else:
            groups = [tuple(conds)]
        for j, name in enumerate(call.names):
            if not name:
                raise _fail(f"{origin}.names[{j}]", "empty string is not a valid syscall")
            rules.extend(PlannedRule(name, action, g, origin) for g in groups)
    return FilterPlan(default_action=default, architectures=tuple(arches), flags=tuple(flags),
                      optimize=2 if len(spec.syscalls) > _OPTIMIZE_ABOVE else 0, rules=tuple(rules))


# ---------------------------------------------------------------- compile and load (libseccomp)


class CompiledFilter:
    """A libseccomp filter built from a plan, ready to ``load``. Holds the library context."""

    __slots__ = ("plan", "skipped", "_ctx")

    def __init__(self, ctx: scmp.FilterContext, plan: FilterPlan, skipped: tuple[str, ...]) -> None:
        self._ctx = ctx
        self.plan = plan
        self.skipped = skipped  # syscall names libseccomp does not know; their rules were dropped

    def load(self, no_new_privileges: bool) -> None:
        """Load into the kernel for this thread (all threads with TSYNC). With
        ``no_new_privileges`` libseccomp sets PR_SET_NO_NEW_PRIVS first; without it the kernel
        demands CAP_SYS_ADMIN, so load before dropping capabilities."""
        self._ctx.attr_set(scmp.ATTR_CTL_NNP, 1 if no_new_privileges else 0)
        try:
            self._ctx.load()
        except KernelError as e:
            if e.errno == 13 and not no_new_privileges:  # EACCES
                raise KernelError("seccomp: load filter without no_new_privileges (needs CAP_SYS_ADMIN; "
                                  "load it before dropping capabilities)", e.errno) from None
            raise

    def export_bpf(self) -> bytes:
        """The classic-BPF program libseccomp would load (for inspection and tests)."""
        fd = os.memfd_create("dockyard-seccomp", os.MFD_CLOEXEC)
        try:
            self._ctx.export_bpf(fd)
            os.lseek(fd, 0, os.SEEK_SET)
            chunks = []
            while chunk := os.read(fd, 65536):
                chunks.append(chunk)
            return b"".join(chunks)
        finally:
            os.close(fd)

    def release(self) -> None:
        self._ctx.release()

    def __enter__(self) -> CompiledFilter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _version_str(v: tuple[int, int, int]) -> str:
    return ".".join(map(str, v))


def compile_filter(spec: Seccomp) -> CompiledFilter:
    """Build the libseccomp filter for ``spec``. Call while libseccomp.so.2 is reachable."""
    plan = plan_filter(spec)
    lib = scmp.libseccomp()
    ctx = lib.init(plan.default_action)
    try:
        try:  # raw kernel errnos from seccomp_load instead of ECANCELED (libseccomp >= 2.5)
            ctx.attr_set(scmp.ATTR_API_SYSRAWRC, 1)
        except KernelError:
            pass
        for name in plan.architectures:
            token = lib.arch_resolve_name(name)
            if token == 0:
                raise FailedPrecondition(f"{_PATH}.architectures: {name} is not supported by "
                                         f"libseccomp {_version_str(lib.version())}")
            ctx.arch_add(token, name)
        for flag in plan.flags:
            attr, api, version = FLAG_ATTRIBUTES[flag]
            if lib.version() < version or lib.api_level() < api:
                raise FailedPrecondition(
                    f"{_PATH}.flags: {flag} needs libseccomp >= {_version_str(version)} (API level {api}); "
                    f"have libseccomp {_version_str(lib.version())}, API level {lib.api_level()}")
            try:
                ctx.attr_set(attr, 1)
            except KernelError as e:
                raise FailedPrecondition(f"{_PATH}.flags: {flag} is not supported here: {e}") from None
        if plan.optimize:
            try:
                ctx.attr_set(scmp.ATTR_CTL_OPTIMIZE, plan.optimize)
            except KernelError:
                pass  # older libseccomp: not fatal (runc only logs it)
        skipped: list[str] = []
        resolved: dict[str, int] = {}
        for rule in plan.rules:
            nr = resolved.get(rule.syscall)
            if nr is None:
                nr = resolved[rule.syscall] = lib.syscall_resolve_name(rule.syscall)
            if nr == scmp.NR_SCMP_ERROR:
                if rule.syscall not in skipped:
                    skipped.append(rule.syscall)
                continue
            ctx.rule_add(nr, rule.action, [(a.index, a.op, a.datum_a, a.datum_b) for a in rule.args],
                         what=f"{rule.syscall} ({rule.origin})")
        return CompiledFilter(ctx, plan, tuple(skipped))
    except BaseException:
        ctx.release()
        raise


def load(filter: CompiledFilter, no_new_privileges: bool) -> None:  # noqa: A002 - the brief's name
    """Load ``filter`` into the kernel; see ``CompiledFilter.load`` for the ordering rule."""
    filter.load(no_new_privileges)


# ---------------------------------------------------------------- features


def _lib_or_none() -> scmp.LibSeccomp | None:
    try:
        return scmp.libseccomp()
    except FailedPrecondition:
        return None


def libseccomp_version() -> str | None:
    lib = _lib_or_none()
    return _version_str(lib.version()) if lib else None


def supported_actions() -> list[str]:
    """OCI action names this host can load (empty without libseccomp)."""
    lib = _lib_or_none()
    if lib is None:
        return []
    level = lib.api_level()
    return [a for a, need in _ACTION_API.items() if level >= need]


def supported_archs() -> list[str]:
    """OCI architecture names the installed libseccomp knows."""
    lib = _lib_or_none()
    if lib is None:
        return []
    return [oci for oci, name in OCI_ARCHES.items() if lib.arch_resolve_name(name) != 0]


def supported_flags() -> list[str]:
    """OCI seccomp flags usable with this libseccomp and kernel."""
    lib = _lib_or_none()
    if lib is None:
        return []
    version, level = lib.version(), lib.api_level()
    return [f for f, (_, api, need) in FLAG_ATTRIBUTES.items() if level >= api and version >= need]


def features() -> dict[str, Any]:
    """The ``linux.seccomp`` object of ``dockyard-runtime features`` (runc's shape), plus the
    libseccomp version under ``annotations`` as runc reports it."""
    version = libseccomp_version()
    out: dict[str, Any] = {
        "enabled": version is not None,
        "actions": supported_actions(),
        "operators": list(OPERATORS),
        "archs": supported_archs(),
        "knownFlags": list(FLAG_ATTRIBUTES),
        "supportedFlags": supported_flags(),
    }
    if version:
        out["annotations"] = {"io.github.seccomp.libseccomp.version": version}
    return out
