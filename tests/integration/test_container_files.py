"""A container's files on the real kernel: ``engine.files`` on an overlay rootfs made by
``image.bundle.create_bundle`` from a bootstrapped busybox image (what the engine's container
endpoints will hand it): stat and archive (``docker cp`` out), extraction (``docker cp`` in),
``docker diff`` from the upper dir, ``docker export``. Symlinks made inside the container must never
let any of it read or write host files.

Writes "by the container" are made on the mounted rootfs (they land in the upper dir, as a
process in the container would make them).
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import functools
import io
import json
import os
import shutil
import subprocess
import tarfile
import threading
import time
import types
from pathlib import Path

import pytest
from daemon_util import Daemon, daemon_fixture

from helpers import unique_id

from dockyard import errors
from dockyard.engine import files
from dockyard.image.bootstrap import bootstrap_busybox
from dockyard.image.bundle import Bundle, create_bundle, remove_bundle
from dockyard.image.service import ImageService
from dockyard.snapshot.apply import mounts_under

HOST_BUSYBOX = Path("/bin/busybox")
pytestmark = pytest.mark.skipif(not HOST_BUSYBOX.exists(),
                                reason="needs host /bin/busybox (Debian package busybox-static)")


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory):
    with ImageService.open(str(tmp_path_factory.mktemp("store"))) as s:
        bootstrap_busybox(s)
        yield s


@pytest.fixture
def box(svc: ImageService, tmp_path: Path):
    b = create_bundle(svc, "busybox", str(tmp_path / "bundle"), container_id=unique_id())
    yield b
    remove_bundle(svc, b)
    assert mounts_under(str(tmp_path)) == []


@pytest.fixture
def host_dir(tmp_path: Path) -> Path:
    """A host directory with a secret, which no container symlink may reach."""
    d = tmp_path / "host-secret"
    d.mkdir()
    (d / "secret").write_text("host secret\n")
    return d


def lowers(svc: ImageService, b: Bundle) -> list[str]:
    return svc.snapshotter.lowerdirs(svc.unpack(svc.resolve(b.image_id)))  # type: ignore[attr-defined]


def tar_of(chunks) -> tarfile.TarFile:
    return tarfile.open(fileobj=io.BytesIO(b"".join(chunks)))


def tar_bytes(entries: list[tuple]) -> io.BytesIO:
    """("file", name, data[, uid]) | ("dir", name) | ("link", name, target)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for kind, name, *rest in entries:
            ti = tarfile.TarInfo(name)
            ti.mtime = 1_700_000_000
            if kind == "dir":
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755
                t.addfile(ti)
            elif kind == "link":
                ti.type, ti.linkname = tarfile.SYMTYPE, rest[0]
                t.addfile(ti)
            else:
                ti.size, ti.mode = len(rest[0]), 0o640
                ti.uid = ti.gid = rest[1] if len(rest) > 1 else 0
                t.addfile(ti, io.BytesIO(rest[0]))
    buf.seek(0)
    return buf


# ---------------------------------------------------------------------------------- cp out

def test_stat_and_header_of_a_file_a_directory_and_a_link(box: Bundle) -> None:
    st = files.stat_path(box.rootfs, "/bin/busybox")
    assert st.name == "busybox" and st.size == HOST_BUSYBOX.stat().st_size
    assert st.mode & 0o777 == 0o755 and not st.is_dir
    d = files.stat_path(box.rootfs, "bin")
    assert d.is_dir and d.mode & files.GO_DIR
    os.symlink("/bin/busybox", f"{box.rootfs}/tool")
    link = files.stat_path(box.rootfs, "/tool")
    assert link.mode & files.GO_SYMLINK and link.link_target == "/bin/busybox"
    decoded = json.loads(base64.b64decode(files.docker_path_stat_header(link)))
    assert decoded["name"] == "tool" and decoded["linkTarget"] == "/bin/busybox"
    assert decoded["mode"] == link.mode and decoded["mtime"].endswith("Z")


