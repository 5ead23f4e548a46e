"""The daemon end to end: a real ``dockyard daemon`` subprocess on a temporary root and socket,
driven by the real docker CLI (version, info, images, image inspect, history, tag, rmi, save,
load, errors) and by raw HTTP over the unix socket (version prefixes, negotiation errors, unknown
routes, the error JSON shape). Teardown checks that nothing is left: process gone, socket gone.
"""

from __future__ import annotations

import http.client
import json
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
from daemon_util import CLI, Daemon, daemon_fixture

pytestmark = [
    pytest.mark.skipif(not Path("/bin/busybox").exists(), reason="needs host /bin/busybox"),
    pytest.mark.skipif(shutil.which("docker") is None, reason="needs the docker CLI"),
]

daemon = daemon_fixture(scope="function")


def test_version_and_info(daemon: Daemon) -> None:
    out = daemon.docker("version").stdout
    assert "Server: dockyard" in out and "API version:      1.45 (minimum version 1.24)" in out
    v = json.loads(daemon.docker("version", "--format", "{{json .Server}}").stdout)
    assert v["ApiVersion"] == "1.45" and v["Os"] == "linux"
    info = daemon.docker("info").stdout
    assert " Images: 1" in info and f"Docker Root Dir: {daemon.root}" in info
    assert "Cgroup Driver: cgroupfs" in info
    assert "Default Runtime: dockyard-runtime" in info
    driver = daemon.docker("info", "--format", "{{.Driver}}").stdout.strip()
    assert driver in ("overlay2", "vfs")


