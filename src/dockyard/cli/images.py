"""Image verbs: ``images``/``image ls``, ``image inspect``/``inspect``, ``tag``, ``rmi``, ``history``,
``save``, ``load``, ``import``, ``export``, ``image diff``, ``image bootstrap``.

Each ``cmd_*(ctx, argv, verb)`` parses docker's flags, asks the daemon (``ctx.client()``, the
Docker Engine API; ``image diff`` and ``image bootstrap`` use dockyard's ``/dockyard/images/``
extensions) and prints docker's output shape. Rows are built by pure functions (``image_rows``,
``history_rows``, ``diff_lines``) from the API's JSON; the unit tests drive them with a fake client.
Archives are streamed both ways (``save`` to the file or stdout, ``load``/``import`` bodies sent
chunked from the file or stdin), never held in memory.
"""

from __future__ import annotations

import os

from dockyard.cli.argparser import Parser
from dockyard.cli.common import CommandError, UsageError, created_at, created_since, ellipsis, \
    parse_bool, rfc3339_local, short_id

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


def _dumps(obj: Any, indent: int | None = None) -> str:
    from dockyard.leanjson import dumps

    return dumps(obj, indent=indent)


def _render(ctx: Context, template: str, rows: Sequence[Any], headers: dict[str, str]) -> None:
    from dockyard.cli.format import Template

    ctx.out.write(Template(template, headers).render_all(rows))


def api_path(name: str) -> str:
    """An image or container name as a path segment (``/`` and ``:`` stay: the routes take them)."""
    from dockyard.cli.client import pct_encode

    return pct_encode(name, "/:@")


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


def split_target(target: str) -> tuple[str, str]:
    """``repo[:tag]`` → (repo, tag) for ``POST /images/{name}/tag`` (a registry port is no tag)."""
    name, colon, tag = target.rpartition(":")
    if colon and name and "/" not in tag:
        return name, tag
    return target, ""


# --------------------------------------------------------------------------------------------------
# images

def image_rows(summaries: Iterable[dict], *, no_trunc: bool = False, now: float | None = None
               ) -> list[dict]:
    """One row per repository tag (docker's ``images``) from ``GET /images/json`` summaries; an
    untagged image is one ``<none>`` row; newest first."""
    from dockyard.cli.format import human_size

    ordered = sorted(summaries, key=lambda s: -(s.get("Created") or 0))
    rows = []
    for s in ordered:
        digests: dict[str, str] = {}
        for rd in s.get("RepoDigests") or ():
            repo, digest = _split_ref(rd, "@")
            digests.setdefault(repo, digest)
        pairs = [_split_ref(rt, ":") for rt in s.get("RepoTags") or () if rt != "<none>:<none>"]
        tagged = {repo for repo, _ in pairs}
        pairs += [(repo, NONE) for repo in digests if repo not in tagged]
        size = human_size(s.get("Size") or 0)
        created = s.get("Created") or 0
        containers = s.get("Containers", -1)
        base = {"ID": short_id(s.get("Id", ""), no_trunc), "CreatedSince": created_since(created, now),
                "CreatedAt": created_at(created), "Size": size, "VirtualSize": size,
                "SharedSize": "N/A", "UniqueSize": "N/A",
                "Containers": "N/A" if containers is None or containers < 0 else str(containers)}
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
    client = ctx.client()

    def listed(reference: str | None) -> list[dict]:
        filters: dict[str, list[str]] = {}
        if dangling is not None:
            filters["dangling"] = ["true" if dangling else "false"]
        if reference is not None:
            filters["reference"] = [reference]
        return client.get("/images/json", {"all": a.all or None,
                                           "filters": filters or None}) or []

    if references:
        seen: dict[str, dict] = {}
        for ref in references:  # the API takes one reference filter: one request each
            for s in listed(ref):
                seen.setdefault(s["Id"], s)
        summaries = list(seen.values())
    else:
        summaries = listed(None)
    rows = image_rows(summaries, no_trunc=a.no_trunc)
    if a.quiet:
        ctx.out.write("".join(r["ID"] + "\n" for r in rows))
    elif a.format == "json":
        ctx.out.write("".join(_dumps(r) + "\n" for r in rows))
    else:
        template = a.format or (IMAGES_DIGESTS_FORMAT if a.digests else IMAGES_FORMAT)
        _render(ctx, IMAGES_FORMAT if template == "table" else template, rows, IMAGE_HEADERS)
    return 0


def argparse_suppress() -> str:
    import argparse

    return argparse.SUPPRESS


# --------------------------------------------------------------------------------------------------
# inspect, tag, rmi

