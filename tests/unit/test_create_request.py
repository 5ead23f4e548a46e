"""``engine.create_request.parse_create``: Docker Engine API create bodies as typed records.

BODY1 and BODY2 are what the docker CLI 28.2 sent (captured on a unix socket listener posing as
an API 1.45 daemon):

BODY1: docker create --name web -m 64m --cpus 0.5 -e A=1 -v /tmp/x:/data:ro --tmpfs /run:size=1m
       --restart on-failure:3 busybox httpd -f
BODY2: docker create -it --rm --name t2 --user 1000:1000 --group-add 10 -w /srv --hostname box
       --domainname example.org --entrypoint /bin/sh --read-only --cap-add NET_ADMIN
       --cap-drop MKNOD --security-opt no-new-privileges --security-opt seccomp=unconfined
       --ulimit nofile=1024:2048 --oom-score-adj 100 --stop-signal SIGINT --stop-timeout 20
       --shm-size 128m --sysctl net.core.somaxconn=1024 --memory-reservation 32m
       --memory-swap 128m -m 64m --cpu-shares 512 --cpuset-cpus 0-1 --pids-limit 100 --init
       --label a=b --label c -p 8080:80 -p 127.0.0.1:53:53/udp --expose 9000
       --add-host db:10.0.0.2 --dns 1.1.1.1 --dns-search example.org --dns-option ndots:2
       --device /dev/fuse:/dev/fuse:rwm --device-read-bps /dev/sda:1mb --blkio-weight 300
       --mount type=bind,src=/tmp,dst=/hosttmp,readonly,bind-propagation=rslave
       --mount type=volume,src=vol1,dst=/v1,volume-nocopy,volume-label=x=y
       --mount type=tmpfs,dst=/scratch,tmpfs-size=1m,tmpfs-mode=1770 -v myvol:/data:nocopy
       --volumes-from other:ro --health-cmd "wget -q localhost" --health-interval 5s
       --health-timeout 2s --health-retries 3 --health-start-period 10s
       --health-start-interval 1s --log-driver json-file --log-opt max-size=5m
       --log-opt max-file=2 --mac-address 02:42:ac:11:00:02 busybox -c 'echo hi'
"""

import copy
import json
from pathlib import Path

import pytest

from dockyard import errors
from dockyard.engine.create_mounts import MountRequest
from dockyard.engine.create_request import (
    EndpointRequest,
    HealthConfig,
    parse_create,
    validate_name,
)
from dockyard.engine.host_config import (
    DeviceMapping,
    LogConfig,
    PortBinding,
    PortSpec,
    RestartPolicy,
    ThrottleDevice,
    WeightDevice,
)
from dockyard.errors import InvalidArgument
from dockyard.oci.image_config import ContainerConfig, ImageConfig
from dockyard.oci.spec_builder import DEFAULT_SHM_SIZE, MASKED_PATHS, Ulimit, build_spec
from dockyard.record import replace

BODY1 = (
    '{"Hostname":"","Domainname":"","User":"","AttachStdin":false,"AttachStdout":true,"AttachStderr'
    '":true,"Tty":false,"OpenStdin":false,"StdinOnce":false,"Env":["A=1"],"Cmd":["httpd","-f"],"Ima'
    'ge":"busybox","Volumes":{},"WorkingDir":"","Entrypoint":null,"OnBuild":null,"Labels":{},"HostC'
    'onfig":{"Binds":["/tmp/x:/data:ro"],"ContainerIDFile":"","LogConfig":{"Type":"","Config":{}},"'
    'NetworkMode":"default","PortBindings":{},"RestartPolicy":{"Name":"on-failure","MaximumRetryCou'
    'nt":3},"AutoRemove":false,"VolumeDriver":"","VolumesFrom":null,"ConsoleSize":[0,0],"CapAdd":nu'
    'll,"CapDrop":null,"CgroupnsMode":"","Dns":[],"DnsOptions":[],"DnsSearch":[],"ExtraHosts":null,'
    '"GroupAdd":null,"IpcMode":"","Cgroup":"","Links":null,"OomScoreAdj":0,"PidMode":"","Privileged'
    '":false,"PublishAllPorts":false,"ReadonlyRootfs":false,"SecurityOpt":null,"Tmpfs":{"/run":"siz'
    'e=1m"},"UTSMode":"","UsernsMode":"","ShmSize":0,"Isolation":"","CpuShares":0,"Memory":67108864'
    ',"NanoCpus":500000000,"CgroupParent":"","BlkioWeight":0,"BlkioWeightDevice":[],"BlkioDeviceRea'
    'dBps":[],"BlkioDeviceWriteBps":[],"BlkioDeviceReadIOps":[],"BlkioDeviceWriteIOps":[],"CpuPerio'
    'd":0,"CpuQuota":0,"CpuRealtimePeriod":0,"CpuRealtimeRuntime":0,"CpusetCpus":"","CpusetMems":""'
    ',"Devices":[],"DeviceCgroupRules":null,"DeviceRequests":null,"MemoryReservation":0,"MemorySwap'
    '":0,"MemorySwappiness":-1,"OomKillDisable":false,"PidsLimit":0,"Ulimits":[],"CpuCount":0,"CpuP'
    'ercent":0,"IOMaximumIOps":0,"IOMaximumBandwidth":0,"MaskedPaths":null,"ReadonlyPaths":null},"N'
    'etworkingConfig":{"EndpointsConfig":{"default":{"IPAMConfig":null,"Links":null,"Aliases":null,'
    '"MacAddress":"","DriverOpts":null,"GwPriority":0,"NetworkID":"","EndpointID":"","Gateway":"","'
    'IPAddress":"","IPPrefixLen":0,"IPv6Gateway":"","GlobalIPv6Address":"","GlobalIPv6PrefixLen":0,'
    '"DNSNames":null}}}}\n'
)

BODY2 = (
    '{"Hostname":"box","Domainname":"example.org","User":"1000:1000","AttachStdin":true,"AttachStdo'
    'ut":true,"AttachStderr":true,"ExposedPorts":{"53/udp":{},"80/tcp":{},"9000/tcp":{}},"Tty":true'
    ',"OpenStdin":true,"StdinOnce":true,"Env":null,"Cmd":["-c","echo hi"],"Healthcheck":{"Test":["C'
    'MD-SHELL","wget -q localhost"],"Interval":5000000000,"Timeout":2000000000,"StartPeriod":100000'
    '00000,"StartInterval":1000000000,"Retries":3},"Image":"busybox","Volumes":{},"WorkingDir":"/sr'
    'v","Entrypoint":["/bin/sh"],"OnBuild":null,"Labels":{"a":"b","c":""},"StopSignal":"SIGINT","St'
    'opTimeout":20,"HostConfig":{"Binds":["myvol:/data:nocopy"],"ContainerIDFile":"","LogConfig":{"'
    'Type":"json-file","Config":{"max-file":"2","max-size":"5m"}},"NetworkMode":"default","PortBind'
    'ings":{"53/udp":[{"HostIp":"127.0.0.1","HostPort":"53"}],"80/tcp":[{"HostIp":"","HostPort":"80'
    '80"}]},"RestartPolicy":{"Name":"no","MaximumRetryCount":0},"AutoRemove":true,"VolumeDriver":""'
    ',"VolumesFrom":["other:ro"],"ConsoleSize":[0,0],"CapAdd":["CAP_NET_ADMIN"],"CapDrop":["CAP_MKN'
    'OD"],"CgroupnsMode":"","Dns":["1.1.1.1"],"DnsOptions":["ndots:2"],"DnsSearch":["example.org"],'
    '"ExtraHosts":["db:10.0.0.2"],"GroupAdd":["10"],"IpcMode":"","Cgroup":"","Links":null,"OomScore'
    'Adj":100,"PidMode":"","Privileged":false,"PublishAllPorts":false,"ReadonlyRootfs":true,"Securi'
    'tyOpt":["no-new-privileges","seccomp=unconfined"],"UTSMode":"","UsernsMode":"","ShmSize":13421'
    '7728,"Sysctls":{"net.core.somaxconn":"1024"},"Isolation":"","CpuShares":512,"Memory":67108864,'
    '"NanoCpus":0,"CgroupParent":"","BlkioWeight":300,"BlkioWeightDevice":[],"BlkioDeviceReadBps":['
    '{"Path":"/dev/sda","Rate":1048576}],"BlkioDeviceWriteBps":[],"BlkioDeviceReadIOps":[],"BlkioDe'
    'viceWriteIOps":[],"CpuPeriod":0,"CpuQuota":0,"CpuRealtimePeriod":0,"CpuRealtimeRuntime":0,"Cpu'
    'setCpus":"0-1","CpusetMems":"","Devices":[{"PathOnHost":"/dev/fuse","PathInContainer":"/dev/fu'
    'se","CgroupPermissions":"rwm"}],"DeviceCgroupRules":null,"DeviceRequests":null,"MemoryReservat'
    'ion":33554432,"MemorySwap":134217728,"MemorySwappiness":-1,"OomKillDisable":false,"PidsLimit":'
    '100,"Ulimits":[{"Name":"nofile","Hard":2048,"Soft":1024}],"CpuCount":0,"CpuPercent":0,"IOMaxim'
    'umIOps":0,"IOMaximumBandwidth":0,"Mounts":[{"Type":"bind","Source":"/tmp","Target":"/hosttmp",'
    '"ReadOnly":true,"BindOptions":{"Propagation":"rslave"}},{"Type":"volume","Source":"vol1","Targ'
    'et":"/v1","VolumeOptions":{"NoCopy":true,"Labels":{"x":"y"},"DriverConfig":{}}},{"Type":"tmpfs'
    '","Target":"/scratch","TmpfsOptions":{"SizeBytes":1048576,"Mode":1016}}],"MaskedPaths":null,"R'
    'eadonlyPaths":null,"Init":true},"NetworkingConfig":{"EndpointsConfig":{"default":{"IPAMConfig"'
    ':null,"Links":null,"Aliases":null,"MacAddress":"02:42:ac:11:00:02","DriverOpts":null,"GwPriori'
    'ty":0,"NetworkID":"","EndpointID":"","Gateway":"","IPAddress":"","IPPrefixLen":0,"IPv6Gateway"'
    ':"","GlobalIPv6Address":"","GlobalIPv6PrefixLen":0,"DNSNames":null}}}}\n'
)


