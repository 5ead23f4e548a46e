"""The pure linux.resources → cgroup file writes conversion, v1 and v2."""

from __future__ import annotations

import pytest

from dockyard.errors import InvalidArgument
from dockyard.oci.runtime_spec import (
    BlockIO, Cpu, DeviceRule, HugepageLimit, Memory, Pids, Resources, ThrottleDevice, WeightDevice,
    parse_resources,
)
from dockyard.runtime.cgroups import resources as conv

MiB = 1 << 20
UNLIMITED = 9223372036854771712  # what the kernel shows for "no limit"


def files(writes, ctrl=None):
    return [w[1] for w in writes if ctrl is None or w[0] == ctrl]


# ---------------------------------------------------------------- v1


def test_v1_memory():
    w = conv.v1_writes(Resources(memory=Memory(limit=64 * MiB, swap=128 * MiB, reservation=32 * MiB,
                                               swappiness=10, disable_oom_killer=True,
                                               kernel_tcp=MiB)))
    assert w == [
        ("memory", "memory.limit_in_bytes", str(64 * MiB)),
        ("memory", "memory.memsw.limit_in_bytes", str(128 * MiB)),
        ("memory", "memory.soft_limit_in_bytes", str(32 * MiB)),
        ("memory", "memory.kmem.tcp.limit_in_bytes", str(MiB)),
        ("memory", "memory.swappiness", "10"),
        ("memory", "memory.oom_control", "1"),
    ]


def test_v1_memory_zero_is_unset_and_unlimited_lifts_swap():
    assert conv.v1_writes(Resources(memory=Memory(limit=0, swap=0))) == []
    assert conv.v1_writes(Resources(memory=Memory(limit=-1))) == [
        ("memory", "memory.limit_in_bytes", "-1"),
        ("memory", "memory.memsw.limit_in_bytes", "-1"),
    ]


def test_v1_cpu_period_before_quota():
    w = conv.v1_writes(Resources(cpu=Cpu(shares=512, quota=50000, period=100000, burst=1000,
                                         realtime_period=1000000, realtime_runtime=950000,
                                         cpus="0-1", mems="0", idle=0)))
    assert w == [
        ("cpuset", "cpuset.cpus", "0-1"),
        ("cpuset", "cpuset.mems", "0"),
        ("cpu", "cpu.shares", "512"),
        ("cpu", "cpu.cfs_period_us", "100000"),
        ("cpu", "cpu.cfs_quota_us", "50000"),
        ("cpu", "cpu.cfs_burst_us", "1000"),
        ("cpu", "cpu.rt_period_us", "1000000"),
        ("cpu", "cpu.rt_runtime_us", "950000"),
        ("cpu", "cpu.idle", "0"),
    ]
    assert conv.v1_writes(Resources(cpu=Cpu(quota=-1))) == [("cpu", "cpu.cfs_quota_us", "-1")]


@pytest.mark.parametrize("limit,value", [(100, "100"), (1, "1"), (0, "max"), (-1, "max")])
def test_pids(limit, value):
    assert conv.v1_writes(Resources(pids=Pids(limit))) == [("pids", "pids.max", value)]
    assert conv.v2_writes(Resources(pids=Pids(limit))) == [("pids.max", value)]


def test_v1_blkio():
    bio = BlockIO(weight=500, leaf_weight=300,
                  weight_device=(WeightDevice(8, 0, weight=200, leaf_weight=100),),
                  throttle_read_bps_device=(ThrottleDevice(8, 0, 1048576),),
                  throttle_write_bps_device=(ThrottleDevice(8, 16, 2048),),
                  throttle_read_iops_device=(ThrottleDevice(8, 0, 100),),
                  throttle_write_iops_device=(ThrottleDevice(8, 0, 50),))
    assert conv.v1_writes(Resources(block_io=bio)) == [
        ("blkio", "blkio.weight", "500"),
        ("blkio", "blkio.leaf_weight", "300"),
        ("blkio", "blkio.weight_device", "8:0 200"),
        ("blkio", "blkio.leaf_weight_device", "8:0 100"),
        ("blkio", "blkio.throttle.read_bps_device", "8:0 1048576"),
        ("blkio", "blkio.throttle.write_bps_device", "8:16 2048"),
        ("blkio", "blkio.throttle.read_iops_device", "8:0 100"),
        ("blkio", "blkio.throttle.write_iops_device", "8:0 50"),
    ]


