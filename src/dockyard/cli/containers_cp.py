"""``cp``: files between a container and the host through ``/containers/{id}/archive`` (tar).

``cp CONTAINER:SRC DEST`` reads ``GET archive?path=SRC``: ``DEST`` ``-`` gets the tar itself;
an existing directory receives ``SRC``'s last element; another path is ``SRC`` renamed (docker's
rules). ``cp SRC CONTAINER:DEST`` sends a tar with ``PUT archive?path=DIR``: into ``DEST`` when
it is a directory in the container (``HEAD`` stat), else into its parent under ``DEST``'s name;
``SRC`` ``-`` is a tar read from stdin and extracted into ``DEST``.
"""

from __future__ import annotations

import os
import posixpath

from dockyard.cli.common import CommandError
from dockyard.cli.containers_util import client, command_error, parse, quote

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    from dockyard.cli.common import Context

CP_FLAGS = {
    "archive": ("a", "bool", "Archive mode (copy all uid/gid information)"),
    "follow-link": ("L", "bool", "Always follow symbol link in SRC_PATH"),
    "quiet": ("q", "bool", "Suppress progress output during copy"),
}
_DIR_BIT = 1 << 31  # Go's os.ModeDir in the path stat header


def _fail(message: str) -> CommandError:
    return CommandError(message)


def split_target(arg: str) -> tuple[str, str]:
    """``name:/path`` → (name, path); a local path → ("", path). A path starting with / or . is
    local even with a colon in it (docker's rule)."""
    if arg.startswith(("/", ".")) or ":" not in arg:
        return "", arg
    name, _, path = arg.partition(":")
    return name, path


def path_stat(headers: dict[str, str]) -> dict[str, Any] | None:
    import base64
    import json

    raw = headers.get("x-docker-container-path-stat")
    if not raw:
        return None
    try:
        return json.loads(base64.b64decode(raw))
    except ValueError:
        return None


def cmd_cp(ctx: Context, argv: Sequence[str], verb: str = "cp") -> int:
    v, args = parse(ctx, verb, argv, CP_FLAGS,
                    f"{verb} [OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-\n\tdockyard {verb} "
                    "[OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH",
                    "Copy files/folders between a container and the local filesystem", exactly=2)
    (src_c, src), (dst_c, dst) = split_target(args[0]), split_target(args[1])
    if src_c and dst_c:
        raise _fail("copying between containers is not supported")
    if not src_c and not dst_c:
        raise _fail("must specify at least one container source")
    if not (src if src_c else dst):
        raise _fail("filepath can not be empty")
    if src_c:
        return _from_container(ctx, src_c, src, dst, bool(v.get("quiet")),
                               bool(v.get("follow-link")), bool(v.get("archive")))
    return _to_container(ctx, src, dst_c, dst, bool(v.get("quiet")), bool(v.get("follow-link")))


class _Counter:
    def __init__(self, raw: Any) -> None:
        self.raw, self.count = raw, 0

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.count += len(data)
        return data


