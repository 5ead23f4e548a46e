"""``engine.files`` on plain temporary directories (no root, no mounts) and the container file
routes through aiohttp with a fake container service: Go file modes and times, Docker's path
rules (trailing ``/`` and ``/.``, last link not followed), in-root resolution of links that point
at host paths, tar streams, ``docker diff`` over plain lower/upper dirs, HEAD/GET/PUT archive,
export and changes over HTTP."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import os
import stat
import tarfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from dockyard import errors
from dockyard.engine import files


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "rootfs"
    (r / "etc").mkdir(parents=True)
    (r / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    (r / "data" / "sub").mkdir(parents=True)
    (r / "data" / "sub" / "f").write_text("hello\n")
    os.symlink("/etc", r / "etc-link")
    return r


@pytest.fixture
def host(tmp_path: Path) -> Path:
    h = tmp_path / "host"
    h.mkdir()
    (h / "secret").write_text("host\n")
    return h


def names(chunks) -> list[str]:
    return tarfile.open(fileobj=io.BytesIO(b"".join(chunks))).getnames()


def tar_of(*members: tuple[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name, data in members:
            ti = tarfile.TarInfo(name)
            ti.size, ti.uid, ti.gid = len(data), os.getuid(), os.getgid()
            t.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


# ---------------------------------------------------------------------------------- pure helpers

def test_go_file_mode_bits() -> None:
    assert files.go_file_mode(stat.S_IFDIR | 0o755) == (1 << 31) | 0o755
    assert files.go_file_mode(stat.S_IFLNK | 0o777) == (1 << 27) | 0o777
    assert files.go_file_mode(stat.S_IFREG | stat.S_ISUID | 0o755) == (1 << 23) | 0o755
    assert files.go_file_mode(stat.S_IFCHR | 0o600) == (1 << 26) | (1 << 21) | 0o600
    assert files.go_file_mode(stat.S_IFDIR | stat.S_ISVTX | 0o777) == (1 << 31) | (1 << 20) | 0o777


def test_times_and_header() -> None:
    assert files.rfc3339_ns(1_700_000_000_500_000_000) == "2023-11-14T22:13:20.5Z"
    assert files.rfc3339_ns(1_700_000_000_000_000_000) == "2023-11-14T22:13:20Z"
    st = files.PathStat(name="x", size=3, mode=420, mtime="2023-11-14T22:13:20Z")
    assert json.loads(base64.b64decode(files.docker_path_stat_header(st))) == {
        "name": "x", "size": 3, "mode": 420, "mtime": "2023-11-14T22:13:20Z", "linkTarget": ""}


def test_absolute_path_keeps_a_trailing_slash_or_dot() -> None:
    assert files.absolute_path("etc/passwd") == "/etc/passwd"
    assert files.absolute_path("/a/../b/") == "/b/"
    assert files.absolute_path("/a/.") == "/a/."
    assert files.absolute_path("/") == "/"
    assert files.absolute_path("../../x") == "/x"
    with pytest.raises(errors.InvalidArgument):
        files.absolute_path("")


# ---------------------------------------------------------------------------------- paths and tars

def test_stat_follows_links_inside_the_rootfs_only(root: Path, host: Path) -> None:
    assert files.stat_path(str(root), "/etc-link").link_target == "/etc"
    assert files.stat_path(str(root), "/etc-link/passwd").size == len("root:x:0:0::/root:/bin/sh\n")
    os.symlink(host, root / "esc")
    os.symlink("../../../../../../../.." + str(host), root / "esc2")
    for p in ("/esc/secret", "/esc2/secret", "/esc/", "/data/../esc/secret"):
        with pytest.raises(errors.NotFound, match="Could not find the file"):
            files.stat_path(str(root), p, container="c")
    assert files.stat_path(str(root), "/esc2").link_target == str(host)


def test_archive_names_as_docker(root: Path) -> None:
    assert names(files.archive_path(str(root), "/data")[1]) == ["data", "data/sub", "data/sub/f"]
    assert names(files.archive_path(str(root), "/data/.")[1]) == [".", "./sub", "./sub/f"]
    assert names(files.archive_path(str(root), "/data/sub/f")[1]) == ["f"]
    assert names(files.archive_path(str(root), "/etc-link")[1]) == ["etc-link"]
    assert names(files.archive_path(str(root), "/etc-link/")[1]) == ["etc-link", "etc-link/passwd"]


def test_archive_streams_big_files_in_chunks(root: Path) -> None:
    (root / "big").write_bytes(os.urandom(3 * files.CHUNK + 5))
    st, chunks = files.archive_path(str(root), "/big")
    sizes = [len(c) for c in chunks]
    assert max(sizes) <= files.CHUNK + 2 * 512 and len(sizes) > 3
    assert st.size == 3 * files.CHUNK + 5


def test_export_has_every_entry_without_a_root_entry(root: Path) -> None:
    got = names(files.export_rootfs(str(root)))
    assert got == ["data", "data/sub", "data/sub/f", "etc", "etc/passwd", "etc-link"]


def test_extract_into_a_link_stays_inside(root: Path, host: Path) -> None:
    os.symlink(host, root / "esc")
    with pytest.raises(errors.NotFound):
        files.extract_to(str(root), "/esc", io.BytesIO(tar_of(("x", b"x"))))
    files.extract_to(str(root), "/etc-link", io.BytesIO(tar_of(("new", b"n"))))
    assert (root / "etc" / "new").read_bytes() == b"n"
    assert os.listdir(host) == ["secret"]


def test_extract_hardlinks_point_below_the_destination(root: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name, kind in (("orig", tarfile.REGTYPE), ("again", tarfile.LNKTYPE),
                           ("bad", tarfile.LNKTYPE)):
            ti = tarfile.TarInfo(name)
            ti.type, ti.uid, ti.gid = kind, os.getuid(), os.getgid()
            ti.linkname = {"again": "orig", "bad": "../etc/passwd"}.get(name, "")
            if kind == tarfile.REGTYPE:
                ti.size = 2
                t.addfile(ti, io.BytesIO(b"hi"))
            else:
                t.addfile(ti)
    buf.seek(0)
    with pytest.raises(errors.InvalidArgument, match="escapes"):
        files.extract_to(str(root), "/data", buf)
    assert os.stat(root / "data" / "again").st_ino == os.stat(root / "data" / "orig").st_ino
    assert os.stat(root / "etc" / "passwd").st_nlink == 1


# ---------------------------------------------------------------------------------- changes

def test_changes_over_plain_directories(tmp_path: Path) -> None:
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    for d in (lower / "etc", lower / "usr" / "lib", upper / "etc", upper / "new"):
        d.mkdir(parents=True)
    (lower / "etc" / "passwd").write_text("a")
    (upper / "etc" / "passwd").write_text("b")
    (upper / "new" / "f").write_text("n")
    (upper / "z").write_text("z")
    os.utime(upper / "etc", ns=(os.stat(lower / "etc").st_atime_ns, os.stat(lower / "etc").st_mtime_ns))
    got = [(c.path, c.kind) for c in files.changes(str(upper), [str(lower)])]
    assert got == [("/etc/passwd", files.MODIFIED), ("/new", files.ADDED), ("/new/f", files.ADDED),
                   ("/z", files.ADDED)]
    # an added file under an unchanged directory lists the directory as modified first
    (upper / "etc" / "added").write_text("x")
    os.utime(upper / "etc", ns=(os.stat(lower / "etc").st_atime_ns, os.stat(lower / "etc").st_mtime_ns))
    got = [(c.path, c.kind) for c in files.changes(str(upper), [str(lower)])]
    assert got[:3] == [("/etc", files.MODIFIED), ("/etc/added", files.ADDED),
                       ("/etc/passwd", files.MODIFIED)]


def test_changes_leave_out_engine_paths(tmp_path: Path) -> None:
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    (lower / "etc").mkdir(parents=True)
    (upper / "etc").mkdir(parents=True)
    (upper / "etc" / "hosts").write_text("")
    (upper / "proc").mkdir()
    assert files.changes(str(upper), [str(lower)], exclude=files.ENGINE_PATHS) == []


def test_lower_stat_respects_upper_layers(tmp_path: Path) -> None:
    top, bottom = tmp_path / "top", tmp_path / "bottom"
    (bottom / "a").mkdir(parents=True)
    (bottom / "a" / "f").write_text("x")
    top.mkdir()
    (top / "a").write_text("a file hides the directory below")
    assert files.lower_stat([str(bottom)], ["a", "f"]) is not None
    assert files.lower_stat([str(top), str(bottom)], ["a", "f"]) is None


# ---------------------------------------------------------------------------------- routes

class FakeContainers:
    def __init__(self, rootfs: Path, upper: Path, *, read_only: bool = False) -> None:
        self.view = SimpleNamespace(id="c" * 64, image_id="sha256:" + "1" * 64, rootfs=str(rootfs),
                                    upper=str(upper), read_only=read_only, running=True,
                                    config={"User": ""})

    @contextlib.asynccontextmanager
    async def files_view(self, name: str):
        if name != "c1":
            raise errors.NotFound(f"No such container: {name}")
        yield self.view


async def _client(containers: FakeContainers, lowers: list[str]):
    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    from dockyard.api import container_files
    from dockyard.api.app import SERVICES, Routes, version_middleware
    from dockyard.api.errors import errors_middleware

    async def call(fn, *args, **kw):
        return lowers

    app = web.Application(middlewares=[errors_middleware, version_middleware])
    app[SERVICES] = SimpleNamespace(containers=containers, images=None, call=call)
    container_files.register(Routes(app))
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


def test_routes(root: Path, tmp_path: Path) -> None:
    pytest.importorskip("aiohttp")
    upper = tmp_path / "upper"
    (upper / "added").mkdir(parents=True)

    async def scenario() -> None:
        client = await _client(FakeContainers(root, upper), [str(tmp_path / "nolower")])
        try:
            r = await client.head("/v1.45/containers/c1/archive", params={"path": "/etc/passwd"})
            assert r.status == 200
            st = json.loads(base64.b64decode(r.headers["X-Docker-Container-Path-Stat"]))
            assert st["name"] == "passwd"
            assert st["mode"] == stat.S_IMODE(os.stat(root / "etc" / "passwd").st_mode)
            r = await client.get("/containers/c1/archive", params={"path": "/data"})
            assert r.status == 200 and r.headers["Content-Type"] == "application/x-tar"
            assert tarfile.open(fileobj=io.BytesIO(await r.read())).getnames()[0] == "data"
            r = await client.get("/containers/c1/archive", params={"path": "/nope"})
            assert r.status == 404
            assert (await r.json())["message"] == "Could not find the file /nope in container c1"
            r = await client.get("/containers/c1/archive")
            assert r.status == 400
            r = await client.get("/containers/c2/archive", params={"path": "/"})
            assert r.status == 404
            r = await client.put("/containers/c1/archive", params={"path": "/data"},
                                 data=tar_of(("put.txt", b"put")))
            assert r.status == 200, await r.text()
            assert (root / "data" / "put.txt").read_bytes() == b"put"
            r = await client.put("/containers/c1/archive", params={"path": "/data/sub/f"},
                                 data=tar_of(("x", b"")))
            assert r.status == 400
            assert "extraction point is not a directory" in (await r.json())["message"]
            r = await client.get("/containers/c1/export")
            assert "etc/passwd" in tarfile.open(fileobj=io.BytesIO(await r.read())).getnames()
            r = await client.get("/containers/c1/changes")
            assert await r.json() == [{"Path": "/added", "Kind": 1}]
        finally:
            await client.close()

    asyncio.run(scenario())


def test_put_into_a_read_only_rootfs_is_403(root: Path, tmp_path: Path) -> None:
    pytest.importorskip("aiohttp")

    async def scenario() -> None:
        client = await _client(FakeContainers(root, tmp_path, read_only=True), [])
        try:
            r = await client.put("/containers/c1/archive", params={"path": "/data"},
                                 data=tar_of(("x", b"")))
            assert r.status == 403
            assert (await r.json())["message"] == "container rootfs is marked read-only"
        finally:
            await client.close()
        assert not (root / "data" / "x").exists()

    asyncio.run(scenario())


def test_commit_route_hands_dockers_fields_to_the_store_thread(root: Path, tmp_path: Path) -> None:
    pytest.importorskip("aiohttp")
    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    from dockyard.api import container_files
    from dockyard.api.app import SERVICES, Routes
    from dockyard.api.errors import errors_middleware

    seen: dict = {}

    class Pausing(FakeContainers):
        @contextlib.asynccontextmanager
        async def files_view(self, name: str, pause: bool = True):
            seen.setdefault("pauses", []).append(pause)
            async with super().files_view(name) as v:
                yield v

    async def call(fn, *args, **kw):
        seen.update(kw)
        return "sha256:" + "a" * 64

    async def scenario() -> None:
        app = web.Application(middlewares=[errors_middleware])
        app[SERVICES] = SimpleNamespace(containers=Pausing(root, tmp_path), images=None, call=call)
        container_files.register(Routes(app))
        client = TestClient(TestServer(app))
        await client.start_server()
        try:
            r = await client.post("/v1.45/commit", params=[
                ("container", "c1"), ("repo", "me/img"), ("tag", "v2"), ("comment", "m"),
                ("author", "a"), ("pause", "0"), ("changes", "ENV A=1"), ("changes", "CMD x")],
                json={"Cmd": ["sh", "-c", "true"], "Env": ["B=2"]})
            assert r.status == 201 and await r.json() == {"Id": "sha256:" + "a" * 64}
            r = await client.post("/commit", params={"container": "nope"})
            assert r.status == 404 and (await r.json())["message"] == "No such container: nope"
            r = await client.post("/commit", params={"container": "c1"}, data=b"[1]")
            assert r.status == 400
        finally:
            await client.close()

    asyncio.run(scenario())
    assert seen["pauses"] == [False, True]  # pause=0, then the default
    assert seen["repo_tag"] == "me/img:v2" and seen["changes"] == ["ENV A=1", "CMD x"]
    assert (seen["comment"], seen["author"]) == ("m", "a")
    assert seen["config"].cmd == ("sh", "-c", "true") and seen["config"].env == ("B=2",)
    assert seen["container_upper"] == str(tmp_path)
