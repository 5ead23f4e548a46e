"""Images: the service (``service.ImageService``) and what it is made of.

    service   ImageService: open, resolve, add_image, tag, remove, list, inspect, history, mounts
    unpack    layers into snapshots keyed by chain id; removing snapshots nothing uses
    load      docker-archive and OCI layout tars in (plain or gzip, streamed)
    save      docker-archive and OCI layout tars out (streamed)
    inspect   docker's JSON shapes (inspect, history, the image list)

Other modules here (bootstrap, importer, diff, maintenance, bundle) build on the service.
Importing this package stays light: the service is imported where it is used.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dockyard.image.service import HistoryEntry, ImageService, ImageSummary, LayerBlob

__all__ = ["HistoryEntry", "ImageService", "ImageSummary", "LayerBlob"]


def __getattr__(name: str) -> object:
    if name in __all__:
        from dockyard.image import service

        return getattr(service, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
