"""Images cross between dockyard and docker, podman and skopeo (issue 3, acceptance item 1).

- ``docker save`` (private dockerd, classic builder) -> dockyard load -> dockyard runs it;
- ``podman save --format docker-archive`` and ``--format oci-archive`` -> dockyard load -> runs;
- dockyard save (docker-archive) -> ``docker load`` -> ``docker run`` and -> ``podman load`` ->
  ``podman run`` (the engines' own default runtime, runc: the image, not dockyard-runtime, is
  what is checked), including a multi-layer image with a whiteout that came from docker;
- dockyard save ``--format oci`` -> ``skopeo inspect``/``skopeo copy`` read the layout, and the
  copy loads back into dockyard as the same image;
- a layout written by ``skopeo copy docker-archive:... oci:DIR:tag`` -> dockyard load -> runs.

"Runs in dockyard" is ``image.bundle.create_bundle`` + ``dockyard-runtime run`` (DESIGN §3's run
path without the engine). The engines run privately (tests/interop/engine_drive.py and the
fixtures' patterns of test_dockerd_runtime.py / test_podman_runtime.py: private data roots,
sockets and configs under the test's temp dir); at the end every engine is stopped and its
storage removed, every bundle unmounted, and host paths the tools create are removed again.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from engine_drive import HostPaths, cgroup_dirs, run_cmd, tar_rootfs, unmount_under
from helpers import Runtime, runtime_binary, unique_id

import test_dockerd_runtime as drt  # private dockerd: start and teardown
import test_podman_runtime as prt  # private podman config and teardown

from dockyard.image.bootstrap import PASSWD, bootstrap_busybox
from dockyard.image.bundle import create_bundle, remove_bundle
from dockyard.image.service import ImageService
from dockyard.oci.spec_builder import RunOptions
from dockyard.snapshot.apply import mounts_under

DOCKERD = shutil.which("dockerd")
DOCKER = next((p for p in ("/usr/bin/docker", shutil.which("docker")) if p and os.path.exists(p)),
              None)
PODMAN = shutil.which("podman")
SKOPEO = shutil.which("skopeo")
RUNC = shutil.which("runc") or ("/usr/sbin/runc" if os.path.exists("/usr/sbin/runc") else None)

pytestmark = [pytest.mark.interop, pytest.mark.timeout(900)]
needs_docker = pytest.mark.skipif(
    DOCKERD is None or DOCKER is None or shutil.which("containerd") is None,
    reason="dockerd, containerd and the docker client are not all installed (Debian package "
           "docker.io)")
needs_podman = pytest.mark.skipif(PODMAN is None or RUNC is None,
                                  reason="podman or runc not installed (Debian packages podman, "
                                         "runc)")
needs_skopeo = pytest.mark.skipif(SKOPEO is None, reason="skopeo not installed (Debian package "
                                                         "skopeo)")

BASE = "dockyard-interop/base:1"
FROM_DOCKER = "dockyard-interop/from-docker:1"
FROM_PODMAN = "localhost/dockyard-interop/from-podman:1"
#: Built on BASE by each engine: a marker file, a whiteout (/bin/ls removed), env and workdir.
CONTAINERFILE = """\
FROM {base}
RUN echo {marker} > /marker && rm /bin/ls && mkdir -p /data && echo kept > /data/f
ENV MADE_BY={engine}
WORKDIR /data
CMD ["sh", "-c", "cat /marker f; echo $MADE_BY; test -e /bin/ls || echo no-ls"]
"""


def expected_output(engine: str) -> str:
    """What CONTAINERFILE's CMD prints in the image ``engine`` built."""
    return f"{engine}-made\nkept\n{engine}\nno-ls\n"


#: Made outside the given roots by podman/skopeo (blob-info cache, lock files) and by
#: dockerd/containerd (socket dirs, key); removed afterwards when they were not there before.
HOST_PATHS = ("/var/lib/containers", "/var/lib/containers/cache", "/etc/cni/net.d/cni.lock",
              "/etc/containers/networks", "/run/containers", "/run/containers/networks",
              "/run/docker", "/run/docker/plugins", "/run/containerd", "/run/containerd/s",
              "/etc/docker/key.json")