def test_missing_path_is_not_found_in_dockers_words(box: Bundle) -> None:
    with pytest.raises(errors.NotFound, match="Could not find the file /nope in container c1"):
        files.stat_path(box.rootfs, "/nope", container="c1")


def test_archive_of_a_directory_and_of_its_contents(box: Bundle) -> None:
    os.makedirs(f"{box.rootfs}/data/sub")
    Path(f"{box.rootfs}/data/sub/f").write_text("hello\n")
    st, chunks = files.archive_path(box.rootfs, "/data")
    assert st.is_dir
    t = tar_of(chunks)
    assert [m.name for m in t.getmembers()] == ["data", "data/sub", "data/sub/f"]
    assert t.extractfile("data/sub/f").read() == b"hello\n"  # type: ignore[union-attr]
    _, chunks = files.archive_path(box.rootfs, "/data/.")
    assert [m.name for m in tar_of(chunks).getmembers()] == [".", "./sub", "./sub/f"]


def test_archive_of_a_link_is_the_link_and_with_a_slash_its_directory(box: Bundle) -> None:
    os.symlink("bin", f"{box.rootfs}/b")
    _, chunks = files.archive_path(box.rootfs, "/b")
    [m] = tar_of(chunks).getmembers()
    assert m.issym() and m.name == "b" and m.linkname == "bin"
    _, chunks = files.archive_path(box.rootfs, "/b/")
    names = [m.name for m in tar_of(chunks).getmembers()]
    assert names[0] == "b" and "b/busybox" in names


def test_container_symlinks_never_reach_host_files(box: Bundle, host_dir: Path) -> None:
    """A link to /etc is the container's /etc; links to a host path, absolute or climbing with
    ``..``, resolve inside the rootfs, where that path does not exist."""
    os.symlink("/etc", f"{box.rootfs}/etc-link")
    os.symlink(str(host_dir), f"{box.rootfs}/abs-escape")
    os.symlink("../" * 30 + str(host_dir).lstrip("/"), f"{box.rootfs}/rel-escape")
    Path(f"{box.rootfs}/etc/passwd").write_text("container passwd\n")
    _, chunks = files.archive_path(box.rootfs, "/etc-link/passwd")
    assert tar_of(chunks).extractfile("passwd").read() == b"container passwd\n"  # type: ignore[union-attr]
    for link in ("abs-escape", "rel-escape"):
        with pytest.raises(errors.NotFound):
            files.stat_path(box.rootfs, f"/{link}/secret")
        with pytest.raises(errors.NotFound):
            files.archive_path(box.rootfs, f"/{link}/")
        with pytest.raises(errors.NotFound):
            files.extract_to(box.rootfs, f"/{link}", tar_bytes([("file", "pwned", b"x")]))
        assert files.stat_path(box.rootfs, f"/{link}").link_target == str(host_dir)
    # an archive of a directory holding such links carries the links, not the host's files
    os.mkdir(f"{box.rootfs}/d")
    os.symlink(str(host_dir), f"{box.rootfs}/d/x")
    _, chunks = files.archive_path(box.rootfs, "/d")
    assert [(m.name, m.type) for m in tar_of(chunks).getmembers()] == [
        ("d", tarfile.DIRTYPE), ("d/x", tarfile.SYMTYPE)]
    # cp into the link to /etc writes the container's /etc
    files.extract_to(box.rootfs, "/etc-link", tar_bytes([("file", "new.conf", b"c")]))
    assert Path(f"{box.upper}/etc/new.conf").read_bytes() == b"c"
    assert os.listdir(host_dir) == ["secret"]
    assert not os.path.exists("/etc/new.conf")


def test_archive_members_cannot_climb_out_through_their_own_links(box: Bundle, host_dir: Path) -> None:
    """A tar that first plants a link to a host path, then writes through it, stays in the rootfs."""
    os.mkdir(f"{box.rootfs}/in")
    files.extract_to(box.rootfs, "/in", tar_bytes([
        ("link", "esc", str(host_dir)), ("file", "esc/pwned", b"x")]))
    assert os.listdir(host_dir) == ["secret"]
    assert Path(f"{box.rootfs}{host_dir}/pwned").read_bytes() == b"x"
    with pytest.raises(errors.InvalidArgument, match="escapes"):
        files.extract_to(box.rootfs, "/in", tar_bytes([("file", "../../../x", b"x")]))


