"""The typed records the metadata repositories return. No raw ``sqlite3.Row`` leaves ``metadata/``."""

from __future__ import annotations

from dockyard.record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dockyard.oci.digest import Digest

SNAPSHOT_INCOMPLETE = "incomplete"
SNAPSHOT_COMPLETE = "complete"
LEASE_KINDS = ("blob", "snapshot", "ingest")


class SnapshotRecord(Record):
    """One unpacked layer chain; its directory is ``Store.snapshot(id)``."""

    id: int
    chain_id: str
    parent_id: int | None
    diff_id: str
    state: str  # "incomplete" | "complete"
    size: int
    created: float


class LayerRecord(Record):
    """One layer of an image, bottom first; ``snapshot_id`` is None while it is not unpacked."""

    diff_id: Digest
    blob_digest: Digest
    blob_size: int
    media_type: str
    snapshot_id: int | None = None


class ImageRecord(Record):
    """An image, identified by its config digest (docker's image id).

    ``created`` is the config's RFC 3339 text, verbatim ("" when it has none); ``size`` the
    unpacked size of all layers; ``added_at`` the unix time the image entered this store (set by
    ``ImageRepo.add`` when left 0).
    """

    id: Digest
    manifest_digest: Digest
    manifest_media_type: str
    config_size: int
    created: str
    architecture: str
    os: str
    size: int
    layers: tuple[LayerRecord, ...] = ()
    added_at: float = 0.0


class ImageRefs(Record):
    """What keeps an image from being deleted: its tags and the containers made from it."""

    tags: tuple[str, ...]
    containers: tuple[str, ...]


class TagRecord(Record):
    name: str  # the full normalized reference, e.g. docker.io/library/busybox:latest
    image_id: Digest


class LeaseRecord(Record):
    """Protects content in flight (a pull, a build step) from GC until deleted or expired."""

    id: str
    created: float
    expires_at: float | None  # None: until deleted
    labels: tuple[tuple[str, str], ...] = ()

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and self.expires_at <= now


class LeaseResource(Record):
    lease_id: str
    kind: str  # "blob" (a digest) | "snapshot" (a chain id) | "ingest" (an ingest ref)
    key: str


class ContainerRecord(Record):
    """Placeholder until the engine issue: enough for rmi to refuse an image a container uses.

    ``state`` is JSON text owned by the engine; this layer does not interpret it.
    """

    id: str
    name: str
    image_id: Digest
    created: float
    state: str = "{}"


class VolumeRecord(Record):
    """A volume row. ``labels`` and ``options`` are the driver's key/value pairs, sorted by key;
    ``anonymous`` volumes (random 64-hex names) are the ones ``rm -v``, ``--rm`` and a default
    ``volume prune`` remove. ``created`` is unix time."""

    name: str
    driver: str = "local"
    created: float = 0.0
    labels: tuple[tuple[str, str], ...] = ()
    options: tuple[tuple[str, str], ...] = ()
    anonymous: bool = False


class NetworkRecord(Record):
    """A network row. ``subnet``/``gateway``/``ip_range`` are IPv4 text ("" for the host and null
    drivers; ``ip_range`` "" when the whole subnet is handed out); ``bridge`` the bridge
    interface's name; ``labels``/``options`` sorted key/value pairs; ``created`` unix time."""

    id: str
    name: str
    driver: str = "bridge"
    created: float = 0.0
    subnet: str = ""
    gateway: str = ""
    ip_range: str = ""
    internal: bool = False
    bridge: str = ""
    labels: tuple[tuple[str, str], ...] = ()
    options: tuple[tuple[str, str], ...] = ()


class EndpointRecord(Record):
    """A container's attachment to a network: its address ("" on host/null networks), MAC and
    the aliases other containers resolve it by."""

    network_id: str
    container_id: str
    ip: str = ""
    mac: str = ""
    aliases: tuple[str, ...] = ()
