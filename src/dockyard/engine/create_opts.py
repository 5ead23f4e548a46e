"""What a create request adds to the run options before the spec is built: the image's
``VOLUME``s as anonymous volumes, ``--init``, the seccomp profile, ``--privileged``'s capability
set — and dockerd's name for a missing image. Pure but for reading the daemon's own status."""

from __future__ import annotations

import os

from dockyard.errors import DockyardError, InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


#: ``--init``: tini (Debian's tini-static, which docker.io also installs as docker-init), bound
#: read-only into the container at docker's path and run as the process's parent.
INIT_BINARIES = ("/usr/bin/docker-init", "/usr/bin/tini-static")
INIT_PATH = "/sbin/docker-init"


def with_image_volumes(req: Any, image_config: Any) -> Any:
    """The image's ``VOLUME``s that no mount of the request covers become anonymous volumes,
    as dockerd does (their content is copied up from the image at create)."""
    import posixpath

    from dockyard.engine.create_mounts import MountRequest
    from dockyard.record import replace

    taken = {m.destination for m in req.mounts}
    extra = []
    for v in image_config.config.volumes:
        dest = posixpath.normpath("/" + v.lstrip("/"))
        if dest == "/" or ".." in dest.split("/") or dest in taken:
            continue
        taken.add(dest)
        extra.append(MountRequest(kind="volume", destination=dest, origin="image"))
    return replace(req, mounts=(*req.mounts, *extra)) if extra else req


def with_init(opts: Any, image_config: Any) -> Any:
    from dockyard.oci.runtime_spec import Mount
    from dockyard.oci.spec_builder import process_args
    from dockyard.record import replace

    binary = next((b for b in INIT_BINARIES if os.access(b, os.X_OK)), None)
    if binary is None:
        raise InvalidArgument("--init: no init binary found (install tini: "
                              f"{' or '.join(INIT_BINARIES)})")
    args = process_args(image_config, opts)
    mount = Mount(destination=INIT_PATH, type="bind", source=os.path.realpath(binary),
                  options=("bind", "ro"))
    return replace(opts, entrypoint=(INIT_PATH, "--", *args), cmd=(),
                   mounts=(*opts.mounts, mount))


def bounding_set() -> tuple[str, ...]:
    """The capabilities this daemon may hand out (its bounding set): ``--privileged`` means all
    of them, not capabilities the kernel or the daemon's own confinement does not grant."""
    from dockyard.oci.runtime_spec import CAP_NUMBERS

    mask = 0
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("CapBnd:"):
                mask = int(line.split()[1], 16)
    return tuple(c for c, bit in CAP_NUMBERS.items() if mask >> bit & 1)


def with_seccomp(opts: Any, req: Any) -> Any:
    """Docker's default: a seccomp filter for every unprivileged container (dockyard's default
    profile, or the Docker-format one given with ``--security-opt seccomp=...``)."""
    from dockyard.engine.seccomp_default import default_profile, from_docker_profile
    from dockyard.oci.spec_builder import capabilities
    from dockyard.record import replace

    if opts.privileged or req.seccomp_unconfined:
        return opts
    caps = capabilities(opts)
    profile = from_docker_profile(req.seccomp_profile, caps) if req.seccomp_profile else \
        default_profile(caps)
    return replace(opts, seccomp=profile)


def familiar(image: str) -> str:
    """``nosuch`` -> ``nosuch:latest``, as dockerd names a missing image."""
    from dockyard.oci.reference import parse_normalized

    try:
        return parse_normalized(image).familiar_string()
    except DockyardError:
        return image
