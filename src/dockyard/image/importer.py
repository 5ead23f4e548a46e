"""``docker import``: a tar (plain, gzip, zstd, bzip2 or xz) of a filesystem becomes a one-layer image,
and the ``--change`` parser (Dockerfile instructions applied to the image's config).

The layer blob. A gzip or zstd stream is stored exactly as given (it is already a valid, compressed
layer blob; re-compressing would only cost time), with the matching layer media type. A plain tar,
bzip2 or xz stream is stored gzip-compressed: plain tars are large and bzip2/xz are not layer media
types a registry or another engine accepts. Either way the input passes once: it is written to the
content store while its tar side is hashed (the diff id) and walked member by member, so a
non-tar is refused with a clear message before any image exists; members themselves are validated
by the unpack in ``ImageService.add_image``.

``--change``: ``apply_changes(config, changes)`` applies ``CMD``, ``ENTRYPOINT``, ``ENV``,
``EXPOSE``, ``HEALTHCHECK``, ``LABEL``, ``ONBUILD``, ``STOPSIGNAL``, ``USER``, ``VOLUME`` and
``WORKDIR`` (docker's list of valid commit/import changes) in JSON or shell form, with Dockerfile
quoting and ``$VAR``/``${VAR:-word}``/``${VAR:+word}`` expansion against the config's ``Env`` where a
Dockerfile expands (not in CMD, ENTRYPOINT, ONBUILD, HEALTHCHECK). Anything else is
``InvalidArgument`` naming the instruction. The parser is pure (no I/O) and unit-tested.
"""

from __future__ import annotations

import json
import re
import secrets
import time

from dockyard.errors import InvalidArgument
from dockyard.oci.image_config import ContainerConfig, Healthcheck
from dockyard.record import replace

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import BinaryIO

    from dockyard.content.ingest import Writer
    from dockyard.image.service import ImageService, LayerBlob
    from dockyard.metadata.records import ImageRecord
    from dockyard.oci.digest import Digest

CHANGE_INSTRUCTIONS = ("CMD", "ENTRYPOINT", "ENV", "EXPOSE", "HEALTHCHECK", "LABEL", "ONBUILD",
                       "STOPSIGNAL", "USER", "VOLUME", "WORKDIR")
_NAME_START = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_")
_NAME_CHARS = _NAME_START | frozenset("0123456789")
_PROTOCOLS = ("tcp", "udp", "sctp")
_DURATION_RE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
            "m": 60_000_000_000, "h": 3_600_000_000_000}


# --------------------------------------------------------------------------------------------------
# Dockerfile words: quotes, escapes, variable expansion

def _expand_var(text: str, i: int, env: Mapping[str, str]) -> tuple[str, int]:
    """The value of the variable reference starting at ``text[i] == "$"`` and the index after it."""
    n = len(text)
    if i + 1 < n and text[i + 1] == "{":
        end, depth, j = -1, 0, i + 2
        while j < n:  # the matching brace (a default word may itself hold ${...})
            if text[j] == "\\":
                j += 2
                continue
            if text[j] == "{":
                depth += 1
            elif text[j] == "}":
                if depth == 0:
                    end = j
                    break
                depth -= 1
            j += 1
        if end < 0:
            raise InvalidArgument(f"missing '}}' in {text[i:]!r}")
        body = text[i + 2:end]
        k = 0
        while k < len(body) and body[k] in _NAME_CHARS:
            k += 1
        name, op = body[:k], body[k:]
        if not name or name[0] not in _NAME_START:
            raise InvalidArgument(f"bad substitution {text[i:end + 1]!r}")
        value = env.get(name)
        if not op:
            return value or "", end + 1
        if op[:2] in (":-", ":+", ":?"):
            word = words(op[2:], env, split=False)
            word_text = word[0] if word else ""
            if op[1] == "-":
                return (value if value else word_text), end + 1
            if op[1] == "+":
                return (word_text if value else ""), end + 1
            if not value:
                raise InvalidArgument(f"{name}: {word_text or 'is not allowed to be unset'}")
            return value, end + 1
        raise InvalidArgument(f"unsupported modifier {op!r} in {text[i:end + 1]!r}")
    j = i + 1
    if j < n and text[j] in _NAME_START:
        while j < n and text[j] in _NAME_CHARS:
            j += 1
        return env.get(text[i + 1:j], ""), j
    return "$", i + 1  # a lone dollar is literal


