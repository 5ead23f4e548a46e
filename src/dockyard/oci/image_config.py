"""The image configuration (OCI ``config.json`` of an image / Docker's container image JSON),
layer identities (diff ids, chain ids) and the image id.

Same trust boundary as ``image_spec``: size limit, then digest over the exact bytes, then strict
JSON. Field names follow the spec's JSON keys in snake_case; Docker's extensions that the engine
uses (``Healthcheck``, ``Shell``, ``OnBuild``, top-level ``comment``) are kept. Other Docker
leftovers (``container_config``, ``docker_version``, ``parent``) are ignored: an image's identity
is the digest of the bytes it came with, which the content store keeps, so nothing is lost.

``None`` and ``()`` differ for ``entrypoint``, ``cmd``, ``on_build`` and ``shell``: None is
"not set" (inherit, use the default), ``()`` is "set to empty" (``ENTRYPOINT []``).
"""

from __future__ import annotations

from dockyard.errors import InvalidArgument
from dockyard.oci.digest import Digest
from dockyard.oci.image_spec import (
    CONFIG_TYPES, Manifest, Platform, _claimed, _fail, _get, _obj, _or_empty, _str_map, _strs,
    canonical_json, load_document)
from dockyard.record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence


class Healthcheck(Record):
    """Docker's HEALTHCHECK. ``test``: ``("NONE",)``, ``("CMD", args...)`` or
    ``("CMD-SHELL", command)``; empty means inherit. Durations are nanoseconds, 0 = default."""

    test: tuple[str, ...] = ()
    interval: int = 0
    timeout: int = 0
    start_period: int = 0
    start_interval: int = 0
    retries: int = 0


class ContainerConfig(Record):
    """The ``config`` object: how to run a container from the image."""

    user: str = ""
    exposed_ports: tuple[str, ...] = ()  # "80/tcp", sorted
    env: tuple[str, ...] = ()
    entrypoint: tuple[str, ...] | None = None
    cmd: tuple[str, ...] | None = None
    volumes: tuple[str, ...] = ()  # sorted
    working_dir: str = ""
    labels: tuple[tuple[str, str], ...] = ()  # sorted by key
    stop_signal: str = ""
    args_escaped: bool = False
    healthcheck: Healthcheck | None = None
    on_build: tuple[str, ...] | None = None
    shell: tuple[str, ...] | None = None

    def to_obj(self) -> dict:
        out: dict = {}
        if self.user:
            out["User"] = self.user
        if self.exposed_ports:
            out["ExposedPorts"] = {p: {} for p in self.exposed_ports}
        if self.env:
            out["Env"] = list(self.env)
        for key, value in (("Entrypoint", self.entrypoint), ("Cmd", self.cmd),
                           ("OnBuild", self.on_build), ("Shell", self.shell)):
            if value is not None:
                out[key] = list(value)
        if self.volumes:
            out["Volumes"] = {v: {} for v in self.volumes}
        if self.working_dir:
            out["WorkingDir"] = self.working_dir
        if self.labels:
            out["Labels"] = dict(self.labels)
        if self.stop_signal:
            out["StopSignal"] = self.stop_signal
        if self.args_escaped:
            out["ArgsEscaped"] = True
        if self.healthcheck is not None:
            h = self.healthcheck
            hc: dict = {"Test": list(h.test)} if h.test else {}
            for key, n in (("Interval", h.interval), ("Timeout", h.timeout),
                           ("StartPeriod", h.start_period), ("StartInterval", h.start_interval),
                           ("Retries", h.retries)):
                if n:
                    hc[key] = n
            out["Healthcheck"] = hc
        return out


class RootFS(Record):
    type: str = "layers"
    diff_ids: tuple[Digest, ...] = ()


class History(Record):
    created: str = ""
    created_by: str = ""
    author: str = ""
    comment: str = ""
    empty_layer: bool = False

    def to_obj(self) -> dict:
        out: dict = {}
        for key, value in (("created", self.created), ("created_by", self.created_by),
                           ("author", self.author), ("comment", self.comment)):
            if value:
                out[key] = value
        if self.empty_layer:
            out["empty_layer"] = True
        return out


