"""config.json -> typed runtime-spec records (``oci.runtime_spec.parse_spec``), and ``record.Record``.

Every invalid input must surface as ``InvalidArgument("config.json: <field path>: ...")`` so that a
user reading one line knows which field to fix.
"""

from __future__ import annotations

import pytest
from helpers import REMOVE, deep_merge, default_spec

from dockyard.errors import InvalidArgument
from dockyard.oci.runtime_spec import (
    Box,
    Capabilities,
    Cpu,
    Device,
    DeviceRule,
    Hook,
    IDMapping,
    Memory,
    Mount,
    Namespace,
    Pids,
    Rlimit,
    Root,
    SeccompArg,
    Spec,
    SyscallRule,
    ThrottleDevice,
    User,
    WeightDevice,
    parse_spec,
)
from dockyard.record import Record, replace

CAPS = ("CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE")


def spec_with(**overrides) -> dict:
    return deep_merge(default_spec(), overrides)


def parse_error(doc: dict) -> str:
    with pytest.raises(InvalidArgument) as exc:
        parse_spec(doc)
    return str(exc.value)


def assert_names(msg: str, field: str, *words: str) -> None:
    assert msg.startswith(f"config.json: {field}: "), msg
    for w in words:
        assert w in msg, msg


def userns(**linux) -> dict:
    """The default spec in a new user namespace, plus ``linux`` overrides."""
    d = default_spec()
    d["linux"]["namespaces"].append({"type": "user"})
    d["linux"].update(linux)
    return d


# ------------------------------------------------------------------ runc's default spec


def test_runc_default_spec_parses_into_typed_records():
    spec = parse_spec(default_spec())
    assert isinstance(spec, Spec)
    assert spec.oci_version == "1.0.2-dev"
    assert spec.root == Root("rootfs", readonly=True)
    assert spec.hostname == "runc" and spec.domainname == ""

    p = spec.process
    assert p.args == ("sh",)
    assert p.env == ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm")
    assert p.cwd == "/" and p.terminal is True and p.no_new_privileges is True
    assert p.user == User(uid=0, gid=0, umask=None, additional_gids=())
    assert p.capabilities == Capabilities(bounding=CAPS, effective=CAPS, inheritable=(),
                                          permitted=CAPS, ambient=CAPS)
    assert p.rlimits == (Rlimit("RLIMIT_NOFILE", 1024, 1024),)
    assert p.console_size is None and p.oom_score_adj is None

    assert [m.destination for m in spec.mounts] == [
        "/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/sys/fs/cgroup"]
    assert spec.mounts[0] == Mount("/proc", "proc", "proc", ())
    assert spec.mounts[1] == Mount("/dev", "tmpfs", "tmpfs",
                                   ("nosuid", "strictatime", "mode=755", "size=65536k"))

    lx = spec.linux
    assert lx.namespaces == tuple(Namespace(t) for t in ("pid", "network", "ipc", "uts", "mount"))
    assert lx.namespace("uts") == Namespace("uts", "") and lx.namespace("user") is None
    assert lx.resources.devices == (DeviceRule(False, "a", None, None, "rwm"),)
    assert lx.resources.memory is None and lx.resources.cpu is None
    assert lx.masked_paths[0] == "/proc/acpi" and len(lx.masked_paths) == 10
    assert lx.readonly_paths == ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")
    assert lx.uid_mappings == () and lx.seccomp is None and lx.sysctl == ()
    assert spec.hooks.prestart == () and spec.annotations == ()


