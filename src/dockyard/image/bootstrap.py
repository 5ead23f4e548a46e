"""Base images without the internet: ``busybox:latest`` from the host's busybox-static, and Debian
from debootstrap (where it and a mirror are reachable).

Reproducibility of the busybox image: its id is the digest of its config, which names the layer's
diff id (the digest of the uncompressed tar) and a creation time. The tar is written by the
deterministic layer writer with one fixed mtime for every entry, and that mtime and ``created``
both come from the busybox binary's own mtime (dpkg keeps the package's timestamp, so the same
busybox package gives the same value on every machine). Hence the same binary always gives the same
image id, and a second bootstrap finds the image already there and only (re)tags it.

Layout of the busybox image: ``/bin/busybox`` plus one relative symlink per applet in ``/bin``
(``busybox --list``), ``/etc/passwd`` (root, nobody), ``/etc/group``, empty ``/tmp`` (1777),
``/root`` (0700), ``/proc``, ``/sys``, ``/dev``, ``/var/www`` (for httpd demos). Config: ``Cmd
["sh"]``, docker's default ``PATH``, this machine's platform, one history entry.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess

from dockyard.errors import InvalidArgument, Unavailable

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

    from dockyard.archive.writer import Entry
    from dockyard.image.service import ImageService
    from dockyard.metadata.records import ImageRecord

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
PASSWD = b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
GROUP = b"root:x:0:\nnobody:x:65534:\n"
_DIRS = (("bin", 0o755), ("dev", 0o755), ("etc", 0o755), ("proc", 0o555), ("root", 0o700),
         ("sys", 0o555), ("tmp", 0o1777), ("var", 0o755), ("var/www", 0o755))


def busybox_applets(busybox: str) -> list[str]:
    """The applet names ``busybox --list`` prints (``busybox`` itself left out)."""
    try:
        out = subprocess.run([busybox, "--list"], capture_output=True, check=True, timeout=30).stdout
    except FileNotFoundError:
        raise InvalidArgument(f"bootstrap busybox: {busybox} not found (Debian: apt-get install "
                              f"busybox-static)") from None
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, PermissionError) as e:
        raise InvalidArgument(f"bootstrap busybox: {busybox} --list failed: {e}") from None
    names = []
    for line in out.decode("utf-8", "replace").split():
        if line and line != "busybox" and "/" not in line and line not in (".", ".."):
            names.append(line)
    if not names:
        raise InvalidArgument(f"bootstrap busybox: {busybox} --list printed no applets")
    return sorted(set(names))


def busybox_entries(busybox: str, applets: Sequence[str]) -> list[Entry]:
    """The layer's entries (any order; the writer sorts them)."""
    from dockyard.archive.writer import Entry

    real = os.path.realpath(busybox)
    st = os.stat(real)
    if not os.path.isfile(real):
        raise InvalidArgument(f"bootstrap busybox: {busybox} is not a regular file")
    entries = [Entry(path, "dir", mode=mode) for path, mode in _DIRS]
    entries.append(Entry("bin/busybox", "file", mode=0o755, size=st.st_size, source=real))
    entries += [Entry(f"bin/{name}", "symlink", mode=0o777, linkname="busybox") for name in applets]
    entries.append(Entry("etc/passwd", "file", mode=0o644, size=len(PASSWD), data=PASSWD))
    entries.append(Entry("etc/group", "file", mode=0o644, size=len(GROUP), data=GROUP))
    return entries


def _write_layer(svc: ImageService, source: object, lease: str, *, mtime: int | None):
    """Write a gzip layer of ``source`` (a directory or entries) straight into the content store."""
    from dockyard.archive.writer import write_layer
    from dockyard.image.importer import _Sink, commit_protected
    from dockyard.image.service import LayerBlob
    from dockyard.oci.image_spec import DOCKER_LAYER_GZIP

    w = svc.content.writer(f"bootstrap-{secrets.token_hex(8)}")
    try:
        written = write_layer(source, _Sink(w), compression="gzip", mtime=mtime)  # type: ignore[arg-type]
        digest = commit_protected(svc, w, lease)
    except BaseException:
        w.abort()
        raise
    return LayerBlob(digest=digest, size=written.size, media_type=DOCKER_LAYER_GZIP), written.diff_id


def _config(created: str, history: str, cmd: tuple[str, ...]):
    from dockyard.oci.image_config import ContainerConfig, History, ImageConfig
    from dockyard.oci.platform import current_platform

    plat = current_platform()
    return ImageConfig(architecture=plat.architecture, os=plat.os, variant=plat.variant,
                       config=ContainerConfig(env=(DEFAULT_PATH,), cmd=cmd), created=created,
                       history=(History(created=created, created_by=history),))


