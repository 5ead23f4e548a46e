"""``engine.stats``: cgroup v1/v2 counters from a fake cgroupfs, /proc readers, Docker's stats
JSON (shape checked against dockerd 20.10's answer on this kind of host) and the stream modes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from dockyard.engine import stats
from dockyard.engine.stats import (
    BLKIO_FIELDS,
    CgroupLocation,
    go_time,
    locate,
    location_from_paths,
    parse_blkio_v1,
    parse_io_stat_v2,
    parse_net_dev,
    read_host_memory,
    read_system_cpu_usage,
    sample,
    stats_stream,
    to_docker_json,
)
from dockyard.errors import InvalidArgument

CID = "c" * 64
NET_DEV = """Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     100       1    0    0    0     0          0         0      100       1    0    0    0     0       0          0
  eth0:    1500      12    1    2    0     0          0         0      700       7    3    4    0     0       0          0
"""
V1_UNLIMITED = "9223372036854771712"


def write(root: Path, rel: str, text: str) -> None:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)


@pytest.fixture
def proc(tmp_path: Path) -> Path:
    p = tmp_path / "proc"
    write(p, "stat", "cpu  100 10 50 1000 5 1 2 7 0 0\ncpu0 50 5 25 500 2 1 1 3 0 0\n")
    write(p, "meminfo", "MemTotal:        2048 kB\nMemFree:    1 kB\n")
    write(p, "42/net/dev", NET_DEV)
    return p


def v1_tree(root: Path, *, limit: str = V1_UNLIMITED) -> CgroupLocation:
    d = {c: root / c / "dockyard" / CID for c in ("cpu", "cpuacct", "memory", "pids", "blkio")}
    write(d["cpuacct"], "cpuacct.usage", "123456789\n")
    write(d["cpuacct"], "cpuacct.usage_percpu", "100000000 23456789 \n")
    write(d["cpuacct"], "cpuacct.stat", "user 7\nsystem 3\n")
    write(d["cpu"], "cpu.stat", "nr_periods 10\nnr_throttled 2\nthrottled_time 3000\n")
    write(d["memory"], "memory.usage_in_bytes", "626688\n")
    write(d["memory"], "memory.max_usage_in_bytes", "3825664\n")
    write(d["memory"], "memory.failcnt", "0\n")
    write(d["memory"], "memory.limit_in_bytes", limit + "\n")
    write(d["memory"], "memory.stat", "cache 0\nrss 53248\ntotal_inactive_file 4096\n")
    write(d["pids"], "pids.current", "1\n")
    write(d["pids"], "pids.max", "max\n")
    write(d["blkio"], "blkio.bfq.io_serviced_recursive", "")
    write(d["blkio"], "blkio.throttle.io_serviced_recursive", "8:0 Read 3\n8:0 Write 1\nTotal 4\n")
    write(d["blkio"], "blkio.throttle.io_service_bytes_recursive",
          "8:0 Read 12288\n8:0 Write 4096\n8:0 Total 16384\nTotal 16384\n")
    return CgroupLocation("v1", {k: str(v) for k, v in d.items()})


def v2_tree(root: Path) -> CgroupLocation:
    d = root / "dockyard" / CID
    write(d, "cpu.stat", "usage_usec 2000\nuser_usec 1500\nsystem_usec 500\nnr_periods 4\n"
          "nr_throttled 1\nthrottled_usec 7\n")
    write(d, "memory.current", "8192\n")
    write(d, "memory.max", "max\n")
    write(d, "memory.stat", "anon 4096\ninactive_file 0\n")
    write(d, "memory.events", "low 0\nhigh 0\nmax 2\noom 1\noom_kill 1\n")
    write(d, "pids.current", "3\n")
    write(d, "pids.max", "100\n")
    write(d, "io.stat", "8:0 rbytes=4096 wbytes=512 rios=1 wios=1 dbytes=0 dios=0\n")
    return CgroupLocation("v2", {"": str(d)})


# ---------------------------------------------------------------------------- parsers

def test_parse_blkio_v1_skips_total_and_keeps_ops():
    rows = parse_blkio_v1("8:0 Read 10\n8:16 Write 5\n8:0 77\nTotal 15\n")
    assert [(r.major, r.minor, r.op, r.value) for r in rows] == [
        (8, 0, "Read", 10), (8, 16, "Write", 5), (8, 0, "", 77)]
    assert parse_blkio_v1("Total 0\n") == ()


def test_parse_io_stat_v2_gives_read_and_write_bytes():
    rows = parse_io_stat_v2("259:0 rbytes=1 wbytes=2 rios=3 wios=4\n")
    assert [(r.major, r.minor, r.op, r.value) for r in rows] == [(259, 0, "read", 1),
                                                                  (259, 0, "write", 2)]


def test_parse_net_dev_skips_loopback():
    (eth0,) = parse_net_dev(NET_DEV)
    assert (eth0.name, eth0.rx_bytes, eth0.rx_packets, eth0.rx_errors, eth0.rx_dropped) == (
        "eth0", 1500, 12, 1, 2)
    assert (eth0.tx_bytes, eth0.tx_packets, eth0.tx_errors, eth0.tx_dropped) == (700, 7, 3, 4)


def test_system_cpu_usage_sums_the_first_seven_fields(proc: Path):
    # 100+10+50+1000+5+1+2 ticks (steal is left out, as dockerd does) at 100 ticks/s
    assert read_system_cpu_usage(str(proc), ticks=100) == 1168 * 10_000_000


def test_host_memory_in_bytes(proc: Path):
    assert read_host_memory(str(proc)) == 2048 * 1024


@pytest.mark.parametrize("ns,text", [
    (0, "1970-01-01T00:00:00Z"),
    (1_700_000_000_123_456_789, "2023-11-14T22:13:20.123456789Z"),
    (1_700_000_000_500_000_000, "2023-11-14T22:13:20.5Z"),
])
def test_go_time_is_rfc3339nano(ns, text):
    assert go_time(ns) == text


# ---------------------------------------------------------------------------- locating

def test_locate_uses_the_runtimes_path_rules_v1(tmp_path: Path):
    for c in ("memory", "cpuacct", "pids"):
        write(tmp_path, f"{c}/cgroup.procs", "")
    loc = locate(CID, root=str(tmp_path))
    assert loc.version == "v1"
    assert loc.paths["memory"] == f"{tmp_path}/memory/dockyard/{CID}"
    assert loc.paths["cpuacct"] == f"{tmp_path}/cpuacct/dockyard/{CID}"
    assert not stats.exists(loc)


def test_locate_v2_and_from_state_paths(tmp_path: Path):
    write(tmp_path, "cgroup.controllers", "cpu memory pids io\n")
    assert locate(CID, root=str(tmp_path)) == CgroupLocation(
        "v2", {"": f"{tmp_path}/dockyard/{CID}"})
    assert location_from_paths({"": "/x"}).version == "v2"
    assert location_from_paths({"memory": "/m"}).version == "v1"


# ---------------------------------------------------------------------------- v1

def test_v1_sample_and_docker_json(tmp_path: Path, proc: Path):
    loc = v1_tree(tmp_path / "cg")
    s = sample(loc, 42, now=1_700_000_000.5, proc=str(proc), ticks=100)
    j = to_docker_json(s, None, id=CID, name="web", online_cpus=2, host_memory=2048 * 1024)
    assert list(j) == ["read", "preread", "pids_stats", "blkio_stats", "num_procs",
                       "storage_stats", "cpu_stats", "precpu_stats", "memory_stats", "name",
                       "id", "networks"]
    assert j["read"] == "2023-11-14T22:13:20.5Z" and j["preread"] == "0001-01-01T00:00:00Z"
    assert j["name"] == "/web" and j["id"] == CID and j["num_procs"] == 0
    assert j["pids_stats"] == {"current": 1}  # pids.max "max": no limit key
    assert j["cpu_stats"] == {
        "cpu_usage": {"total_usage": 123456789, "percpu_usage": [100000000, 23456789],
                      "usage_in_kernelmode": 30_000_000, "usage_in_usermode": 70_000_000},
        "system_cpu_usage": 1168 * 10_000_000, "online_cpus": 2,
        "throttling_data": {"periods": 10, "throttled_periods": 2, "throttled_time": 3000}}
    assert j["precpu_stats"] == {
        "cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
        "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}}
    # unlimited: the host's memory; failcnt 0 is left out (Go omitempty)
    assert j["memory_stats"] == {"usage": 626688, "max_usage": 3825664,
                                 "stats": {"cache": 0, "rss": 53248, "total_inactive_file": 4096},
                                 "limit": 2048 * 1024}
    # bfq has no entries: the throttle files are used; every other list is [] on v1
    blk = j["blkio_stats"]
    assert list(blk) == list(BLKIO_FIELDS)
    assert blk["io_service_bytes_recursive"] == [
        {"major": 8, "minor": 0, "op": "Read", "value": 12288},
        {"major": 8, "minor": 0, "op": "Write", "value": 4096},
        {"major": 8, "minor": 0, "op": "Total", "value": 16384}]
    assert [e["value"] for e in blk["io_serviced_recursive"]] == [3, 1]
    assert blk["sectors_recursive"] == [] and blk["io_time_recursive"] == []
    assert j["networks"] == {"eth0": {"rx_bytes": 1500, "rx_packets": 12, "rx_errors": 1,
                                      "rx_dropped": 2, "tx_bytes": 700, "tx_packets": 7,
                                      "tx_errors": 3, "tx_dropped": 4}}


def test_v1_limit_below_host_memory_is_kept_and_previous_fills_precpu(tmp_path: Path,
                                                                      proc: Path):
    loc = v1_tree(tmp_path / "cg", limit="1048576")
    first = sample(loc, None, now=100.0, proc=str(proc), ticks=100)
    write(Path(loc.paths["cpuacct"]), "cpuacct.usage", "223456789\n")
    second = sample(loc, None, now=101.0, proc=str(proc), ticks=100, system_usage=5)
    j = to_docker_json(second, first, id=CID, name="/web", online_cpus=4,
                       host_memory=1 << 40)
    assert j["memory_stats"]["limit"] == 1048576
    assert j["cpu_stats"]["cpu_usage"]["total_usage"] == 223456789
    assert j["cpu_stats"]["system_cpu_usage"] == 5
    assert j["precpu_stats"]["cpu_usage"]["total_usage"] == 123456789
    assert j["precpu_stats"]["online_cpus"] == 4
    assert j["preread"] == "1970-01-01T00:01:40Z" and j["name"] == "/web"
    assert "networks" not in j  # no pid: no network counters


def test_v1_missing_controllers_give_zeros(tmp_path: Path, proc: Path):
    d = tmp_path / "memory" / "dockyard" / CID
    write(d, "memory.usage_in_bytes", "10\n")
    s = sample(CgroupLocation("v1", {"memory": str(d)}), None, now=1.0, proc=str(proc))
    j = to_docker_json(s, None, id=CID, name="x", online_cpus=1, host_memory=0)
    assert j["memory_stats"] == {"usage": 10}
    assert j["cpu_stats"]["cpu_usage"]["total_usage"] == 0
    assert j["pids_stats"] == {}


# ---------------------------------------------------------------------------- v2

def test_v2_sample_and_docker_json(tmp_path: Path, proc: Path):
    loc = v2_tree(tmp_path / "cg")
    s = sample(loc, 42, now=5.0, proc=str(proc), ticks=100, networks=False)
    j = to_docker_json(s, None, id=CID, name="web", online_cpus=8, host_memory=1 << 30)
    assert j["cpu_stats"]["cpu_usage"] == {"total_usage": 2_000_000,
                                           "usage_in_kernelmode": 500_000,
                                           "usage_in_usermode": 1_500_000}
    assert j["cpu_stats"]["throttling_data"] == {"periods": 4, "throttled_periods": 1,
                                                 "throttled_time": 7000}
    assert j["memory_stats"] == {"usage": 8192, "stats": {"anon": 4096, "inactive_file": 0},
                                 "failcnt": 1, "limit": 1 << 30}
    assert j["pids_stats"] == {"current": 3, "limit": 100}
    assert j["blkio_stats"]["io_service_bytes_recursive"] == [
        {"major": 8, "minor": 0, "op": "read", "value": 4096},
        {"major": 8, "minor": 0, "op": "write", "value": 512}]
    assert j["blkio_stats"]["io_serviced_recursive"] is None
    assert "networks" not in j  # networks=False (host network)


# ---------------------------------------------------------------------------- the stream

def collect(gen, n: int) -> list[dict]:
    async def run():
        out = []
        async for frame in gen:
            out.append(frame)
            if len(out) == n:
                await gen.aclose()
                break
        return out

    return asyncio.run(run())


def test_stream_first_frame_has_empty_precpu_then_filled(tmp_path: Path, proc: Path):
    loc = v1_tree(tmp_path / "cg")
    frames = collect(stats_stream(lambda: loc, id=CID, name="web", pid_of=lambda: 42,
                                  interval=0.01, proc=str(proc)), 3)
    assert frames[0]["preread"] == "0001-01-01T00:00:00Z"
    assert frames[1]["precpu_stats"]["cpu_usage"]["total_usage"] == 123456789
    assert frames[2]["preread"] == frames[1]["read"]


def test_not_streaming_samples_twice_and_one_shot_once(tmp_path: Path, proc: Path):
    loc = v1_tree(tmp_path / "cg")
    calls: list[int] = []

    def locate_counting():
        calls.append(1)
        return loc

    frames = collect(stats_stream(locate_counting, id=CID, name="web", pid_of=lambda: None,
                                  interval=0.01, stream=False, proc=str(proc)), 5)
    assert len(frames) == 1 and len(calls) == 2
    assert frames[0]["precpu_stats"]["cpu_usage"]["total_usage"] == 123456789
    calls.clear()
    frames = collect(stats_stream(locate_counting, id=CID, name="web", pid_of=lambda: None,
                                  stream=False, one_shot=True, proc=str(proc)), 5)
    assert len(frames) == 1 and len(calls) == 1
    assert frames[0]["preread"] == "0001-01-01T00:00:00Z"


def test_not_running_gives_dockers_empty_object(tmp_path: Path, proc: Path):
    frames = collect(stats_stream(lambda: None, id=CID, name="web", pid_of=lambda: None,
                                  stream=False, proc=str(proc)), 5)
    assert frames == [stats.empty_json(id=CID, name="web")]
    assert frames[0]["read"] == "0001-01-01T00:00:00Z" and frames[0]["name"] == "/web"
    assert frames[0]["blkio_stats"]["io_service_bytes_recursive"] is None


def test_stream_and_one_shot_together_are_refused(proc: Path):
    with pytest.raises(InvalidArgument, match="one-shot"):  # at the call, before iterating
        stats_stream(lambda: None, id=CID, name="x", pid_of=lambda: None, stream=True,
                     one_shot=True, proc=str(proc))