def _from_container(ctx: Context, name: str, src: str, dst: str, quiet: bool,
                    follow: bool, archive: bool) -> int:
    import tarfile

    from dockyard.cli.client import ClientError

    api = client(ctx)
    if follow and not src.endswith("/"):
        try:
            stat = path_stat(api.head(f"/containers/{quote(name)}/archive", {"path": src}))
        except ClientError as e:
            raise command_error(e) from None
        if stat and stat.get("linkTarget"):
            src = stat["linkTarget"]
    try:
        resp = api.stream("GET", f"/containers/{quote(name)}/archive", {"path": src})
    except ClientError as e:
        raise command_error(e) from None
    try:
        if dst == "-":
            from dockyard.cli.client import copy_stream

            copy_stream(resp, ctx.out_binary)
            ctx.out_binary.flush()
            return 0
        stat = path_stat({k.lower(): v for k, v in resp.getheaders()}) or {}
        src_is_dir = bool((stat.get("mode") or 0) & _DIR_BIT)
        base = stat.get("name") or posixpath.basename(src.rstrip("/")) or "."
        if os.path.isdir(dst):
            target_dir, rename = dst, None
        else:
            if dst.endswith("/") or (not src_is_dir and dst.endswith(os.sep + ".")):
                raise _fail(f"destination directory {dst} does not exist" if dst.endswith("/")
                            else f"not a directory: {dst}")
            target_dir, rename = os.path.dirname(os.path.abspath(dst)), os.path.basename(dst)
            if not os.path.isdir(target_dir):
                raise _fail(f"destination directory {target_dir} does not exist")
        counter = _Counter(resp)
        with tarfile.open(fileobj=counter, mode="r|") as tar:
            for member in tar:
                if rename is not None:
                    head, sep, tail = member.name.partition("/")
                    if head == base:
                        member.name = rename + sep + tail
                if not archive:  # docker: files belong to the user running cp unless -a
                    member.uid, member.gid = os.getuid(), os.getgid()
                    member.uname = member.gname = ""
                tar.extract(member, target_dir, filter="tar")
    finally:
        resp.close()
    if not quiet:
        from dockyard.cli.containers_stats import human3

        ctx.err.write(f"Successfully copied {human3(counter.count)} to {dst}\n")
    return 0


def _tar_of(path: str, arcname: str, follow: bool) -> Any:
    """A tar stream of ``path`` (named ``arcname``), written by a thread into a pipe."""
    import tarfile
    import threading

    r, w = os.pipe()
    reader = os.fdopen(r, "rb")
    errors: list[BaseException] = []

    def write() -> None:
        try:
            with os.fdopen(w, "wb") as out, tarfile.open(fileobj=out, mode="w|",
                                                         dereference=follow) as tar:
                tar.add(path, arcname=arcname)
        except BaseException as e:  # noqa: BLE001 - reported after the upload
            errors.append(e)

    t = threading.Thread(target=write, daemon=True)
    t.start()
    return reader, t, errors


def _to_container(ctx: Context, src: str, name: str, dst: str, quiet: bool,
                  follow: bool) -> int:
    from dockyard.cli.client import APIError, ClientError, iter_file

    api = client(ctx)
    if src == "-":
        try:
            api.put(f"/containers/{quote(name)}/archive",
                    {"path": dst, "noOverwriteDirNonDir": True}, iter_file(ctx.inp))
        except ClientError as e:
            raise command_error(e) from None
        return 0
    if not os.path.lexists(src):
        raise _fail(f"Error: lstat {os.path.abspath(src)}: no such file or directory")
    try:
        stat = path_stat(api.head(f"/containers/{quote(name)}/archive", {"path": dst}))
    except APIError as e:
        if e.status != 404:
            raise command_error(e) from None
        stat = None
    except ClientError as e:
        raise command_error(e) from None
    if stat is not None and (stat.get("mode") or 0) & _DIR_BIT:
        target, arcname = dst, os.path.basename(os.path.normpath(src))
    else:
        if dst.endswith("/"):
            raise _fail(f"Error response from daemon: destination directory {dst} does not "
                        "exist" if stat is None else f"Error: not a directory: {dst}")
        target = posixpath.dirname(dst.rstrip("/")) or "/"
        arcname = posixpath.basename(dst.rstrip("/"))
    size = _local_size(src)
    reader, writer, errors = _tar_of(src, arcname, follow)
    try:
        api.put(f"/containers/{quote(name)}/archive", {"path": target,
                                                        "noOverwriteDirNonDir": True},
                iter_file(reader))
    except ClientError as e:
        raise command_error(e) from None
    finally:
        reader.close()
        writer.join()
    if errors:
        raise _fail(f"Error: {errors[0]}")
    if not quiet:
        from dockyard.cli.containers_stats import human3

        ctx.err.write(f"Successfully copied {human3(size)} to {name}:{dst}\n")
    return 0


def _local_size(path: str) -> int:
    if not os.path.isdir(path):
        return os.lstat(path).st_size
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:
                pass
    return total