def bootstrap_busybox(svc: ImageService, ref: str = "busybox:latest", busybox: str = "/bin/busybox",
                      *, mtime: int | None = None) -> ImageRecord:
    """Create (or re-tag) ``ref`` from the host's busybox; see the module docstring."""
    from dockyard.image.importer import build_image, rfc3339
    from dockyard.oci.reference import parse_normalized

    tag = parse_normalized(ref)
    applets = busybox_applets(busybox)
    entries = busybox_entries(busybox, applets)
    fixed = int(os.stat(busybox).st_mtime) if mtime is None else int(mtime)
    created = rfc3339(fixed)
    with svc.lease() as lease:
        blob, diff_id = _write_layer(svc, entries, lease, mtime=fixed)
        config = _config(created, "dockyard image bootstrap busybox", ("sh",))
        return build_image(svc, lease, [blob], [diff_id], config, [tag])


# --------------------------------------------------------------------------------------------------
# Debian

def debian_unavailable(suite: str, mirror: str = DEBIAN_MIRROR, *, debootstrap: str = "debootstrap",
                       timeout: float = 5.0) -> str | None:
    """Why ``bootstrap_debian`` cannot run here (None when it can): no debootstrap, not root, or
    the mirror's ``dists/<suite>/Release`` does not answer."""
    if shutil.which(debootstrap) is None:
        return "debootstrap is not installed (Debian: apt-get install debootstrap)"
    if os.geteuid() != 0:
        return "debootstrap needs root"
    import urllib.error
    import urllib.request

    url = f"{mirror.rstrip('/')}/dists/{suite}/Release"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout):
            pass
    except (urllib.error.URLError, OSError, ValueError) as e:
        return f"the Debian mirror is not reachable: HEAD {url}: {getattr(e, 'reason', e)}"
    return None


def _unmount_all(path: str) -> None:
    """debootstrap mounts /proc and /sys in the target; a failed run can leave them mounted."""
    from dockyard.snapshot.apply import mounts_under

    for m in sorted(mounts_under(path), key=len, reverse=True):
        subprocess.run(["umount", "-l", m], capture_output=True, check=False)


def bootstrap_debian(svc: ImageService, suite: str = "bookworm", ref: str | None = None,
                     mirror: str = DEBIAN_MIRROR, *, debootstrap: str = "debootstrap",
                     variant: str = "minbase") -> ImageRecord:
    """A one-layer ``debian:<suite>`` from ``debootstrap --variant=minbase`` (Cmd ``["bash"]``).

    Not reproducible (package downloads and install times differ); ``Unavailable`` with the reason
    when debootstrap or the mirror is missing.
    """
    from dockyard.image.importer import build_image, rfc3339
    from dockyard.oci.reference import parse_normalized
    from dockyard.snapshot.fsutil import remove_tree

    if not suite or not all(c.isalnum() or c in "-_." for c in suite):
        raise InvalidArgument(f"bootstrap debian: invalid suite {suite!r}")
    tag = parse_normalized(ref or f"debian:{suite}")
    reason = debian_unavailable(suite, mirror, debootstrap=debootstrap)
    if reason is not None:
        raise Unavailable(f"bootstrap debian:{suite}: {reason}")
    os.makedirs(svc.store.tmp, mode=0o711, exist_ok=True)
    work = os.path.join(svc.store.tmp, f"debootstrap-{secrets.token_hex(6)}")
    target = os.path.join(work, "rootfs")
    os.makedirs(target, mode=0o755)
    try:
        run = subprocess.run([debootstrap, f"--variant={variant}", suite, target, mirror],
                             capture_output=True, check=False)
        if run.returncode != 0:
            tail = run.stdout.decode("utf-8", "replace").strip().splitlines()[-5:]
            raise Unavailable(f"bootstrap debian:{suite}: debootstrap exited {run.returncode}: "
                              + " | ".join(tail))
        _unmount_all(target)
        archives = os.path.join(target, "var/cache/apt/archives")
        for name in os.listdir(archives) if os.path.isdir(archives) else ():
            if name.endswith(".deb"):
                os.unlink(os.path.join(archives, name))
        import time

        created = rfc3339(time.time())
        with svc.lease() as lease:
            blob, diff_id = _write_layer(svc, target, lease, mtime=None)
            config = _config(created, f"dockyard image bootstrap debian:{suite}", ("bash",))
            return build_image(svc, lease, [blob], [diff_id], config, [tag])
    finally:
        _unmount_all(target)
        remove_tree(work)