def test_full_config_every_section_in_snake_case():
    d = userns(
        uidMappings=[{"containerID": 0, "hostID": 100000, "size": 65536}],
        gidMappings=[{"containerID": 0, "hostID": 200000, "size": 1000},
                     {"containerID": 1000, "hostID": 300000, "size": 10}],
        devices=[{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 438,
                  "uid": 0, "gid": 0}],
        cgroupsPath="/dockyard/x",
        rootfsPropagation="rslave",
        sysctl={"net.ipv4.ip_forward": "1", "kernel.shmmax": "65536"},
        mountLabel="label",
        resources={
            "devices": [{"allow": False, "access": "rwm"},
                        {"allow": True, "type": "c", "major": 10, "minor": -1, "access": "rw"}],
            "memory": {"limit": 1 << 30, "reservation": 1 << 29, "swap": 2 << 30, "kernelTCP": 0,
                       "swappiness": 60, "disableOOMKiller": True, "checkBeforeUpdate": False},
            "cpu": {"shares": 512, "quota": 50000, "period": 100000, "burst": 1000,
                    "realtimeRuntime": 950000, "realtimePeriod": 1000000, "cpus": "0-1", "mems": "0",
                    "idle": 1},
            "pids": {"limit": 100},
            "blockIO": {"weight": 300, "leafWeight": 10,
                        "weightDevice": [{"major": 8, "minor": 0, "weight": 500, "leafWeight": 300}],
                        "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 600}],
                        "throttleWriteIOPSDevice": [{"major": 8, "minor": 16, "rate": 300}]},
            "hugepageLimits": [{"pageSize": "2MB", "limit": 1 << 21}],
            "unified": {"memory.high": "max", "io.weight": "default 100"},
        },
        seccomp={
            "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
            "architectures": ["SCMP_ARCH_X86_64"], "flags": ["SECCOMP_FILTER_FLAG_LOG"],
            "syscalls": [
                {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"},
                          {"index": 5, "value": 255, "valueTwo": 4, "op": "SCMP_CMP_MASKED_EQ"}]},
                {"names": ["ptrace"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
            ],
        },
    )
    d["process"].update({"consoleSize": {"height": 24, "width": 80}, "oomScoreAdj": -500,
                         "user": {"uid": 1000, "gid": 1000, "umask": 0o22, "additionalGids": [5, 6]},
                         "apparmorProfile": "unconfined", "selinuxLabel": "l"})
    d["domainname"] = "example.org"
    d["annotations"] = {"b": "2", "a": "1"}
    d["hooks"] = {"prestart": [{"path": "/bin/true", "args": ["true", "x"], "env": ["A=1"],
                                "timeout": 5}],
                  "createRuntime": [{"path": "/bin/cr"}], "startContainer": [{"path": "/bin/sc"}],
                  "poststop": [{"path": "/bin/ps"}]}
    spec = parse_spec(d)

    p = spec.process
    assert p.console_size == Box(height=24, width=80)
    assert p.oom_score_adj == -500
    assert p.user == User(1000, 1000, 0o22, (5, 6))
    assert (p.apparmor_profile, p.selinux_label) == ("unconfined", "l")
    assert spec.domainname == "example.org"
    assert spec.annotations == (("b", "2"), ("a", "1"))  # key order kept

    h = spec.hooks
    assert h.prestart == (Hook("/bin/true", ("true", "x"), ("A=1",), 5),)
    assert h.create_runtime == (Hook("/bin/cr"),) and h.start_container == (Hook("/bin/sc"),)
    assert h.create_container == () and h.poststart == () and h.poststop == (Hook("/bin/ps"),)

    lx = spec.linux
    assert lx.namespace("user") == Namespace("user")
    assert lx.uid_mappings == (IDMapping(0, 100000, 65536),)
    assert lx.gid_mappings == (IDMapping(0, 200000, 1000), IDMapping(1000, 300000, 10))
    assert lx.devices == (Device("/dev/fuse", "c", 10, 229, 438, 0, 0),)
    assert lx.cgroups_path == "/dockyard/x" and lx.rootfs_propagation == "rslave"
    assert lx.sysctl == (("net.ipv4.ip_forward", "1"), ("kernel.shmmax", "65536"))
    assert lx.mount_label == "label"

    r = lx.resources
    assert r.devices == (DeviceRule(False, "a", None, None, "rwm"),
                         DeviceRule(True, "c", 10, None, "rw"))  # -1 is the wildcard
    assert r.memory == Memory(limit=1 << 30, reservation=1 << 29, swap=2 << 30, kernel=None,
                              kernel_tcp=0, swappiness=60, disable_oom_killer=True,
                              use_hierarchy=None, check_before_update=False)
    assert r.cpu == Cpu(shares=512, quota=50000, burst=1000, period=100000, realtime_runtime=950000,
                        realtime_period=1000000, cpus="0-1", mems="0", idle=1)
    assert r.pids == Pids(100)
    assert r.block_io.weight == 300 and r.block_io.leaf_weight == 10
    assert r.block_io.weight_device == (WeightDevice(8, 0, 500, 300),)
    assert r.block_io.throttle_read_bps_device == (ThrottleDevice(8, 0, 600),)
    assert r.block_io.throttle_write_iops_device == (ThrottleDevice(8, 16, 300),)
    assert r.block_io.throttle_write_bps_device == () == r.block_io.throttle_read_iops_device
    assert r.hugepage_limits[0].page_size == "2MB" and r.hugepage_limits[0].limit == 1 << 21
    assert r.unified == (("memory.high", "max"), ("io.weight", "default 100"))

    sc = lx.seccomp
    assert sc.default_action == "SCMP_ACT_ERRNO" and sc.default_errno_ret == 38
    assert sc.architectures == ("SCMP_ARCH_X86_64",) and sc.flags == ("SECCOMP_FILTER_FLAG_LOG",)
    assert sc.listener_path == ""
    assert sc.syscalls[0] == SyscallRule(("read", "write"), "SCMP_ACT_ALLOW", None, ())
    assert sc.syscalls[1].args == (SeccompArg(0, 8, "SCMP_CMP_EQ", 0),
                                   SeccompArg(5, 255, "SCMP_CMP_MASKED_EQ", 4))
    assert sc.syscalls[2].errno_ret == 1


def test_minimal_config_takes_defaults():
    spec = parse_spec({"ociVersion": "1.2.0"})
    assert spec.root is None and spec.process is None
    assert spec.mounts == () and spec.linux.namespaces == () and spec.linux.resources is None
    assert spec.hooks.poststop == ()


def test_process_defaults_cwd_and_user():
    spec = parse_spec({"ociVersion": "1.0.0", "process": {"args": ["true"]}})
    assert spec.process.cwd == "/" and spec.process.user == User()
    assert spec.process.capabilities is None and spec.process.terminal is False


def test_unknown_keys_are_ignored_everywhere():
    d = spec_with(vendorThing={"x": 1}, platform={"os": "linux"},
                  process={"futureField": True, "user": {"username": "", "extra": 1}},
                  linux={"intelRdt": {"closID": "x"}, "personality": {"domain": "LINUX"},
                         "resources": {"network": {"classID": 1}, "rdma": {}}})
    d["mounts"][0]["uidMappings"] = []
    assert parse_spec(d) == parse_spec(default_spec())


@pytest.mark.parametrize("version", ["1.0.0", "1.0.2-dev", "1.1.0", "1.2.0", "1.3.0-rc.1"])
def test_any_1x_version_is_accepted(version):
    assert parse_spec(spec_with(ociVersion=version)).oci_version == version


# ------------------------------------------------------------------ errors name the field


@pytest.mark.parametrize("version", ["2.0", "2.0.0", "0.5.0"])
def test_other_major_versions_are_refused(version):
    assert_names(parse_error(spec_with(ociVersion=version)), "ociVersion", repr(version), "1.x")


def test_missing_oci_version():
    assert_names(parse_error(spec_with(ociVersion=REMOVE)), "ociVersion", "required")


def test_top_level_not_an_object():
    assert_names(parse_error([]), "(top level)", "expected an object")  # type: ignore[arg-type]


def test_section_of_the_wrong_json_type():
    assert_names(parse_error(spec_with(process=["sh"])), "process", "expected an object, got list")
    assert_names(parse_error(spec_with(linux="x")), "linux", "expected an object")


def test_unknown_namespace():
    d = default_spec()
    d["linux"]["namespaces"][1] = {"type": "net"}
    assert_names(parse_error(d), "linux.namespaces[1].type", "unknown namespace type 'net'")


def test_duplicate_namespace():
    d = default_spec()
    d["linux"]["namespaces"][1] = {"type": "pid"}
    assert_names(parse_error(d), "linux.namespaces[1].type", "duplicate", "'pid'")


def test_namespace_path_must_be_absolute():
    d = default_spec()
    d["linux"]["namespaces"][0] = {"type": "pid", "path": "proc/1/ns/pid"}
    assert_names(parse_error(d), "linux.namespaces[0].path", "absolute", "'proc/1/ns/pid'")


def test_time_namespace_is_known():
    d = default_spec()
    d["linux"]["namespaces"].append({"type": "time"})
    assert parse_spec(d).linux.namespace("time") == Namespace("time")


def test_mount_without_destination():
    d = default_spec()
    del d["mounts"][2]["destination"]
    assert_names(parse_error(d), "mounts[2].destination", "required")


def test_mount_destination_of_the_wrong_type():
    d = default_spec()
    d["mounts"][2]["destination"] = 5
    assert_names(parse_error(d), "mounts[2].destination", "expected str, got int")


def test_mount_option_must_be_a_string():
    d = default_spec()
    d["mounts"][1]["options"] = ["nosuid", 1]
    assert_names(parse_error(d), "mounts[1].options[1]", "expected a string")


def test_relative_mount_destination_is_accepted_as_relative_to_root():
    d = default_spec()
    d["mounts"].append({"destination": "data", "type": "tmpfs", "source": "tmpfs"})
    spec = parse_spec(d)
    assert spec.mounts[-1].destination in ("data", "/data")


def test_relative_cwd():
    assert_names(parse_error(spec_with(process={"cwd": "tmp"})), "process.cwd", "absolute", "'tmp'")


def test_empty_args():
    assert_names(parse_error(spec_with(process={"args": []})), "process.args", "program")


def test_unknown_capability():
    d = spec_with(process={"capabilities": {"bounding": ["CAP_BOGUS", "CAP_KILL"]}})
    assert_names(parse_error(d), "process.capabilities.bounding[0]", "unknown capability 'CAP_BOGUS'")


def test_capability_name_without_cap_prefix_is_unknown():
    d = spec_with(process={"capabilities": {"ambient": ["CAP_KILL", "kill"]}})
    assert_names(parse_error(d), "process.capabilities.ambient[1]", "'kill'")


def test_unknown_rlimit():
    d = spec_with(process={"rlimits": [{"type": "RLIMIT_BOGUS", "soft": 1, "hard": 1}]})
    assert_names(parse_error(d), "process.rlimits[0].type", "unknown rlimit 'RLIMIT_BOGUS'")


def test_rlimit_soft_above_hard():
    d = spec_with(process={"rlimits": [{"type": "RLIMIT_NOFILE", "soft": 2048, "hard": 1024}]})
    assert_names(parse_error(d), "process.rlimits[0]", "2048", "1024")


def test_rlimit_without_hard():
    d = spec_with(process={"rlimits": [{"type": "RLIMIT_CORE", "soft": 0}]})
    assert_names(parse_error(d), "process.rlimits[0]", "required")


def test_duplicate_rlimit():
    d = spec_with(process={"rlimits": [{"type": "RLIMIT_NOFILE", "soft": 1, "hard": 2},
                                       {"type": "RLIMIT_NOFILE", "soft": 1, "hard": 2}]})
    assert_names(parse_error(d), "process.rlimits[1].type", "duplicate rlimit RLIMIT_NOFILE")


def test_env_without_equals():
    d = spec_with(process={"env": ["A=1", "JUSTANAME"]})
    assert_names(parse_error(d), "process.env[1]", "KEY=value", "'JUSTANAME'")


def test_env_with_empty_value_is_fine():
    assert parse_spec(spec_with(process={"env": ["A="]})).process.env == ("A=",)


def test_oom_score_adj_range():
    d = spec_with(process={"oomScoreAdj": 1001})
    assert_names(parse_error(d), "process.oomScoreAdj", "-1000..1000", "1001")


def test_username_is_windows_only():
    d = spec_with(process={"user": {"uid": 0, "gid": 0, "username": "root"}})
    assert_names(parse_error(d), "process.user.username", "Windows")


@pytest.mark.parametrize("value, got", [("0", "'0'"), (True, "True"), (1.5, "1.5")])
def test_non_integer_where_an_integer_is_expected(value, got):
    d = spec_with(process={"user": {"uid": value, "gid": 0}})
    assert_names(parse_error(d), "process.user.uid", "expected an integer", got)


def test_bool_for_rlimit_hard():
    d = spec_with(process={"rlimits": [{"type": "RLIMIT_NOFILE", "soft": 1, "hard": True}]})
    assert_names(parse_error(d), "process.rlimits[0].hard", "expected an integer, got True")


def test_string_for_pids_limit():
    d = spec_with(linux={"resources": {"pids": {"limit": "100"}}})
    assert_names(parse_error(d), "linux.resources.pids.limit", "expected an integer, got '100'")


def test_int_where_bool_expected():
    assert_names(parse_error(spec_with(process={"terminal": 1})), "process.terminal",
                 "expected bool, got int")


def test_negative_uid():
    d = spec_with(process={"user": {"uid": -1, "gid": 0}})
    assert_names(parse_error(d), "process.user.uid", "negative")


def test_bad_additional_gid():
    d = spec_with(process={"user": {"uid": 0, "gid": 0, "additionalGids": [1, "2"]}})
    assert_names(parse_error(d), "process.user.additionalGids[1]", "'2'")


def test_mappings_without_a_user_namespace():
    d = spec_with(linux={"uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}],
                         "gidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}]})
    assert_names(parse_error(d), "linux.uidMappings", "user namespace")


def test_user_namespace_without_mappings():
    assert_names(parse_error(userns()), "linux.uidMappings", "uidMappings and gidMappings")


def test_user_namespace_with_uid_but_no_gid_mappings():
    d = userns(uidMappings=[{"containerID": 0, "hostID": 1000, "size": 1}])
    assert_names(parse_error(d), "linux.uidMappings", "gidMappings")


def test_joined_user_namespace_needs_no_mappings():
    d = default_spec()
    d["linux"]["namespaces"].append({"type": "user", "path": "/proc/1/ns/user"})
    assert parse_spec(d).linux.namespace("user").path == "/proc/1/ns/user"


def test_overlapping_uid_mappings():
    d = userns(uidMappings=[{"containerID": 0, "hostID": 1000, "size": 10},
                            {"containerID": 5, "hostID": 5000, "size": 10}],
               gidMappings=[{"containerID": 0, "hostID": 1000, "size": 1}])
    assert_names(parse_error(d), "linux.uidMappings", "overlap", "5")


def test_overlapping_gid_mappings():
    d = userns(uidMappings=[{"containerID": 0, "hostID": 1000, "size": 1}],
               gidMappings=[{"containerID": 100, "hostID": 1000, "size": 1},
                            {"containerID": 0, "hostID": 5000, "size": 101}])
    assert_names(parse_error(d), "linux.gidMappings", "overlap")


def test_adjacent_mappings_do_not_overlap():
    d = userns(uidMappings=[{"containerID": 0, "hostID": 1000, "size": 10},
                            {"containerID": 10, "hostID": 5000, "size": 10}],
               gidMappings=[{"containerID": 0, "hostID": 1000, "size": 1}])
    assert len(parse_spec(d).linux.uid_mappings) == 2


def test_mapping_with_zero_size():
    d = userns(uidMappings=[{"containerID": 0, "hostID": 1000, "size": 0}],
               gidMappings=[{"containerID": 0, "hostID": 1000, "size": 1}])
    assert_names(parse_error(d), "linux.uidMappings[0]", "positive size")


def test_mapping_beyond_32_bits():
    d = userns(uidMappings=[{"containerID": 0, "hostID": 2**32 - 1, "size": 2}],
               gidMappings=[{"containerID": 0, "hostID": 1000, "size": 1}])
    assert_names(parse_error(d), "linux.uidMappings[0]", "32-bit")


def test_bad_device_type():
    d = spec_with(linux={"devices": [{"path": "/dev/x", "type": "x", "major": 1, "minor": 1}]})
    assert_names(parse_error(d), "linux.devices[0].type", "c, b, u or p", "'x'")


def test_relative_device_path():
    d = spec_with(linux={"devices": [{"path": "dev/x", "type": "c", "major": 1, "minor": 1}]})
    assert_names(parse_error(d), "linux.devices[0].path", "absolute")


def test_bad_cgroup_device_access():
    d = spec_with(linux={"resources": {"devices": [{"allow": True, "type": "c", "access": "rwx"}]}})
    assert_names(parse_error(d), "linux.resources.devices[0].access", "'rwx'")


def test_bad_cgroup_device_type():
    d = spec_with(linux={"resources": {"devices": [{"allow": True, "type": "u"}]}})
    assert_names(parse_error(d), "linux.resources.devices[0].type", "a, c or b")


def test_cgroup_device_rule_needs_allow():
    d = spec_with(linux={"resources": {"devices": [{"type": "c", "access": "r"}]}})
    assert_names(parse_error(d), "linux.resources.devices[0].allow", "required")


def test_memory_swap_below_limit():
    d = spec_with(linux={"resources": {"memory": {"limit": 1 << 30, "swap": 1 << 20}}})
    assert_names(parse_error(d), "linux.resources.memory.swap", "below the memory limit")


@pytest.mark.parametrize("swap", [-1, 1 << 30, 2 << 30])
def test_memory_swap_unlimited_or_not_below_limit(swap):
    d = spec_with(linux={"resources": {"memory": {"limit": 1 << 30, "swap": swap}}})
    assert parse_spec(d).linux.resources.memory.swap == swap


def test_memory_limit_below_minus_one():
    d = spec_with(linux={"resources": {"memory": {"limit": -2}}})
    assert_names(parse_error(d), "linux.resources.memory.limit", "-1")


def test_memory_swappiness_over_100():
    d = spec_with(linux={"resources": {"memory": {"swappiness": 101}}})
    assert_names(parse_error(d), "linux.resources.memory.swappiness", "0..100")


@pytest.mark.parametrize("period", [999, 1_000_001])
def test_cpu_period_out_of_range(period):
    d = spec_with(linux={"resources": {"cpu": {"period": period}}})
    assert_names(parse_error(d), "linux.resources.cpu.period", "1000..1000000", str(period))


@pytest.mark.parametrize("period", [0, 1000, 1_000_000])
def test_cpu_period_bounds_accepted(period):
    d = spec_with(linux={"resources": {"cpu": {"period": period}}})
    assert parse_spec(d).linux.resources.cpu.period == period


def test_cpu_quota_below_minus_one():
    d = spec_with(linux={"resources": {"cpu": {"quota": -5}}})
    assert_names(parse_error(d), "linux.resources.cpu.quota", "-5")


@pytest.mark.parametrize("weight", [5, 1001])
def test_blkio_weight_out_of_range(weight):
    d = spec_with(linux={"resources": {"blockIO": {"weight": weight}}})
    assert_names(parse_error(d), "linux.resources.blockIO.weight", "10..1000", str(weight))


def test_unified_key_must_be_a_file_name():
    d = spec_with(linux={"resources": {"unified": {"../memory.max": "1"}}})
    assert_names(parse_error(d), "linux.resources.unified.../memory.max", "cgroup")


def test_unified_value_must_be_a_string():
    d = spec_with(linux={"resources": {"unified": {"memory.max": 5}}})
    assert_names(parse_error(d), "linux.resources.unified.memory.max", "expected a string")


def seccomp(**kw) -> dict:
    base = {"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mount"], "action": "SCMP_ACT_ERRNO"}]}
    base.update(kw)
    return spec_with(linux={"seccomp": base})