# ---------------------------------------------------------------- dockyard side

@pytest.fixture(scope="module")
def host_paths():
    host = HostPaths(HOST_PATHS)
    yield
    host.remove_created(trees=["/var/lib/containers"])


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("dockyard-store")
    with ImageService.open(str(root)) as s:
        bootstrap_busybox(s)
        yield s
    assert mounts_under(str(root)) == []
    shutil.rmtree(root)


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory):
    rt = Runtime(runtime_binary("dockyard"), tmp_path_factory.mktemp("runtime-state"))
    yield rt
    rt.cleanup()


def run_in_dockyard(svc: ImageService, runtime: Runtime, image: str, workdir: Path,
                    args: list[str] | None = None) -> subprocess.CompletedProcess:
    """Create a bundle of ``image``, run it with dockyard-runtime, remove the bundle."""
    b = create_bundle(svc, image, str(workdir / f"bundle-{unique_id()}"), container_id=unique_id(),
                      args=args, opts=RunOptions(cgroup_parent="/dockyard-test"))
    try:
        return runtime.run("run", "--bundle", b.path, b.id, check=False, timeout=60)
    finally:
        remove_bundle(svc, b)
        assert mounts_under(b.path) == []


def load(svc: ImageService, path: Path) -> list[str]:
    with open(path, "rb") as f:
        return svc.load(f)


def save(svc: ImageService, names: list[str], path: Path, fmt: str = "docker") -> Path:
    with open(path, "wb") as f:
        svc.save(names, f, fmt=fmt)
    return path


def loaded_id(lines: list[str]) -> str | None:
    for line in lines:
        if line.startswith("Loaded image ID: "):
            return line.removeprefix("Loaded image ID: ")
    return None


def untar(archive: Path, dest: Path) -> Path:
    dest.mkdir()
    with tarfile.open(archive) as tar:
        tar.extractall(dest, filter="data")  # a tool's output in a test, not an image layer
    return dest


def tar_dir(src: Path, dest: Path) -> Path:
    with tarfile.open(dest, "w") as tar:
        for name in sorted(os.listdir(src)):
            tar.add(src / name, arcname=name)
    return dest


# ---------------------------------------------------------------- docker

