"""The benchmark's images, made once with dockyard's own ImageService (no network, no peer).

    images.py prepare CACHE     make, if missing, under CACHE:
        load.tar        docker-archive of bench/load:200m, as `docker save`/`dockyard save` write it
                        (uncompressed layer tars): busybox + 5 data layers of 40 MiB
        load-gzip.tar   the same image with its layers gzip-compressed (docker-archive whose
                        manifest.json names gzip blobs, as a registry serves them; docker load and
                        podman load decompress): gzip does real work on load
        stamp           the generator version and the image id, checked before reuse

Content (deterministic: every byte comes from random.Random seeded with a fixed string, every
mtime is fixed, the layer writer is deterministic; the busybox base comes from the host's
busybox-static, so the image id is the same on every machine with the same busybox package).
Each data layer i (1..5) is exactly 40 MiB of file content under /data/layer<i>/:
  - 800 small files of 512..16383 bytes in 16 directories, "text" (seeded random bytes mapped onto
    a skewed alphabet of letters, spaces and newlines: gzip brings it to ~0.59 of its size);
  - the rest in 2 MiB files, alternately random bytes (incompressible, like already-compressed
    assets) and text. Overall the gzip layers are ~0.79 of the tars.
So the archive exercises both per-file costs (4000 small files) and bulk throughput.

The page-cache image (bench/pagecache:64m: busybox + one layer holding /big, 64 MiB of seeded
random bytes) and the disk benchmark's images are built by bench.py straight into the stores it
opens, with ``build`` and the entry makers here.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import shutil
import sys
import tarfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "src"))

from dockyard.archive.writer import Entry  # noqa: E402
from dockyard.image.bootstrap import _config, _write_layer, bootstrap_busybox  # noqa: E402
from dockyard.image.importer import build_image, rfc3339  # noqa: E402
from dockyard.image.service import ImageService, LayerBlob  # noqa: E402
from dockyard.oci.reference import parse_normalized  # noqa: E402

GENERATOR = "dockyard-bench-images v1"
MIB = 1 << 20
LAYERS = 5
LAYER_BYTES = 40 * MIB
SMALL_FILES = 800
BIG_FILE = 2 * MIB
MTIME = 1_700_000_000  # every entry's mtime and the configs' "created"
LOAD_REF = "bench/load:200m"
PAGECACHE_REF = "bench/pagecache:64m"
BIG_BYTES = 64 * MIB

# A skewed alphabet (roughly English letter frequencies, spaces, newlines): 256 entries, so that
# bytes.translate turns uniform random bytes into compressible "text" at C speed.
_ALPHABET = (b"eeeeeeeeeeeetttttttttaaaaaaaaooooooooiiiiiiinnnnnnnssssssshhhhhhrrrrrrddddllll"
             b"cccuuummwwffggyyppbbvk      \n")
_TEXT = bytes((_ALPHABET * 4)[:256])


def text_bytes(rng: random.Random, n: int) -> bytes:
    return rng.randbytes(n).translate(_TEXT)


def data_layer_entries(i: int) -> list[Entry]:
    """Layer i's entries: exactly LAYER_BYTES of file content (see the module docstring)."""
    rng = random.Random(f"dockyard-bench-images/layer/{i}")
    top = f"data/layer{i}"
    entries = [Entry("data", "dir", mode=0o755), Entry(top, "dir", mode=0o755)]
    for d in range(16):
        entries.append(Entry(f"{top}/d{d:02d}", "dir", mode=0o755))
    used = 0
    for j in range(SMALL_FILES):
        size = rng.randint(512, 16383)
        data = text_bytes(rng, size)
        entries.append(Entry(f"{top}/d{j % 16:02d}/f{j:04d}.txt", "file", mode=0o644, size=size,
                             data=data))
        used += size
    k = 0
    while used < LAYER_BYTES:
        size = min(BIG_FILE, LAYER_BYTES - used)
        if k % 2 == 0:
            data, name = rng.randbytes(size), f"{top}/blob{k:03d}.bin"
        else:
            data, name = text_bytes(rng, size), f"{top}/text{k:03d}.txt"
        entries.append(Entry(name, "file", mode=0o644, size=size, data=data))
        used += size
        k += 1
    return entries


def big_entries() -> list[Entry]:
    data = random.Random("dockyard-bench-images/big").randbytes(BIG_BYTES)
    return [Entry("big", "file", mode=0o644, size=len(data), data=data)]