def words(text: str, env: Mapping[str, str] | None = None, *, split: bool = True) -> list[str]:
    """Dockerfile shell words: quotes removed, ``\\`` escapes applied, variables expanded (when
    ``env`` is given). ``split=False`` keeps unquoted whitespace and returns at most one word."""
    out: list[str] = []
    cur: list[str] = []
    have = False
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if split and c in " \t\r\n":
            if have:
                out.append("".join(cur))
                cur, have = [], False
            i += 1
            continue
        have = True
        if c == "\\":
            cur.append(text[i + 1] if i + 1 < n else c)
            i += 2
        elif c == "'":
            j = text.find("'", i + 1)
            if j < 0:
                raise InvalidArgument(f"unexpected end of statement while looking for matching "
                                      f"single-quote in {text!r}")
            cur.append(text[i + 1:j])
            i = j + 1
        elif c == '"':
            i += 1
            while True:
                if i >= n:
                    raise InvalidArgument(f"unexpected end of statement while looking for "
                                          f"matching double-quote in {text!r}")
                c = text[i]
                if c == '"':
                    i += 1
                    break
                if c == "\\" and i + 1 < n and text[i + 1] in '"\\$`':
                    cur.append(text[i + 1])
                    i += 2
                elif c == "$" and env is not None:
                    value, i = _expand_var(text, i, env)
                    cur.append(value)
                else:
                    cur.append(c)
                    i += 1
        elif c == "$" and env is not None:
            value, i = _expand_var(text, i, env)
            cur.append(value)
        else:
            cur.append(c)
            i += 1
    if have:
        out.append("".join(cur))
    return out


def _raw_words(text: str) -> list[str]:
    """Split on whitespace outside quotes, keeping quotes and escapes (docker's parseWords), so
    that ``key="a b"`` stays one word whose value is processed afterwards."""
    out: list[str] = []
    cur: list[str] = []
    quote = ""
    i = 0
    while i < len(text):
        c = text[i]
        if not quote and c in " \t\r\n":
            if cur:
                out.append("".join(cur))
                cur = []
            i += 1
            continue
        if c == "\\" and quote != "'" and i + 1 < len(text):
            cur.append(text[i:i + 2])
            i += 2
            continue
        if c in "'\"":
            quote = "" if quote == c else (c if not quote else quote)
        cur.append(c)
        i += 1
    if cur:
        out.append("".join(cur))
    return out


def _json_list(args: str) -> list[str] | None:
    """The JSON form (``["a", "b"]``), or None when ``args`` is not a JSON array of strings."""
    if not args.startswith("["):
        return None
    try:
        value = json.loads(args)
    except ValueError:
        return None
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    return None


def _pairs(instruction: str, args: str, env: Mapping[str, str]) -> list[tuple[str, str]]:
    """``key=value ...`` (values quoted as needed), or the legacy ``KEY value with spaces``."""
    raw = _raw_words(args)
    if not raw:
        raise InvalidArgument(f"{instruction} requires at least one argument")
    if "=" not in raw[0]:
        if len(raw) < 2:
            raise InvalidArgument(f"{instruction} must have two arguments (or key=value pairs): "
                                  f"{instruction} {args}")
        key = "".join(words(raw[0], env))
        rest = args.lstrip()[len(raw[0]):].strip()
        return [(key, "".join(words(rest, env, split=False)))]
    out = []
    for w in raw:
        if "=" not in w:
            raise InvalidArgument(f"{instruction}: expected key=value, got {w!r}")
        k, _, v = w.partition("=")
        key = "".join(words(k, env))
        if not key:
            raise InvalidArgument(f"{instruction} names can not be blank: {w!r}")
        out.append((key, "".join(words(v, env, split=False))))
    return out


def _ports(args: str, env: Mapping[str, str]) -> list[str]:
    specs = words(args, env)
    if not specs:
        raise InvalidArgument("EXPOSE requires at least one argument")
    out: list[str] = []
    for spec in specs:
        port, _, proto = spec.partition("/")
        proto = (proto or "tcp").lower()
        if proto not in _PROTOCOLS:
            raise InvalidArgument(f"EXPOSE {spec}: invalid protocol {proto!r} (tcp, udp or sctp)")
        lo, dash, hi = port.partition("-")
        try:
            first, last = int(lo), int(hi) if dash else int(lo)
        except ValueError:
            raise InvalidArgument(f"EXPOSE {spec}: invalid port {port!r}") from None
        if not (0 < first <= last <= 65535):
            raise InvalidArgument(f"EXPOSE {spec}: invalid port range {port!r}")
        out.extend(f"{p}/{proto}" for p in range(first, last + 1))
    return out