def create(host=None, **config):
    body = {"Image": "busybox", **config}
    if host is not None:
        body["HostConfig"] = host
    return parse_create(body)


def refused(match, host=None, **config):
    with pytest.raises(InvalidArgument, match=match):
        create(host, **config)


# ---------------------------------------------------------------- the docker CLI's bodies


def test_docker_cli_run_body():
    req = parse_create(BODY1.encode(), name="web")
    assert req.name == "web" and req.image == "busybox"
    run = req.run
    assert run.container_id == ""
    assert run.cmd == ("httpd", "-f") and run.entrypoint is None
    assert run.env == ("A=1",)
    assert run.user is None  # "" keeps the image's user
    assert run.memory == 64 * 1024 * 1024 and run.nano_cpus == 500_000_000
    assert run.network == "none" and run.shm_size == DEFAULT_SHM_SIZE
    assert run.mounts == ()  # mounts travel as MountRequest records
    assert req.mounts == (
        MountRequest("bind", "/data", "/tmp/x", read_only=True, create_mountpoint=True,
                     create_source=True, origin="binds", mode="ro"),
        MountRequest("tmpfs", "/run", tmpfs_size=1024 * 1024,
                     tmpfs_options=("noexec", "nosuid", "nodev", "size=1m"), origin="tmpfs",
                     mode="size=1m"),
    )
    assert req.restart == RestartPolicy("on-failure", 3)
    assert req.log == LogConfig("json-file", 10 * 1024 * 1024, 3)
    assert req.healthcheck is None
    assert (req.attach_stdin, req.attach_stdout, req.attach_stderr) == (False, True, True)
    assert req.network_mode == "default" and req.ipc_mode == "private"
    assert req.endpoints == (EndpointRequest("default"),)
    assert req.warnings == ()


def test_docker_cli_rich_body():
    req = parse_create(BODY2.encode(), name="t2")
    run = req.run
    assert run.entrypoint == ("/bin/sh",) and run.cmd == ("-c", "echo hi")
    assert run.env == () and run.user == "1000:1000" and run.group_add == ("10",)
    assert (run.working_dir, run.hostname, run.domainname) == ("/srv", "box", "example.org")
    assert run.tty and run.read_only and run.console_size is None
    assert run.cap_add == ("CAP_NET_ADMIN",) and run.cap_drop == ("CAP_MKNOD",)
    assert run.no_new_privileges and req.seccomp_unconfined and req.seccomp_profile == ""
    assert run.ulimits == (Ulimit("nofile", 1024, 2048),)
    assert run.oom_score_adj == 100 and run.stop_signal == "SIGINT"
    assert run.shm_size == 128 * 1024 * 1024
    assert run.sysctls == (("net.core.somaxconn", "1024"),)
    assert (run.memory, run.memory_swap, run.memory_reservation) == (64 << 20, 128 << 20, 32 << 20)
    assert run.cpu_shares == 512 and run.cpuset_cpus == "0-1" and run.pids_limit == 100
    assert req.init and req.auto_remove and req.restart == RestartPolicy("no", 0)
    assert req.tty and req.open_stdin and req.stdin_once and req.attach_stdin
    assert req.labels == (("a", "b"), ("c", "")) and req.stop_timeout == 20
    assert req.exposed_ports == (PortSpec(53, "udp"), PortSpec(80, "tcp"), PortSpec(9000, "tcp"))
    assert req.port_bindings == (PortBinding(53, "udp", "127.0.0.1", 53, 53),
                                 PortBinding(80, "tcp", "", 8080, 8080))
    assert req.extra_hosts == ("db:10.0.0.2",)
    assert (req.dns, req.dns_search, req.dns_options) == (("1.1.1.1",), ("example.org",),
                                                          ("ndots:2",))
    assert req.devices == (DeviceMapping("/dev/fuse", "/dev/fuse", "rwm"),)
    assert req.device_read_bps == (ThrottleDevice("/dev/sda", 1024 * 1024),)
    assert req.blkio_weight == 300 and req.volumes_from == ("other:ro",)
    assert req.mac_address == "02:42:ac:11:00:02"
    assert req.log == LogConfig("json-file", 5 * 1024 * 1024, 2,
                                (("max-file", "2"), ("max-size", "5m")))
    assert req.healthcheck == HealthConfig(
        ("/bin/sh", "-c", "wget -q localhost"), "CMD-SHELL", 5.0, 2.0, 10.0, 1.0, 3,
        docker_test=("CMD-SHELL", "wget -q localhost"))
    assert req.mounts == (
        MountRequest("volume", "/data", "myvol", nocopy=True, origin="binds", mode="nocopy"),
        MountRequest("bind", "/hosttmp", "/tmp", read_only=True, propagation="rslave",
                     origin="mounts"),
        MountRequest("volume", "/v1", "vol1", nocopy=True, labels=(("x", "y"),), origin="mounts"),
        MountRequest("tmpfs", "/scratch", tmpfs_size=1 << 20, tmpfs_mode=0o1770,
                     tmpfs_options=("noexec", "nosuid", "nodev", "size=1048576", "mode=1770"),
                     origin="mounts"),
    )


@pytest.mark.parametrize("body", [BODY1, BODY2])
def test_run_options_build_a_spec(body):
    """What parse_create fills in is what the spec builder accepts and means."""
    run = replace(parse_create(body.encode()).run, container_id="c0ffee" * 8)
    spec = build_spec(ImageConfig(architecture="amd64", os="linux",
                                  config=ContainerConfig(cmd=("sh",))), run)
    assert spec["process"]["args"] == [*(run.entrypoint or ()), *(run.cmd or ("sh",))]
    assert spec["linux"]["resources"]["memory"]["limit"] == 64 << 20
    assert {"type": "ipc"} in spec["linux"]["namespaces"]


