"""Pure parts of the container engine: the state machine, docker's Status text, list filters,
``docker top`` parsing, the image-config merge, runtime-spec mounts, --init and image volumes."""

from __future__ import annotations

import types

import pytest

from dockyard.engine.create_request import parse_create
from dockyard.engine.filters import parse_filters, select
from dockyard.engine.model import State, docker_state, rfc3339, status_text
from dockyard.engine.mounts import docker_mounts, spec_mounts
from dockyard.engine.top import parse_ps
from dockyard.engine.views import merged_config
from dockyard.errors import Conflict, InvalidArgument
from dockyard.oci.image_config import ContainerConfig, ImageConfig


def test_state_machine_allows_only_listed_transitions():
    s = State()
    r = s.to("running", pid=5, started_at=100.0)
    assert r.status == "running" and r.pid == 5 and r.running
    p = r.to("paused")
    assert p.running and p.to("running").status == "running"
    with pytest.raises(Conflict, match="created cannot become paused"):
        s.to("paused")
    with pytest.raises(Conflict):
        r.to("created")
    assert State.from_json(p.to_json()) == p


def test_status_text_like_docker_ps():
    now = 1000.0
    run = State(status="running", started_at=now - 3)
    assert status_text(run, None, now) == "Up 3 seconds"
    assert status_text(run, "healthy", now) == "Up 3 seconds (healthy)"
    assert status_text(run, "starting", now) == "Up 3 seconds (health: starting)"
    assert status_text(State(status="paused", started_at=now - 120), None, now) == \
        "Up 2 minutes (Paused)"
    assert status_text(State(status="exited", exit_code=3, finished_at=now - 1), None, now) == \
        "Exited (3) 1 second ago"
    assert status_text(State(), None, now) == "Created"
    assert status_text(State(status="removing"), None, now) == "Removal In Progress"


def test_docker_state_and_times():
    st = docker_state(State(status="exited", exit_code=137, oom_killed=True,
                            started_at=1.5, finished_at=0), None)
    assert st["Status"] == "exited" and not st["Running"] and st["OOMKilled"]
    assert st["ExitCode"] == 137 and st["FinishedAt"] == "0001-01-01T00:00:00Z"
    assert st["StartedAt"] == "1970-01-01T00:00:01.500000000Z"
    assert "Health" not in st
    assert rfc3339(0) == "0001-01-01T00:00:00Z"


def _container(cid, name, status="running", created=0.0, labels=None, exit_code=0, image="img"):
    req = parse_create({"Image": "busybox", "Labels": labels or {}})
    return types.SimpleNamespace(id=cid, name=name, created=created, image_id=image,
                                 state=State(status=status, exit_code=exit_code),
                                 config={"Labels": labels or {}}, health=None, volumes={},
                                 req=req)


def _select(cs, **kw):
    filters = parse_filters(kw.pop("filters", None))
    return [c.name for c in select(cs, include_stopped=kw.pop("all", False),
                                   limit=kw.pop("limit", -1), filters=filters,
                                   image_matches=lambda a, i: a == i,
                                   resolve=lambda r: next(c for c in cs if c.name == r))]


def test_filters_select_like_docker_ps():
    cs = [_container("c3", "web", created=3, labels={"tier": "front"}),
          _container("b2", "db", status="exited", created=2, exit_code=1, image="pg"),
          _container("a1", "cache", status="paused", created=1, labels={"tier": "back"})]
    assert _select(cs) == ["web", "cache"]
    assert _select(cs, all=True) == ["web", "db", "cache"]
    assert _select(cs, filters='{"status":["exited"]}') == ["db"]
    assert _select(cs, filters='{"exited":["1"]}') == ["db"]
    assert _select(cs, filters='{"name":{"^/?c":true}}', all=True) == ["cache"]
    assert _select(cs, filters='{"label":["tier=front"]}') == ["web"]
    assert _select(cs, filters='{"label":["tier"]}') == ["web", "cache"]
    assert _select(cs, filters='{"ancestor":["pg"]}', all=True) == ["db"]
    assert _select(cs, filters='{"id":["b"]}', all=True) == ["db"]
    assert _select(cs, filters='{"before":["web"]}') == ["db", "cache"]
    assert _select(cs, limit=1) == ["web"]
    with pytest.raises(InvalidArgument, match="invalid filter 'bogus'"):
        _select(cs, filters='{"bogus":["x"]}')
    with pytest.raises(InvalidArgument, match="status=sleeping"):
        _select(cs, filters='{"status":["sleeping"]}')


