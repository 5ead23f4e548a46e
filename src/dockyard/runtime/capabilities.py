"""Process capabilities for the container init: bounding set, capset, ambient set.

Order in the init (runc's ``finalizeNamespace``): ``drop_bounding`` first (PR_CAPBSET_DROP needs
CAP_SETPCAP in the effective set, which the init still has), then PR_SET_KEEPCAPS while changing
uid/gid, then ``apply`` for the effective/permitted/inheritable and ambient sets. Both go through the
``Syscalls`` seam, so the plans are tested against ``RecordingSyscalls``.

Capabilities the spec names that this kernel does not have (above ``cap_last_cap``) are ignored,
as runc does (it warns); they cannot be granted anyway.
"""

from __future__ import annotations

from dockyard.errors import InvalidArgument
from dockyard.kernel.syscalls import (
    PR_CAP_AMBIENT,
    PR_CAP_AMBIENT_CLEAR_ALL,
    PR_CAP_AMBIENT_RAISE,
    PR_CAPBSET_DROP,
    CapSets,
)
from dockyard.oci.runtime_spec import CAP_NUMBERS, CAPABILITIES

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

    from dockyard.kernel.syscalls import Syscalls
    from dockyard.oci.runtime_spec import Capabilities

_STATUS_FIELDS = {"CapInh": "inheritable", "CapPrm": "permitted", "CapEff": "effective",
                  "CapBnd": "bounding", "CapAmb": "ambient"}


def mask(names: Iterable[str]) -> int:
    """The bit mask of capability names (``CAP_CHOWN`` → bit 0)."""
    m = 0
    for n in names:
        bit = CAP_NUMBERS.get(n)
        if bit is None:
            raise InvalidArgument(f"unknown capability {n!r}")
        m |= 1 << bit
    return m


def names(bits: int) -> tuple[str, ...]:
    """Capability names of a mask, in number order; unnamed bits appear as ``CAP_<n>``."""
    out = []
    n = 0
    while bits >> n:
        if bits >> n & 1:
            out.append(CAPABILITIES[n] if n < len(CAPABILITIES) else f"CAP_{n}")
        n += 1
    return tuple(out)


def last_cap(proc: str = "/proc") -> int:
    """The highest capability number the running kernel knows (``/proc/sys/kernel/cap_last_cap``)."""
    with open(f"{proc}/sys/kernel/cap_last_cap") as f:
        return int(f.read())


def _known(last: int) -> int:
    return (1 << (last + 1)) - 1


def drop_bounding(sys: Syscalls, caps: Capabilities, last: int | None = None) -> None:
    """PR_CAPBSET_DROP every capability up to ``last`` (default: the kernel's) not in ``caps.bounding``."""
    if last is None:
        last = last_cap()
    keep = mask(caps.bounding)
    for cap in range(last + 1):
        if not keep >> cap & 1:
            sys.prctl(PR_CAPBSET_DROP, cap)


def check(caps: Capabilities, last: int | None = None) -> None:
    """Reject sets the kernel would refuse, naming the field, before anything is changed:
    effective ⊆ permitted (for caps this kernel has). Ambient capabilities outside
    permitted ∩ inheritable are not an error: the kernel cannot raise them, and runc (whose own
    default spec lists ambient caps without inheritable ones) skips them too."""
    known = _known(last_cap() if last is None else last)
    prm = mask(caps.permitted)
    for name in caps.effective:
        if mask((name,)) & known & ~prm:
            raise InvalidArgument(f"process.capabilities.effective: {name} is not in permitted")


def apply(sys: Syscalls, caps: Capabilities, last: int | None = None) -> None:
    """Set effective/permitted/inheritable with capset, then clear the ambient set and raise each
    ambient capability. Validates first (``check``), so an invalid spec changes nothing."""
    if last is None:
        last = last_cap()
    check(caps, last)
    known = _known(last)
    sys.capset(CapSets(effective=mask(caps.effective) & known, permitted=mask(caps.permitted) & known,
                       inheritable=mask(caps.inheritable) & known))
    sys.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
    raisable = mask(caps.permitted) & mask(caps.inheritable)
    for name in caps.ambient:
        cap = CAP_NUMBERS[name]
        if cap <= last and raisable >> cap & 1:
            sys.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap)


def parse_status_caps(text: str) -> dict[str, tuple[str, ...]]:
    """``CapInh/CapPrm/CapEff/CapBnd/CapAmb`` of ``/proc/<pid>/status`` as names, keyed
    ``inheritable``, ``permitted``, ``effective``, ``bounding``, ``ambient``."""
    out: dict[str, tuple[str, ...]] = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        field = _STATUS_FIELDS.get(key)
        if field is not None:
            out[field] = names(int(value.strip(), 16))
    return out