def _inspect_one(ctx: Context, name: str, kind: str, size: bool) -> Any:
    """The object's JSON, or None when the daemon has no such object of ``kind``."""
    from dockyard.cli.client import APIError

    path = (f"/images/{api_path(name)}/json" if kind == "image"
            else f"/containers/{api_path(name)}/json")
    try:
        return ctx.client().get(path, {"size": True} if size and kind == "container" else None)
    except APIError as e:
        if e.status == 404:
            return None
        raise


def _inspect(ctx: Context, names: Sequence[str], fmt: str | None, kinds: Sequence[str],
             missing: str, size: bool = False) -> int:
    found, errors = [], []
    for name in names:
        for kind in kinds:
            obj = _inspect_one(ctx, name, kind, size)
            if obj is not None:
                found.append(obj)
                break
        else:
            errors.append(f"Error: {missing}: {name}")
    if fmt and fmt != "json":
        from dockyard.cli.format import Template

        t = Template(fmt)
        ctx.out.write("".join(t.render(obj) + "\n" for obj in found))
    else:
        import json

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
    return _inspect(ctx, a.images, a.format, ("image",), "No such image")


def cmd_inspect(ctx: Context, argv: Sequence[str], verb: str = "inspect") -> int:
    p = Parser(ctx, verb, f"dockyard {verb} [OPTIONS] NAME|ID [NAME|ID...]",
               "Return low-level information on dockyard objects (containers, images)")
    p.add_argument("-f", "--format", help="Format output using a custom template")
    p.add_argument("-s", "--size", action="store_true",
                   help="Display total file sizes if the type is container")
    p.add_argument("--type", default="", help="Only inspect objects of the given type "
                                              "(container, image)")
    p.add_argument("names", nargs="*", help=argparse_suppress())
    a = p.parse(argv)
    p.require(a.names, at_least=1)
    kinds = {"": ("container", "image"), "container": ("container",), "image": ("image",)}
    if a.type not in kinds:
        raise CommandError(f'Error: "{a.type}" is not a valid value for --type '
                           "(container or image)")
    missing = {"": "No such object", "container": "No such container", "image": "No such image"}
    return _inspect(ctx, a.names, a.format, kinds[a.type], missing[a.type], a.size)


def cmd_tag(ctx: Context, argv: Sequence[str], verb: str = "tag") -> int:
    p = Parser(ctx, verb, f"dockyard {verb} SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]",
               "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE")
    p.add_argument("names", nargs="*", help=argparse_suppress())
    a = p.parse(argv)
    p.require(a.names, exactly=2)
    repo, tag = split_target(a.names[1])
    ctx.client().post(f"/images/{api_path(a.names[0])}/tag", {"repo": repo, "tag": tag or None})
    return 0


def cmd_rmi(ctx: Context, argv: Sequence[str], verb: str = "rmi") -> int:
    from dockyard.cli.client import APIError

    p = Parser(ctx, verb, f"dockyard {verb} [OPTIONS] IMAGE [IMAGE...]", "Remove one or more images")
    p.add_argument("-f", "--force", action="store_true", help="Force removal of the image")
    p.add_argument("--no-prune", action="store_true", help="Do not delete untagged parents")
    p.add_argument("images", nargs="*", help=argparse_suppress())
    a = p.parse(argv)
    p.require(a.images, at_least=1)
    client = ctx.client()
    failed = 0
    for name in a.images:
        try:
            actions = client.delete(f"/images/{api_path(name)}",
                                    {"force": a.force or None, "noprune": a.no_prune or None})
        except APIError as e:
            ctx.err.write(f"{e}\n")
            failed += 1
            continue
        ctx.out.write("".join(f"{kind}: {what}\n" for item in actions or ()
                              for kind, what in item.items()))
    return 1 if failed else 0


# --------------------------------------------------------------------------------------------------
# history