def test_unknown_seccomp_default_action():
    assert_names(parse_error(seccomp(defaultAction="SCMP_ACT_BOGUS")), "linux.seccomp.defaultAction",
                 "unknown seccomp action 'SCMP_ACT_BOGUS'")


def test_unknown_seccomp_rule_action():
    d = seccomp(syscalls=[{"names": ["mount"], "action": "ALLOW"}])
    assert_names(parse_error(d), "linux.seccomp.syscalls[0].action", "'ALLOW'")


def test_unknown_seccomp_op():
    d = seccomp(syscalls=[{"names": ["mount"], "action": "SCMP_ACT_ERRNO",
                           "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_BOGUS"}]}])
    assert_names(parse_error(d), "linux.seccomp.syscalls[0].args[0].op", "'SCMP_CMP_BOGUS'")


def test_unknown_seccomp_flag():
    d = seccomp(flags=["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_BOGUS"])
    assert_names(parse_error(d), "linux.seccomp.flags[1]", "'SECCOMP_FILTER_FLAG_BOGUS'")


def test_seccomp_arg_index_above_5():
    d = seccomp(syscalls=[{"names": ["mount"], "action": "SCMP_ACT_ERRNO",
                           "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}])
    assert_names(parse_error(d), "linux.seccomp.syscalls[0].args[0].index", "0..5", "6")


def test_seccomp_rule_without_names():
    d = seccomp(syscalls=[{"names": [], "action": "SCMP_ACT_ERRNO"}])
    assert_names(parse_error(d), "linux.seccomp.syscalls[0].names", "at least one")


@pytest.mark.parametrize("where", ["default", "rule"])
def test_seccomp_notify_needs_listener_path(where):
    if where == "default":
        d = seccomp(defaultAction="SCMP_ACT_NOTIFY")
    else:
        d = seccomp(syscalls=[{"names": ["mount"], "action": "SCMP_ACT_NOTIFY"}])
    assert_names(parse_error(d), "linux.seccomp.listenerPath", "SCMP_ACT_NOTIFY")


def test_seccomp_notify_with_listener_path():
    d = seccomp(syscalls=[{"names": ["mount"], "action": "SCMP_ACT_NOTIFY"}],
                listenerPath="/run/seccomp.sock")
    assert parse_spec(d).linux.seccomp.listener_path == "/run/seccomp.sock"


def test_hostname_longer_than_64():
    assert_names(parse_error(spec_with(hostname="h" * 65)), "hostname", "64")
    assert parse_spec(spec_with(hostname="h" * 64)).hostname == "h" * 64


def test_hostname_limit_counts_utf8_bytes():
    assert_names(parse_error(spec_with(hostname="é" * 33)), "hostname", "64")


def test_hook_path_must_be_absolute():
    d = spec_with(hooks={"prestart": [{"path": "/bin/ok"}, {"path": "bin/true"}]})
    assert_names(parse_error(d), "hooks.prestart[1].path", "absolute")


def test_hook_timeout_must_be_positive():
    d = spec_with(hooks={"poststop": [{"path": "/bin/true", "timeout": 0}]})
    assert_names(parse_error(d), "hooks.poststop[0].timeout", "positive")


def test_masked_path_must_be_absolute():
    d = spec_with(linux={"maskedPaths": ["/proc/kcore", "proc/keys"]})
    assert_names(parse_error(d), "linux.maskedPaths[1]", "absolute")


def test_unknown_rootfs_propagation():
    assert_names(parse_error(spec_with(linux={"rootfsPropagation": "rshare"})),
                 "linux.rootfsPropagation", "'rshare'")


def test_root_without_path():
    assert_names(parse_error(spec_with(root={"path": ""})), "root.path", "required")


def test_annotation_value_must_be_a_string():
    assert_names(parse_error(spec_with(annotations={"a": 1})), "annotations.a", "expected a string")


# ------------------------------------------------------------------ Record


class Point(Record):
    x: int
    y: int = 0
    tags: tuple[str, ...] = ()


class Point3(Point):
    z: int = 0


def test_record_positional_keyword_and_defaults():
    assert Point(1).y == 0 and Point(1).tags == ()
    p = Point(1, 2, ("a",))
    assert (p.x, p.y, p.tags) == (1, 2, ("a",))
    assert Point(1, tags=("t",)) == Point(x=1, y=0, tags=("t",))
    assert Point._fields == ("x", "y", "tags")


def test_record_is_frozen():
    p = Point(1)
    with pytest.raises(AttributeError, match="frozen"):
        p.x = 2  # type: ignore[misc]
    with pytest.raises(AttributeError, match="frozen"):
        del p.y
    assert p.x == 1


def test_record_eq_and_hash():
    assert Point(1, 2) == Point(1, 2) and hash(Point(1, 2)) == hash(Point(1, 2))
    assert Point(1, 2) != Point(2, 1)
    assert len({Point(1, 2), Point(1, 2), Point(1, 3)}) == 2
    assert Point3(1, 2) != Point(1, 2)  # different types are never equal
    assert Point(1) != (1, 0, ())


def test_record_subclass_extends_fields():
    assert Point3._fields == ("x", "y", "tags", "z")
    assert Point3(1, z=3) == Point3(1, 0, (), 3)


def test_record_repr():
    assert repr(Point(1, 2)) == "Point(x=1, y=2, tags=())"


def test_replace_returns_a_changed_copy():
    p = Point(1, 2)
    q = replace(p, y=5)
    assert q == Point(1, 5) and p == Point(1, 2)
    assert type(replace(Point3(1), z=9)) is Point3
    with pytest.raises(TypeError, match="no field 'w'"):
        replace(p, w=1)


def test_record_errors():
    with pytest.raises(TypeError, match="missing field 'x'"):
        Point()
    with pytest.raises(TypeError, match="no field 'w'"):
        Point(1, w=2)
    with pytest.raises(TypeError, match="takes 3 arguments, got 4"):
        Point(1, 2, (), 4)
    with pytest.raises(TypeError, match="'x' twice"):
        Point(1, x=2)


def test_record_field_without_default_after_default_is_refused():
    with pytest.raises(TypeError, match="Bad.b"):
        class Bad(Record):
            a: int = 0
            b: int


def test_spec_records_are_hashable_and_frozen():
    spec = parse_spec(default_spec())
    assert hash(spec) == hash(parse_spec(default_spec()))
    with pytest.raises(AttributeError):
        spec.hostname = "x"  # type: ignore[misc]
