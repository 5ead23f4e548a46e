"""Docker's JSON shapes for images: ``GET /images/{name}/json`` (inspect), ``/history`` and the
``/images/json`` list, computed from the image record and its config.

Why docker's shapes exactly (capitalized keys, ``null`` for unset lists and maps, the fields it
always prints even when empty): clients (the docker CLI's ``--format`` templates, docker-py,
Ansible) index into these objects; a missing key is an error for them, an extra one is not.
"""

from __future__ import annotations

import datetime
import fnmatch

from dockyard.oci.reference import parse_reference

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dockyard.image.service import HistoryEntry, ImageService, ImageSummary
    from dockyard.metadata.records import ImageRecord
    from dockyard.oci.image_config import ContainerConfig, ImageConfig

ZERO_TIME = "0001-01-01T00:00:00Z"


def created_timestamp(created: str) -> float:
    """Seconds since the epoch of an RFC 3339 text (nanoseconds allowed); 0 when unparsable."""
    if not created:
        return 0.0
    text = created.strip().replace("z", "Z")
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    head, dot, rest = text.partition(".")
    if dot:  # Python takes at most 6 fraction digits
        digits = "".join(c for c in rest if c.isdigit())
        zone = rest[len(digits):]
        text = f"{head}.{digits[:6]}{zone}"
    try:
        t = datetime.datetime.fromisoformat(text)
    except ValueError:
        return 0.0
    if t.tzinfo is None:
        t = t.replace(tzinfo=datetime.timezone.utc)
    return t.timestamp()


def repo_digests(image: ImageRecord, tags: list[str]) -> tuple[str, ...]:
    """``name@<manifest digest>`` for each repository that tags the image (as docker with the
    containerd image store shows them)."""
    out: list[str] = []
    for tag in tags:
        try:
            ref = parse_reference(tag)
        except Exception:  # noqa: BLE001 - a stored tag that no longer parses: skip it
            continue
        text = ref.name_only().with_digest(image.manifest_digest).familiar_string()
        if text not in out:
            out.append(text)
    return tuple(sorted(out))


def _matches(pattern: str, tag: str) -> bool:
    """docker's ``reference=`` filter: a glob against ``name`` or ``name:tag`` (familiar)."""
    name = tag.rsplit(":", 1)[0] if ":" in tag.rsplit("/", 1)[-1] else tag
    return fnmatch.fnmatchcase(tag, pattern) or fnmatch.fnmatchcase(name, pattern)


def summaries(svc: ImageService, *, all: bool = False, dangling: bool | None = None,
              reference: str | None = None) -> list[ImageSummary]:
    """The image list, newest first. ``all`` would add intermediate build images; there are none
    without a builder's parent links, so every image is listed either way."""
    from dockyard.image.service import ImageSummary, familiar

    out: list[tuple[float, float, ImageSummary]] = []
    for image in svc.db.images.list():
        full = svc.db.tags.tags_of(image.id)
        tags = sorted(familiar(t) for t in full)
        if dangling is True and tags or dangling is False and not tags:
            continue
        if reference is not None:
            pattern = reference
            tags = [t for t in tags if _matches(pattern, t)]
            if not tags:
                continue
        users = len(svc.db.containers.uses_image(image.id))
        s = ImageSummary(image.id, tuple(tags), repo_digests(image, tags), image.created,
                         image.size, users)
        out.append((created_timestamp(image.created), image.added_at, s))
    out.sort(key=lambda x: (x[0], x[1]), reverse=True)
    return [s for _, _, s in out]


def history(svc: ImageService, image: ImageRecord) -> list[HistoryEntry]:
    """``docker history``: the config's history, newest first; a non-empty entry's size is its
    layer's. Layers the history does not describe (tools that append layers without history)
    get an entry of their own, so every layer shows."""
    from dockyard.image.service import HistoryEntry

    cfg = svc.config(image)
    sizes = [_layer_size(svc, la.snapshot_id) for la in image.layers]
    rows: list[HistoryEntry] = []
    layer = 0
    for h in cfg.history:
        size = 0
        if not h.empty_layer and layer < len(sizes):
            size = sizes[layer]
            layer += 1
        rows.append(HistoryEntry("<missing>", h.created, h.created_by, size, h.comment,
                                 h.empty_layer))
    for i in range(layer, len(sizes)):
        rows.append(HistoryEntry("<missing>", cfg.created, "", sizes[i], "", False))
    rows.reverse()
    if rows:
        top = rows[0]
        rows[0] = HistoryEntry(str(image.id), top.created, top.created_by, top.size, top.comment,
                               top.empty_layer)
    return rows