# ---------------------------------------------------------------------------------- cp in

def test_extract_keeps_archive_owners_or_takes_the_containers_user(box: Bundle) -> None:
    os.mkdir(f"{box.rootfs}/dst")
    n = files.extract_to(box.rootfs, "/dst", tar_bytes([
        ("dir", "sub"), ("file", "sub/a", b"aaa", 1234)]))
    assert n == 2
    st = os.stat(f"{box.upper}/dst/sub/a")
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (1234, 1234, 0o640)
    files.extract_to(box.rootfs, "/dst", tar_bytes([("file", "b", b"b", 1234)]),
                     copy_uid_gid=True, user="nobody")
    st = os.stat(f"{box.rootfs}/dst/b")
    assert (st.st_uid, st.st_gid) == (65534, 65534)  # busybox's /etc/passwd: nobody 65534:65534


def test_extract_refusals(box: Bundle) -> None:
    with pytest.raises(errors.InvalidArgument, match="extraction point is not a directory"):
        files.extract_to(box.rootfs, "/bin/busybox", tar_bytes([("file", "x", b"")]))
    with pytest.raises(errors.NotFound):
        files.extract_to(box.rootfs, "/missing", tar_bytes([("file", "x", b"")]))
    with pytest.raises(files.ReadOnly, match="read-only") as e:
        files.extract_to(box.rootfs, "/tmp", tar_bytes([("file", "x", b"")]), read_only=True)
    assert e.value.http_status == 403
    with pytest.raises(errors.InvalidArgument, match="whiteout"):
        files.extract_to(box.rootfs, "/", tar_bytes([("file", "bin/.wh.busybox", b"")]))
    assert os.path.exists(f"{box.rootfs}/bin/busybox")
    with pytest.raises(errors.InvalidArgument, match="cannot overwrite directory"):
        files.extract_to(box.rootfs, "/", tar_bytes([("file", "bin", b"")]),
                         no_overwrite_dir_non_dir=True)
    assert os.path.isdir(f"{box.rootfs}/bin")
    files.extract_to(box.rootfs, "/tmp", tar_bytes([("file", "f", b"1")]))
    with pytest.raises(errors.InvalidArgument, match="cannot overwrite non-directory"):
        files.extract_to(box.rootfs, "/tmp", tar_bytes([("dir", "f")]), no_overwrite_dir_non_dir=True)


# ---------------------------------------------------------------------------------- diff, export

