"""``image.commit.commit`` on the real kernel: a busybox container's upper dir (written through its
mounted overlay rootfs) becomes a new image that shares the parent's snapshots, holds the
container's changes (added, modified and deleted files), carries the request's config merged
with the container's and the ``--change`` instructions, and leaves nothing behind on failure."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from helpers import unique_id

from dockyard import errors
from dockyard.image.bootstrap import bootstrap_busybox
from dockyard.image.bundle import Bundle, create_bundle, remove_bundle
from dockyard.image.commit import commit, merge_config
from dockyard.image.service import ImageService
from dockyard.oci.image_config import ContainerConfig
from dockyard.snapshot.apply import mounts_under

pytestmark = pytest.mark.skipif(not Path("/bin/busybox").exists(),
                                reason="needs host /bin/busybox (Debian package busybox-static)")


@pytest.fixture
def svc(tmp_path: Path):
    with ImageService.open(str(tmp_path / "store")) as s:
        bootstrap_busybox(s)
        yield s


@pytest.fixture
def bundles(svc: ImageService, tmp_path: Path):
    made: list[Bundle] = []

    def make(image: str = "busybox") -> Bundle:
        b = create_bundle(svc, image, str(tmp_path / f"b{len(made)}"), container_id=unique_id())
        made.append(b)
        return b

    yield make
    for b in made:
        remove_bundle(svc, b)
    assert mounts_under(str(tmp_path)) == []


def lowers(svc: ImageService, image_id: str) -> list[str]:
    return svc.snapshotter.lowerdirs(svc.unpack(svc.resolve(image_id)))  # type: ignore[attr-defined]


def test_commit_makes_an_image_with_the_containers_changes(svc: ImageService, bundles) -> None:
    box = bundles()
    Path(f"{box.rootfs}/hello.txt").write_text("hi\n")
    os.unlink(f"{box.rootfs}/bin/ls")
    Path(f"{box.rootfs}/etc/motd").write_text("changed\n")
    parent = svc.resolve("busybox")
    new_id = commit(svc, container_upper=box.upper, lower_image_id=box.image_id,
                    lower_dirs=lowers(svc, box.image_id), comment="my change", author="me",
                    changes=["ENV A=1", 'CMD ["/bin/sh", "-c", "echo hi"]'], repo_tag="mine:v1")
    image = svc.resolve("mine:v1")
    assert image.id == new_id
    # the parent's layers and snapshots are shared; one new layer on top
    assert len(image.layers) == len(parent.layers) + 1
    assert [la.snapshot_id for la in image.layers[:-1]] == [la.snapshot_id for la in parent.layers]
    cfg = svc.config(image)
    assert "A=1" in cfg.config.env and cfg.config.cmd == ("/bin/sh", "-c", "echo hi")
    assert any(e.startswith("PATH=") for e in cfg.config.env)  # merged from the container's
    assert cfg.comment == "my change" and cfg.author == "me"
    assert cfg.history[-1].comment == "my change" and not cfg.history[-1].empty_layer
    # a container of the new image sees the changes
    child = bundles("mine:v1")
    assert Path(f"{child.rootfs}/hello.txt").read_text() == "hi\n"
    assert Path(f"{child.rootfs}/etc/motd").read_text() == "changed\n"
    assert not os.path.lexists(f"{child.rootfs}/bin/ls")
    assert os.path.exists(f"{child.rootfs}/bin/busybox")
    # and the history lists one more entry
    assert len(svc.history("mine:v1")) == len(svc.history("busybox")) + 1


def test_commit_of_an_unchanged_container_adds_no_layer(svc: ImageService, bundles) -> None:
    box = bundles()
    for name in os.listdir(box.upper):  # what create_bundle may have made (the working dir)
        shutil.rmtree(f"{box.upper}/{name}")
    new_id = commit(svc, container_upper=box.upper, lower_image_id=box.image_id,
                    config=ContainerConfig(cmd=("true",)))
    image = svc.resolve(str(new_id))
    assert image.layers == svc.resolve("busybox").layers
    cfg = svc.config(image)
    assert cfg.history[-1].empty_layer and cfg.config.cmd == ("true",)
    assert svc.tags_of(image) == []


def test_a_failed_commit_leaves_no_image(svc: ImageService, bundles) -> None:
    box = bundles()
    Path(f"{box.rootfs}/x").write_text("x")
    before = {i.id for i in svc.list(all=True)}
    with pytest.raises(errors.InvalidArgument):
        commit(svc, container_upper=box.upper, lower_image_id=box.image_id, changes=["RUN x"])
    with pytest.raises(errors.InvalidArgument):
        commit(svc, container_upper=box.upper, lower_image_id=box.image_id, repo_tag="Bad:Ref:x")
    with pytest.raises(errors.NotFound):
        commit(svc, container_upper=box.upper, lower_image_id="sha256:" + "0" * 64)
    with pytest.raises(OSError):
        commit(svc, container_upper=f"{box.path}/missing", lower_image_id=box.image_id)
    assert {i.id for i in svc.list(all=True)} == before
    assert svc.content.ingests() == []


def test_merge_config_follows_docker() -> None:
    base = ContainerConfig(user="app", env=("PATH=/bin", "A=0"), cmd=("sh",), entrypoint=("/init",),
                           labels=(("a", "1"),), exposed_ports=("80/tcp",), working_dir="/w")
    merged = merge_config(ContainerConfig(env=("A=1",), labels=(("b", "2"),),
                                          exposed_ports=("443/tcp",)), base)
    assert merged.env == ("A=1", "PATH=/bin") and merged.user == "app"
    assert merged.cmd == ("sh",) and merged.entrypoint == ("/init",) and merged.working_dir == "/w"
    assert merged.labels == (("a", "1"), ("b", "2"))
    assert merged.exposed_ports == ("443/tcp", "80/tcp")
    # a new entrypoint without a cmd drops the container's cmd
    assert merge_config(ContainerConfig(entrypoint=("/x",)), base).cmd is None
