"""Image verbs: ``images``/``image ls``, ``image inspect``/``inspect``, ``tag``, ``rmi``, ``history``,
``save``, ``load``, ``import``, ``export``, ``image diff``, ``image bootstrap``.

Each ``cmd_*(ctx, argv, verb)`` parses docker's flags, calls the image service (``ctx.service()``)
or one of ``dockyard.image``'s helpers, and prints docker's output shape. Rows are built by pure
functions (``image_rows``, ``history_rows``) that the unit tests drive with a fake service.
"""

from __future__ import annotations

import json
import os

from dockyard.cli.common import CommandError, Parser, UsageError, created_at, created_since, \
    ellipsis, parse_bool, short_id

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from typing import Any

    from dockyard.cli.common import Context

IMAGE_HEADERS = {"ID": "IMAGE ID", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT",
                 "SharedSize": "SHARED SIZE", "UniqueSize": "UNIQUE SIZE",
                 "VirtualSize": "VIRTUAL SIZE"}
IMAGES_FORMAT = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
IMAGES_DIGESTS_FORMAT = "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
HISTORY_HEADERS = {"ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT",
                   "CreatedBy": "CREATED BY"}
HISTORY_FORMAT = "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"
NONE = "<none>"
EXPORT_UNAVAILABLE = ("export needs a container, and containers arrive with the engine (issue #4): "
                      "not available before the engine")


def _render(ctx: Context, template: str, rows: Sequence[Any], headers: dict[str, str]) -> None:
    from dockyard.cli.format import Template

    ctx.out.write(Template(template, headers).render_all(rows))


def _split_ref(text: str, sep: str) -> tuple[str, str]:
    """(familiar repository, tag or digest) of ``busybox:latest`` / ``busybox@sha256:...``."""
    from dockyard.errors import InvalidArgument
    from dockyard.oci.reference import parse_reference

    try:
        ref = parse_reference(text)
    except InvalidArgument:
        name, _, rest = text.rpartition(sep)
        return (name, rest) if name else (text, NONE)
    if sep == "@":
        return ref.familiar_name(), str(ref.digest) if ref.digest else NONE
    return ref.familiar_name(), ref.tag or NONE


# --------------------------------------------------------------------------------------------------
# images

def image_rows(summaries: Iterable[Any], *, no_trunc: bool = False, now: float | None = None) -> list[dict]:
    """One row per repository tag (docker's ``images``); an untagged image is one ``<none>`` row."""
    from dockyard.cli.common import parse_time
    from dockyard.cli.format import human_size

    ordered = sorted(summaries, key=lambda s: -(parse_time(s.created) or 0.0))
    rows = []
    for s in ordered:
        digests: dict[str, str] = {}
        for rd in s.repo_digests:
            repo, digest = _split_ref(rd, "@")
            digests.setdefault(repo, digest)
        pairs = [_split_ref(rt, ":") for rt in s.repo_tags]
        tagged = {repo for repo, _ in pairs}
        pairs += [(repo, NONE) for repo in digests if repo not in tagged]
        size = human_size(s.size)
        base = {"ID": short_id(s.id, no_trunc), "CreatedSince": created_since(s.created, now),
                "CreatedAt": created_at(s.created), "Size": size, "VirtualSize": size,
                "SharedSize": "N/A", "UniqueSize": "N/A", "Containers": str(s.containers)}
        for repo, tag in pairs or [(NONE, NONE)]:
            rows.append(dict(base, Repository=repo, Tag=tag, Digest=digests.get(repo, NONE)))
    return rows


def _filters(values: Sequence[str]) -> tuple[bool | None, list[str]]:
    dangling: bool | None = None
    references: list[str] = []
    for f in values:
        key, eq, value = f.partition("=")
        if not eq:
            raise UsageError(f"bad format of filter (expected name=value): {f}")
        key = key.strip().lower()
        if key == "dangling":
            try:
                dangling = parse_bool("filter", value)
            except UsageError:
                raise CommandError(f"Error: invalid filter 'dangling={value}'") from None
        elif key == "reference":
            references.append(value)
        elif key in ("before", "since", "label", "until"):
            raise CommandError(f"Error: the {key!r} filter is not supported yet")
        else:
            raise CommandError(f"Error: invalid filter '{key}'")
    return dangling, references