def test_changes_of_a_container(svc: ImageService, box: Bundle) -> None:
    os.makedirs(f"{box.rootfs}/new/deep")
    Path(f"{box.rootfs}/new/deep/f").write_text("x")
    os.unlink(f"{box.rootfs}/bin/ls")
    Path(f"{box.rootfs}/etc/passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    got = [(c.path, c.kind) for c in files.changes(box.upper, lowers(svc, box))]
    assert ("/bin", files.MODIFIED) in got and ("/bin/ls", files.DELETED) in got
    assert ("/etc/passwd", files.MODIFIED) in got
    assert got[got.index(("/new", files.ADDED)):][:3] == [
        ("/new", files.ADDED), ("/new/deep", files.ADDED), ("/new/deep/f", files.ADDED)]
    assert got.index(("/bin", files.MODIFIED)) < got.index(("/bin/ls", files.DELETED))
    excluded = files.changes(box.upper, lowers(svc, box), exclude={"/new"})
    assert not [c for c in excluded if c.path.startswith("/new")]


def test_changes_of_a_replaced_directory(svc: ImageService, box: Bundle) -> None:
    """``rm -rf /etc; mkdir /etc``: overlay makes an opaque directory; what is in it is new."""
    import shutil

    shutil.rmtree(f"{box.rootfs}/etc")
    os.mkdir(f"{box.rootfs}/etc")
    Path(f"{box.rootfs}/etc/passwd").write_text("x")
    got = [(c.path, c.kind) for c in files.changes(box.upper, lowers(svc, box))]
    assert got == [("/etc", files.MODIFIED), ("/etc/passwd", files.ADDED)]


def test_export_is_the_merged_filesystem(box: Bundle) -> None:
    Path(f"{box.rootfs}/added").write_text("new")
    os.unlink(f"{box.rootfs}/bin/ls")
    t = tar_of(files.export_rootfs(box.rootfs))
    names = t.getnames()
    assert "bin/busybox" in names and "added" in names and "bin/ls" not in names
    assert not any(n.startswith(("/", "./")) for n in names)
    assert t.extractfile("added").read() == b"new"  # type: ignore[union-attr]
    busybox = t.getmember("bin/busybox")
    assert busybox.size == HOST_BUSYBOX.stat().st_size


# ---------------------------------------------------------------------------------- HTTP + docker CLI

class BundleContainers:
    """The engine's ``files_view`` contract, served from one bundle named ``c1``."""

    def __init__(self, box: Bundle) -> None:
        self.view = types.SimpleNamespace(id=box.id, image_id=box.image_id, rootfs=box.rootfs,
                                          upper=box.upper, read_only=False, running=False,
                                          config=None)

    @contextlib.asynccontextmanager
    async def files_view(self, name: str):
        if name not in ("c1", self.view.id):
            raise errors.NotFound(f"No such container: {name}")
        yield self.view


class ApiServer:
    """The container file routes (plus ``/_ping``) on a unix socket, served by a thread."""

    def __init__(self, svc: ImageService, box: Bundle, sock: Path) -> None:
        from aiohttp import web

        from dockyard.api import container_files
        from dockyard.api.app import SERVICES, Routes, version_middleware
        from dockyard.api.errors import errors_middleware

        store = concurrent.futures.ThreadPoolExecutor(max_workers=1)

        async def call(fn, *args, **kw):
            return await asyncio.get_running_loop().run_in_executor(
                store, functools.partial(fn, *args, **kw))

        async def ping(request: web.Request) -> web.Response:
            return web.Response(text="OK", headers={"Api-Version": "1.45", "OSType": "linux"})

        app = web.Application(middlewares=[errors_middleware, version_middleware])
        app[SERVICES] = types.SimpleNamespace(containers=BundleContainers(box), images=svc, call=call)
        routes = Routes(app)
        routes.add("GET", "/_ping", ping)
        container_files.register(routes)
        self.sock, self._store = sock, store
        self._loop = asyncio.new_event_loop()
        self._runner = web.AppRunner(app)
        ready = threading.Event()

        def serve() -> None:
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(self._runner.setup())
            self._loop.run_until_complete(web.UnixSite(self._runner, str(sock)).start())
            ready.set()
            self._loop.run_forever()
            self._loop.run_until_complete(self._runner.cleanup())
            self._loop.close()

        self._thread = threading.Thread(target=serve, daemon=True)
        self._thread.start()
        assert ready.wait(10)

    def docker(self, *args: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
        return subprocess.run(["docker", "-H", f"unix://{self.sock}", *args], capture_output=True,
                              check=check, timeout=60, **kw)

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._store.shutdown(wait=True)


@pytest.fixture
def api(svc: ImageService, box: Bundle, tmp_path: Path):
    if shutil.which("docker") is None:
        pytest.skip("needs the docker CLI")
    server = ApiServer(svc, box, tmp_path / "api.sock")
    yield server
    server.close()


def test_docker_cp_both_ways(api: ApiServer, box: Bundle, tmp_path: Path, host_dir: Path) -> None:
    out = api.docker("cp", "c1:/bin/busybox", "-").stdout
    member = tarfile.open(fileobj=io.BytesIO(out)).getmember("busybox")
    assert member.size == HOST_BUSYBOX.stat().st_size
    local = tmp_path / "local"
    local.mkdir()
    (local / "in.txt").write_text("from the host\n")
    api.docker("cp", str(local / "in.txt"), "c1:/tmp/")
    assert Path(f"{box.upper}/tmp/in.txt").read_text() == "from the host\n"
    api.docker("cp", str(local), "c1:/copied")
    assert Path(f"{box.rootfs}/copied/in.txt").exists()
    api.docker("cp", "c1:/copied", str(tmp_path / "back"))
    assert (tmp_path / "back" / "in.txt").read_text() == "from the host\n"
    # a container's link to a host path gives the host's files away in neither direction
    os.symlink(str(host_dir), f"{box.rootfs}/esc")
    r = api.docker("cp", "c1:/esc/secret", str(tmp_path / "stolen"), check=False)
    assert r.returncode != 0 and not (tmp_path / "stolen").exists()
    r = api.docker("cp", str(local / "in.txt"), "c1:/esc/", check=False)
    assert r.returncode != 0 and os.listdir(host_dir) == ["secret"]
    r = api.docker("cp", "c1:/nope", "-", check=False)
    assert r.returncode != 0 and b"Could not find the file /nope in container c1" in r.stderr


def test_docker_diff_export_and_commit(api: ApiServer, svc: ImageService, box: Bundle,
                                       tmp_path: Path) -> None:
    Path(f"{box.rootfs}/added").write_text("new\n")
    os.unlink(f"{box.rootfs}/bin/ls")
    diff = api.docker("diff", "c1").stdout.decode().splitlines()
    assert "A /added" in diff and "D /bin/ls" in diff and "C /bin" in diff
    api.docker("export", "-o", str(tmp_path / "fs.tar"), "c1")
    names = tarfile.open(tmp_path / "fs.tar").getnames()
    assert "added" in names and "bin/busybox" in names and "bin/ls" not in names
    out = api.docker("commit", "-m", "via the CLI", "-c", "ENV FROM_CLI=1", "c1", "committed:v1")
    image_id = out.stdout.decode().strip()
    image = svc.resolve("committed:v1")
    assert str(image.id) == image_id
    cfg = svc.config(image)
    assert "FROM_CLI=1" in cfg.config.env and cfg.comment == "via the CLI"
    r = api.docker("commit", "c2", check=False)
    assert r.returncode != 0 and b"No such container: c2" in r.stderr


# ---------------------------------------------------------------------------------- a real daemon

daemon = daemon_fixture()


@pytest.fixture
def d(daemon: Daemon):
    """The module daemon, skipping until the container service serves ``files_view``; the
    test's containers are removed afterwards."""
    if shutil.which("docker") is None or shutil.which("conmon") is None:
        pytest.skip("needs the docker CLI and conmon")
    code, _, body = daemon.request("GET", "/containers/none/changes")
    if code == 501:
        pytest.skip(f"the daemon has no container files view yet: {body[:200]!r}")
    yield daemon
    left = daemon.docker("ps", "-aq").stdout.split()
    if left:
        daemon.docker("rm", "-f", *left, check=False)
    assert mounts_under(str(daemon.root / "containers")) == []


def test_daemon_cp_diff_export_commit_of_a_stopped_container(d: Daemon, tmp_path: Path,
                                                             host_dir: Path) -> None:
    d.docker("run", "--name", "files1", "busybox", "sh", "-c",
             f"echo hi > /hello && rm /bin/ls && ln -s {host_dir} /esc")
    diff = d.docker("diff", "files1").stdout.splitlines()
    assert {"A /hello", "C /bin", "D /bin/ls", "A /esc"} <= set(diff)
    out = d.docker("cp", "files1:/hello", "-", input=b"").stdout
    assert tarfile.open(fileobj=io.BytesIO(out)).extractfile("hello").read() == b"hi\n"  # type: ignore[union-attr]
    (tmp_path / "in.txt").write_text("in\n")
    d.docker("cp", str(tmp_path / "in.txt"), "files1:/tmp/")
    d.docker("cp", "files1:/tmp/in.txt", str(tmp_path / "back.txt"))
    assert (tmp_path / "back.txt").read_text() == "in\n"
    assert d.docker("cp", "files1:/esc/secret", str(tmp_path / "stolen"), check=False).returncode
    assert d.docker("cp", str(tmp_path / "in.txt"), "files1:/esc/", check=False).returncode
    assert not (tmp_path / "stolen").exists() and os.listdir(host_dir) == ["secret"]
    d.docker("export", "-o", str(tmp_path / "fs.tar"), "files1")
    names = tarfile.open(tmp_path / "fs.tar").getnames()
    assert "hello" in names and "tmp/in.txt" in names and "bin/ls" not in names
    d.docker("commit", "-c", "CMD cat /hello", "files1", "files-commit:v1")
    assert d.docker("run", "--name", "files1b", "files-commit:v1").stdout == "hi\n"
    d.docker("rm", "files1b")
    d.docker("rmi", "files-commit:v1")
    # the stopped container's rootfs was mounted for each of these, and is not any more
    cid = d.docker("inspect", "--format", "{{.Id}}", "files1").stdout.strip()
    assert mounts_under(str(d.root / "containers" / cid)) == []


def test_daemon_read_only_rootfs_and_archive_owners(d: Daemon, tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    d.docker("create", "--name", "files3", "--read-only", "busybox", "true")
    r = d.docker("cp", str(tmp_path / "f"), "files3:/tmp/", check=False)
    assert r.returncode != 0 and "container rootfs is marked read-only" in r.stderr
    d.docker("create", "--name", "files4", "--user", "nobody", "busybox", "true")
    os.chown(tmp_path / "f", 4321, 4321)
    d.docker("cp", str(tmp_path / "f"), "files4:/f-kept")
    d.docker("cp", "-a", str(tmp_path / "f"), "files4:/f-user")
    kept = d.docker("cp", "files4:/f-kept", "-", input=b"").stdout
    assert tarfile.open(fileobj=io.BytesIO(kept)).getmember("f-kept").uid == 4321
    # -a (copyUIDGID): the container's user, looked up in its own /etc/passwd (nobody: 65534)
    user = d.docker("cp", "files4:/f-user", "-", input=b"").stdout
    assert tarfile.open(fileobj=io.BytesIO(user)).getmember("f-user").uid == 65534


def test_daemon_cp_into_a_running_container_and_commit_it(d: Daemon, tmp_path: Path) -> None:
    d.docker("run", "-d", "--name", "files2", "busybox", "sleep", "600")
    (tmp_path / "conf").write_text("k=v\n")
    d.docker("cp", str(tmp_path / "conf"), "files2:/etc/app.conf")
    assert "A /etc/app.conf" in d.docker("diff", "files2").stdout.splitlines()
    d.docker("commit", "files2", "files-commit:v2")
    assert d.docker("run", "--name", "files2b", "files-commit:v2", "cat",
                    "/etc/app.conf").stdout == "k=v\n"
    assert d.docker("inspect", "--format", "{{.State.Status}}", "files2").stdout.strip() == "running"
    d.docker("rm", "-f", "files2", "files2b")
    d.docker("rmi", "files-commit:v2")



def test_daemon_commit_event(d: Daemon) -> None:
    d.docker("create", "--name", "files5", "busybox", "true")
    start = int(time.time()) - 1
    image_id = d.docker("commit", "-m", "evt", "files5", "files-commit:v5").stdout.strip()
    out = d.docker("events", "--since", str(start), "--until", str(int(time.time()) + 1),
                   "--filter", "event=commit", "--filter", "container=files5",
                   "--format", "{{json .}}").stdout
    [ev] = [json.loads(line) for line in out.splitlines()]
    assert ev["Type"] == "container" and ev["Action"] == "commit"
    attrs = ev["Actor"]["Attributes"]
    assert attrs["imageID"] == image_id and attrs["comment"] == "evt"
    assert attrs["imageRef"] == "files-commit:v5" and attrs["name"] == "files5"
    d.docker("rm", "files5")
    d.docker("rmi", "files-commit:v5")
