"""``/events`` end to end: a real daemon, the real docker CLI (``docker events --since/--until
--filter``) and a raw streaming client that sees an event while the stream is open."""

from __future__ import annotations

import json
import shutil
import socket
import time
from pathlib import Path

import pytest
from daemon_util import Daemon, daemon_fixture

pytestmark = [
    pytest.mark.skipif(not Path("/bin/busybox").exists(), reason="needs host /bin/busybox"),
    pytest.mark.skipif(shutil.which("docker") is None, reason="needs the docker CLI"),
]

daemon = daemon_fixture()


def events(d: Daemon, since: str, *filters: str) -> list[dict]:
    args = ["events", "--since", since, "--until", f"{time.time():.9f}", "--format", "{{json .}}"]
    for flt in filters:
        args += ["--filter", flt]
    out = d.docker(*args, timeout=30).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_docker_events_shows_tag_untag_and_delete(daemon: Daemon) -> None:
    since = f"{time.time():.9f}"
    image_id = daemon.json("GET", "/images/busybox/json")["Id"]
    daemon.docker("tag", "busybox", "evt:1")
    daemon.docker("rmi", "evt:1")
    got = events(daemon, since, "type=image")
    assert [(e["Action"], e["Actor"]["Attributes"]["name"]) for e in got] == [
        ("tag", "evt:1"), ("untag", image_id)]
    tag = got[0]
    assert tag["Type"] == "image" and tag["Actor"]["ID"] == image_id
    assert tag["status"] == "tag" and tag["id"] == image_id and tag["scope"] == "local"
    assert tag["time"] == tag["timeNano"] // 10**9

    # the default human format, and filters the CLI passes through
    out = daemon.docker("events", "--since", since, "--until", f"{time.time():.9f}",
                        "--filter", "event=tag").stdout
    assert f"image tag {image_id} (name=evt:1)" in out
    assert events(daemon, since, "type=container") == []
    assert [e["Action"] for e in events(daemon, since, "image=evt")] == ["tag"]


def test_save_load_and_delete_events(daemon: Daemon, tmp_path: Path) -> None:
    image_id = daemon.json("GET", "/images/busybox/json")["Id"]
    since = f"{time.time():.9f}"
    archive = tmp_path / "bb.tar"
    daemon.docker("tag", "busybox", "gone:1")
    daemon.docker("save", "-o", str(archive), "busybox")
    daemon.docker("load", "-i", str(archive))
    got = events(daemon, since, "type=image", "event=save", "event=load")
    assert [(e["Action"], e["Actor"]["ID"]) for e in got] == [("save", image_id),
                                                              ("load", image_id)]
    # removing the tag the save did not touch: one untag
    daemon.docker("rmi", "gone:1")
    assert [e["Action"] for e in events(daemon, since, "event=untag")] == ["untag"]


def _open_stream(d: Daemon, query: str) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(20)
    s.connect(str(d.sock))
    s.sendall(f"GET /v1.45/events{query} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    return s


def _read_until(s: socket.socket, marker: bytes) -> bytes:
    buf = b""
    while marker not in buf:
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
    return buf


def test_live_stream_delivers_an_event_while_open(daemon: Daemon) -> None:
    from urllib.parse import quote

    flt = quote(json.dumps({"type": ["image"], "event": ["tag"]}))
    s = _open_stream(daemon, f"?filters={flt}")
    try:
        head = _read_until(s, b"\r\n\r\n")  # headers come before any event
        assert head.startswith(b"HTTP/1.1 200") and b"Content-Type: application/json" in head
        daemon.docker("tag", "busybox", "live:1")
        body = _read_until(s, b'"Action":"tag"')
        line = next(ln for ln in body.split(b"\r\n") if ln.startswith(b"{"))
        ev = json.loads(line)
        assert ev["Action"] == "tag" and ev["Actor"]["Attributes"]["name"] == "live:1"
    finally:
        s.close()
        daemon.docker("rmi", "live:1")


def test_until_in_the_future_ends_the_stream(daemon: Daemon) -> None:
    until = time.time() + 1.5
    p = daemon.docker("events", "--until", f"{until:.9f}", "--filter", "type=volume", timeout=30)
    assert p.returncode == 0 and time.time() >= until - 0.05


def test_bad_requests_are_400_in_dockers_shape(daemon: Daemon) -> None:
    code, _, body = daemon.request("GET", "/events?since=20&until=10")
    assert code == 400 and b"cannot be after" in body
    code, _, body = daemon.request("GET", "/events?filters=%7B%22foo%22%3A%5B%22x%22%5D%7D")
    assert code == 400 and json.loads(body) == {"message": "invalid filter 'foo'"}
    code, _, body = daemon.request("GET", "/events?since=someday")
    assert code == 400 and b"invalid timestamp" in body


def test_image_events_carry_labels_for_label_filters(daemon: Daemon, tmp_path: Path) -> None:
    import tarfile

    src = tmp_path / "f"
    src.write_text("x")
    tar = tmp_path / "l.tar"
    with tarfile.open(tar, "w") as t:
        t.add(src, arcname="f")
    daemon.docker("import", "-c", "LABEL tier=web", str(tar), "lab:1")
    since = f"{time.time():.9f}"
    daemon.docker("tag", "lab:1", "lab:2")
    daemon.docker("rmi", "lab:2")
    got = events(daemon, since, "label=tier=web")
    assert [(e["Action"], e["Actor"]["Attributes"]["tier"]) for e in got] == [
        ("tag", "web"), ("untag", "web")]
    assert events(daemon, since, "label=tier=db") == []
    daemon.docker("rmi", "lab:1")


def test_daemon_shutdown_ends_open_streams(tmp_path: Path) -> None:
    from daemon_util import running_daemon

    with running_daemon(tmp_path) as d:
        s = _open_stream(d, "")
        try:
            assert _read_until(s, b"\r\n\r\n").startswith(b"HTTP/1.1 200")
            d.stop()  # returns once the daemon has exited
            rest = _read_until(s, b"0\r\n\r\n")  # the chunked stream's end, or EOF
            assert rest.endswith(b"0\r\n\r\n") or rest == b""
        finally:
            s.close()
