"""The image verbs end to end: the real ``dockyard`` CLI as a subprocess, a thin client of a real
``dockyard daemon`` (one per module, see daemon_util.py; the snapshots are overlay mounts).

Covered: bootstrap busybox (and its reproducible id), images, image inspect, history, tag, rmi
(lines and conflicts), save/load round trips in both formats, import with --change, image diff with
exact lines, image prune, system df, system check (clean, corrupt blob, --repair), bad input
(garbage load, non-tar import, missing image) failing with exit 1 and recording nothing, the hint
when no daemon answers, and -H / DOCKYARD_HOST choosing the daemon. Each test starts and ends with
an empty, clean store (the ``dy`` fixture checks and empties it).
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
from daemon_util import CLI, Daemon, daemon_fixture, running_daemon

pytestmark = pytest.mark.skipif(not Path("/bin/busybox").exists(),
                                reason="needs host /bin/busybox (Debian package busybox-static)")

ID_RE = re.compile(r"sha256:[0-9a-f]{64}\Z")
ERR = "Error response from daemon: "

daemon = daemon_fixture(busybox=False)


class Dockyard:
    def __init__(self, d: Daemon) -> None:
        self.daemon = d
        self.root = d.root

    def run(self, *args: str, input: bytes | None = None, check: bool = True
            ) -> subprocess.CompletedProcess:
        p = self.daemon.cli(*args, input=input if input is not None else b"", check=False)
        if check and p.returncode != 0:
            raise AssertionError(f"dockyard {' '.join(args)} exited {p.returncode}:\n"
                                 f"{p.stderr.decode(errors='replace')}")
        return p

    def out(self, *args: str, input: bytes | None = None) -> str:
        return self.run(*args, input=input).stdout.decode()

    def fail(self, *args: str, input: bytes | None = None) -> str:
        p = self.run(*args, input=input, check=False)
        assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
        return p.stderr.decode()

    def ids(self, *extra: str) -> list[str]:
        return self.out("images", "-q", "--no-trunc", *extra).split()

    def inspect(self, name: str) -> dict:
        (obj,) = json.loads(self.out("image", "inspect", name))
        return obj

    def bootstrap(self) -> str:
        image_id = self.out("image", "bootstrap", "busybox").strip()
        assert ID_RE.match(image_id), image_id
        return image_id

    def clean(self) -> None:
        assert self.out("system", "check").endswith("ok: no problems\n")


@pytest.fixture
def dy(daemon: Daemon):
    """The module's daemon, empty before the test; emptied (and checked) after it."""
    assert daemon.json("GET", "/images/json?all=1") == [], "a previous test left images"
    yield Dockyard(daemon)
    for image in daemon.json("GET", "/images/json?all=1"):  # raw HTTP: quicker than the CLI
        daemon.request("DELETE", f"/images/{image['Id']}?force=1")
    daemon.json("POST", "/images/prune?filters=%7B%22dangling%22%3A%5B%22false%22%5D%7D")
    report = daemon.json("POST", "/dockyard/system/check")
    assert report["Ok"] and not report["Problems"], report


def _layer_tar(dy: Dockyard, image: str, tmp_path: Path) -> bytes:
    """The uncompressed tar of a one-layer image, read from ``dockyard save`` (docker-archive)."""
    archive = tmp_path / "saved.tar"
    dy.run("save", "-o", str(archive), image)
    with tarfile.open(archive) as t:
        manifest = json.load(t.extractfile("manifest.json"))  # type: ignore[arg-type]
        (layer,) = manifest[0]["Layers"]
        data = t.extractfile(layer).read()  # type: ignore[union-attr]
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as t:  # plain or gzip
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as out:
            for m in t.getmembers():
                out.addfile(m, t.extractfile(m) if m.isfile() else None)
    return buf.getvalue()