def test_parse_ps_keeps_the_container_rows_and_the_whole_command():
    out = ("UID   PID  PPID  C STIME TTY  TIME     CMD\n"
           "root    1     0  0 10:00 ?    00:00:01 /sbin/init splash\n"
           "root  420     1  0 10:01 ?    00:00:00 sleep 1000 --and args\n")
    titles, rows = parse_ps(out, {420})
    assert titles[1] == "PID" and rows == [["root", "420", "1", "0", "10:01", "?", "00:00:00",
                                            "sleep 1000 --and args"]]
    with pytest.raises(InvalidArgument, match="PID"):
        parse_ps("USER COMMAND\nroot x\n", {1})


def test_merged_config_takes_the_image_defaults():
    image = ImageConfig(architecture="amd64", os="linux", config=ContainerConfig(
        env=("PATH=/bin", "A=image"), cmd=("httpd",), working_dir="/www", user="www",
        labels=(("l", "image"),), volumes=("/data",), stop_signal="SIGQUIT"))
    req = parse_create({"Image": "x", "Env": ["A=mine"], "Labels": {"m": "1"}})
    cfg = merged_config(req, image, hostname="abc")
    assert cfg["Env"] == ["A=mine", "PATH=/bin"] and cfg["Cmd"] == ["httpd"]
    assert cfg["WorkingDir"] == "/www" and cfg["User"] == "www" and cfg["Hostname"] == "abc"
    assert cfg["Labels"] == {"l": "image", "m": "1"} and "/data" in cfg["Volumes"]
    assert cfg["StopSignal"] == "SIGQUIT"
    given = merged_config(parse_create({"Image": "x", "Entrypoint": ["sh"]}), image,
                          hostname="abc")
    assert given["Entrypoint"] == ["sh"] and not given["Cmd"]  # an entrypoint drops the Cmd


def test_spec_mounts_binds_tmpfs_and_volumes(tmp_path):
    src = tmp_path / "made"
    req = parse_create({"Image": "x", "HostConfig": {
        "Binds": [f"{src}:/data:ro", "named:/vol"], "Tmpfs": {"/run": "size=1m"}}})
    mounts = spec_mounts(req.mounts, {"/vol": "/var/lib/v/_data"})
    assert src.is_dir()  # -v creates a missing host directory, as docker
    by = {m.destination: m for m in mounts}
    assert by["/data"].type == "bind" and "ro" in by["/data"].options
    assert "rbind" in by["/data"].options and "rprivate" in by["/data"].options
    assert by["/vol"].source == "/var/lib/v/_data"
    assert by["/run"].type == "tmpfs" and "size=1m" in by["/run"].options
    shown = docker_mounts(req.mounts, {"/vol": "/var/lib/v/named/_data"})
    assert [m["Destination"] for m in shown] == ["/data", "/vol"]  # --tmpfs is not listed


def test_mount_type_bind_with_a_missing_source_is_an_error(tmp_path):
    req = parse_create({"Image": "x", "HostConfig": {"Mounts": [
        {"Type": "bind", "Source": str(tmp_path / "nope"), "Target": "/x"}]}})
    with pytest.raises(InvalidArgument, match="does not exist"):
        spec_mounts(req.mounts, {})
    assert not (tmp_path / "nope").exists()


def test_image_volumes_and_init():
    from dockyard.engine.create_opts import INIT_PATH, with_image_volumes, with_init

    image = ImageConfig(architecture="amd64", os="linux", config=ContainerConfig(
        cmd=("sh",), volumes=("/data", "/logs")))
    req = parse_create({"Image": "x", "HostConfig": {"Binds": ["/tmp:/logs"]}})
    out = with_image_volumes(req, image)
    vols = [m for m in out.mounts if m.origin == "image"]
    assert [m.destination for m in vols] == ["/data"] and vols[0].source == ""
    opts = with_init(req.run, image)
    assert opts.entrypoint[:2] == (INIT_PATH, "--") and opts.entrypoint[2:] == ("sh",)
    assert any(m.destination == INIT_PATH and "ro" in m.options for m in opts.mounts)
