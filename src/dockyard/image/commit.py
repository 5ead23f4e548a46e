"""``docker commit``: a container's overlay upper dir becomes the top layer of a new image.

    upper/ ──archive.diff.diff_upper──▶ gzip layer blob (deterministic, OCI whiteouts)
           ──content ingest (verified, renamed, under a lease)
    parent config + request Config + --change ──▶ new config (history entry appended)
    importer.build_image ──▶ manifest, ImageService.add_image (unpack, one transaction)

Layer sharing: the new image lists the parent's layer blobs first, so ``add_image`` finds their
chain ids unpacked and unpacks only the new top layer. Crash safety is the service's: blobs under
a lease, the image row written last in one transaction; a failure before leaves no image.

Docker's rules (moby ``daemon/commit.go``): the ``--change`` instructions apply to the request's
config, which is then *merged* with the container's config (unset fields taken from it; env,
labels, ports and volumes unioned). An empty diff adds no layer: the history entry is marked
``empty_layer``. The history's ``created_by`` is the container's command, as Docker writes it.
"""

from __future__ import annotations

import secrets
import time

from dockyard.oci.image_config import ContainerConfig, History, ImageConfig
from dockyard.record import replace

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

    from dockyard.image.service import ImageService
    from dockyard.oci.digest import Digest


def merge_config(user: ContainerConfig, base: ContainerConfig) -> ContainerConfig:
    """Docker's ``merge(userConf, imageConf)``: fields unset in ``user`` come from ``base``."""
    ports = user.exposed_ports
    ports = tuple(sorted(set(ports) | set(base.exposed_ports))) if ports else base.exposed_ports
    env = list(user.env)
    if not env:
        env = list(base.env)
    else:
        keys = {e.partition("=")[0] for e in env}
        env += [e for e in base.env if e.partition("=")[0] not in keys]
    labels = dict(base.labels)
    labels.update(dict(user.labels))
    cmd, entrypoint, args_escaped = user.cmd, user.entrypoint, user.args_escaped
    if not entrypoint:
        if not cmd:
            cmd, args_escaped = base.cmd, base.args_escaped
        if entrypoint is None:
            entrypoint = base.entrypoint
    health = user.healthcheck
    if base.healthcheck is not None:
        if health is None:
            health = base.healthcheck
        else:
            b = base.healthcheck
            health = replace(health, test=health.test or b.test,
                             interval=health.interval or b.interval,
                             timeout=health.timeout or b.timeout,
                             start_period=health.start_period or b.start_period,
                             start_interval=health.start_interval or b.start_interval,
                             retries=health.retries or b.retries)
    return replace(
        user, user=user.user or base.user, exposed_ports=ports, env=tuple(env),
        labels=tuple(sorted(labels.items())), cmd=cmd, entrypoint=entrypoint,
        args_escaped=args_escaped, healthcheck=health, working_dir=user.working_dir or base.working_dir,
        volumes=tuple(sorted(set(user.volumes) | set(base.volumes))),
        stop_signal=user.stop_signal or base.stop_signal)


def commit(svc: ImageService, *, container_upper: str, lower_image_id: str,
           lower_dirs: Sequence[str] = (), config: ContainerConfig | None = None,
           container_config: ContainerConfig | None = None, changes: Sequence[str] = (),
           comment: str = "", author: str = "", repo_tag: str | None = None) -> Digest:
    """Commit the upper dir of a container of image ``lower_image_id``; return the new image id.

    ``config``: the request body's Config (None: empty); ``container_config``: the container's
    own config (defaults to the image's); ``changes``: Dockerfile instructions (``--change``);
    ``lower_dirs``: the image's layer directories, top-most first (needed only for overlay
    ``metacopy`` files). ``repo_tag``: ``repo[:tag]``, checked before any work. Runs on the
    store's thread (it uses the database).
    """
    from dockyard.archive.diff import diff_upper
    from dockyard.image.importer import _Sink, apply_changes, build_image, commit_protected, rfc3339
    from dockyard.image.service import LayerBlob
    from dockyard.oci import image_spec as spec
    from dockyard.oci.reference import parse_normalized

    tags = [parse_normalized(repo_tag)] if repo_tag else []
    parent = svc.resolve(lower_image_id)
    parent_cfg = svc.config(parent)
    new_config = apply_changes(config or ContainerConfig(), changes)
    base = container_config if container_config is not None else parent_cfg.config
    new_config = merge_config(new_config, base)
    created = rfc3339(time.time())
    with svc.lease() as lease:
        w = svc.content.writer(f"commit-{secrets.token_hex(8)}")
        try:
            written = diff_upper(container_upper, lower_dirs, _Sink(w), compression="gzip")  # type: ignore[arg-type]
            empty = written.entries == 0
            if empty:
                w.abort()
            else:
                digest = commit_protected(svc, w, lease)
        except BaseException:
            w.abort()
            raise
        layers = [LayerBlob(la.blob_digest, la.blob_size, la.media_type) for la in parent.layers]
        diff_ids = [la.diff_id for la in parent.layers]
        if not empty:
            assert digest == written.digest
            layers.append(LayerBlob(written.digest, written.size, spec.DOCKER_LAYER_GZIP))
            diff_ids.append(written.diff_id)
        entry = History(created=created, created_by=" ".join(base.cmd or ()), author=author,
                        comment=comment, empty_layer=empty)
        image_cfg = ImageConfig(
            architecture=parent_cfg.architecture, os=parent_cfg.os, variant=parent_cfg.variant,
            os_version=parent_cfg.os_version, os_features=parent_cfg.os_features,
            config=new_config, created=created, author=author, comment=comment,
            history=(*parent_cfg.history, entry))
        record = build_image(svc, lease, layers, diff_ids, image_cfg, tags)
    return record.id
