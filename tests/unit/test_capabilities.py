"""Capability masks, bounding-set drops and capset/ambient plans against RecordingSyscalls."""

import pytest

from dockyard.errors import InvalidArgument
from dockyard.kernel.syscalls import (
    PR_CAP_AMBIENT,
    PR_CAP_AMBIENT_CLEAR_ALL,
    PR_CAP_AMBIENT_RAISE,
    PR_CAPBSET_DROP,
    RecordingSyscalls,
)
from dockyard.oci.runtime_spec import CAPABILITIES, Capabilities
from dockyard.runtime import capabilities as caps

DEFAULT = ("CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE")  # runc spec's default set


def test_mask_and_names():
    assert caps.mask(()) == 0
    assert caps.mask(["CAP_CHOWN"]) == 1
    assert caps.mask(DEFAULT) == 1 << 29 | 1 << 5 | 1 << 10
    assert caps.mask(["CAP_CHECKPOINT_RESTORE", "CAP_CHECKPOINT_RESTORE"]) == 1 << 40
    assert caps.names(caps.mask(DEFAULT)) == ("CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_AUDIT_WRITE")
    assert caps.names(1 << 45 | 1) == ("CAP_CHOWN", "CAP_45")
    with pytest.raises(InvalidArgument, match="CAP_FLY"):
        caps.mask(["CAP_FLY"])


def test_last_cap_reads_proc(tmp_path):
    (tmp_path / "sys/kernel").mkdir(parents=True)
    (tmp_path / "sys/kernel/cap_last_cap").write_text("40\n")
    assert caps.last_cap(str(tmp_path)) == 40
    assert caps.last_cap() >= 36  # the running kernel


def test_drop_bounding_drops_everything_else_up_to_last_cap():
    sys = RecordingSyscalls()
    caps.drop_bounding(sys, Capabilities(bounding=DEFAULT), last=40)
    dropped = [c[2] for c in sys.calls]
    assert all(c[:2] == ("prctl", PR_CAPBSET_DROP) for c in sys.calls)
    assert dropped == [n for n in range(41) if n not in (5, 10, 29)]


def test_drop_bounding_ignores_caps_beyond_kernel():
    sys = RecordingSyscalls()
    # an older kernel (last cap 37 = CAP_AUDIT_READ) and a spec naming CAP_BPF (39)
    caps.drop_bounding(sys, Capabilities(bounding=("CAP_BPF", "CAP_CHOWN")), last=37)
    assert [c[2] for c in sys.calls] == list(range(1, 38))


def test_apply_capset_then_ambient():
    sys = RecordingSyscalls()
    c = Capabilities(bounding=DEFAULT, effective=DEFAULT, permitted=DEFAULT,
                     inheritable=("CAP_KILL",), ambient=("CAP_KILL",))
    caps.apply(sys, c, last=40)
    m = caps.mask(DEFAULT)
    assert sys.calls == [
        ("capset", m, m, 1 << 5),
        ("prctl", PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0),
        ("prctl", PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, 5, 0, 0),
    ]


def test_apply_empty_clears_everything():
    sys = RecordingSyscalls()
    caps.apply(sys, Capabilities(), last=40)
    assert sys.calls == [("capset", 0, 0, 0), ("prctl", PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)]


def test_apply_masks_caps_beyond_kernel():
    sys = RecordingSyscalls()
    every = CAPABILITIES
    caps.apply(sys, Capabilities(effective=every, permitted=every, inheritable=every, ambient=every), last=37)
    full = (1 << 38) - 1
    assert sys.calls[0] == ("capset", full, full, full)
    raised = [c[3] for c in sys.calls[2:]]
    assert raised == list(range(38))


@pytest.mark.parametrize("c", [
    Capabilities(permitted=("CAP_KILL",), inheritable=(), ambient=("CAP_KILL",)),
    Capabilities(permitted=(), inheritable=("CAP_KILL",), ambient=("CAP_KILL",)),
])
def test_ambient_outside_permitted_and_inheritable_is_skipped(c):
    """runc's own default spec lists ambient caps without inheritable ones: not an error."""
    sys = RecordingSyscalls()
    caps.apply(sys, c, last=40)
    assert not [call for call in sys.calls if call[:3] == ("prctl", PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE)]


@pytest.mark.parametrize("c, msg", [
    (Capabilities(effective=("CAP_CHOWN",), permitted=("CAP_KILL",)),
     "process.capabilities.effective: CAP_CHOWN is not in permitted"),
])
def test_invalid_sets_change_nothing(c, msg):
    sys = RecordingSyscalls()
    with pytest.raises(InvalidArgument, match=msg):
        caps.apply(sys, c, last=40)
    assert sys.calls == []


def test_parse_status_caps():
    text = (
        "Name:\tsleep\nUmask:\t0022\nState:\tS (sleeping)\n"
        "CapInh:\t0000000000000000\n"
        "CapPrm:\t00000000a80425fb\n"
        "CapEff:\t00000000a80425fb\n"
        "CapBnd:\t000001ffffffffff\n"
        "CapAmb:\t0000000000000020\n"
        "NoNewPrivs:\t0\n"
    )
    got = caps.parse_status_caps(text)
    docker_default = ("CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
                      "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW",
                      "CAP_SYS_CHROOT", "CAP_MKNOD", "CAP_AUDIT_WRITE", "CAP_SETFCAP")
    assert got["inheritable"] == ()
    assert got["permitted"] == got["effective"] == docker_default
    assert got["bounding"] == CAPABILITIES
    assert got["ambient"] == ("CAP_KILL",)
    with open("/proc/self/status") as f:
        assert set(caps.parse_status_caps(f.read())) == {
            "inheritable", "permitted", "effective", "bounding", "ambient"}