def test_a_docker_py_shaped_body():
    """docker-py sends every key, unset ones as null, and Volumes for its binds' targets."""
    req = parse_create({
        "Hostname": None, "Domainname": None, "ExposedPorts": {"80/tcp": {}}, "User": None,
        "Tty": False, "OpenStdin": False, "StdinOnce": False, "AttachStdin": False,
        "AttachStdout": False, "AttachStderr": False, "Env": ["A=1"], "Cmd": ["true"],
        "Image": "busybox", "Volumes": {"/ctr": {}}, "NetworkDisabled": False,
        "Entrypoint": None, "WorkingDir": None, "MacAddress": None, "Labels": None,
        "StopSignal": None, "Healthcheck": None, "StopTimeout": None, "Runtime": None,
        "HostConfig": {"NetworkMode": "default", "Binds": ["/host:/ctr:rw"],
                       "PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]},
                       "Memory": 67108864, "RestartPolicy": {"Name": "on-failure",
                                                             "MaximumRetryCount": 5},
                       "Tmpfs": {"/mnt": "size=3G,uid=1000"},
                       "LogConfig": {"Type": "json-file", "Config": {"max-size": "1g"}}},
    }, name="pyclient", api_version="1.41")
    assert req.run.hostname == "" and req.run.user is None and req.run.working_dir == ""
    assert [(m.kind, m.destination) for m in req.mounts] == [("bind", "/ctr"), ("tmpfs", "/mnt")]
    assert req.mounts[1].tmpfs_size == 3 << 30
    assert req.port_bindings == (PortBinding(80, "tcp", "", 8080, 8080),)
    assert req.restart == RestartPolicy("on-failure", 5) and req.log.max_size == 1 << 30
    assert req.config["Hostname"] == "" and req.config["Labels"] == {}
    assert "StopSignal" not in req.config and "Healthcheck" not in req.config