class ImageConfig(Record):
    architecture: str
    os: str
    rootfs: RootFS = RootFS()
    config: ContainerConfig = ContainerConfig()
    created: str = ""  # RFC 3339, kept as written
    author: str = ""
    variant: str = ""
    os_version: str = ""
    os_features: tuple[str, ...] = ()
    history: tuple[History, ...] = ()
    comment: str = ""  # docker extension (``docker commit -m``, ``docker import -m``)

    def platform(self) -> Platform:
        return Platform(self.os, self.architecture, self.variant, self.os_version, self.os_features)

    def to_obj(self) -> dict:
        out: dict = {"architecture": self.architecture, "os": self.os,
                     "rootfs": {"type": self.rootfs.type,
                                "diff_ids": [str(d) for d in self.rootfs.diff_ids]},
                     "config": self.config.to_obj()}
        for key, value in (("created", self.created), ("author", self.author),
                           ("variant", self.variant), ("os.version", self.os_version),
                           ("comment", self.comment)):
            if value:
                out[key] = value
        if self.os_features:
            out["os.features"] = list(self.os_features)
        if self.history:
            out["history"] = [h.to_obj() for h in self.history]
        return out

    def to_json(self) -> bytes:
        return canonical_json(self.to_obj())


# ---------------------------------------------------------------- parsing


def _str_list(d: dict, key: str, path: str) -> tuple[str, ...] | None:
    """Docker's StrSlice: a list of strings, or one string meaning a one-element list."""
    v = d.get(key)
    if isinstance(v, str):
        return (v,)
    return _strs(d, key, path)


def _key_set(d: dict, key: str, path: str) -> tuple[str, ...]:
    """``{"80/tcp": {}, ...}`` -> sorted keys; the values carry nothing."""
    v = _obj(_or_empty(d, key), f"{path}.{key}")
    for k, x in v.items():
        if x is not None and not isinstance(x, dict):
            raise _fail(f"{path}.{key}.{k}", f"expected an object, got {type(x).__name__}")
    return tuple(sorted(v))


def _duration(d: dict, key: str, path: str) -> int:
    v = _get(d, key, int, path, 0)
    if v < 0:
        raise _fail(f"{path}.{key}", f"must not be negative, got {v}")
    return v


def _healthcheck(d: dict, path: str) -> Healthcheck:
    return Healthcheck(
        test=_strs(d, "Test", path) or (),
        interval=_duration(d, "Interval", path), timeout=_duration(d, "Timeout", path),
        start_period=_duration(d, "StartPeriod", path),
        start_interval=_duration(d, "StartInterval", path),
        retries=_duration(d, "Retries", path),
    )


def parse_container_config(d: dict, path: str = "config.config") -> ContainerConfig:
    hc = None
    if d.get("Healthcheck") is not None:
        hc = _healthcheck(_obj(d["Healthcheck"], f"{path}.Healthcheck"), f"{path}.Healthcheck")
    return ContainerConfig(
        user=_get(d, "User", str, path, ""),
        exposed_ports=_key_set(d, "ExposedPorts", path),
        env=_strs(d, "Env", path) or (),
        entrypoint=_str_list(d, "Entrypoint", path),
        cmd=_str_list(d, "Cmd", path),
        volumes=_key_set(d, "Volumes", path),
        working_dir=_get(d, "WorkingDir", str, path, ""),
        labels=_str_map(d, "Labels", path),
        stop_signal=_get(d, "StopSignal", str, path, ""),
        args_escaped=bool(_get(d, "ArgsEscaped", bool, path, False)),
        healthcheck=hc,
        on_build=_str_list(d, "OnBuild", path),
        shell=_str_list(d, "Shell", path),
    )


def _digests(values: list, path: str) -> tuple[Digest, ...]:
    out = []
    for i, v in enumerate(values):
        if not isinstance(v, str):
            raise _fail(f"{path}[{i}]", f"expected a digest string, got {v!r}")
        try:
            out.append(Digest.parse(v))
        except InvalidArgument as e:
            raise _fail(f"{path}[{i}]", str(e)) from None
    return tuple(out)