def test_v1_hugetlb_and_bad_page_size():
    assert conv.v1_writes(Resources(hugepage_limits=(HugepageLimit("2MB", 4 * MiB),))) == [
        ("hugetlb", "hugetlb.2MB.limit_in_bytes", str(4 * MiB))]
    with pytest.raises(InvalidArgument):
        conv.v1_writes(Resources(hugepage_limits=(HugepageLimit("../x", 1),)))


def test_v1_devices_runc_order():
    # docker's default: deny everything, then the allow list, in order
    res = parse_resources({"devices": [
        {"allow": False, "access": "rwm"},
        {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
        {"allow": True, "type": "c", "major": 136, "access": "rwm"},
        {"allow": False, "type": "c", "major": 1, "minor": 3, "access": "w"},
        {"allow": True, "type": "b", "major": -1, "minor": -1, "access": "m"},
    ]})
    assert conv.v1_writes(res) == [
        ("devices", "devices.deny", "a"),
        ("devices", "devices.allow", "c 1:3 rwm"),
        ("devices", "devices.allow", "c 136:* rwm"),
        ("devices", "devices.deny", "c 1:3 w"),
        ("devices", "devices.allow", "b *:* m"),
    ]
    # devices come before the other controllers, and update leaves them alone
    full = Resources(devices=(DeviceRule(False),), pids=Pids(5))
    assert files(conv.v1_writes(full)) == ["devices.deny", "pids.max"]
    assert files(conv.v1_update_writes(full)) == ["pids.max"]


def test_v1_devices_without_leading_deny_all():
    rules = (DeviceRule(True, "a"), DeviceRule(False, "c", 5, 1, "rwm"))
    assert conv.v1_device_writes(rules) == [
        ("devices", "devices.allow", "a *:* rwm"),
        ("devices", "devices.deny", "c 5:1 rwm"),
    ]


def test_v1_refuses_unified():
    with pytest.raises(InvalidArgument, match="cgroup v2"):
        conv.v1_writes(Resources(unified=(("memory.high", "1M"),)))


# ---------------------------------------------------------------- v1 memsw ordering


def test_memsw_ordering_fresh_cgroup_writes_memory_first():
    w = conv.v1_writes(Resources(memory=Memory(limit=64 * MiB, swap=128 * MiB)))
    assert files(conv.order_v1_memory(w, UNLIMITED, UNLIMITED)) == [
        "memory.limit_in_bytes", "memory.memsw.limit_in_bytes"]


def test_memsw_ordering_raise_above_current_memsw_writes_memsw_first():
    w = conv.v1_writes(Resources(memory=Memory(limit=256 * MiB, swap=512 * MiB), pids=Pids(3)))
    out = conv.order_v1_memory(w, 64 * MiB, 128 * MiB)
    assert files(out) == ["memory.memsw.limit_in_bytes", "memory.limit_in_bytes", "pids.max"]
    assert conv.memsw_first(256 * MiB, 512 * MiB, 64 * MiB, 128 * MiB)


def test_memsw_ordering_lowering_writes_memory_first():
    w = conv.v1_writes(Resources(memory=Memory(limit=32 * MiB, swap=64 * MiB)))
    assert files(conv.order_v1_memory(w, 64 * MiB, 128 * MiB)) == [
        "memory.limit_in_bytes", "memory.memsw.limit_in_bytes"]
    # raising within the current memsw: memory first still fits
    assert not conv.memsw_first(100 * MiB, 200 * MiB, 64 * MiB, 128 * MiB)
    # going unlimited: memsw (-1) first, then memory
    w = conv.v1_writes(Resources(memory=Memory(limit=-1)))
    assert files(conv.order_v1_memory(w, 64 * MiB, 128 * MiB)) == [
        "memory.memsw.limit_in_bytes", "memory.limit_in_bytes"]


def test_memsw_ordering_single_file_unchanged():
    w = [("memory", "memory.limit_in_bytes", "100")]
    assert conv.order_v1_memory(w, 10, 10) == w
    assert not conv.memsw_first(100, None, 10, 10)


# ---------------------------------------------------------------- v2


def test_v2_memory_and_swap():
    w = conv.v2_writes(Resources(memory=Memory(limit=64 * MiB, swap=96 * MiB, reservation=16 * MiB,
                                               swappiness=60, disable_oom_killer=False)))
    assert w == [("memory.max", str(64 * MiB)), ("memory.swap.max", str(32 * MiB)),
                 ("memory.low", str(16 * MiB))]
    assert conv.v2_writes(Resources(memory=Memory(limit=64 * MiB, swap=-1))) == [
        ("memory.max", str(64 * MiB)), ("memory.swap.max", "max")]
    assert conv.v2_writes(Resources(memory=Memory(limit=-1))) == [
        ("memory.max", "max"), ("memory.swap.max", "max")]
    assert conv.v2_writes(Resources(memory=Memory(limit=64 * MiB))) == [("memory.max", str(64 * MiB))]


def test_v2_swap_errors():
    with pytest.raises(InvalidArgument, match="without a memory limit"):
        conv.v2_writes(Resources(memory=Memory(swap=MiB)))
    with pytest.raises(InvalidArgument, match="below"):
        conv.swap_to_v2(MiB, 2 * MiB)


@pytest.mark.parametrize("shares,weight", [(2, 1), (1024, 39), (512, 20), (262144, 10000), (0, 0)])
def test_cpu_shares_to_weight(shares, weight):
    assert conv.cpu_shares_to_weight(shares) == weight
    assert conv.cpu_shares_to_weight(shares) == (
        0 if shares == 0 else 1 + ((shares - 2) * 9999) // 262142)


@pytest.mark.parametrize("weight,io", [(10, 1), (1000, 10000), (500, 4950), (0, 0)])
def test_blkio_weight_to_io_weight(weight, io):
    assert conv.blkio_weight_to_io_weight(weight) == io


@pytest.mark.parametrize("cpu,value", [
    (Cpu(quota=50000, period=100000), "50000 100000"),
    (Cpu(quota=-1, period=100000), "max 100000"),
    (Cpu(period=200000), "max 200000"),
    (Cpu(quota=25000), "25000"),
    (Cpu(quota=-1), "max"),
])
def test_v2_cpu_max(cpu, value):
    assert conv.v2_writes(Resources(cpu=cpu)) == [("cpu.max", value)]


def test_v2_cpu_full_and_rt_refused():
    w = conv.v2_writes(Resources(cpu=Cpu(shares=1024, quota=10000, period=100000, burst=500,
                                         idle=1, cpus="1", mems="0")))
    assert w == [("cpuset.cpus", "1"), ("cpuset.mems", "0"), ("cpu.weight", "39"),
                 ("cpu.max", "10000 100000"), ("cpu.max.burst", "500"), ("cpu.idle", "1")]
    assert conv.v2_controllers(w) == ["cpuset", "cpu"]
    with pytest.raises(InvalidArgument, match="realtime"):
        conv.v2_writes(Resources(cpu=Cpu(realtime_runtime=1000)))


def test_v2_io_and_hugetlb():
    bio = BlockIO(weight=1000, weight_device=(WeightDevice(8, 0, weight=10),),
                  throttle_read_bps_device=(ThrottleDevice(8, 0, 1048576),),
                  throttle_write_iops_device=(ThrottleDevice(8, 16, 0),))
    w = conv.v2_writes(Resources(block_io=bio, hugepage_limits=(HugepageLimit("1GB", 1 << 30),)))
    assert w == [("io.weight", "10000"), ("io.weight", "8:0 1"), ("io.max", "8:0 rbps=1048576"),
                 ("io.max", "8:16 wiops=max"), ("hugetlb.1GB.max", str(1 << 30))]


def test_v2_unified_last_and_verbatim():
    res = Resources(memory=Memory(limit=64 * MiB), pids=Pids(10),
                    unified=(("memory.max", "max"), ("memory.high", "50M")))
    assert conv.v2_writes(res) == [("memory.max", str(64 * MiB)), ("pids.max", "10"),
                                   ("memory.max", "max"), ("memory.high", "50M")]
    with pytest.raises(InvalidArgument):
        conv.v2_writes(Resources(unified=(("../cgroup.procs", "1"),)))


def test_v2_ignores_devices_and_update_is_same():
    res = Resources(devices=(DeviceRule(False),), memory=Memory(limit=MiB), pids=Pids(-1))
    assert conv.v2_writes(res) == [("memory.max", str(MiB)), ("pids.max", "max")]
    assert conv.v2_update_writes(res) == conv.v2_writes(res)


def test_empty_resources():
    assert conv.v1_writes(Resources()) == []
    assert conv.v2_writes(Resources()) == []