def test_image_verbs_through_docker(daemon: Daemon, tmp_path: Path) -> None:
    lines = daemon.docker("images").stdout.splitlines()
    assert lines[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    assert lines[1].split()[:2] == ["busybox", "latest"] and len(lines) == 2
    inspected = json.loads(daemon.docker("image", "inspect", "busybox").stdout)
    image_id = inspected[0]["Id"]
    assert inspected[0]["RepoTags"] == ["busybox:latest"]
    assert daemon.docker("image", "inspect", "--format", "{{.Os}}", "busybox").stdout == "linux\n"
    hist = daemon.docker("history", "--no-trunc", "busybox").stdout.splitlines()
    assert hist[1].startswith(image_id)

    daemon.docker("tag", "busybox", "x:1")
    tags = daemon.docker("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    assert sorted(tags) == ["busybox:latest", "x:1"]
    assert daemon.docker("rmi", "x:1").stdout == "Untagged: x:1\n"

    archive = tmp_path / "f.tar"
    daemon.docker("save", "-o", str(archive), "busybox")
    assert archive.stat().st_size > 100_000
    out = daemon.docker("rmi", "busybox").stdout.splitlines()
    assert out[0] == "Untagged: busybox:latest" and f"Deleted: {image_id}" in out
    assert daemon.docker("images", "-q").stdout == ""
    assert daemon.docker("load", "-i", str(archive)).stdout == "Loaded image: busybox:latest\n"
    assert json.loads(daemon.docker("image", "inspect", "busybox").stdout)[0]["Id"] == image_id
    assert "Total reclaimed space: 0B" in daemon.docker("image", "prune", "-f").stdout


def test_docker_import_df_and_pull(daemon: Daemon, tmp_path: Path) -> None:
    fs = tmp_path / "fs"
    (fs / "bin").mkdir(parents=True)
    shutil.copy2("/bin/busybox", fs / "bin/busybox")
    tar = tmp_path / "fs.tar"
    subprocess.run(["tar", "-C", str(fs), "-cf", str(tar), "."], check=True)
    image_id = daemon.docker("import", "-c", 'CMD ["/bin/busybox", "sh"]', "-m", "hi", str(tar),
                             "imp:1").stdout.strip()
    obj = json.loads(daemon.docker("image", "inspect", "imp:1").stdout)[0]
    assert obj["Id"] == image_id and obj["Config"]["Cmd"] == ["/bin/busybox", "sh"]
    assert obj["Comment"] == "hi"
    piped = daemon.docker("import", "-", "imp:2", input=tar.read_bytes()).stdout.decode().strip()
    assert piped.startswith("sha256:") and piped != image_id  # another comment, another config
    p = daemon.docker("import", "-c", "RUN true", str(tar), check=False)
    assert p.returncode == 1 and "RUN is not a valid change command" in p.stderr
    df = daemon.docker("system", "df", "--format", "{{.Type}} {{.TotalCount}} {{.Active}}").stdout
    assert df.splitlines()[0] == "Images 3 0"
    p = daemon.docker("pull", "alpine", check=False)
    assert p.returncode == 1 and "no registry client" in p.stderr


def test_docker_errors(daemon: Daemon) -> None:
    p = daemon.docker("image", "inspect", "nope", check=False)
    assert p.returncode == 1 and "No such image: nope" in p.stderr
    p = daemon.docker("rmi", "nope", check=False)
    assert p.returncode == 1 and "Error response from daemon: No such image: nope" in p.stderr
    daemon.docker("tag", "busybox", "other:1")
    p = daemon.docker("rmi", daemon.docker("images", "-q").stdout.split()[0], check=False)
    assert p.returncode == 1 and "must be forced" in p.stderr


def test_raw_http(daemon: Daemon) -> None:
    assert daemon.sock.stat().st_mode & 0o777 == 0o660
    status, headers, body = daemon.request("GET", "/_ping")
    assert (status, body) == (200, b"OK")
    assert headers["api-version"] == "1.45" and headers["ostype"] == "linux"
    assert headers["docker-experimental"] == "false" and headers["builder-version"] == "1"
    assert daemon.request("HEAD", "/_ping")[:2][0] == 200
    for prefix in ("", "/v1.24", "/v1.41", "/v1.45"):
        status, headers, body = daemon.request("GET", f"{prefix}/images/json")
        assert status == 200 and headers["content-type"] == "application/json"
        assert [i["RepoTags"] for i in json.loads(body)] == [["busybox:latest"]]
    status, _, body = daemon.request("GET", "/v1.99/version")
    assert status == 400
    assert json.loads(body) == {"message": "client version 1.99 is too new. Maximum supported "
                                           "API version is 1.45"}
    assert daemon.request("GET", "/v1.12/version")[0] == 400
    status, _, body = daemon.request("GET", "/v1.41/nothing/here")
    assert (status, json.loads(body)) == (404, {"message": "page not found"})
    status, _, body = daemon.request("GET", "/v1.41/images/nope/json")
    assert (status, json.loads(body)) == (404, {"message": "No such image: nope"})
    status, _, body = daemon.request("GET", '/images/json?filters={"bogus":{"x":true}}')
    assert status == 400 and "bogus" in json.loads(body)["message"]
    status, _, body = daemon.request("GET", "/images/json?filters=%7Bnot-json")
    assert status == 400 and json.loads(body)["message"].startswith("invalid filters")
    status, _, body = daemon.request("POST", "/images/busybox/tag?repo=docker.io/library/t&tag=2")
    assert status == 201
    status, _, body = daemon.request("DELETE", "/v1.41/images/docker.io/library/t:2")
    assert (status, json.loads(body)) == (200, [{"Untagged": "t:2"}])
    status, _, body = daemon.request("GET", "/images/json?filters=%7B%22dangling%22%3A%5B%22true%22%5D%7D")
    assert (status, json.loads(body)) == (200, [])
    status, headers, body = daemon.request("GET", "/images/get?names=busybox")
    assert status == 200 and headers["content-type"] == "application/x-tar" and len(body) > 100_000
    status, _, body = daemon.request("GET", "/images/nope/get")
    assert (status, json.loads(body)) == (404, {"message": "No such image: nope"})
    status, _, body = daemon.request("POST", "/images/load?quiet=1", body=b"not a tar")
    assert status == 400 and json.loads(body)["message"].startswith("load: ")
    assert daemon.request("POST", "/images/prune")[0] == 200
    info = json.loads(daemon.request("GET", "/v1.41/info")[2])
    assert info["Images"] == 1 and info["OSType"] == "linux" and info["CgroupDriver"] == "cgroupfs"


def test_second_daemon_on_the_same_root_fails_clearly(daemon: Daemon, tmp_path: Path) -> None:
    other = tmp_path / "other.sock"
    p = subprocess.run([*CLI, "daemon", "--root", str(daemon.root), "-H", f"unix://{other}"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 1
    assert f"root {daemon.root} is in use" in p.stderr and "another dockyard daemon" in p.stderr
    assert not other.exists()
    assert daemon.request("GET", "/_ping")[0] == 200


def test_non_loopback_tcp_is_refused(tmp_path: Path) -> None:
    p = subprocess.run([*CLI, "daemon", "--root", str(tmp_path / "r"), "-H", "tcp://0.0.0.0:2375"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and "only loopback TCP hosts" in p.stderr


def test_loopback_tcp_listener(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sock = tmp_path / "t.sock"
    proc = subprocess.Popen([*CLI, "daemon", "--root", str(tmp_path / "r"), "-H", f"unix://{sock}",
                             "-H", f"tcp://127.0.0.1:{port}", "--log-level", "warn"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("GET", "/v1.41/_ping")
                r = conn.getresponse()
                assert (r.status, r.read(), r.getheader("Api-Version")) == (200, b"OK", "1.45")
                conn.close()
                break
            except ConnectionRefusedError:
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(20) == 0, proc.stderr.read() if proc.stderr else ""
        if proc.stderr:
            proc.stderr.close()
    assert not sock.exists()