def cmd_images(ctx: Context, argv: Sequence[str], verb: str = "images") -> int:
    p = Parser(ctx, verb, f"dockyard {verb} [OPTIONS] [REPOSITORY[:TAG]]", "List images")
    p.add_argument("-a", "--all", action="store_true",
                   help="Show all images (default hides intermediate images)")
    p.add_argument("--digests", action="store_true", help="Show digests")
    p.add_argument("-f", "--filter", action="append", default=[],
                   help="Filter output (dangling=true|false, reference=PATTERN)")
    p.add_argument("--format", help="Format output using a custom template ('table', "
                                    "'table TEMPLATE', 'json', or a Go template)")
    p.add_argument("--no-trunc", action="store_true", help="Don't truncate output")
    p.add_argument("-q", "--quiet", action="store_true", help="Only show image IDs")
    p.add_argument("repository", nargs="*", help=argparse_suppress())
    a = p.parse(argv)
    p.require(a.repository, at_most=1)
    dangling, references = _filters(a.filter)
    references += a.repository
    svc = ctx.service()
    if references:
        seen: dict[str, Any] = {}
        for ref in references:
            for s in svc.list(all=a.all, dangling=dangling, reference=ref):
                seen.setdefault(str(s.id), s)
        summaries = list(seen.values())
    else:
        summaries = svc.list(all=a.all, dangling=dangling)
    rows = image_rows(summaries, no_trunc=a.no_trunc)
    if a.quiet:
        ctx.out.write("".join(r["ID"] + "\n" for r in rows))
    elif a.format == "json":
        ctx.out.write("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in rows))
    else:
        template = a.format or (IMAGES_DIGESTS_FORMAT if a.digests else IMAGES_FORMAT)
        _render(ctx, IMAGES_FORMAT if template == "table" else template, rows, IMAGE_HEADERS)
    return 0


def argparse_suppress() -> str:
    import argparse

    return argparse.SUPPRESS


# --------------------------------------------------------------------------------------------------
# inspect, tag, rmi

def _inspect(ctx: Context, names: Sequence[str], fmt: str | None, missing: str) -> int:
    from dockyard.errors import NotFound

    svc = ctx.service()
    found, errors = [], []
    for name in names:
        try:
            found.append(svc.inspect(name))
        except NotFound:
            errors.append(f"Error: {missing}: {name}")
    if fmt and fmt != "json":
        from dockyard.cli.format import Template

        t = Template(fmt)
        ctx.out.write("".join(t.render(obj) + "\n" for obj in found))
    else:
        ctx.out.write(json.dumps(found, indent=4, ensure_ascii=False) + "\n")
    for e in errors:
        ctx.err.write(e + "\n")
    return 1 if errors else 0


def cmd_image_inspect(ctx: Context, argv: Sequence[str], verb: str = "image inspect") -> int:
    p = Parser(ctx, verb, f"dockyard {verb} [OPTIONS] IMAGE [IMAGE...]",
               "Display detailed information on one or more images")
    p.add_argument("-f", "--format", help="Format output using a custom template")
    p.add_argument("images", nargs="*", help=argparse_suppress())
    a = p.parse(argv)
    p.require(a.images, at_least=1)
    return _inspect(ctx, a.images, a.format, "No such image")


def cmd_inspect(ctx: Context, argv: Sequence[str], verb: str = "inspect") -> int:
    p = Parser(ctx, verb, f"dockyard {verb} [OPTIONS] NAME|ID [NAME|ID...]",
               "Return low-level information on dockyard objects (images, until the engine)")
    p.add_argument("-f", "--format", help="Format output using a custom template")
    p.add_argument("-s", "--size", action="store_true", help="Display total file sizes")
    p.add_argument("--type", default="", help="Only inspect objects of the given type (image)")
    p.add_argument("names", nargs="*", help=argparse_suppress())
    a = p.parse(argv)
    p.require(a.names, at_least=1)
    if a.type not in ("", "image"):
        raise CommandError(f"Error: inspecting a {a.type} needs the engine (issue #4); "
                           "only images exist before it")
    return _inspect(ctx, a.names, a.format, "No such object")


def cmd_tag(ctx: Context, argv: Sequence[str], verb: str = "tag") -> int:
    p = Parser(ctx, verb, f"dockyard {verb} SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]",
               "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE")
    p.add_argument("names", nargs="*", help=argparse_suppress())
    a = p.parse(argv)
    p.require(a.names, exactly=2)
    ctx.service().tag(a.names[0], a.names[1])
    return 0


def cmd_rmi(ctx: Context, argv: Sequence[str], verb: str = "rmi") -> int:
    from dockyard.errors import DockyardError

    p = Parser(ctx, verb, f"dockyard {verb} [OPTIONS] IMAGE [IMAGE...]", "Remove one or more images")
    p.add_argument("-f", "--force", action="store_true", help="Force removal of the image")
    p.add_argument("--no-prune", action="store_true", help="Do not delete untagged parents")
    p.add_argument("images", nargs="*", help=argparse_suppress())
    a = p.parse(argv)
    p.require(a.images, at_least=1)
    svc = ctx.service()
    failed = 0
    for name in a.images:
        try:
            actions = svc.remove(name, force=a.force, no_prune=a.no_prune)
        except DockyardError as e:
            ctx.err.write(f"Error: {e}\n")
            failed += 1
            continue
        ctx.out.write("".join(f"{kind}: {what}\n" for kind, what in actions))
    return 1 if failed else 0


# --------------------------------------------------------------------------------------------------
# history

def history_rows(entries: Iterable[Any], *, no_trunc: bool = False, human: bool = True,
                 now: float | None = None) -> list[dict]:
    from dockyard.cli.format import human_size

    rows = []
    for h in entries:
        created_by = h.created_by.replace("\t", " ")
        rows.append({
            "ID": h.id if h.id == "<missing>" else short_id(h.id, no_trunc),
            "CreatedSince": created_since(h.created, now) if human else h.created,
            "CreatedAt": created_at(h.created) if human else h.created,
            "CreatedBy": created_by if no_trunc else ellipsis(created_by, 45),
            "Size": human_size(h.size) if human else str(h.size),
            "Comment": h.comment,
        })
    return rows


def cmd_history(ctx: Context, argv: Sequence[str], verb: str = "history") -> int:
    p = Parser(ctx, verb, f"dockyard {verb} [OPTIONS] IMAGE", "Show the history of an image")
    p.add_argument("--format", help="Format output using a custom template")
    p.add_argument("-H", "--human", nargs="?", const="true", default="true",
                   help="Print sizes and dates in human readable format (default true)")
    p.add_argument("--no-trunc", action="store_true", help="Don't truncate output")
    p.add_argument("-q", "--quiet", action="store_true", help="Only show image IDs")
    p.add_argument("image", nargs="*", help=argparse_suppress())
    a = p.parse(argv)
    p.require(a.image, exactly=1)
    human = parse_bool("--human", a.human)
    rows = history_rows(ctx.service().history(a.image[0]), no_trunc=a.no_trunc, human=human)
    if a.quiet:
        ctx.out.write("".join(r["ID"] + "\n" for r in rows))
    elif a.format == "json":
        ctx.out.write("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in rows))
    else:
        template = a.format or HISTORY_FORMAT
        _render(ctx, HISTORY_FORMAT if template == "table" else template, rows, HISTORY_HEADERS)
    return 0


# --------------------------------------------------------------------------------------------------
# save, load, import, export

def cmd_save(ctx: Context, argv: Sequence[str], verb: str = "save") -> int:
    p = Parser(ctx, verb, f"dockyard {verb} [OPTIONS] IMAGE [IMAGE...]",
               "Save one or more images to a tar archive (streamed to STDOUT by default)")
    p.add_argument("-o", "--output", help="Write to a file, instead of STDOUT")
    p.add_argument("--format", default="docker", choices=("docker", "oci"),
                   help="Archive format: docker (docker-archive, default) or oci (OCI layout)")
    p.add_argument("images", nargs="*", help=argparse_suppress())
    a = p.parse(argv)
    p.require(a.images, at_least=1)
    svc = ctx.service()
    if not a.output:
        if ctx.isatty("out"):
            raise CommandError("cowardly refusing to save to a terminal. Use the -o flag or redirect")
        out = ctx.out_binary
        svc.save(a.images, out, fmt=a.format)
        out.flush()
        return 0
    for name in a.images:  # fail before creating the file, as docker does for a missing image
        svc.resolve(name)
    target = os.path.abspath(a.output)
    tmp = os.path.join(os.path.dirname(target), f".{os.path.basename(target)}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            svc.save(a.images, f, fmt=a.format)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return 0


def cmd_load(ctx: Context, argv: Sequence[str], verb: str = "load") -> int:
    p = Parser(ctx, verb, f"dockyard {verb} [OPTIONS]",
               "Load an image from a tar archive or STDIN (docker-archive or OCI layout, plain or gzip)")
    p.add_argument("-i", "--input", help="Read from tar archive file, instead of STDIN")
    p.add_argument("-q", "--quiet", action="store_true", help="Suppress the load output")
    a = p.parse(argv)
    svc = ctx.service()
    if a.input:
        with open(a.input, "rb") as f:
            lines = svc.load(f)
    else:
        if ctx.isatty("in"):
            raise CommandError("requested load from stdin, but stdin is empty")
        lines = svc.load(ctx.inp)
    ctx.out.write("".join(line + "\n" for line in lines))
    return 0


def cmd_import(ctx: Context, argv: Sequence[str], verb: str = "import") -> int:
    from dockyard.image import importer

    p = Parser(ctx, verb, f"dockyard {verb} [OPTIONS] file|- [REPOSITORY[:TAG]]",
               "Import the contents from a tarball to create a filesystem image")
    p.add_argument("-c", "--change", action="append", default=[],
                   help="Apply Dockerfile instruction to the created image")
    p.add_argument("-m", "--message", default="", help="Set commit message for imported image")
    p.add_argument("--platform", help="Set platform if server is multi-platform capable")
    p.add_argument("args", nargs="*", help=argparse_suppress())
    a = p.parse(argv)
    p.require(a.args, at_least=1, at_most=2)
    source, ref = a.args[0], (a.args[1] if len(a.args) > 1 else None)
    if "://" in source:
        raise CommandError(f"Error: importing from a URL ({source}) is not supported; "
                           "download it and import the file")
    # flags and reference are checked before the store is opened or a byte is read
    from dockyard.oci.reference import parse_normalized

    if ref:
        parse_normalized(ref)
    importer.apply_changes(importer.ContainerConfig(), a.change)
    svc = ctx.service()
    if source == "-":
        image = importer.import_image(svc, ctx.inp, ref=ref, changes=a.change, message=a.message,
                                      platform=a.platform)
    else:
        with open(source, "rb") as f:
            image = importer.import_image(svc, f, ref=ref, changes=a.change, message=a.message,
                                          platform=a.platform)
    ctx.out.write(f"{image.id}\n")
    return 0


def cmd_export(ctx: Context, argv: Sequence[str], verb: str = "export") -> int:
    p = Parser(ctx, verb, f"dockyard {verb} [OPTIONS] CONTAINER",
               "Export a container's filesystem as a tar archive")
    p.add_argument("-o", "--output", help="Write to a file, instead of STDOUT")
    p.add_argument("container", nargs="*", help=argparse_suppress())
    a = p.parse(argv)
    p.require(a.container, exactly=1)
    raise CommandError(f"Error: {EXPORT_UNAVAILABLE}")


# --------------------------------------------------------------------------------------------------
# image diff, image bootstrap

def cmd_image_diff(ctx: Context, argv: Sequence[str], verb: str = "image diff") -> int:
    from dockyard.image import diff

    p = Parser(ctx, verb, f"dockyard {verb} [OPTIONS] IMAGE_A IMAGE_B",
               "Show files added (A), changed (C) and deleted (D) from IMAGE_A to IMAGE_B")
    p.add_argument("--format", default="text", choices=("text", "json"), help="Output format")
    p.add_argument("--thorough", action="store_true",
                   help="Compare the contents of every file of equal size "
                        "(not only those whose mtime differs)")
    p.add_argument("images", nargs="*", help=argparse_suppress())
    a = p.parse(argv)
    p.require(a.images, exactly=2)
    changes = diff.image_diff(ctx.service(), a.images[0], a.images[1], thorough=a.thorough)
    if a.format == "json":
        ctx.out.write(diff.render_json(changes))
    else:
        from dockyard.cli.format import human_size

        ctx.out.write(diff.render_text(changes, human_size))
    return 0


def cmd_bootstrap(ctx: Context, argv: Sequence[str], verb: str = "image bootstrap") -> int:
    from dockyard.image import bootstrap

    p = Parser(ctx, verb, f"dockyard {verb} [OPTIONS] busybox|debian[:SUITE]",
               "Create a base image without the internet: busybox from the host's busybox-static, "
               "or Debian with debootstrap")
    p.add_argument("-t", "--tag", help="Name the image (default busybox:latest, debian:SUITE)")
    p.add_argument("--busybox", default="/bin/busybox", help="The busybox binary to use")
    p.add_argument("--mirror", default=bootstrap.DEBIAN_MIRROR, help="Debian mirror for debootstrap")
    p.add_argument("kind", nargs="*", help=argparse_suppress())
    a = p.parse(argv)
    p.require(a.kind, exactly=1)
    kind, _, suite = a.kind[0].partition(":")
    if kind == "busybox" and not suite:
        image = bootstrap.bootstrap_busybox(ctx.service(), a.tag or "busybox:latest", a.busybox)
    elif kind == "debian":
        image = bootstrap.bootstrap_debian(ctx.service(), suite or "bookworm", a.tag, a.mirror)
    else:
        raise CommandError(f"Error: unknown base image {a.kind[0]!r}: use busybox or debian[:SUITE]")
    ctx.out.write(f"{image.id}\n")
    return 0