def history_rows(entries: Iterable[dict], *, no_trunc: bool = False, human: bool = True,
                 now: float | None = None) -> list[dict]:
    """docker's history columns from ``GET /images/{name}/history`` entries."""
    from dockyard.cli.format import human_size

    rows = []
    for h in entries:
        created_by = (h.get("CreatedBy") or "").replace("\t", " ")
        created = h.get("Created") or 0
        hid = h.get("Id") or "<missing>"
        size = h.get("Size") or 0
        rows.append({
            "ID": hid if hid == "<missing>" else short_id(hid, no_trunc),
            "CreatedSince": created_since(created, now) if human else rfc3339_local(created),
            "CreatedAt": created_at(created) if human else rfc3339_local(created),
            "CreatedBy": created_by if no_trunc else ellipsis(created_by, 45),
            "Size": human_size(size) if human else str(size),
            "Comment": h.get("Comment") or "",
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
    entries = ctx.client().get(f"/images/{api_path(a.image[0])}/history") or []
    rows = history_rows(entries, no_trunc=a.no_trunc, human=human)
    if a.quiet:
        ctx.out.write("".join(r["ID"] + "\n" for r in rows))
    elif a.format == "json":
        ctx.out.write("".join(_dumps(r) + "\n" for r in rows))
    else:
        template = a.format or HISTORY_FORMAT
        _render(ctx, HISTORY_FORMAT if template == "table" else template, rows, HISTORY_HEADERS)
    return 0


# --------------------------------------------------------------------------------------------------
# save, load, import, export

def stream_to_output(ctx: Context, resp: Any, output: str | None) -> None:
    """Copy an archive response to ``output`` (written to a temporary file, fsynced, renamed) or
    to stdout; the response is closed."""
    from dockyard.cli.client import copy_stream

    try:
        if not output:
            out = ctx.out_binary
            copy_stream(resp, out)
            out.flush()
            return
        target = os.path.abspath(output)
        tmp = os.path.join(os.path.dirname(target), f".{os.path.basename(target)}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as f:
                copy_stream(resp, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
    finally:
        resp.close()


def cmd_save(ctx: Context, argv: Sequence[str], verb: str = "save") -> int:
    p = Parser(ctx, verb, f"dockyard {verb} [OPTIONS] IMAGE [IMAGE...]",
               "Save one or more images to a tar archive (streamed to STDOUT by default)")
    p.add_argument("-o", "--output", help="Write to a file, instead of STDOUT")
    p.add_argument("--format", default="docker", choices=("docker", "oci"),
                   help="Archive format: docker (docker-archive, default) or oci (OCI layout)")
    p.add_argument("images", nargs="*", help=argparse_suppress())
    a = p.parse(argv)
    p.require(a.images, at_least=1)
    if not a.output and ctx.isatty("out"):
        raise CommandError("cowardly refusing to save to a terminal. Use the -o flag or redirect")
    # a missing image is the daemon's 404 before the stream starts: no file is created
    resp = ctx.client().stream("GET", "/images/get", {
        "names": list(a.images), "format": a.format if a.format != "docker" else None})
    stream_to_output(ctx, resp, a.output)
    return 0


def _print_messages(ctx: Context, resp: Any) -> list[dict]:
    """Print a JSON message stream as docker does (``stream`` text as is, ``status`` lines);
    an ``error`` message fails the command. The messages, for callers that want them."""
    from dockyard.cli.client import json_messages

    docs = []
    try:
        for doc in json_messages(resp):
            docs.append(doc)
            if doc.get("error"):
                raise CommandError(f"Error: {doc['error']}")
            if "stream" in doc:
                ctx.out.write(doc["stream"])
    finally:
        resp.close()
    return docs


def cmd_load(ctx: Context, argv: Sequence[str], verb: str = "load") -> int:
    p = Parser(ctx, verb, f"dockyard {verb} [OPTIONS]",
               "Load an image from a tar archive or STDIN (docker-archive or OCI layout, plain or gzip)")
    p.add_argument("-i", "--input", help="Read from tar archive file, instead of STDIN")
    p.add_argument("-q", "--quiet", action="store_true", help="Suppress the load output")
    a = p.parse(argv)
    client = ctx.client()
    query = {"quiet": a.quiet or None}
    if a.input:
        with open(a.input, "rb") as f:
            resp = client.stream("POST", "/images/load", query, body=f)
            _print_messages(ctx, resp)
        return 0
    if ctx.isatty("in"):
        raise CommandError("requested load from stdin, but stdin is empty")
    _print_messages(ctx, client.stream("POST", "/images/load", query, body=ctx.inp))
    return 0


def cmd_import(ctx: Context, argv: Sequence[str], verb: str = "import") -> int:
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
    # docker's query: the whole reference as repo; the daemon checks it and the changes before
    # it reads a byte of the body
    query = {"fromSrc": "-", "repo": ref, "changes": list(a.change),
             "message": a.message or None, "platform": a.platform}
    client = ctx.client()
    if source == "-":
        docs = _import(ctx, client.stream("POST", "/images/create", query, body=ctx.inp))
    else:
        with open(source, "rb") as f:
            docs = _import(ctx, client.stream("POST", "/images/create", query, body=f))
    ids = [d["status"] for d in docs if str(d.get("status", "")).startswith("sha256:")]
    ctx.out.write("".join(f"{i}\n" for i in ids[-1:]))
    return 0


def _import(ctx: Context, resp: Any) -> list[dict]:
    return _print_messages(ctx, resp)


def cmd_export(ctx: Context, argv: Sequence[str], verb: str = "export") -> int:
    p = Parser(ctx, verb, f"dockyard {verb} [OPTIONS] CONTAINER",
               "Export a container's filesystem as a tar archive")
    p.add_argument("-o", "--output", help="Write to a file, instead of STDOUT")
    p.add_argument("container", nargs="*", help=argparse_suppress())
    a = p.parse(argv)
    p.require(a.container, exactly=1)
    if not a.output and ctx.isatty("out"):
        raise CommandError("cowardly refusing to save to a terminal. Use the -o flag or redirect")
    resp = ctx.client().stream("GET", f"/containers/{api_path(a.container[0])}/export")
    stream_to_output(ctx, resp, a.output)
    return 0


# --------------------------------------------------------------------------------------------------
# image diff, image bootstrap

def diff_lines(changes: Iterable[dict], size_text: Any) -> str:
    """``image diff``'s text (see dockyard.image.diff) from the JSON the daemon sends."""
    sized = ("file", "symlink")
    out = []
    for c in changes:
        action = c["Action"]
        if action == "deleted":
            out.append(f"D {c['Path']}")
            continue
        new, old = c["New"], c["Old"] if action == "changed" else None
        link = f" -> {new.get('Linkname', '')}" if new["Type"] == "symlink" else ""
        both = (old, new) if old is not None else (new,)
        parts = []
        if new["Type"] in sized or (old is not None and old["Type"] in sized):
            sizes = [size_text(x["Size"]) if x["Type"] in sized else "-" for x in both]
            parts.append(" → ".join(sizes) if len(sizes) == 2 and sizes[0] != sizes[1] else sizes[-1])
        modes = [x["Mode"] for x in both]
        parts.append(" → ".join(modes) if len(modes) == 2 and modes[0] != modes[1] else modes[-1])
        if old is not None and (old["Uid"], old["Gid"]) != (new["Uid"], new["Gid"]):
            parts.append(f"{old['Uid']}:{old['Gid']} → {new['Uid']}:{new['Gid']}")
        letter = "A" if action == "added" else "C"
        out.append(f"{letter} {c['Path']}{link}  ({', '.join(parts)})")
    return "".join(line + "\n" for line in out)


def cmd_image_diff(ctx: Context, argv: Sequence[str], verb: str = "image diff") -> int:
    p = Parser(ctx, verb, f"dockyard {verb} [OPTIONS] IMAGE_A IMAGE_B",
               "Show files added (A), changed (C) and deleted (D) from IMAGE_A to IMAGE_B")
    p.add_argument("--format", default="text", choices=("text", "json"), help="Output format")
    p.add_argument("--thorough", action="store_true",
                   help="Compare the contents of every file of equal size "
                        "(not only those whose mtime differs)")
    p.add_argument("images", nargs="*", help=argparse_suppress())
    a = p.parse(argv)
    p.require(a.images, exactly=2)
    changes = ctx.client().get("/dockyard/images/diff", {
        "a": a.images[0], "b": a.images[1], "thorough": a.thorough or None}) or []
    if a.format == "json":
        import json

        ctx.out.write(json.dumps(changes, indent=4, ensure_ascii=False) + "\n")
    else:
        from dockyard.cli.format import human_size

        ctx.out.write(diff_lines(changes, human_size))
    return 0


def cmd_bootstrap(ctx: Context, argv: Sequence[str], verb: str = "image bootstrap") -> int:
    p = Parser(ctx, verb, f"dockyard {verb} [OPTIONS] busybox|debian[:SUITE]",
               "Create a base image without the internet: busybox from the host's busybox-static, "
               "or Debian with debootstrap (the daemon does the work, on its host)")
    p.add_argument("-t", "--tag", help="Name the image (default busybox:latest, debian:SUITE)")
    p.add_argument("--busybox", default="/bin/busybox", help="The busybox binary to use")
    p.add_argument("--mirror", help="Debian mirror for debootstrap")
    p.add_argument("kind", nargs="*", help=argparse_suppress())
    a = p.parse(argv)
    p.require(a.kind, exactly=1)
    kind, _, suite = a.kind[0].partition(":")
    if not ((kind == "busybox" and not suite) or kind == "debian"):
        raise CommandError(f"Error: unknown base image {a.kind[0]!r}: use busybox or debian[:SUITE]")
    answer = ctx.client().post("/dockyard/images/bootstrap", {
        "name": a.kind[0], "tag": a.tag, "busybox": os.path.abspath(a.busybox),
        "mirror": a.mirror})
    ctx.out.write(f"{answer['Id']}\n")
    return 0