def test_inspect_shapes_of_a_cli_body():
    req = parse_create(BODY1.encode(), name="web")
    hc = req.host_config
    assert hc["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    assert hc["LogConfig"] == {"Type": "json-file", "Config": {}}
    assert hc["NetworkMode"] == "default" and hc["IpcMode"] == "private"
    assert hc["CgroupnsMode"] == "host" and hc["ShmSize"] == 67108864
    assert hc["PidsLimit"] is None and hc["MemorySwappiness"] is None
    assert hc["MaskedPaths"] == list(MASKED_PATHS)
    assert hc["Binds"] == ["/tmp/x:/data:ro"] and hc["Tmpfs"] == {"/run": "size=1m"}
    assert "Init" not in hc and "Mounts" not in hc and "Annotations" not in hc
    keys = list(hc)
    assert keys[:4] == ["Binds", "ContainerIDFile", "LogConfig", "NetworkMode"]
    assert keys.index("Isolation") < keys.index("CpuShares") < keys.index("MaskedPaths")
    cfg = req.config
    assert cfg["Image"] == "busybox" and cfg["Cmd"] == ["httpd", "-f"]
    assert cfg["Entrypoint"] is None and cfg["Env"] == ["A=1"] and cfg["Labels"] == {}
    assert "Healthcheck" not in cfg and "MacAddress" not in cfg and "ExposedPorts" not in cfg
    json.dumps(cfg), json.dumps(hc)  # both are plain JSON


def test_inspect_shapes_of_a_minimal_api_body():
    req = parse_create({"Image": "alpine:3", "Cmd": "true"})
    assert req.config == {
        "Hostname": "", "Domainname": "", "User": "", "AttachStdin": False,
        "AttachStdout": False, "AttachStderr": False, "Tty": False, "OpenStdin": False,
        "StdinOnce": False, "Env": None, "Cmd": ["true"], "Image": "alpine:3", "Volumes": None,
        "WorkingDir": "", "Entrypoint": None, "OnBuild": None, "Labels": {},
    }
    hc = req.host_config
    assert hc["Binds"] is None and hc["NetworkMode"] == "default"
    assert hc["RestartPolicy"] == {"Name": "no", "MaximumRetryCount": 0}
    assert hc["LogConfig"] == {"Type": "json-file", "Config": {}}
    assert hc["ConsoleSize"] == [0, 0] and hc["PortBindings"] == {}


def test_inspect_dicts_do_not_alias_the_body():
    body = {"Image": "busybox", "Labels": {"a": "b"}, "HostConfig": {"Binds": ["/a:/b"]}}
    req = parse_create(body)
    body["Labels"]["a"] = "changed"
    body["HostConfig"]["Binds"].append("/c:/d")
    assert req.config["Labels"] == {"a": "b"} and req.host_config["Binds"] == ["/a:/b"]


def test_inspect_healthcheck_and_ports_presented_as_docker_does():
    req = parse_create(BODY2.encode())
    assert req.config["Healthcheck"] == {
        "Test": ["CMD-SHELL", "wget -q localhost"], "Interval": 5000000000,
        "Timeout": 2000000000, "StartPeriod": 10000000000, "StartInterval": 1000000000,
        "Retries": 3}
    assert req.config["ExposedPorts"] == {"53/udp": {}, "80/tcp": {}, "9000/tcp": {}}
    assert "MacAddress" not in req.config  # API >= 1.44: the endpoint carries it
    assert req.host_config["PortBindings"]["80/tcp"] == [{"HostIp": "", "HostPort": "8080"}]
    assert req.host_config["PidsLimit"] == 100 and req.host_config["Init"] is True


#: The docker CLI 28 bodies recorded for the CLI's own tests (``test_cli_run_flags``): one base
#: body and per-argv changes. Each must parse, except these, which dockerd refuses too (or this
#: host cannot honour).
GOLDEN = json.loads((Path(__file__).parent / "golden_cli_run_bodies.json").read_text())
GOLDEN_REFUSED = {
    "create --memory-swap 2g busybox": "You should always set the Memory limit",
    "create --volume-driver foo busybox": "only the local volume driver",
    "create --storage-opt size=1G busybox": "StorageOpt",
    # a one-character volume name: Docker's local driver wants two or more
    "create --mount type=volume,src=v,dst=/v,volume-opt=a=b busybox": "'v' includes invalid",
    "run --mount type=volume,src=v,dst=/v,volume-driver=local,volume-label=a=b busybox":
        "'v' includes invalid",
}


def _golden_body(changes: dict) -> dict:
    body = copy.deepcopy(GOLDEN["base"])
    for key, value in changes.items():
        target, _, sub = key.partition(".")
        holder, name = (body[target], sub) if sub else (body, target)
        if value == "<absent>":
            holder.pop(name, None)
        else:
            holder[name] = value
    return body


@pytest.mark.parametrize("case", GOLDEN["cases"], ids=lambda c: " ".join(c["argv"])[:80])
def test_every_recorded_docker_cli_body_parses(case):
    argv = " ".join(case["argv"])
    body = json.dumps(_golden_body(case["changes"])).encode()
    if argv in GOLDEN_REFUSED:
        with pytest.raises((InvalidArgument, errors.NotImplemented), match=GOLDEN_REFUSED[argv]):
            parse_create(body)
        return
    req = parse_create(body)
    assert req.image == _golden_body(case["changes"])["Image"]
    json.dumps(req.config), json.dumps(req.host_config)


# ---------------------------------------------------------------- body, name, image


@pytest.mark.parametrize("body,match", [
    (b"{", "invalid JSON body"), (b"", "empty"), (b"[1]", "expected an object"),
    (b"\xff\xfe", "not UTF-8"), (b"null", "expected an object"),
])
def test_malformed_bodies_are_refused(body, match):
    with pytest.raises(InvalidArgument, match=match):
        parse_create(body)


def test_missing_or_empty_image():
    with pytest.raises(InvalidArgument, match="Config.Image: no image specified"):
        parse_create({})
    with pytest.raises(InvalidArgument, match="no image specified"):
        parse_create({"Image": ""})


@pytest.mark.parametrize("name,expected", [("web", "web"), ("/web", "web"),
                                           ("a1.b_c-d", "a1.b_c-d")])
def test_valid_names(name, expected):
    assert validate_name(name) == expected
    assert parse_create({"Image": "x"}, name=name).name == expected


@pytest.mark.parametrize("name", ["a", "-web", "_web", "we b", "web/x", "//web", "wéb", "/"])
def test_invalid_names(name):
    with pytest.raises(InvalidArgument, match=r"Invalid container name \(.*\), only "
                       r"\[a-zA-Z0-9\]\[a-zA-Z0-9_.-\] are allowed"):
        parse_create({"Image": "x"}, name=name)


def test_keys_match_case_insensitively_as_in_go():
    req = parse_create({"image": "busybox", "cmd": ["ls"], "hostconfig": {"memory": 8 << 20}})
    assert req.image == "busybox" and req.run.cmd == ("ls",) and req.run.memory == 8 << 20


def test_null_items_are_empty_strings_as_in_go():
    req = create(Cmd=["echo", None], Labels={"a": None})
    assert req.run.cmd == ("echo", "") and req.labels == (("a", ""),)


def test_null_means_absent():
    req = parse_create({"Image": "busybox", "Cmd": None, "Env": None, "Labels": None,
                        "HostConfig": {"Binds": None, "Memory": None, "RestartPolicy": None,
                                       "LogConfig": None, "Init": None}})
    assert req.run.cmd is None and req.mounts == () and req.restart == RestartPolicy()
    assert req.log == LogConfig() and not req.init


# ---------------------------------------------------------------- Config


@pytest.mark.parametrize("value,expected", [
    ("echo hi", ("echo hi",)), (["a", "b"], ("a", "b")), ([], ()), (None, None), ([""], ("",)),
])
def test_cmd_and_entrypoint_are_docker_strslices(value, expected):
    req = create(Cmd=value, Entrypoint=value)
    assert req.run.cmd == expected and req.run.entrypoint == expected


@pytest.mark.parametrize("key,value,match", [
    ("Cmd", 5, r"Cmd: expected a string or an array of strings, got number 5"),
    ("Cmd", ["a", 1], r"Cmd\[1\]: expected a string"),
    ("Entrypoint", {"a": 1}, "Entrypoint: expected a string or an array"),
    ("Env", "A=1", "Env: expected an array of strings"),
    ("Env", ["=x"], r"Config.Env\[0\]: invalid environment variable"),
    ("Tty", "yes", "Tty: expected true or false"),
    ("Hostname", 3, "Hostname: expected a string"),
    ("Labels", {"a": 1}, r"Labels\['a'\]: expected a string"),
    ("Labels", ["a"], "Labels: expected an object of strings"),
    ("StopTimeout", 1.5, "StopTimeout: expected an integer"),
    ("StopTimeout", -5, "StopTimeout: -5 is invalid"),
    ("StopSignal", "SIGFOO", "invalid signal"),
    ("WorkingDir", "srv", "the working directory 'srv' is invalid, it needs to be an absolute"),
    ("Hostname", "x" * 65, "invalid hostname"),
    ("Volumes", ["/data"], "Volumes: expected an object"),
    ("ExposedPorts", {"80/icmp": {}}, "invalid protocol 'icmp'"),
    ("ExposedPorts", {"http": {}}, "invalid port 'http'"),
    ("ExposedPorts", {"70000/tcp": {}}, "invalid port"),
    ("Shell", "sh", "Shell: expected an array of strings"),
])
def test_config_type_errors_name_the_field(key, value, match):
    refused(match, **{key: value})


def test_exposed_port_ranges_and_default_protocol():
    req = create(ExposedPorts={"8000-8002/udp": {}, "22": {}})
    assert req.exposed_ports == (PortSpec(8000, "udp"), PortSpec(8001, "udp"),
                                 PortSpec(8002, "udp"), PortSpec(22, "tcp"))


def test_stop_timeout_and_labels():
    req = create(StopTimeout=0, Labels={"x": "1"}, StopSignal="9")
    assert req.stop_timeout == 0 and req.labels == (("x", "1"),) and req.run.stop_signal == "9"


# ---------------------------------------------------------------- healthcheck


def test_healthcheck_forms():
    cmd = create(Healthcheck={"Test": ["CMD", "curl", "-f", "x"], "Retries": 2}).healthcheck
    assert cmd.test == ("curl", "-f", "x") and cmd.kind == "CMD" and cmd.retries == 2
    assert not cmd.disabled
    none = create(Healthcheck={"Test": ["NONE"]}).healthcheck
    assert none.disabled and none.test == ()
    inherit = create(Healthcheck={"Interval": 30_000_000_000}).healthcheck
    assert inherit.test == () and inherit.kind == "" and inherit.interval == 30.0
    assert not inherit.disabled
    shell = create(Healthcheck={"Test": ["CMD-SHELL", "x"]}, Shell=["/bin/bash", "-c"])
    assert shell.healthcheck.test == ("/bin/bash", "-c", "x")


def test_healthcheck_converts_to_the_engine_record():
    engine = create(Healthcheck={"Test": ["CMD-SHELL", "x"], "Interval": 2_000_000_000}
                    ).healthcheck.to_engine()
    assert engine.test == ("CMD-SHELL", "x") and engine.interval == 2.0 and engine.enabled


def test_healthcheck_start_interval_ignored_before_api_1_44():
    body = {"Image": "x", "Healthcheck": {"Test": ["CMD", "true"], "StartInterval": 5}}
    assert parse_create(body, api_version="1.43").healthcheck.start_interval == 0.0
    with pytest.raises(InvalidArgument, match="StartInterval in Healthcheck cannot be less"):
        parse_create(body)


@pytest.mark.parametrize("health,match", [
    ({"Interval": 999_999}, "Interval in Healthcheck cannot be less than 1ms"),
    ({"Interval": -1_000_000_000}, "Interval in Healthcheck cannot be less than 1ms"),
    ({"Timeout": 5}, "Timeout in Healthcheck cannot be less than 1ms"),
    ({"StartPeriod": -1}, "StartPeriod in Healthcheck cannot be less than 1ms"),
    ({"Retries": -1}, "Retries in Healthcheck cannot be negative"),
    ({"Test": ["CMD"]}, "CMD needs a command"),
    ({"Test": ["CMD-SHELL"]}, "CMD-SHELL takes one command string"),
    ({"Test": ["CMD-SHELL", "a", "b"]}, "CMD-SHELL takes one command string"),
    ({"Test": ["SHELL", "x"]}, "unknown test type 'SHELL'"),
    ({"Test": "CMD true"}, "Test: expected an array of strings"),
    ({"Interval": "5s"}, "Interval: expected an integer"),
    ("x", "Healthcheck: expected a JSON object"),
])
def test_healthcheck_errors(health, match):
    refused(match, Healthcheck=health)


def test_healthcheck_one_millisecond_is_allowed():
    assert create(Healthcheck={"Interval": 1_000_000}).healthcheck.interval == 0.001


# ---------------------------------------------------------------- restart, auto-remove, log


@pytest.mark.parametrize("policy,expected", [
    ({}, RestartPolicy("no", 0)), ({"Name": ""}, RestartPolicy("no", 0)),
    ({"Name": "always"}, RestartPolicy("always", 0)),
    ({"Name": "unless-stopped"}, RestartPolicy("unless-stopped", 0)),
    ({"Name": "on-failure"}, RestartPolicy("on-failure", 0)),
    ({"Name": "on-failure", "MaximumRetryCount": 5}, RestartPolicy("on-failure", 5)),
])
def test_restart_policies(policy, expected):
    req = create({"RestartPolicy": policy})
    assert req.restart == expected
    assert req.host_config["RestartPolicy"] == {"Name": expected.name,
                                                "MaximumRetryCount": expected.max_retries}


@pytest.mark.parametrize("policy,match", [
    ({"Name": "sometimes"}, "invalid restart policy: unknown policy 'sometimes'"),
    ({"Name": "always", "MaximumRetryCount": 2},
     "maximum retry count cannot be used with restart policy 'always'"),
    ({"Name": "no", "MaximumRetryCount": 1},
     "maximum retry count cannot be used with restart policy 'no'"),
    ({"Name": "on-failure", "MaximumRetryCount": -1}, "maximum retry count cannot be negative"),
    ({"Name": "on-failure", "MaximumRetryCount": "3"}, "MaximumRetryCount: expected an integer"),
])
def test_restart_policy_errors(policy, match):
    refused(match, {"RestartPolicy": policy})


def test_auto_remove_conflicts_with_a_restart_policy():
    refused("can't create 'AutoRemove' container with restart policy",
            {"AutoRemove": True, "RestartPolicy": {"Name": "always"}})
    assert create({"AutoRemove": True, "RestartPolicy": {"Name": "no"}}).auto_remove


@pytest.mark.parametrize("log,expected", [
    ({}, LogConfig("json-file", 10 << 20, 3)),
    ({"Type": "local"}, LogConfig("local", 10 << 20, 3)),
    ({"Type": "k8s-file", "Config": {"max-size": "1m"}},
     LogConfig("k8s-file", 1 << 20, 3, (("max-size", "1m"),))),
    ({"Type": "json-file", "Config": {"max-size": "-1"}},
     LogConfig("json-file", 0, 1, (("max-size", "-1"),))),
    ({"Type": "none", "Config": {"whatever": "x"}}, LogConfig("none", 0, 0, (("whatever", "x"),))),
    ({"Config": {"max-file": "7", "compress": "true"}},
     LogConfig("json-file", 10 << 20, 7, (("max-file", "7"), ("compress", "true")))),
])
def test_log_configs(log, expected):
    req = create({"LogConfig": log})
    assert req.log == expected
    assert req.host_config["LogConfig"]["Type"] == expected.type


@pytest.mark.parametrize("log,match", [
    ({"Type": "syslog"}, "logging driver 'syslog' is not supported"),
    ({"Type": "journald"}, "logging driver 'journald'"),
    ({"Config": {"max-size": "abc"}}, "invalid max-size 'abc'"),
    ({"Config": {"max-size": "0"}}, "invalid max-size '0'"),
    ({"Config": {"max-file": "0"}}, "invalid max-file '0'"),
    ({"Config": {"max-file": "x"}}, "invalid max-file 'x'"),
    ({"Config": {"max-file": "-2"}}, "invalid max-file"),
    ({"Config": {"max-size": "-1", "max-file": "3"}}, "max-file can only be set if max-size"),
    ({"Config": {"syslog-address": "udp://x"}}, "unknown log opt 'syslog-address'"),
    ({"Config": {"max-size": 5}}, r"Config\['max-size'\]: expected a string"),
])
def test_log_config_errors(log, match):
    refused(match, {"LogConfig": log})


# ---------------------------------------------------------------- namespaces and network


def test_network_modes():
    assert create({"NetworkMode": "host"}).run.network == "host"
    for mode in ("", "default", "bridge", "none", "mynet"):
        req = create({"NetworkMode": mode})
        assert req.run.network == "none"
        assert req.network_mode == (mode or "default")
        assert req.host_config["NetworkMode"] == (mode or "default")
    req = create({"NetworkMode": "container:web"})
    assert req.network_mode == "container:web" and req.run.network == "none"
    refused("'container:' needs a container", {"NetworkMode": "container:"})


def test_network_disabled_means_no_network_even_with_host_mode():
    req = create({"NetworkMode": "host"}, NetworkDisabled=True)
    assert req.network_disabled and req.run.network == "none" and req.network_mode == "host"
    assert req.config["NetworkDisabled"] is True
    assert "NetworkDisabled" not in create({}).config


def test_pid_ipc_uts_cgroupns_modes():
    req = create({"PidMode": "host", "IpcMode": "host", "UTSMode": "host",
                  "CgroupnsMode": "private"})
    assert (req.run.pid, req.run.ipc, req.run.uts, req.run.cgroupns) == ("host", "host", "host",
                                                                        "private")
    req = create({"PidMode": "container:db", "IpcMode": "container:db"})
    assert req.pid_mode == "container:db" and req.ipc_mode == "container:db"
    assert req.run.pid == "" and req.run.ipc == ""
    req = create({"IpcMode": "shareable"})
    assert req.run.ipc == "shareable" and req.host_config["IpcMode"] == "shareable"
    req = create({})
    assert req.ipc_mode == "private" and req.cgroupns_mode == "host" and req.run.cgroupns == "host"
    assert parse_create({"Image": "x"}, default_cgroupns="private").run.cgroupns == "private"


@pytest.mark.parametrize("host,match", [
    ({"PidMode": "private"}, "HostConfig.PidMode: invalid mode 'private'"),
    ({"PidMode": "container:"}, "HostConfig.PidMode: invalid mode"),
    ({"IpcMode": "bogus"}, "HostConfig.IpcMode: invalid mode 'bogus'"),
    ({"UTSMode": "container:x"}, "HostConfig.UTSMode: invalid mode"),
    ({"CgroupnsMode": "shared"}, "HostConfig.CgroupnsMode: invalid mode"),
    ({"Isolation": "hyperv"}, "Invalid isolation: 'hyperv' - linux only supports 'default'"),
])
def test_namespace_mode_errors(host, match):
    refused(match, host)


@pytest.mark.parametrize("host", [
    {"IpcMode": "none"}, {"UsernsMode": "private"}, {"Cgroup": "container:x"},
    {"StorageOpt": {"size": "1G"}},
    {"DeviceRequests": [{"Driver": "nvidia", "Count": -1}]}, {"VolumeDriver": "nfs"},
    {"CpuRealtimeRuntime": 950000},
])
def test_unsupported_features_are_not_implemented(host):
    with pytest.raises(errors.NotImplemented):
        create(host)


@pytest.mark.parametrize("host,config,match", [
    ({"UTSMode": "host"}, {"Hostname": "box"}, "conflicting options: hostname and the UTS mode"),
    ({"NetworkMode": "container:a"}, {"Hostname": "box"},
     "conflicting options: hostname and the network mode"),
    ({"NetworkMode": "container:a", "Dns": ["1.1.1.1"]}, {}, "dns and the network mode"),
    ({"NetworkMode": "container:a", "DnsSearch": ["x"]}, {}, "dns and the network mode"),
    ({"NetworkMode": "container:a", "ExtraHosts": ["a:1.2.3.4"]}, {},
     "custom host-to-IP mapping and the network mode"),
    ({"NetworkMode": "container:a", "PortBindings": {"80/tcp": [{"HostPort": "80"}]}}, {},
     "port publishing and the container type network mode"),
    ({"NetworkMode": "container:a", "PublishAllPorts": True}, {}, "port publishing"),
    ({"NetworkMode": "container:a"}, {"ExposedPorts": {"80/tcp": {}}},
     "port exposing and the container type network mode"),
    ({"NetworkMode": "container:a"}, {"MacAddress": "02:42:ac:11:00:02"},
     "mac-address and the network mode"),
    ({"NetworkMode": "host", "Links": ["db:db"]}, {}, "host type networking can't be used with"),
    ({"NetworkMode": "container:a", "Links": ["db:db"]}, {}, "container type network can't"),
])
def test_network_conflicts(host, config, match):
    with pytest.raises(InvalidArgument, match=match):
        parse_create({"Image": "x", **config, "HostConfig": host}, api_version="1.43")


def test_host_network_discards_published_ports_with_a_warning():
    req = create({"NetworkMode": "host", "PortBindings": {"80/tcp": [{"HostPort": "80"}]},
                  "PublishAllPorts": True})
    assert req.port_bindings == () and not req.publish_all_ports
    assert req.warnings == ("Published ports are discarded when using host network mode",)
    assert req.host_config["PortBindings"] == {} and req.host_config["PublishAllPorts"] is False


def test_mac_address_from_config_only_before_api_1_44():
    body = {"Image": "x", "MacAddress": "02:42:ac:11:00:09"}
    assert parse_create(body, api_version="1.43").mac_address == "02:42:ac:11:00:09"
    assert parse_create(body).mac_address == ""
    body["NetworkingConfig"] = {"EndpointsConfig": {"bridge": {
        "MacAddress": "02:42:ac:11:00:07", "Aliases": ["web"],
        "IPAMConfig": {"IPv4Address": "172.17.0.9"}}}}
    req = parse_create(body)
    assert req.mac_address == "02:42:ac:11:00:07"
    assert req.endpoints == (EndpointRequest("bridge", ("web",), "172.17.0.9", "",
                                             "02:42:ac:11:00:07"),)


def test_port_bindings():
    req = create({"PortBindings": {
        "80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}, {"HostIp": "::1", "HostPort": ""}],
        "53/udp": [{"HostPort": "5300-5310"}],
        "7000-7001": [{"HostPort": "9000-9001"}],
        "7100-7101": [{}],
    }, "PublishAllPorts": True})
    assert req.port_bindings == (
        PortBinding(80, "tcp", "0.0.0.0", 8080, 8080), PortBinding(80, "tcp", "::1", 0, 0),
        PortBinding(53, "udp", "", 5300, 5310),
        PortBinding(7000, "tcp", "", 9000, 9000), PortBinding(7001, "tcp", "", 9001, 9001),
        PortBinding(7100, "tcp", "", 0, 0), PortBinding(7101, "tcp", "", 0, 0),
    )
    assert req.publish_all_ports


@pytest.mark.parametrize("bindings,match", [
    ({"80/tcp": [{"HostIp": "localhost", "HostPort": "80"}]}, "invalid IP address 'localhost'"),
    ({"80/tcp": [{"HostPort": "http"}]}, "invalid port 'http'"),
    ({"80/tcp": [{"HostPort": "99999"}]}, "invalid port"),
    ({"80/tcp": [{"HostPort": "90-80"}]}, "invalid port"),
    ({"0/tcp": [{"HostPort": "80"}]}, "0 is not a container port"),
    ({"7000-7001/tcp": [{"HostPort": "9000-9005"}]}, "does not match container port range"),
    ({"80/tcp": {"HostPort": "80"}}, "expected an array of objects"),
    ({"80/tcp": [{"HostPort": 80}]}, "HostPort: expected a string"),
    (["80/tcp"], "PortBindings: expected an object"),
])
def test_port_binding_errors(bindings, match):
    refused(match, {"PortBindings": bindings})


def test_extra_hosts_and_dns():
    req = create({"ExtraHosts": ["db:10.0.0.2", "v6:::1", "gw=host-gateway", "b6:[fe80::1]"],
                  "Dns": ["8.8.8.8", "2001:4860:4860::8888"], "DnsSearch": ["a.b"],
                  "DnsOptions": ["ndots:1"]})
    assert req.extra_hosts == ("db:10.0.0.2", "v6:::1", "gw:host-gateway", "b6:fe80::1")
    assert req.dns == ("8.8.8.8", "2001:4860:4860::8888")


@pytest.mark.parametrize("host,match", [
    ({"ExtraHosts": ["db"]}, "invalid extra host 'db'"),
    ({"ExtraHosts": ["db:notanip"]}, "invalid IP address"),
    ({"ExtraHosts": [":1.2.3.4"]}, "invalid extra host"),
    ({"ExtraHosts": "db:1.2.3.4"}, "ExtraHosts: expected an array of strings"),
    ({"Dns": ["one.one.one.one"]}, "invalid nameserver"),
])
def test_extra_host_and_dns_errors(host, match):
    refused(match, host)


# ---------------------------------------------------------------- resources


def test_resources_fill_run_options():
    req = create({"Memory": 64 << 20, "MemorySwap": -1, "MemoryReservation": 32 << 20,
                  "OomKillDisable": True, "CpuPeriod": 50000, "CpuQuota": 25000,
                  "CpusetMems": "0", "PidsLimit": -1, "Privileged": True,
                  "OomScoreAdj": -500, "ShmSize": 1 << 20, "CgroupParent": "/custom",
                  "Annotations": {"k": "v"}, "GroupAdd": ["audio"], "ConsoleSize": [24, 80],
                  "MemorySwappiness": 10, "Runtime": "runc", "Init": False})
    run = req.run
    assert (run.memory, run.memory_swap, run.memory_reservation) == (64 << 20, -1, 32 << 20)
    assert run.oom_kill_disable and run.cpu_period == 50000 and run.cpu_quota == 25000
    assert run.cpuset_mems == "0" and run.pids_limit == 0 and run.privileged
    assert run.oom_score_adj == -500 and run.shm_size == 1 << 20
    assert run.cgroup_parent == "/custom" and run.annotations == (("k", "v"),)
    assert run.group_add == ("audio",) and run.console_size == (24, 80)
    assert req.memory_swappiness == 10 and req.runtime == "runc" and not req.init
    assert req.host_config["MaskedPaths"] is None  # privileged: nothing masked
    assert req.host_config["Init"] is False and req.host_config["PidsLimit"] is None


def test_default_cgroup_parent_kept_when_not_given():
    assert create({}).run.cgroup_parent == "/dockyard"


@pytest.mark.parametrize("host,match", [
    ({"Memory": -1}, r"HostConfig.Memory: -1 is invalid: cannot be negative"),
    ({"Memory": 1024}, "Minimum memory limit allowed is 6MB"),
    ({"Memory": "64m"}, "HostConfig.Memory: expected an integer, got string"),
    ({"Memory": 1.5}, "HostConfig.Memory: expected an integer"),
    ({"Memory": True}, "HostConfig.Memory: expected an integer, got boolean"),
    ({"MemorySwap": -2}, "MemorySwap: -2 is invalid"),
    ({"MemorySwap": 64 << 20}, "You should always set the Memory limit when using Memoryswap"),
    ({"Memory": 64 << 20, "MemorySwap": 32 << 20}, "Minimum memoryswap limit should be larger"),
    ({"MemoryReservation": 1024}, "Minimum memory reservation allowed is 6MB"),
    ({"Memory": 16 << 20, "MemoryReservation": 32 << 20},
     "Minimum memory limit can not be less than memory reservation limit"),
    ({"MemorySwappiness": 101}, "valid memory swappiness range is 0-100"),
    ({"NanoCpus": -1}, "NanoCpus: -1 is invalid"),
    ({"NanoCpus": 10**9, "CpuQuota": 50000}, "Nano CPUs and CPU Period/Quota cannot both"),
    ({"CpuPeriod": 500}, "CPU cfs period can not be less than 1ms"),
    ({"CpuQuota": 10}, "CPU cfs quota can not be less than 1ms"),
    ({"CpuShares": -2}, "CpuShares: -2 is invalid"),
    ({"CpusetCpus": "0-"}, "Invalid value 0- for cpuset cpus"),
    ({"CpusetMems": "a"}, "Invalid value a for cpuset mems"),
    ({"BlkioWeight": 5}, "Range of blkio weight is from 10 to 1000"),
    ({"OomScoreAdj": 1001}, r"Invalid value 1001, range for oom score adj is \[-1000, 1000\]"),
    ({"ShmSize": -1}, "SHM size can not be less than 0"),
    ({"Ulimits": [{"Name": "nofile", "Soft": 10, "Hard": 5}]}, "soft limit must be less than"),
    ({"Ulimits": [{"Soft": 1, "Hard": 1}]}, "invalid ulimit type: ''"),
    ({"Ulimits": [{"Name": "files", "Soft": 1, "Hard": 1}]}, "invalid ulimit type: 'files'"),
    ({"Ulimits": [{"Name": "nproc", "Soft": 1, "Hard": 1}] * 2}, "a ulimit is given twice"),
    ({"Ulimits": [{"Name": "nproc", "Soft": -2, "Hard": 1}]}, r"Soft: -2 is invalid"),
    ({"Sysctls": {"kernel.panic": "1"}}, "sysctl 'kernel.panic' is not allowed: it is not "
     "namespaced"),
    ({"Sysctls": {"vm.swappiness": "1"}}, "not namespaced"),
    ({"Sysctls": {"net.ipv4.ip_forward": "1"}, "NetworkMode": "host"},
     "sysctl 'net.ipv4.ip_forward' is not allowed with the network mode 'host'"),
    ({"Sysctls": {"net.core.somaxconn": "1"}, "NetworkMode": "container:x"}, "network mode"),
    ({"Sysctls": {"kernel.shmmax": "1"}, "IpcMode": "host"}, "with the IPC mode 'host'"),
    ({"Sysctls": {"fs.mqueue.msg_max": "1"}, "IpcMode": "container:x"}, "IPC mode"),
    ({"Sysctls": {"kernel.domainname": "x"}, "UTSMode": "host"}, "UTS mode 'host'"),
    ({"Sysctls": {"../x": "1"}}, "invalid sysctl name"),
    ({"CapAdd": ["CAP_BOGUS"]}, "unknown capability"),
    ({"CapDrop": "ALL"}, "CapDrop: expected an array of strings"),
    ({"Sysctls": {"net.core.somaxconn": 5}}, r"Sysctls\['net.core.somaxconn'\]: expected a"),
    ({"ConsoleSize": [24]}, r"ConsoleSize: expected \[height, width\]"),
    ({"CgroupParent": "/a/../b"}, "'..' is not allowed"),
    ({"Privileged": "true"}, "Privileged: expected true or false"),
    ("nope", "HostConfig: expected a JSON object"),
])
def test_resource_errors_name_the_field(host, match):
    refused(match, host)


def test_namespaced_sysctls_and_unlimited_ulimits_are_accepted():
    req = create({"Sysctls": {"net.ipv4.ip_forward": "1", "kernel.shmmax": "1",
                              "fs.mqueue.msg_max": "10", "kernel.domainname": "x"},
                  "Ulimits": [{"Name": "memlock", "Soft": -1, "Hard": -1}]})
    assert dict(req.run.sysctls)["net.ipv4.ip_forward"] == "1"
    assert req.run.ulimits == (Ulimit("memlock", -1, -1),)


def test_systempaths_unconfined_unmasks_everything():
    req = create({"SecurityOpt": ["systempaths=unconfined"]})
    assert req.masked_paths == () and req.readonly_paths == ()
    assert req.host_config["MaskedPaths"] == [] and req.host_config["ReadonlyPaths"] == []
    req = create({"MaskedPaths": ["/proc/kcore"], "ReadonlyPaths": []})
    assert req.masked_paths == ("/proc/kcore",) and req.readonly_paths == ()
    assert create({}).masked_paths is None  # Docker's defaults


def test_windows_only_resources_are_ignored_with_a_warning():
    req = create({"CpuCount": 2, "KernelMemory": 1 << 30})
    assert req.warnings == ("HostConfig.KernelMemory is not supported on Linux and was ignored",
                            "HostConfig.CpuCount is not supported on Linux and was ignored")


def test_devices_and_block_io():
    req = create({"Devices": [{"PathOnHost": "/dev/null"},
                              {"PathOnHost": "/dev/sda", "PathInContainer": "/dev/xvda",
                               "CgroupPermissions": "r"}],
                  "DeviceCgroupRules": ["c 1:3 rwm", "b *:* r"],
                  "BlkioDeviceWriteBps": [{"Path": "/dev/sda", "Rate": 100}],
                  "BlkioDeviceReadIOps": [{"Path": "/dev/sda", "Rate": 10}],
                  "BlkioDeviceWriteIOps": [{"Path": "/dev/sdb", "Rate": 20}],
                  "BlkioWeightDevice": [{"Path": "/dev/sda", "Weight": 200}]})
    assert req.devices == (DeviceMapping("/dev/null", "/dev/null", "rwm"),
                           DeviceMapping("/dev/sda", "/dev/xvda", "r"))
    assert req.device_cgroup_rules == ("c 1:3 rwm", "b *:* r")
    assert req.device_write_bps == (ThrottleDevice("/dev/sda", 100),)
    assert req.device_read_iops == (ThrottleDevice("/dev/sda", 10),)
    assert req.device_write_iops == (ThrottleDevice("/dev/sdb", 20),)
    assert req.blkio_weight_devices == (WeightDevice("/dev/sda", 200),)


@pytest.mark.parametrize("host,match", [
    ({"Devices": [{"PathOnHost": "dev/null"}]}, "device path on host 'dev/null' must be absolute"),
    ({"Devices": [{"PathOnHost": "/dev/null", "PathInContainer": "x"}]}, "in container 'x'"),
    ({"Devices": [{"PathOnHost": "/dev/null", "CgroupPermissions": "rx"}]},
     "invalid device cgroup permissions 'rx'"),
    ({"DeviceCgroupRules": ["c 1:3"]}, "invalid device cgroup rule"),
    ({"BlkioDeviceReadBps": [{"Path": "/dev/sda", "Rate": -1}]}, r"Rate: -1 is invalid"),
    ({"BlkioDeviceReadBps": [{"Path": "sda", "Rate": 1}]}, "device path 'sda' must be absolute"),
    ({"BlkioWeightDevice": [{"Path": "/dev/sda", "Weight": 5}]}, "Range of blkio weight"),
    ({"Devices": ["/dev/null"]}, r"Devices\[0\]: expected a JSON object"),
])
def test_device_errors(host, match):
    refused(match, host)


# ---------------------------------------------------------------- security options


@pytest.mark.parametrize("opts,nnp,unconfined,profile", [
    (["no-new-privileges"], True, False, ""),
    (["no-new-privileges:true"], True, False, ""),
    (["no-new-privileges=true", "no-new-privileges:false"], False, False, ""),
    (["seccomp=unconfined"], False, True, ""),
    (['seccomp={"defaultAction": "SCMP_ACT_ALLOW"}'], False, False,
     '{"defaultAction": "SCMP_ACT_ALLOW"}'),
    (["apparmor=unconfined"], False, False, ""),
    (["label=disable", "label:disable"], False, False, ""),
    (["seccomp:unconfined"], False, True, ""),
])
def test_security_options(opts, nnp, unconfined, profile):
    req = create({"SecurityOpt": opts})
    assert req.run.no_new_privileges is nnp
    assert req.seccomp_unconfined is unconfined and req.seccomp_profile == profile


@pytest.mark.parametrize("opt", ["label=type:svirt_t", "label:level:s0", "label=user:u",
                                 "apparmor=docker-default"])
def test_lsm_options_are_not_implemented(opt):
    with pytest.raises(errors.NotImplemented, match="SELinux|AppArmor"):
        create({"SecurityOpt": [opt]})


@pytest.mark.parametrize("opt", ["bogus", "seccomp=/etc/profile.json", "no-new-privileges=maybe",
                                 "seccomp"])
def test_unknown_security_options_are_refused(opt):
    refused("SecurityOpt", {"SecurityOpt": [opt]})


# ---------------------------------------------------------------- mounts


def test_bind_and_volume_specs():
    req = create({"Binds": ["/host/a/:/a:ro,rshared", "data:/b", "data2:/c:ro,nocopy,z",
                            "/d", "/h:/e:Z,rw,delegated"]})
    assert req.mounts == (
        MountRequest("bind", "/a", "/host/a", True, "rshared", create_mountpoint=True,
                     create_source=True, origin="binds", mode="ro,rshared"),
        MountRequest("volume", "/b", "data", origin="binds"),
        MountRequest("volume", "/c", "data2", True, nocopy=True, origin="binds",
                     mode="ro,nocopy,z"),
        MountRequest("volume", "/d", origin="binds"),
        MountRequest("bind", "/e", "/h", create_mountpoint=True, create_source=True,
                     origin="binds", mode="Z,rw,delegated"),
    )


@pytest.mark.parametrize("spec,match", [
    ("/a:b", "'b' mount path must be absolute"),
    ("/a:/", "destination can't be '/'"),
    ("/a:/b:c:d", "invalid volume specification: '/a:/b:c:d'"),
    ("/a::/b", "invalid volume specification"),
    ("/a:/b:xyz", "invalid mode: xyz"),
    ("/a:/b:ro,rw", "invalid mode: ro,rw"),
    ("/a:/b:shared,slave", "invalid mode"),
    ("/a:/b:nocopy", "'nocopy' applies to volumes"),
    ("vol:/b:rshared", "propagation mode 'rshared' applies to bind mounts"),
    ("./rel:/b", "includes invalid characters for a local volume name"),
    ("a:/b", "includes invalid characters"),
    ("my vol:/b", "includes invalid characters"),
    ("relative", "mount path must be absolute"),
])
def test_bind_errors(spec, match):
    refused(match, {"Binds": [spec]})


def test_duplicate_mount_points_are_refused_across_sources():
    refused("Duplicate mount point: /data", {"Binds": ["/a:/data", "/b:/data/"]})
    refused("Duplicate mount point: /data",
            {"Binds": ["/a:/data"], "Mounts": [{"Type": "volume", "Target": "/data"}]})
    refused("Duplicate mount point: /run",
            {"Mounts": [{"Type": "tmpfs", "Target": "/run"}], "Tmpfs": {"/run": ""}})


def test_config_volumes_become_anonymous_volumes_unless_mounted():
    req = create({"Binds": ["/h:/data"]}, Volumes={"/data": {}, "/cache": {}, "/data/": {}})
    assert [(m.kind, m.destination, m.source, m.origin) for m in req.mounts] == [
        ("bind", "/data", "/h", "binds"), ("volume", "/cache", "", "volumes")]
    refused("mount path must be absolute", Volumes={"cache": {}})


def test_mounts_api():
    req = create({"Mounts": [
        {"Type": "bind", "Source": "/srv", "Target": "/srv", "ReadOnly": True,
         "BindOptions": {"Propagation": "rslave", "CreateMountpoint": True,
                         "NonRecursive": True}},
        {"Type": "bind", "Source": "/opt", "Target": "/opt"},
        {"Type": "bind", "Source": "/ro", "Target": "/ro", "ReadOnly": True,
         "BindOptions": {"ReadOnlyForceRecursive": True}},
        {"Type": "volume", "Target": "/anon"},
        {"Type": "volume", "Source": "vol", "Target": "/v", "VolumeOptions": {
            "NoCopy": True, "Labels": {"a": "b"}, "Subpath": "sub/dir",
            "DriverConfig": {"Name": "local", "Options": {"type": "tmpfs"}}}},
        {"Type": "tmpfs", "Target": "/t", "ReadOnly": True,
         "TmpfsOptions": {"SizeBytes": 65536, "Mode": 0o700}},
    ]})
    assert req.mounts == (
        MountRequest("bind", "/srv", "/srv", True, "rslave", non_recursive=True,
                     create_mountpoint=True, create_source=True, origin="mounts"),
        MountRequest("bind", "/opt", "/opt", origin="mounts"),
        MountRequest("bind", "/ro", "/ro", True, read_only_force_recursive=True,
                     origin="mounts"),
        MountRequest("volume", "/anon", origin="mounts"),
        MountRequest("volume", "/v", "vol", nocopy=True, labels=(("a", "b"),), driver="local",
                     driver_options=(("type", "tmpfs"),), subpath="sub/dir", origin="mounts"),
        MountRequest("tmpfs", "/t", read_only=True, tmpfs_size=65536, tmpfs_mode=0o700,
                     tmpfs_options=("noexec", "nosuid", "nodev", "ro", "size=65536", "mode=700"),
                     origin="mounts"),
    )
    assert req.host_config["Mounts"][0]["BindOptions"]["Propagation"] == "rslave"


@pytest.mark.parametrize("mount,match", [
    ({"Type": "bind", "Target": "/x"}, 'type "bind".*field Source must not be empty'),
    ({"Type": "bind", "Source": "rel", "Target": "/x"}, "must be an absolute path"),
    ({"Type": "bind", "Source": "/a"}, "field Target must not be empty"),
    ({"Type": "bind", "Source": "/a", "Target": "x"}, "mount path must be absolute"),
    ({"Type": "bind", "Source": "/a", "Target": "/"}, "destination can't be '/'"),
    ({"Type": "bind", "Source": "/a", "Target": "/x", "BindOptions": {"Propagation": "weird"}},
     "invalid propagation mode: weird"),
    ({"Type": "bind", "Source": "/a", "Target": "/x", "VolumeOptions": {}},
     "field VolumeOptions must not be specified"),
    ({"Type": "bind", "Source": "/a", "Target": "/x",
      "BindOptions": {"ReadOnlyNonRecursive": True}}, "need ReadOnly"),
    ({"Type": "bind", "Source": "/a", "Target": "/x", "ReadOnly": True,
      "BindOptions": {"ReadOnlyNonRecursive": True, "ReadOnlyForceRecursive": True}},
     "conflict"),
    ({"Type": "volume", "Target": "/x", "BindOptions": {}}, "field BindOptions must not be"),
    ({"Type": "volume", "Source": "/abs", "Target": "/x"}, "invalid characters"),
    ({"Type": "volume", "Target": "/x", "VolumeOptions": {"Subpath": "../up"}},
     "must be a relative path within the volume"),
    ({"Type": "volume", "Target": "/x", "VolumeOptions": {"Subpath": "/abs"}},
     "must be a relative path"),
    ({"Type": "tmpfs", "Source": "x", "Target": "/x"}, "field Source must not be specified"),
    ({"Type": "tmpfs", "Target": "/x", "TmpfsOptions": {"SizeBytes": -1}},
     r"SizeBytes: -1 is invalid"),
    ({"Type": "tmpfs", "Target": "/x", "TmpfsOptions": {"Mode": 0o17777}}, "Mode: .* out of range"),
    ({"Type": "tmpfs", "Target": "/x", "VolumeOptions": {}}, "field VolumeOptions must not"),
    ({"Type": "weird", "Target": "/x"}, "mount type unknown"),
    ({"Target": "/x"}, "mount type unknown"),
    ({"Type": "bind", "Source": "/a", "Target": "/x", "ReadOnly": "yes"},
     "ReadOnly: expected true or false"),
])
def test_mounts_api_errors(mount, match):
    refused(match, {"Mounts": [mount]})


@pytest.mark.parametrize("mount", [
    {"Type": "npipe", "Source": "x", "Target": "/x"},
    {"Type": "volume", "Target": "/x", "VolumeOptions": {"DriverConfig": {"Name": "nfs"}}},
])
def test_mounts_api_unsupported(mount):
    with pytest.raises(errors.NotImplemented):
        create({"Mounts": [mount]})


@pytest.mark.parametrize("opts,size,mode,options,ro", [
    ("", 0, None, ("noexec", "nosuid", "nodev"), False),
    ("rw,noexec,size=64m", 64 << 20, None, ("nosuid", "nodev", "rw", "noexec", "size=64m"), False),
    ("exec,size=1G,mode=1777", 1 << 30, 0o1777, ("nosuid", "nodev", "exec", "size=1G",
                                                 "mode=1777"), False),
    ("ro,size=100k,uid=1000,gid=1000", 100 << 10, None,
     ("noexec", "nosuid", "nodev", "ro", "size=100k", "uid=1000", "gid=1000"), True),
    ("size=1m,size=2m", 2 << 20, None, ("noexec", "nosuid", "nodev", "size=2m"), False),
    ("size=50%", 0, None, ("noexec", "nosuid", "nodev", "size=50%"), False),
    ("defaults,suid,nr_inodes=1k", 0, None, ("noexec", "nodev", "suid", "nr_inodes=1k"), False),
])
def test_tmpfs_options(opts, size, mode, options, ro):
    (m,) = create({"Tmpfs": {"/run": opts}}).mounts
    assert (m.kind, m.destination, m.tmpfs_size, m.tmpfs_mode) == ("tmpfs", "/run", size, mode)
    assert m.tmpfs_options == options and m.read_only is ro and m.origin == "tmpfs"


@pytest.mark.parametrize("tmpfs,match", [
    ({"/run": "size=abc"}, "invalid tmpfs size 'abc'"),
    ({"/run": "size=-1m"}, "invalid tmpfs size"),
    ({"/run": "mode=999"}, "invalid tmpfs mode '999'"),
    ({"/run": "mode=rwx"}, "invalid tmpfs mode"),
    ({"/run": "bogus"}, "invalid tmpfs option 'bogus'"),
    ({"/run": "color=red"}, "invalid tmpfs option 'color=red'"),
    ({"/run": "uid=root"}, "invalid tmpfs option 'uid=root'"),
    ({"run": ""}, "mount path must be absolute"),
    ({"/": ""}, "destination can't be '/'"),
    ({"/run": 5}, r"Tmpfs\['/run'\]: expected a string"),
])
def test_tmpfs_errors(tmpfs, match):
    refused(match, {"Tmpfs": tmpfs})


def test_mount_errors_name_the_entry():
    with pytest.raises(InvalidArgument, match=r"^HostConfig.Binds\[1\]: invalid volume spec"):
        create({"Binds": ["/a:/a", "/b:/b:bogus"]})
    with pytest.raises(InvalidArgument, match=r"^HostConfig.Mounts\[1\]: invalid mount config"):
        create({"Mounts": [{"Type": "tmpfs", "Target": "/t"}, {"Type": "bind", "Target": "/x"}]})
    with pytest.raises(InvalidArgument, match=r"^HostConfig.Tmpfs\['/t'\]: invalid tmpfs"):
        create({"Tmpfs": {"/t": "nope"}})
    with pytest.raises(InvalidArgument, match=r"^HostConfig.Mounts\[0\].TmpfsOptions.Mode"):
        create({"Mounts": [{"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"Mode": "0700"}}]})


def test_volumes_from():
    assert create({"VolumesFrom": ["a", "b:ro", "c:rw"]}).volumes_from == ("a", "b:ro", "c:rw")
    refused("invalid volumes-from 'a:rx'", {"VolumesFrom": ["a:rx"]})
    refused("invalid volumes-from", {"VolumesFrom": [":ro"]})