class Docker(drt.Docker):
    """The docker CLI on a private dockerd (test_dockerd_runtime.py's), classic builder."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.env["DOCKER_BUILDKIT"] = "0"

    def __call__(self, *args, timeout: float = 120, check: bool = True):
        return super().__call__(*args, timeout=timeout, check=check)


@pytest.fixture(scope="module")
def docker(tmp_path_factory: pytest.TempPathFactory, busybox_rootfs: Path, host_paths):
    if DOCKERD is None or DOCKER is None or shutil.which("containerd") is None:
        pytest.skip("dockerd, containerd and the docker client are not all installed")
    root = tmp_path_factory.mktemp("dockerd")
    had_parent = bool(cgroup_dirs("docker"))
    d = Docker(root)
    proc = None
    problems: list[str] = []
    try:
        proc = drt.start_dockerd(d)  # its daemon start and teardown, unchanged
        d("import", tar_rootfs(busybox_rootfs, root / "base.tar"), BASE)
        yield d
    finally:
        problems = drt.teardown(d, proc, had_parent)
        unmount_under(root)
        shutil.rmtree(root, ignore_errors=True)
    assert not problems, "dockerd left these behind:\n" + "\n".join(problems)


@pytest.fixture(scope="module")
def docker_archive(docker: Docker, tmp_path_factory: pytest.TempPathFactory
                   ) -> tuple[Path, str, list[str]]:
    """FROM_DOCKER built by dockerd's classic builder and ``docker save``d: (tar, image id,
    diff ids)."""
    ctx = tmp_path_factory.mktemp("docker-build")
    (ctx / "Dockerfile").write_text(CONTAINERFILE.format(base=BASE, marker="docker-made",
                                                         engine="docker"))
    docker("build", "--network", "none", "-t", FROM_DOCKER, str(ctx), timeout=300)
    image_id = docker("image", "inspect", "--format", "{{.Id}}", FROM_DOCKER).stdout.strip()
    diff_ids = json.loads(docker("image", "inspect", "--format", "{{json .RootFS.Layers}}",
                                 FROM_DOCKER).stdout)
    out = ctx / "from-docker.tar"
    docker("save", "-o", str(out), FROM_DOCKER)
    return out, image_id, diff_ids


# ---------------------------------------------------------------- podman

class Podman(prt.Podman):
    """podman with private storage and config (test_podman_runtime.py's), but its own default
    runtime (runc): the image is what is checked here, not dockyard-runtime."""

    def argv(self, *args) -> list[str]:
        return [PODMAN, "--runtime", RUNC, "--cgroup-manager", "cgroupfs", "--events-backend",
                "file", *map(str, args)]

    def __call__(self, *args, timeout: float = 120, check: bool = True):
        return super().__call__(*args, timeout=timeout, check=check)


@pytest.fixture(scope="module")
def podman(tmp_path_factory: pytest.TempPathFactory, busybox_rootfs: Path, host_paths):
    if PODMAN is None or RUNC is None:
        pytest.skip("podman or runc not installed")
    root = tmp_path_factory.mktemp("podman")
    had_parent = bool(cgroup_dirs("libpod_parent"))
    prt.write_config(root)
    p = Podman(root)
    problems: list[str] = []
    try:
        p("import", tar_rootfs(busybox_rootfs, root / "base.tar"), f"localhost/{BASE}")
        yield p
    finally:
        problems = prt.teardown(p, had_parent)
        unmount_under(root)
        shutil.rmtree(root, ignore_errors=True)
    assert not problems, "podman left these behind:\n" + "\n".join(problems)


def podman_loaded(stdout: str) -> list[str]:
    return [line.removeprefix("Loaded image: ") for line in stdout.splitlines()
            if line.startswith("Loaded image: ")]


@pytest.fixture(scope="module")
def podman_image(podman: Podman, tmp_path_factory: pytest.TempPathFactory) -> str:
    """FROM_PODMAN built by ``podman build``; returns its image id."""
    ctx = tmp_path_factory.mktemp("podman-build")
    (ctx / "Containerfile").write_text(CONTAINERFILE.format(base=f"localhost/{BASE}",
                                                            marker="podman-made", engine="podman"))
    podman("build", "--network", "none", "-t", FROM_PODMAN,
           "-f", str(ctx / "Containerfile"), str(ctx), timeout=300)
    return "sha256:" + podman("image", "inspect", "--format", "{{.Id}}", FROM_PODMAN).stdout.strip()


# ---------------------------------------------------------------- foreign archives into dockyard

@needs_docker
def test_docker_save_loads_and_runs(docker_archive, svc: ImageService, runtime: Runtime,
                                    tmp_path: Path) -> None:
    archive, docker_id, _ = docker_archive
    lines = load(svc, archive)
    assert lines == [f"Loaded image: {FROM_DOCKER}"], lines
    image = svc.resolve(FROM_DOCKER)
    assert str(image.id) == docker_id  # same config bytes, same image id
    assert len(image.layers) == 2
    out = run_in_dockyard(svc, runtime, FROM_DOCKER, tmp_path)
    assert (out.returncode, out.stdout) == (0, expected_output("docker")), out
    out = run_in_dockyard(svc, runtime, FROM_DOCKER, tmp_path, ["sh", "-c", "pwd; exit 3"])
    assert (out.returncode, out.stdout) == (3, "/data\n"), out


@needs_podman
@pytest.mark.parametrize("fmt", ["docker-archive", "oci-archive"])
def test_podman_save_loads_and_runs(fmt: str, podman: Podman, podman_image: str,
                                    svc: ImageService, runtime: Runtime, tmp_path: Path) -> None:
    archive = tmp_path / f"from-podman.{fmt}.tar"
    podman("save", "--format", fmt, "-o", archive, FROM_PODMAN)
    lines = load(svc, archive)
    # podman names the image in both formats (docker-archive RepoTags; oci-archive ref.name)
    assert lines == [f"Loaded image: {FROM_PODMAN}"], lines
    image = svc.resolve(FROM_PODMAN)
    assert str(image.id) == podman_image
    out = run_in_dockyard(svc, runtime, FROM_PODMAN, tmp_path)
    assert (out.returncode, out.stdout) == (0, expected_output("podman")), out


# ---------------------------------------------------------------- dockyard archives into engines

@needs_docker
def test_dockyard_save_docker_loads_and_runs(docker: Docker, svc: ImageService,
                                             tmp_path: Path) -> None:
    archive = save(svc, ["busybox:latest"], tmp_path / "busybox.tar")
    out = docker("load", "-i", archive)
    assert out.stdout.strip().splitlines()[-1] == "Loaded image: busybox:latest", out
    assert docker("image", "inspect", "--format", "{{.Id}}", "busybox:latest").stdout.strip() \
        == str(svc.resolve("busybox:latest").id)
    out = docker("run", "--rm", "--network", "none", "busybox:latest", "cat", "/etc/passwd")
    assert out.stdout == PASSWD.decode(), out
    out = docker("run", "--rm", "--network", "none", "busybox:latest", "sh", "-c", "exit 3",
                 check=False)
    assert out.returncode == 3, out


@needs_podman
def test_dockyard_save_podman_loads_and_runs(podman: Podman, svc: ImageService,
                                             tmp_path: Path) -> None:
    archive = save(svc, ["busybox:latest"], tmp_path / "busybox.tar")
    out = podman("load", "-i", archive)
    # podman 4 files a short RepoTag of a docker-archive under localhost/ (docker's own saves too)
    assert podman_loaded(out.stdout) == ["localhost/busybox:latest"], out
    assert podman("image", "inspect", "--format", "{{.Id}}", "localhost/busybox:latest"
                  ).stdout.strip() == svc.resolve("busybox:latest").id.hex
    out = podman("run", "--rm", "--network", "none", "localhost/busybox:latest",
                 "cat", "/etc/passwd")
    assert out.stdout == PASSWD.decode(), out
    out = podman("run", "--rm", "--network", "none", "localhost/busybox:latest",
                 "sh", "-c", "exit 3", check=False)
    assert out.returncode == 3, out


@needs_docker
@needs_podman
def test_docker_image_through_dockyard_into_podman(docker_archive, svc: ImageService,
                                                   podman: Podman, tmp_path: Path) -> None:
    """Layers with a whiteout, as docker made them, saved again by dockyard, run by podman."""
    load(svc, docker_archive[0])
    archive = save(svc, [FROM_DOCKER], tmp_path / "again.tar")
    name = podman_loaded(podman("load", "-i", archive).stdout)
    assert name == [f"localhost/{FROM_DOCKER}"], name
    out = podman("run", "--rm", "--network", "none", name[0])
    assert out.stdout == expected_output("docker"), out


# ---------------------------------------------------------------- OCI layouts and skopeo

def skopeo(*args, timeout: float = 120) -> subprocess.CompletedProcess:
    """skopeo with a private accept-anything policy (local files only; no registry involved)."""
    return run_cmd([SKOPEO, "--insecure-policy", *map(str, args)], timeout=timeout)


@needs_skopeo
def test_skopeo_reads_dockyard_layout(svc: ImageService, runtime: Runtime, tmp_path: Path,
                                      host_paths) -> None:
    image = svc.resolve("busybox:latest")
    layout = untar(save(svc, ["busybox:latest"], tmp_path / "oci.tar", fmt="oci"), tmp_path / "oci")
    index = json.loads((layout / "index.json").read_text())
    ref = index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"]
    info = json.loads(skopeo("inspect", f"oci:{layout}:{ref}").stdout)
    # the manifest the layout lists (a docker schema 2 manifest is written in OCI media types:
    # containers/image skips other descriptors)
    assert info["Digest"] == index["manifests"][0]["digest"]
    assert len(info["Layers"]) == len(image.layers)
    config = json.loads(skopeo("inspect", "--config", f"oci:{layout}:{ref}").stdout)
    assert config["rootfs"]["diff_ids"] == [str(la.diff_id) for la in image.layers]

    # skopeo copies the layout into a new one and into an oci-archive; both load back as the same image
    skopeo("copy", f"oci:{layout}:{ref}", f"oci:{tmp_path / 'copy'}:copied")
    skopeo("copy", f"oci:{layout}:{ref}", f"oci-archive:{tmp_path / 'copy.tar'}:copied2")
    for archive in (tar_dir(tmp_path / "copy", tmp_path / "copy-layout.tar"), tmp_path / "copy.tar"):
        lines = load(svc, archive)
        assert loaded_id(lines) == str(image.id), lines  # a bare tag names nothing: by id
    out = run_in_dockyard(svc, runtime, str(image.id), tmp_path, ["cat", "/etc/passwd"])
    assert (out.returncode, out.stdout) == (0, PASSWD.decode()), out


@needs_skopeo
@needs_docker
def test_dockyard_reads_skopeo_layout(docker_archive, svc: ImageService, runtime: Runtime,
                                      tmp_path: Path, host_paths) -> None:
    """``skopeo copy docker-archive:X oci:DIR:tag`` loads into a store that has never seen the
    image, and runs. skopeo converts: an OCI manifest, gzip-compressed layers, and the config
    rewritten as an OCI config (docker's extra fields dropped), so the image id changes while
    the layers (diff ids) stay docker's."""
    archive, _, docker_diff_ids = docker_archive
    with ImageService.open(str(tmp_path / "fresh-store")) as fresh:
        skopeo("copy", f"docker-archive:{archive}", f"oci:{tmp_path / 'layout'}:{FROM_DOCKER}")
        index = json.loads((tmp_path / "layout/index.json").read_text())
        assert index["manifests"][0]["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
        lines = load(fresh, tar_dir(tmp_path / "layout", tmp_path / "layout.tar"))
        assert lines == [f"Loaded image: {FROM_DOCKER}"], lines
        image = fresh.resolve(FROM_DOCKER)
        assert [str(d) for d in fresh.config(image).rootfs.diff_ids] == docker_diff_ids
        assert {la.media_type for la in image.layers} == {
            "application/vnd.oci.image.layer.v1.tar+gzip"}
        out = run_in_dockyard(fresh, runtime, FROM_DOCKER, tmp_path)
        assert (out.returncode, out.stdout) == (0, expected_output("docker")), out


# ---------------------------------------------------------------- the same through the CLI

def dockyard_cli(host: str, *args, timeout: float = 120) -> subprocess.CompletedProcess:
    return run_cmd([Path(sys.executable).parent / "dockyard", "-H", host, *args], timeout=timeout)


@needs_skopeo
@needs_docker
def test_cli_docker_to_dockyard_to_skopeo_to_docker(docker_archive, docker: Docker,
                                                    tmp_path: Path, host_paths) -> None:
    """docker save -> ``dockyard load`` -> ``dockyard save --format oci`` -> skopeo reads the
    oci-archive and converts it to a docker-archive -> docker load -> docker run."""
    from integration.daemon_util import running_daemon

    archive, docker_id, diff_ids = docker_archive
    oci = tmp_path / "from-dockyard.oci.tar"
    with running_daemon(tmp_path / "cli-daemon") as daemon:  # the CLI is the daemon's client
        out = dockyard_cli(daemon.host, "load", "-i", archive)
        assert out.stdout == f"Loaded image: {FROM_DOCKER}\n", out
        dockyard_cli(daemon.host, "save", "--format", "oci", "-o", oci, FROM_DOCKER)
    config = json.loads(skopeo("inspect", "--config", f"oci-archive:{oci}").stdout)
    assert config["rootfs"]["diff_ids"] == diff_ids
    converted = tmp_path / "converted.tar"
    skopeo("copy", f"oci-archive:{oci}", f"docker-archive:{converted}:dockyard-interop/via:1")
    docker("load", "-i", converted)
    assert docker("image", "inspect", "--format", "{{.Id}}", "dockyard-interop/via:1"
                  ).stdout.strip() == docker_id  # the config bytes survived every hop
    out = docker("run", "--rm", "--network", "none", "dockyard-interop/via:1")
    assert out.stdout == expected_output("docker"), out