def _rewrite(tar_bytes: bytes, *, drop: set[str], replace: dict[str, bytes], add: dict[str, bytes]) -> bytes:
    """A copy of a tar with members dropped or replaced (same metadata) and files added."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as src, \
            tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as out:
        mtime = 0
        for m in src.getmembers():
            mtime = m.mtime
            if m.name in drop:
                continue
            if m.name in replace:
                m.size = len(replace[m.name])
                out.addfile(m, io.BytesIO(replace[m.name]))
            else:
                out.addfile(m, src.extractfile(m) if m.isfile() else None)
        for name, data in add.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, mtime
            out.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _human(n: int) -> str:
    from dockyard.cli.format import human_size

    return human_size(n)


# ---------------------------------------------------------------- bootstrap, images, inspect, history


def test_bootstrap_images_inspect_history(dy):
    image_id = dy.bootstrap()
    lines = dy.out("images").splitlines()
    assert re.split(r"\s{2,}", lines[0]) == ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]
    (row,) = lines[1:]
    repo, tag, short, *_created, size = re.split(r"\s{2,}", row)
    assert (repo, tag, short) == ("busybox", "latest", image_id[7:19])
    value, unit = re.match(r"([\d.]+)(kB|MB)\Z", size).groups()  # type: ignore[union-attr]
    size_bytes = float(value) * (1000 if unit == "kB" else 1_000_000)
    busybox = os.path.getsize(os.path.realpath("/bin/busybox"))
    assert busybox * 0.99 <= size_bytes <= busybox * 1.5
    obj = dy.inspect("busybox")
    from dockyard.oci.image_spec import current_platform

    assert obj["Id"] == image_id and obj["RepoTags"] == ["busybox:latest"]
    assert obj["Config"]["Cmd"] == ["sh"] and obj["Os"] == "linux"
    assert obj["Architecture"] == current_platform().architecture
    assert any(e.startswith("PATH=") for e in obj["Config"]["Env"])
    assert len(obj["RootFS"]["Layers"]) == 1
    assert dy.out("inspect", "--format", "{{json .Config.Cmd}}", "busybox") == '["sh"]\n'
    history = dy.out("history", "busybox").splitlines()
    assert re.split(r"\s{2,}", history[0]) == ["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"]
    assert len(history) == 2 and history[1].startswith(image_id[7:19])
    assert "dockyard image bootstrap busybox" in history[1]
    assert dy.out("history", "-q", "--no-trunc", "busybox") == image_id + "\n"
    dy.clean()


def test_bootstrap_is_reproducible(dy, tmp_path):
    first = dy.bootstrap()
    assert dy.bootstrap() == first
    assert dy.ids() == [first]
    with running_daemon(tmp_path) as other:  # another root: the same id
        assert Dockyard(other).bootstrap() == first


# ---------------------------------------------------------------- tag, rmi


def test_tag_and_rmi(dy):
    image_id = dy.bootstrap()
    assert dy.out("tag", "busybox", "mine:1") == ""
    rows = [re.split(r"\s{2,}", r)[:3] for r in dy.out("images").splitlines()[1:]]
    assert sorted(rows) == [["busybox", "latest", image_id[7:19]], ["mine", "1", image_id[7:19]]]
    assert "must be forced" in dy.fail("rmi", image_id[7:19])
    assert dy.out("rmi", "mine:1") == "Untagged: mine:1\n"
    assert dy.ids() == [image_id]
    dy.out("tag", image_id, "again")
    out = dy.out("rmi", "-f", image_id).splitlines()
    assert sorted(out[:2]) == ["Untagged: again:latest", "Untagged: busybox:latest"]
    assert out[2] == f"Deleted: {image_id}"
    assert dy.ids() == []
    assert dy.fail("rmi", "missing") == f"{ERR}No such image: missing\n"
    dy.clean()


def test_rmi_by_tag_deletes_the_last_tag_image(dy):
    image_id = dy.bootstrap()
    lines = dy.out("rmi", "busybox").splitlines()
    assert lines[:2] == ["Untagged: busybox:latest", f"Deleted: {image_id}"]
    assert re.split(r"\s{2,}", dy.out("images").strip()) == ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]
    assert dy.ids() == []
    dy.clean()


# ---------------------------------------------------------------- save, load


@pytest.mark.parametrize("fmt", ["docker", "oci"])
def test_save_load_round_trip(dy, tmp_path, fmt):
    image_id = dy.bootstrap()
    archive = tmp_path / f"busybox-{fmt}.tar"
    dy.run("save", "--format", fmt, "-o", str(archive), "busybox")
    names = tarfile.open(archive).getnames()
    assert ("manifest.json" in names) if fmt == "docker" else ("index.json" in names and "oci-layout" in names)
    dy.run("rmi", "busybox")
    assert dy.ids() == []
    assert dy.out("load", "-i", str(archive)) == "Loaded image: busybox:latest\n"
    assert dy.ids() == [image_id]
    streamed = dy.run("save", "--format", fmt, "busybox").stdout  # to stdout (not a terminal)
    dy.run("rmi", "busybox")
    assert dy.out("load", input=streamed) == "Loaded image: busybox:latest\n"
    assert dy.ids() == [image_id] and dy.inspect("busybox")["Config"]["Cmd"] == ["sh"]
    dy.clean()


# ---------------------------------------------------------------- import, image diff


def test_import_with_changes(dy, tmp_path):
    rootfs = tmp_path / "rootfs"
    (rootfs / "bin").mkdir(parents=True)
    shutil.copy2(os.path.realpath("/bin/busybox"), rootfs / "bin/busybox")
    (rootfs / "srv").mkdir()
    (rootfs / "srv/index.html").write_text("hello\n")
    tar = tmp_path / "fs.tar.gz"
    with tarfile.open(tar, "w:gz") as t:
        t.add(rootfs, arcname=".")
    out = dy.out("import", "-c", 'CMD ["/bin/busybox", "httpd", "-f"]', "-c", "ENV A=1 B=\"two words\"",
                 "--change", "ENV PATH=/bin:$A", "-c", "WORKDIR /srv", "-c", "EXPOSE 80",
                 "-m", "my import", str(tar), "web:1")
    image_id = out.strip()
    assert ID_RE.match(image_id)
    obj = dy.inspect("web:1")
    assert obj["Id"] == image_id
    assert obj["Config"]["Cmd"] == ["/bin/busybox", "httpd", "-f"]
    assert obj["Config"]["Env"] == ["A=1", "B=two words", "PATH=/bin:1"]
    assert obj["Config"]["WorkingDir"] == "/srv"
    assert obj["Config"]["ExposedPorts"] == {"80/tcp": {}}
    assert obj["Comment"] == "my import"
    history = dy.out("history", "--format", "{{.CreatedBy}}|{{.Comment}}", "web:1")
    assert history == "|my import\n"
    plain = dy.out("import", "-", input=_layer_tar_from_dir(rootfs)).strip()
    assert dy.inspect(plain)["Comment"] == "Imported from -"
    assert dy.inspect(plain)["RootFS"] == obj["RootFS"]  # same content, same diff id
    dy.clean()


def _layer_tar_from_dir(root: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        t.add(root, arcname=".")
    return buf.getvalue()


def test_image_diff_exact_lines(dy, tmp_path):
    dy.bootstrap()
    base = _layer_tar(dy, "busybox", tmp_path)
    with tarfile.open(fileobj=io.BytesIO(base)) as t:
        old_passwd = t.extractfile("etc/passwd").read()  # type: ignore[union-attr]
    new_passwd = old_passwd + b"www:x:33:33:www:/var/www:/bin/false\n"
    changed = _rewrite(base, drop={"bin/ls"}, replace={"etc/passwd": new_passwd},
                       add={"etc/new": b"hello world\n"})
    dy.run("import", "-", "changed:1", input=changed)
    out = dy.out("image", "diff", "busybox", "changed:1")
    assert out.splitlines() == [
        "D /bin/ls",
        "A /etc/new  (12B, -rw-r--r--)",
        f"C /etc/passwd  ({_human(len(old_passwd))} → {_human(len(new_passwd))}, -rw-r--r--)",
    ]
    js = json.loads(dy.out("image", "diff", "--format", "json", "busybox", "changed:1"))
    assert [(c["Path"], c["Kind"]) for c in js] == [("/bin/ls", 2), ("/etc/new", 1), ("/etc/passwd", 0)]
    assert dy.out("image", "diff", "busybox", "busybox") == ""
    assert dy.fail("image", "diff", "busybox", "missing") == f"{ERR}No such image: missing\n"
    dy.clean()


# ---------------------------------------------------------------- prune, df, check


def test_image_prune(dy, tmp_path):
    busybox = dy.bootstrap()
    fs = _layer_tar(dy, "busybox", tmp_path)
    first = dy.out("import", "-m", "one", "-", "x:1", input=fs).strip()
    second = dy.out("import", "-m", "two", "-", "x:1", input=fs).strip()  # the tag moves
    assert dy.ids("--filter", "dangling=true") == [first]
    p = dy.run("image", "prune")  # no terminal: the answer is no
    assert p.stdout.decode().startswith("WARNING! This will remove all dangling images.\n")
    assert first in dy.ids()
    out = dy.out("image", "prune", "-f")
    assert out.startswith("Deleted Images:\n") and f"deleted: {first}\n" in out
    assert re.search(r"\n\nTotal reclaimed space: [\d.]+[kM]?B\n\Z", out)
    assert sorted(dy.ids()) == sorted([busybox, second])
    assert dy.out("image", "prune", "-f") == "Total reclaimed space: 0B\n"
    out = dy.out("image", "prune", "-a", "-f")
    assert "untagged: busybox:latest" in out and f"deleted: {second}" in out
    assert dy.ids() == []
    assert not any((dy.root / "content/blobs/sha256").iterdir())  # everything collected
    dy.clean()


def test_system_df(dy):
    dy.bootstrap()
    lines = dy.out("system", "df").splitlines()
    assert re.split(r"\s{2,}", lines[0]) == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
    images = re.split(r"\s{2,}", lines[1])
    assert images[:3] == ["Images", "1", "0"] and images[4] == f"{images[3]} (100%)"
    assert [re.split(r"\s{2,}", ln)[0] for ln in lines[2:]] == ["Containers", "Local Volumes", "Build Cache"]


def test_system_check_finds_and_repairs_a_corrupt_blob(dy):
    image_id = dy.bootstrap()
    assert dy.out("system", "check").startswith("checked ")
    layer = dy.inspect("busybox")["RootFS"]["Layers"][0]
    blobs = sorted((dy.root / "content/blobs/sha256").iterdir(), key=lambda p: p.stat().st_size)
    target = blobs[-1]  # the layer blob, the largest
    os.chmod(target, 0o644)
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    p = dy.run("system", "check", check=False)
    out = p.stdout.decode()
    assert p.returncode == 1
    assert f"problem: blob sha256:{target.name}: content does not match its digest" in out
    assert f"image {image_id[7:19]} (busybox:latest)" in out and layer  # the image is named
    p = dy.run("system", "check", "--repair", check=False)
    out = p.stdout.decode()
    assert p.returncode == 0, out
    assert f"repaired: removed image {image_id} (untagged busybox:latest)" in out
    assert f"repaired: removed corrupt blob sha256:{target.name}" in out
    assert out.endswith("ok: no problems remain\n")
    dy.clean()
    assert dy.ids() == [] and not target.exists()


# ---------------------------------------------------------------- bad input


def test_bad_input_fails_cleanly_and_records_nothing(dy, tmp_path):
    busybox = dy.bootstrap()
    err = dy.fail("load", input=b"this is not an archive at all" * 100)
    assert err.startswith(f"{ERR}load: ") and len(err.splitlines()) == 1
    err = dy.fail("load", "-i", str(tmp_path / "missing.tar"))
    assert "No such file or directory" in err
    err = dy.fail("import", "-", "bad:1", input=b"plain text, not a tar\n" * 50)
    assert err.startswith(f"{ERR}import: not a valid tar archive")
    err = dy.fail("import", "-", "bad:1", input=b"")
    assert err == f"{ERR}import: the input is empty (expected a tar archive)\n"
    import gzip

    err = dy.fail("import", "-", input=gzip.compress(b"junk" * 1000))
    assert "not a valid tar archive (in a gzip stream)" in err
    assert dy.fail("import", "-c", "RUN true", "-", input=b"").startswith(f"{ERR}RUN is not a valid")
    assert dy.fail("rmi", "nope:1") == f"{ERR}No such image: nope:1\n"
    assert dy.fail("image", "inspect", "nope") == "Error: No such image: nope\n"
    assert dy.ids() == [busybox]
    # no spooled upload left; earlier loads' emptied staging slots may stay (image/staging.py)
    assert [p for p in (dy.root / "tmp").rglob("*") if not p.is_dir()] == []
    assert all(p.name.startswith("load-") for p in (dy.root / "tmp").iterdir())
    dy.clean()
    p = dy.run("images", "--bogus", check=False)
    assert p.returncode == 125 and b"unknown flag: --bogus" in p.stderr


# ---------------------------------------------------------------- choosing the daemon


def test_no_daemon_prints_how_to_start_one(tmp_path):
    sock = tmp_path / "none.sock"
    for argv in ([*CLI, "-H", f"unix://{sock}", "images"], [*CLI, "image", "ls"]):
        env = {**os.environ, "DOCKYARD_HOST": f"unix://{sock}"}
        p = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env)
        assert p.returncode == 1 and p.stdout == ""
        assert p.stderr.startswith(f"Cannot connect to the dockyard daemon at unix://{sock}. "
                                   "Is the dockyard daemon running?\n")
        assert "'dockyard daemon'" in p.stderr
    p = subprocess.run([*CLI, "-H", f"unix://{sock}", "version"], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 1 and p.stdout.startswith("Client:\n") and "Server" not in p.stdout
    p = subprocess.run([*CLI, "--root", str(tmp_path), "images"], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 125 and "--root is a flag of 'dockyard daemon'" in p.stderr


def test_host_flag_and_env_choose_the_daemon(dy, tmp_path):
    image_id = dy.bootstrap()
    env = {**os.environ, "DOCKYARD_HOST": dy.daemon.host}
    p = subprocess.run([*CLI, "images", "-q", "--no-trunc"], capture_output=True, text=True,
                       timeout=60, env=env)
    assert (p.returncode, p.stdout) == (0, image_id + "\n")
    with running_daemon(tmp_path) as other:  # -H wins over DOCKYARD_HOST
        p = subprocess.run([*CLI, "-H", other.host, "images", "-q"], capture_output=True,
                           text=True, timeout=60, env=env)
        assert (p.returncode, p.stdout) == (0, "")
        out = other.cli("version").stdout
        assert "Server: dockyard" in out and "API version:      1.45 (minimum version 1.24)" in out
        info = other.cli("info").stdout
        assert f"Dockyard Root Dir: {other.root}" in info and " Images: 0" in info


def test_a_crashed_daemon_is_no_daemon_until_restarted(tmp_path):
    with running_daemon(tmp_path, busybox=True) as d:
        image_id = d.cli("images", "-q", "--no-trunc").stdout.strip()
        d.kill9()  # its socket stays behind, nobody listens
        p = d.cli("images", check=False)
        assert p.returncode == 1 and p.stderr.startswith(
            f"Cannot connect to the dockyard daemon at {d.host}. Is the dockyard daemon running?")
        d.restart()  # the stale socket is replaced
        assert d.cli("images", "-q", "--no-trunc").stdout.strip() == image_id
        assert d.cli("system", "check").stdout.endswith("ok: no problems\n")


def test_tcp_host(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with running_daemon(tmp_path, extra_args=("-H", f"tcp://127.0.0.1:{port}")) as d:
        p = subprocess.run([*CLI, "-H", f"tcp://127.0.0.1:{port}", "image", "bootstrap", "busybox"],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0 and ID_RE.match(p.stdout.strip()), p.stderr
        assert d.cli("images", "--format", "{{.Repository}}").stdout == "busybox\n"


# ---------------------------------------------------------------- debian (not in CI)


def test_bootstrap_debian(dy):  # runs in the daemon, on the same host
    from dockyard.image.bootstrap import debian_unavailable

    reason = debian_unavailable("bookworm")
    if reason is not None:
        pytest.skip(reason)
    image_id = dy.out("image", "bootstrap", "debian:bookworm").strip()
    assert ID_RE.match(image_id)
    obj = dy.inspect("debian:bookworm")
    assert obj["Config"]["Cmd"] == ["bash"]
    dy.clean()