def parse_image_config(data: bytes, *, expected: Digest | None = None,
                       media_type: str | None = None) -> ImageConfig:
    """An image config from its exact bytes (``expected`` verified before parsing; a claimed
    ``media_type`` must be an image config type)."""
    claimed = _claimed(media_type)
    if claimed and claimed not in CONFIG_TYPES:
        raise InvalidArgument(f"config: {claimed!r} is not an image config media type "
                              f"(expected {' or '.join(sorted(CONFIG_TYPES))})")
    d = load_document(data, "config", expected)
    arch = _get(d, "architecture", str, "config", "")
    os_name = _get(d, "os", str, "config", "")
    if not arch:
        raise _fail("config.architecture", "is required")
    if not os_name:
        raise _fail("config.os", "is required")
    if d.get("rootfs") is None:
        raise _fail("config.rootfs", "is required")
    rf = _obj(d["rootfs"], "config.rootfs")
    rf_type = _get(rf, "type", str, "config.rootfs", "")
    if rf_type != "layers":
        raise _fail("config.rootfs.type", f"must be 'layers', got {rf_type!r}")
    diff_ids = _digests(_get(rf, "diff_ids", list, "config.rootfs", []), "config.rootfs.diff_ids")
    history = []
    for i, h in enumerate(_get(d, "history", list, "config", [])):
        p = f"config.history[{i}]"
        h = _obj(h, p)
        history.append(History(
            created=_get(h, "created", str, p, ""), created_by=_get(h, "created_by", str, p, ""),
            author=_get(h, "author", str, p, ""), comment=_get(h, "comment", str, p, ""),
            empty_layer=bool(_get(h, "empty_layer", bool, p, False))))
    return ImageConfig(
        architecture=arch, os=os_name, rootfs=RootFS(rf_type, diff_ids),
        config=parse_container_config(_obj(_or_empty(d, "config"), "config.config")),
        created=_get(d, "created", str, "config", ""), author=_get(d, "author", str, "config", ""),
        variant=_get(d, "variant", str, "config", ""),
        os_version=_get(d, "os.version", str, "config", ""),
        os_features=_strs(d, "os.features", "config") or (),
        history=tuple(history), comment=_get(d, "comment", str, "config", ""),
    )


# ---------------------------------------------------------------- identities and consistency


def validate_image(manifest: Manifest, config: ImageConfig) -> None:
    """A manifest and its config describe one image: one diff id per layer, and no more
    non-empty history entries than layers (fewer is allowed, as docker allows: some tools
    append layers without history)."""
    layers, diffs = len(manifest.layers), len(config.rootfs.diff_ids)
    if layers != diffs:
        raise InvalidArgument(f"image: the manifest has {layers} layers but the config lists "
                              f"{diffs} diff_ids")
    if config.history:
        non_empty = sum(1 for h in config.history if not h.empty_layer)
        if non_empty > layers:
            raise InvalidArgument(f"image: the config history has {non_empty} non-empty entries "
                                  f"but the image has only {layers} layers")


def chain_ids(diff_ids: Sequence[Digest]) -> tuple[Digest, ...]:
    """Chain id of each layer prefix (image-spec): ``chain(L0) = diff(L0)``,
    ``chain(Ln) = sha256(chain(Ln-1) + " " + diff(Ln))``. Snapshots are keyed by these."""
    out: list[Digest] = []
    for diff in diff_ids:
        out.append(diff if not out else Digest.of_bytes(f"{out[-1]} {diff}".encode("ascii")))
    return tuple(out)


def chain_id(diff_ids: Sequence[Digest]) -> Digest | None:
    """The chain id of the whole stack (None for an image without layers)."""
    ids = chain_ids(diff_ids)
    return ids[-1] if ids else None


def image_id(config_bytes: bytes) -> Digest:
    """The image id: the sha256 digest of the exact config bytes."""
    return Digest.of_bytes(bytes(config_bytes))