def small_layer_entries(name: str, size: int = MIB) -> list[Entry]:
    data = random.Random(f"dockyard-bench-images/{name}").randbytes(size)
    return [Entry(name, "file", mode=0o644, size=size, data=data)]


def build(svc: ImageService, ref: str, layer_entries: list[list[Entry]], *,
          base: str = "busybox:latest", base_layers=None, history: str = "dockyard bench/images"):
    """``ref`` = the layers of ``base`` (or ``base_layers``, LayerRecords) + one gzip layer per
    entry list (written deterministically straight into the content store), recorded with
    add_image (which unpacks each new layer once)."""
    if base_layers is None:
        base_layers = svc.resolve(base).layers
    blobs = [LayerBlob(digest=la.blob_digest, size=la.blob_size, media_type=la.media_type)
             for la in base_layers]
    diff_ids = [la.diff_id for la in base_layers]
    with svc.lease() as lease:
        for entries in layer_entries:
            blob, diff_id = _write_layer(svc, entries, lease, mtime=MTIME)
            blobs.append(blob)
            diff_ids.append(diff_id)
        config = _config(rfc3339(MTIME), history, ("sh",))
        return build_image(svc, lease, blobs, diff_ids, config, [parse_normalized(ref)])


def bootstrap(svc: ImageService) -> None:
    bootstrap_busybox(svc)


def gzip_archive(svc: ImageService, ref: str, out: Path) -> None:
    """A docker-archive whose layers are the store's gzip blobs (manifest.json + config)."""
    image = svc.resolve(ref)
    config = svc.config_bytes(image)
    layers = []
    with open(out, "wb") as f, tarfile.open(fileobj=f, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        def add(name: str, size: int, src) -> None:
            ti = tarfile.TarInfo(name)
            ti.size, ti.mtime, ti.mode = size, 0, 0o644
            tar.addfile(ti, src)
        for la in image.layers:
            name = f"{la.blob_digest.hex}.tar.gz"
            with svc.content.open(la.blob_digest) as blob:
                add(name, la.blob_size, blob)
            layers.append(name)
        add(f"{image.id.hex}.json", len(config), io.BytesIO(config))
        manifest = json.dumps([{"Config": f"{image.id.hex}.json", "RepoTags": [ref],
                                "Layers": layers}]).encode()
        add("manifest.json", len(manifest), io.BytesIO(manifest))


def prepare(cache: Path) -> dict:
    """Make load.tar and load-gzip.tar under ``cache`` unless the stamp says they are there."""
    stamp = cache / "stamp"
    if stamp.exists():
        info = json.loads(stamp.read_text())
        if info.get("generator") == GENERATOR and all(
                (cache / n).is_file() and (cache / n).stat().st_size == info["sizes"][n]
                for n in ("load.tar", "load-gzip.tar")):
            return info
    shutil.rmtree(cache, ignore_errors=True)
    cache.mkdir(parents=True)
    store = cache / "gen-store"
    with ImageService.open(str(store)) as svc:
        bootstrap(svc)
        image = build(svc, LOAD_REF, [data_layer_entries(i) for i in range(1, LAYERS + 1)])
        with open(cache / "load.tar.tmp", "wb") as f:
            svc.save([LOAD_REF], f)
        gzip_archive(svc, LOAD_REF, cache / "load-gzip.tar.tmp")
        layers = [{"diff_id": str(la.diff_id), "gzip_size": la.blob_size} for la in image.layers]
    shutil.rmtree(store)
    for n in ("load.tar", "load-gzip.tar"):
        os.replace(cache / f"{n}.tmp", cache / n)
    info = {"generator": GENERATOR, "ref": LOAD_REF, "image_id": str(image.id),
            "layers": layers,
            "sizes": {n: (cache / n).stat().st_size for n in ("load.tar", "load-gzip.tar")},
            "sha256": {n: _sha256(cache / n) for n in ("load.tar", "load-gzip.tar")}}
    stamp.write_text(json.dumps(info, indent=1) + "\n")
    return info


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(MIB):
            h.update(chunk)
    return h.hexdigest()


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "prepare":
        sys.exit("usage: images.py prepare CACHE_DIR")
    print(json.dumps(prepare(Path(sys.argv[2])), indent=1))