def _layer_size(svc: ImageService, snapshot_id: int | None) -> int:
    if snapshot_id is None:
        return 0
    rec = svc.db.snapshots.get(snapshot_id)
    return rec.size if rec is not None else 0


def container_config(c: ContainerConfig) -> dict:
    """docker's ``container.Config`` as an image shows it: always-present keys with ``null`` or
    empty values, omitempty ones only when set."""
    out: dict = {
        "Hostname": "", "Domainname": "", "User": c.user,
        "AttachStdin": False, "AttachStdout": False, "AttachStderr": False,
    }
    if c.exposed_ports:
        out["ExposedPorts"] = {p: {} for p in c.exposed_ports}
    out.update({"Tty": False, "OpenStdin": False, "StdinOnce": False,
                "Env": list(c.env) if c.env else None,
                "Cmd": list(c.cmd) if c.cmd is not None else None})
    if c.healthcheck is not None:
        out["Healthcheck"] = c.to_obj()["Healthcheck"]
    if c.args_escaped:
        out["ArgsEscaped"] = True
    out.update({"Image": "", "Volumes": {v: {} for v in c.volumes} if c.volumes else None,
                "WorkingDir": c.working_dir,
                "Entrypoint": list(c.entrypoint) if c.entrypoint is not None else None,
                "OnBuild": list(c.on_build) if c.on_build is not None else None,
                "Labels": dict(c.labels) if c.labels else None})
    if c.stop_signal:
        out["StopSignal"] = c.stop_signal
    if c.shell is not None:
        out["Shell"] = list(c.shell)
    return out


def graph_driver(svc: ImageService, image: ImageRecord) -> dict:
    """Where the layers are on disk, in overlay2's vocabulary (vfs: the top snapshot's dir)."""
    snap = svc.snapshotter
    ids = [la.snapshot_id for la in image.layers]
    if not ids or any(i is None for i in ids):
        return {"Data": None, "Name": "overlay2" if snap.driver == "overlay" else snap.driver}
    store = svc.store
    top = ids[-1]
    assert top is not None
    if snap.driver != "overlay":
        return {"Data": {"Dir": store.snapshot_fs(top)}, "Name": snap.driver}
    data = {"MergedDir": f"{store.snapshot(top)}/merged", "UpperDir": store.snapshot_fs(top),
            "WorkDir": store.snapshot_work(top)}
    lowers = [store.snapshot_fs(i) for i in reversed(ids[:-1]) if i is not None]
    if lowers:
        data["LowerDir"] = ":".join(lowers)
    return {"Data": dict(sorted(data.items())), "Name": "overlay2"}


def inspect_image(svc: ImageService, image: ImageRecord) -> dict:
    """docker's ``GET /images/{name}/json`` object."""
    from dockyard.image.service import familiar

    cfg: ImageConfig = svc.config(image)
    tags = sorted(familiar(t) for t in svc.db.tags.tags_of(image.id))
    out: dict = {
        "Id": str(image.id),
        "RepoTags": tags,
        "RepoDigests": list(repo_digests(image, tags)),
        "Parent": "",
        "Comment": cfg.comment,
        "Created": cfg.created or ZERO_TIME,
        "DockerVersion": "",
        "Author": cfg.author,
        "Config": container_config(cfg.config),
        "Architecture": cfg.architecture,
    }
    if cfg.variant:
        out["Variant"] = cfg.variant
    out["Os"] = cfg.os
    if cfg.os_version:
        out["OsVersion"] = cfg.os_version
    out.update({
        "Size": image.size,
        "VirtualSize": image.size,
        "GraphDriver": graph_driver(svc, image),
        "RootFS": {"Type": cfg.rootfs.type, "Layers": [str(d) for d in cfg.rootfs.diff_ids]},
        "Metadata": {"LastTagTime": ZERO_TIME},
    })
    return out