def parse_duration(text: str) -> int:
    """A Go duration (``30s``, ``1m30s``, ``1.5h``, ``500ms``) in nanoseconds."""
    pos, total = 0, 0.0
    if text == "0":
        return 0
    for m in _DURATION_RE.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNIT_NS[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        raise InvalidArgument(f"invalid duration {text!r} (e.g. 30s, 1m30s, 500ms)")
    return int(total)


def _healthcheck(args: str) -> Healthcheck:
    rest = args.strip()
    if rest.upper() == "NONE":
        return Healthcheck(test=("NONE",))
    opts: dict[str, int] = {}
    while rest.startswith("--"):
        flag, _, rest = rest.partition(" ")
        rest = rest.lstrip()
        name, eq, value = flag[2:].partition("=")
        if not eq:
            raise InvalidArgument(f"HEALTHCHECK: flag {flag!r} needs a value (--{name}=...)")
        if name == "retries":
            try:
                opts[name] = int(value)
            except ValueError:
                raise InvalidArgument(f"HEALTHCHECK: --retries={value}: not an integer") from None
            if opts[name] < 0:
                raise InvalidArgument("HEALTHCHECK: --retries cannot be negative")
        elif name in ("interval", "timeout", "start-period", "start-interval"):
            opts[name] = parse_duration(value)
        else:
            raise InvalidArgument(f"HEALTHCHECK: unknown flag --{name}")
    kind, _, command = rest.partition(" ")
    if kind.upper() != "CMD" or not command.strip():
        raise InvalidArgument("HEALTHCHECK: expected NONE or [OPTIONS] CMD command")
    argv = _json_list(command.strip())
    test = ("CMD", *argv) if argv is not None else ("CMD-SHELL", command.strip())
    return Healthcheck(test=test, interval=opts.get("interval", 0), timeout=opts.get("timeout", 0),
                       start_period=opts.get("start-period", 0),
                       start_interval=opts.get("start-interval", 0), retries=opts.get("retries", 0))


def _signal_ok(text: str) -> bool:
    if text.isdigit():
        return 0 < int(text) <= 64
    name = text.upper()
    name = name if name.startswith("SIG") else "SIG" + name
    import signal

    if name in signal.Signals.__members__:
        return True
    base, plus, n = name.partition("+")
    base, minus, m = base.partition("-") if not plus else (base, "", "")
    return base in ("SIGRTMIN", "SIGRTMAX") and (not (plus or minus) or (n or m).isdigit())


def split_instruction(change: str) -> tuple[str, str]:
    """``("ENV", "A=1")`` from ``"env A=1"``: the upper-cased keyword and its arguments."""
    text = change.replace("\\\n", " ").strip()
    if not text:
        raise InvalidArgument("empty --change")
    parts = text.split(None, 1)
    keyword = parts[0].upper()
    if keyword not in CHANGE_INSTRUCTIONS:
        raise InvalidArgument(f"{parts[0]} is not a valid change command (use one of "
                              f"{', '.join(CHANGE_INSTRUCTIONS)})")
    return keyword, parts[1].strip() if len(parts) > 1 else ""


def apply_changes(config: ContainerConfig, changes: Sequence[str]) -> ContainerConfig:
    """``config`` with each Dockerfile instruction of ``changes`` applied in order.

    Docker's semantics: an ``ENTRYPOINT`` resets ``CMD`` unless a ``CMD`` came earlier in the same
    list; ``WORKDIR`` relative to the previous one; ``ENV``/``LABEL`` replace existing keys.
    """
    cmd_set = False
    for change in changes:
        keyword, args = split_instruction(change)
        env = dict(e.partition("=")[::2] for e in config.env)
        if keyword in ("CMD", "ENTRYPOINT"):
            if not args:
                raise InvalidArgument(f"{keyword} requires at least one argument")
            argv = _json_list(args)
            value = tuple(argv) if argv is not None else ("/bin/sh", "-c", args)
            if keyword == "CMD":
                config, cmd_set = replace(config, cmd=value), True
            else:
                config = replace(config, entrypoint=value, cmd=config.cmd if cmd_set else None)
        elif keyword == "ENV":
            new_env = dict(env)
            for k, v in _pairs("ENV", args, env):
                new_env[k] = v
            keys = [e.partition("=")[0] for e in config.env]
            keys += [k for k in new_env if k not in keys]
            config = replace(config, env=tuple(f"{k}={new_env[k]}" for k in keys))
        elif keyword == "LABEL":
            labels = dict(config.labels)
            labels.update(_pairs("LABEL", args, env))
            config = replace(config, labels=tuple(sorted(labels.items())))
        elif keyword == "EXPOSE":
            ports = set(config.exposed_ports) | set(_ports(args, env))
            config = replace(config, exposed_ports=tuple(sorted(ports)))
        elif keyword == "VOLUME":
            argv = _json_list(args)
            vols = argv if argv is not None else words(args, env)
            if not vols or any(not v.strip() for v in vols):
                raise InvalidArgument("VOLUME specified can not be an empty string")
            config = replace(config, volumes=tuple(sorted(set(config.volumes) | set(vols))))
        elif keyword == "USER":
            user = words(args, env)
            if len(user) != 1:
                raise InvalidArgument(f"USER requires exactly one argument, got {args!r}")
            config = replace(config, user=user[0])
        elif keyword == "WORKDIR":
            wd = "".join(words(args, env, split=False)).strip()
            if not wd:
                raise InvalidArgument("WORKDIR requires exactly one argument")
            if not wd.startswith("/"):
                import posixpath

                wd = posixpath.join("/", config.working_dir or "/", wd)
            config = replace(config, working_dir=wd)
        elif keyword == "STOPSIGNAL":
            sig = words(args, env)
            if len(sig) != 1 or not _signal_ok(sig[0]):
                raise InvalidArgument(f"STOPSIGNAL: invalid signal {args!r}")
            config = replace(config, stop_signal=sig[0])
        elif keyword == "ONBUILD":
            trigger = args.split(None, 1)[0].upper() if args else ""
            if trigger in ("ONBUILD", "FROM", "MAINTAINER"):
                raise InvalidArgument(f"{trigger} isn't allowed as an ONBUILD trigger")
            if not trigger:
                raise InvalidArgument("ONBUILD requires at least one argument")
            config = replace(config, on_build=(*(config.on_build or ()), args))
        elif keyword == "HEALTHCHECK":
            config = replace(config, healthcheck=_healthcheck(args))
    return config


# --------------------------------------------------------------------------------------------------
# import

def rfc3339(t: float) -> str:
    """UTC RFC 3339 with nanoseconds, as docker writes ``created`` (``2024-05-01T12:00:00.5Z``)."""
    whole = int(t)
    frac = f"{int(round((t - whole) * 1e9)):09d}".rstrip("0")
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + (f".{frac}" if frac else "") + "Z"


class _Sink:
    """A content ``Writer`` as the file object the layer writer and compressors expect."""

    def __init__(self, w: Writer) -> None:
        self._w = w

    def write(self, b: bytes | bytearray | memoryview) -> int:
        return self._w.write(b)

    def flush(self) -> None:
        pass

    def writable(self) -> bool:
        return True


class _Source:
    """The input with its sniffed head put back; optionally copies every byte read to ``tee``."""

    def __init__(self, head: bytes, raw: BinaryIO, tee: object = None) -> None:
        self._head, self._raw, self._tee = head, raw, tee

    def read(self, n: int = -1) -> bytes:
        if self._head:
            b = self._head if n is None or n < 0 else self._head[:n]
            self._head = self._head[len(b):]
        else:
            b = self._raw.read(n)
        if b and self._tee is not None:
            self._tee.write(b)  # type: ignore[attr-defined]
        return b

    def readable(self) -> bool:
        return True


def _read_head(stream: BinaryIO, n: int = 6) -> bytes:
    head = b""
    while len(head) < n:
        b = stream.read(n - len(head))
        if not b:
            break
        head += b
    return head


def commit_protected(svc: ImageService, w: Writer, lease: str) -> Digest:
    """Commit a blob, recording it under ``lease`` before it becomes visible (GC-safe)."""
    return w.commit(on_digest=lambda d: svc.db.leases.add_resource(lease, "blob", str(d)))


def write_blob(svc: ImageService, data: bytes, lease: str) -> Digest:
    """A small blob (config, manifest) written and protected by ``lease``."""
    return svc.content.write_bytes(
        data, on_digest=lambda d: svc.db.leases.add_resource(lease, "blob", str(d)))


def ingest_layer(svc: ImageService, stream: BinaryIO, lease: str) -> tuple[LayerBlob, Digest]:
    """Store ``stream`` (a filesystem tar, any compression) as a layer blob; (blob, diff id)."""
    from dockyard.archive.compression import GZIP, NONE, ZSTD, HashingWriter, LayerStream, Limits, \
        detect_compression, open_compressor
    from dockyard.archive.reader import members, open_tar
    from dockyard.image.service import LayerBlob
    from dockyard.oci import image_spec as spec

    limits = Limits()
    head = _read_head(stream)
    if not head:
        raise InvalidArgument("import: the input is empty (expected a tar archive)")
    kind = detect_compression(head)
    w = svc.content.writer(f"import-{secrets.token_hex(8)}")
    compressor = None
    try:
        keep = kind in (GZIP, ZSTD)
        blob_side = HashingWriter(_Sink(w))  # type: ignore[arg-type]
        layer = LayerStream(_Source(head, stream, blob_side if keep else None),  # type: ignore[arg-type]
                            limits, compression=kind)
        compressor = None if keep else open_compressor(GZIP, blob_side)
        tar_input = layer if keep else _Source(b"", layer, compressor)  # type: ignore[arg-type]
        try:
            tar = open_tar(tar_input, limits)  # type: ignore[arg-type]
            for _ in members(tar, limits):
                pass
            while tar_input.read(1 << 20):  # the end-of-archive padding and anything after it
                pass
            layer.drain()
        except InvalidArgument as e:
            inside = "" if kind == NONE else f" (in a {kind} stream)"
            raise InvalidArgument(f"import: not a valid tar archive{inside}: "
                                  f"{str(e).removeprefix('layer: ')}") from None
        if compressor is not None:
            c, compressor = compressor, None
            c.close()
        digest = commit_protected(svc, w, lease)
    except BaseException:
        if compressor is not None:  # stop its worker thread; the output is discarded anyway
            try:
                compressor.close()
            except Exception:  # noqa: BLE001
                pass
        w.abort()
        raise
    media_type = {GZIP: spec.DOCKER_LAYER_GZIP, ZSTD: spec.OCI_LAYER_ZSTD}[kind if keep else GZIP]
    return LayerBlob(digest=digest, size=blob_side.size, media_type=media_type), layer.diff_id


def build_image(svc: ImageService, lease: str, layers: Sequence[LayerBlob], diff_ids: Sequence[Digest],
                config: object, tags: Sequence[object] = ()) -> ImageRecord:
    """Write ``config`` (an ``ImageConfig`` with its rootfs filled in here) and a manifest for
    ``layers``, then record the image. Docker schema 2, or OCI when a layer is zstd (schema 2 has
    no zstd layer type that docker reads)."""
    from dockyard.oci import image_spec as spec
    from dockyard.oci.image_config import ImageConfig, RootFS

    assert isinstance(config, ImageConfig)
    config_bytes = replace(config, rootfs=RootFS("layers", tuple(diff_ids))).to_json()
    oci = any(la.media_type == spec.OCI_LAYER_ZSTD for la in layers)
    config_digest = write_blob(svc, config_bytes, lease)
    manifest = spec.Manifest(
        2, spec.OCI_MANIFEST if oci else spec.DOCKER_MANIFEST,
        spec.Descriptor(spec.OCI_CONFIG if oci else spec.DOCKER_CONFIG, config_digest, len(config_bytes)),
        tuple(spec.Descriptor(la.media_type, la.digest, la.size) for la in layers))
    manifest_bytes = manifest.to_json()
    write_blob(svc, manifest_bytes, lease)
    return svc.add_image(manifest=manifest_bytes, manifest_media_type=manifest.media_type,
                         config=config_bytes, layers=list(layers), tags=list(tags))  # type: ignore[arg-type]


def import_image(svc: ImageService, stream: BinaryIO, *, ref: str | None = None,
                 changes: Sequence[str] = (), message: str = "", platform: str | None = None,
                 source: str = "-") -> ImageRecord:
    """``docker import``: one layer from ``stream``; config from ``changes``; history and comment
    "Imported from <source>" unless ``message`` is given. Reference, changes and platform are
    checked before a byte is read, so a bad flag never leaves a blob behind."""
    from dockyard.oci.image_config import History, ImageConfig
    from dockyard.oci.platform import current_platform, parse_platform
    from dockyard.oci.reference import parse_normalized

    tags = [parse_normalized(ref)] if ref else []
    container = apply_changes(ContainerConfig(), changes)
    plat = parse_platform(platform) if platform else current_platform()
    created = rfc3339(time.time())
    comment = message or f"Imported from {source}"
    with svc.lease() as lease:
        blob, diff_id = ingest_layer(svc, stream, lease)
        config = ImageConfig(architecture=plat.architecture, os=plat.os, variant=plat.variant,
                             config=container, created=created, comment=comment,
                             history=(History(created=created, comment=comment),))
        return build_image(svc, lease, [blob], [diff_id], config, tags)
