"""Image benchmarks (issue 3, acceptance items 5 and 2). Root only. See bench/images/README.

  bench.py load WORK --cache DIR [--runs N] [--warmup W] [--budget S] [--settle S] [--rest S]
      `dockyard -H unix://SOCK load -i` (private daemon) vs `docker load` (private dockerd) vs
      `podman load` (private storage) of the cached archives (images.py), alternated, the order
      rotated every round, plus ImageService.load in a child process (the engine alone);
      medians, the ratio dockyard / faster peer, rows for bench/RESULTS.md. Each engine's
      images are removed right after its load (rmi + prune); with --settle S they are removed
      after the round instead, then `sync` and S seconds of rest, so no load unpacks into
      inodes freed in the last minute (ext4 without a journal scans those: bench/RESULTS.md);
      the first round starts after a sync and --rest seconds (61), for the same reason
  bench.py pagecache WORK [--containers 20]
      20 containers of one image read the same 64 MiB file: growth of the page cache
  bench.py disk WORK
      two images on a common base: bytes on disk in content/blobs and snapshots, one vs two
  bench.py profile WORK --cache DIR
      where `dockyard load`'s time goes: CLI loads against a private daemon, -X importtime of
      the CLI, the phases of ImageService.load (from the file and from a spooled copy),
      cProfile of its main thread, floors on this machine

Everything lives under WORK (a temp dir the caller removes); engines, containers, mounts and
cgroups made here are removed before each command returns, also on failure.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
for p in (REPO / "src", REPO / "tests", REPO / "tests" / "interop", HERE):
    sys.path.insert(0, str(p))

import engine_drive as ed  # noqa: E402  (tests/interop: command runner, host cleanup helpers)
import images  # noqa: E402

DOCKYARD = Path(sys.executable).parent / "dockyard"
RUNTIME = Path(sys.executable).parent / "dockyard-runtime"
CGROUP_PARENT = "dockyard-bench-images"
MIB = 1 << 20
#: Host paths dockerd/containerd/podman create outside their given roots (as in
#: tests/interop/test_image_interop.py); removed afterwards if they were not there before.
HOST_PATHS = ("/var/lib/containers", "/var/lib/containers/cache", "/etc/cni/net.d/cni.lock",
              "/etc/containers/networks", "/run/containers", "/run/containers/networks",
              "/run/docker", "/run/docker/plugins", "/run/containerd", "/run/containerd/s",
              "/etc/docker/key.json", "/run/dockyard-runtime")


def today_machine() -> tuple[str, str]:
    return (datetime.date.today().isoformat(),
            f"{platform.release()}, {os.cpu_count()} CPUs")


def sync() -> None:
    os.sync()


def drop_caches() -> None:
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def meminfo(key: str) -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(key)


def du(*paths: Path) -> list[int]:
    """Bytes allocated on disk under each path (st_blocks), each inode counted once overall."""
    seen: set[tuple[int, int]] = set()
    totals = []
    for top in paths:
        total = 0
        for dirpath, dirnames, filenames in os.walk(top):
            for name in dirnames + filenames:
                st = os.lstat(os.path.join(dirpath, name))
                if (st.st_dev, st.st_ino) in seen:
                    continue
                seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
        totals.append(total)
    return totals


# ================================================================================================
# load


class Peer:
    name = ""

    def load(self, archive: Path) -> None:
        raise NotImplementedError

    def reset(self) -> None:
        """Remove what load made, so the next load does all the work again."""

    def daemon_cpu(self) -> float:
        """CPU seconds used so far by the peer's daemons (their work is not the client's)."""
        return 0.0

    def stop(self) -> list[str]:
        return []


class Dockyard(Peer):
    """A private ``dockyard daemon`` (its own root, exec root and socket under WORK); each load
    is ``dockyard -H unix://SOCK load -i ARCHIVE``: the CLI streams the file to the daemon, which
    spools it and loads it on its store thread, as a user's load does."""

    name = "dockyard"

    def __init__(self, work: Path) -> None:
        self.work = work / "dockyard"
        self.work.mkdir()
        (self.work / "daemon.json").write_text("{}")
        self.sock = self.work / "d.sock"
        self.root = self.work / "root"
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("DOCKYARD_", "DOCKER_"))}
        argv = [DOCKYARD, "daemon", "--root", self.root, "--exec-root", self.work / "exec",
                "-H", f"unix://{self.sock}", "--config", self.work / "daemon.json"]
        with open(self.work / "daemon.log", "wb") as f:
            self.proc = subprocess.Popen([str(a) for a in argv], stdin=subprocess.DEVNULL,
                                         stdout=f, stderr=subprocess.STDOUT, env=self.env,
                                         start_new_session=True)
        deadline = time.monotonic() + 30
        while self.cli("version", check=False).returncode != 0:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("dockyard daemon did not start:\n"
                                   + (self.work / "daemon.log").read_text(errors="replace"))
            time.sleep(0.1)
        self.version = subprocess.run(["git", "-C", str(REPO), "log", "-1", "--format=%h"],
                                      capture_output=True, text=True).stdout.strip()

    def cli(self, *args, check: bool = True, timeout: float = 300):
        return ed.run_cmd([DOCKYARD, "-H", f"unix://{self.sock}", *args], env=self.env,
                          check=check, timeout=timeout)

    def daemon_cpu(self) -> float:
        return proc_cpu(self.proc.pid)  # its threads (store thread, unpack workers) included

    def load(self, archive: Path) -> None:
        out = self.cli("load", "-i", archive, timeout=600)
        assert "Loaded image: " in out.stdout, out

    def reset(self) -> None:
        ids = self.cli("images", "-aq", "--no-trunc").stdout.split()
        if ids:
            self.cli("rmi", "-f", *sorted(set(ids)))
        self.cli("image", "prune", "-af")  # also collects the blobs no image needs
        left = {
            "images": self.cli("images", "-aq").stdout.split(),
            "blobs": [f for _, _, fs in os.walk(self.root / "content/blobs") for f in fs],
            "snapshots": [n for n in _listdir(self.root / "snapshots") if n.isdigit()],
            # a finished load keeps its emptied slots a while (image/staging.py): no file left
            "staging": [str(p) for p in (self.root / "tmp").glob("load-*/*/*")],
        }
        assert not any(left.values()), f"dockyard kept layers after rmi + prune: {left}"

    def stop(self) -> list[str]:
        problems: list[str] = []
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                problems.append("dockyard daemon ignored SIGTERM for 60s; killed")
                self.proc.kill()
                self.proc.wait()
        left = ed.processes_mentioning(str(self.work))
        if left:
            problems += [f"process {pid}: {cmd}" for pid, cmd in left.items()]
            ed.kill_pids(left)
        problems += [f"mount {m}" for m in ed.unmount_under(self.work)]
        return problems


class InProcess(Peer):
    """``ImageService.open`` on a fresh root + ``load`` of the archive file, timed inside a child
    process (no CLI, no HTTP, no spool; CPython start and imports not counted): the engine's
    own work, for comparison with the daemon path. Not a peer in the ratio. The roots are
    removed at the end, not after each load: deleting 4455 files in the middle of the run
    would leave the next loads (of any engine whose files land in those inode groups) scanning
    the freed inodes (bench/RESULTS.md, "ext4")."""

    name = "in-process"

    def __init__(self, work: Path) -> None:
        self.work = work / "in-process"
        self.work.mkdir()
        self.n = 0
        self.root: Path | None = None
        self.last = 0.0

    def load(self, archive: Path) -> None:
        self.n += 1
        self.root = self.work / f"root-{self.n}"
        code = ("import sys, time\n"
                "from dockyard.image.service import ImageService\n"
                "t = time.perf_counter()\n"
                "with ImageService.open(sys.argv[1]) as svc, open(sys.argv[2], 'rb') as f:\n"
                "    out = svc.load(f)\n"
                "print(time.perf_counter() - t, out)\n")
        out = ed.run_cmd([sys.executable, "-c", code, self.root, archive], timeout=600)
        assert "Loaded image: " in out.stdout, out
        self.last = float(out.stdout.split()[0])

    def reset(self) -> None:
        if self.root is not None:
            assert not ed.mounts_under(self.root), ed.mounts_under(self.root)
            self.root = None

    def stop(self) -> list[str]:
        problems = [f"mount {m}" for m in ed.unmount_under(self.work)]
        shutil.rmtree(self.work, ignore_errors=True)
        return problems


class Docker(Peer):
    name = "docker"

    def __init__(self, work: Path) -> None:
        import test_dockerd_runtime as drt  # private dockerd: start and teardown

        self.drt = drt
        root = work / "dockerd"
        root.mkdir()
        self.had_parent = bool(ed.cgroup_dirs("docker"))
        self.d = drt.Docker(root)
        self.proc = None
        self.proc = drt.start_dockerd(self.d)
        self.version = self.d("version", "--format", "{{.Server.Version}}").stdout.strip()
        self.data = root / "docker"

    def daemon_cpu(self) -> float:
        return sum(proc_cpu(pid) for pid in ed.processes_mentioning(str(self.d.root)))

    def load(self, archive: Path) -> None:
        out = self.d("load", "-i", archive, timeout=600)
        assert "Loaded image" in out.stdout, out

    def reset(self) -> None:
        ids = self.d("images", "--all", "--quiet", "--no-trunc").stdout.split()
        if ids:
            self.d("rmi", "--force", *sorted(set(ids)), timeout=300)
        self.d("image", "prune", "--all", "--force", timeout=300)
        left = {
            "images": self.d("images", "--all", "--quiet").stdout.split(),
            "layerdb": _listdir(self.data / "image/overlay2/layerdb/sha256"),
            "overlay2": [n for n in _listdir(self.data / "overlay2") if n != "l"],
        }
        assert not any(left.values()), f"docker kept layers after rmi + prune: {left}"

    def stop(self) -> list[str]:
        problems = self.drt.teardown(self.d, self.proc, self.had_parent)
        problems += [f"mount {m}" for m in ed.unmount_under(self.d.root)]
        return problems


class Podman(Peer):
    name = "podman"

    def __init__(self, work: Path) -> None:
        import test_podman_runtime as prt  # private podman config and teardown

        self.prt = prt
        root = work / "podman"
        root.mkdir()
        self.had_parent = bool(ed.cgroup_dirs("libpod_parent"))
        prt.write_config(root)
        self.p = prt.Podman(root)
        self.version = self.p("version", "--format", "{{.Client.Version}}").stdout.strip()
        self.graph = root / "graph"

    def load(self, archive: Path) -> None:
        out = self.p("load", "-i", archive, timeout=600)
        assert "Loaded image" in out.stdout, out

    def reset(self) -> None:
        self.p("rmi", "--all", "--force", timeout=300)
        self.p("image", "prune", "--all", "--force", timeout=300)
        layers_json = self.graph / "overlay-layers/layers.json"
        layers = json.loads(layers_json.read_text() or "[]") if layers_json.exists() else []
        left = {
            "images": self.p("images", "--all", "--quiet").stdout.split(),
            "layers.json": [la.get("id") for la in layers or []],
            "overlay": [n for n in _listdir(self.graph / "overlay") if n not in ("l", ".has-mount-program")],
        }
        assert not any(left.values()), f"podman kept layers after rmi + prune: {left}"

    def stop(self) -> list[str]:
        problems = self.prt.teardown(self.p, self.had_parent)
        problems += [f"mount {m}" for m in ed.unmount_under(self.p.root)]
        return problems


def proc_cpu(pid: int) -> float:
    """utime + stime of a process and its reaped children, seconds (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return 0.0
    fields = data[data.rindex(b")") + 2:].split()
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def children_cpu() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _listdir(path: Path) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except FileNotFoundError:
        return []


def load_bench(work: Path, cache: Path, runs: int, warmup: int, budget: float,
               which: list[str], settle: float = 0.0, rest: float = 0.0) -> list[str]:
    info = images.prepare(cache)
    archives = {"load.tar": "docker-archive, uncompressed layers (as docker/podman/dockyard "
                            "save write it)",
                "load-gzip.tar": "docker-archive, gzip layers"}
    archives = {k: v for k, v in archives.items() if k in which}
    print(f"image {info['ref']} {info['image_id']}: busybox + {len(info['layers']) - 1} x "
          f"40 MiB layers; "
          + ", ".join(f"{n} {info['sizes'][n] / 1e6:.0f} MB" for n in archives))
    host = ed.HostPaths(HOST_PATHS)
    peers: list[Peer] = []
    problems: list[str] = []
    results = []
    started = time.monotonic()
    try:
        peers.append(Dockyard(work))
        peers.append(InProcess(work))
        if shutil.which("dockerd") and shutil.which("containerd"):
            peers.append(Docker(work))
        else:
            print("docker: dockerd/containerd not installed; skipped")
        if shutil.which("podman"):
            peers.append(Podman(work))
        else:
            print("podman: not installed; skipped")
        versions = {p.name: getattr(p, "version", "") for p in peers}
        print("peers: " + ", ".join(f"{n} {v}".strip() for n, v in versions.items()))
        if rest:
            print(f"\nresting {rest:.0f} s after a sync: no inode freed in the last minute "
                  "(earlier runs' deletions; bench/RESULTS.md, \"ext4\")", flush=True)
            sync()
            time.sleep(rest)
        for archive_name, label in archives.items():
            archive = cache / archive_name
            samples: dict[str, list[float]] = {p.name: [] for p in peers}
            cpu: dict[str, list[float]] = {p.name: [] for p in peers}
            print(f"\n== {archive_name}: {label}; {warmup} warm-up + up to {runs} rounds")
            for i in range(warmup + runs):
                if i > warmup and time.monotonic() - started > budget:
                    print(f"   time budget ({budget:.0f} s) spent: stopping after "
                          f"{i - warmup} rounds")
                    break
                k = i % len(peers)
                order = peers[k:] + peers[:k]  # rotate: each peer goes first in turn
                line = []
                for peer in order:
                    sync()  # no dirty pages of the previous run left to write back
                    c0 = children_cpu() + peer.daemon_cpu()
                    t0 = time.perf_counter()
                    peer.load(archive)
                    elapsed = time.perf_counter() - t0
                    if isinstance(peer, InProcess):
                        elapsed = peer.last
                    used = children_cpu() + peer.daemon_cpu() - c0
                    if not settle:
                        peer.reset()
                    if i >= warmup:
                        samples[peer.name].append(elapsed)
                        cpu[peer.name].append(used)
                    line.append(f"{peer.name} {elapsed:6.2f}s (cpu {used:5.2f}s)")
                print(f"   {'warm-up' if i < warmup else f'round {i - warmup + 1}'}: "
                      + "  ".join(line) + f"   loadavg {os.getloadavg()[0]:.2f}", flush=True)
                if settle:
                    for peer in order:
                        peer.reset()
                    sync()
                    time.sleep(settle)
            results.append((archive_name, samples, cpu))
    finally:
        for peer in reversed(peers):
            try:
                problems += peer.stop()
            except Exception as e:  # noqa: BLE001 - stop the others anyway
                problems.append(f"{peer.name}: stop failed: {e}")
        host.remove_created(trees=["/var/lib/containers"])
    if problems:
        print("cleanup found and removed:\n  " + "\n  ".join(problems))
    date, machine = today_machine()
    rows = ["| date | machine | benchmark | runs | dockyard s | docker s | podman s | "
            "dockyard / faster peer | CPU s: dockyard, docker, podman | in process s |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    print()
    for archive_name, samples, cpu in results:
        med = {n: statistics.median(s) for n, s in samples.items() if s}
        n_runs = min(len(s) for s in samples.values())
        peers_med = {n: m for n, m in med.items() if n not in ("dockyard", "in-process")}
        faster = min(peers_med, key=peers_med.get) if peers_med else None
        ratio = med["dockyard"] / peers_med[faster] if faster else float("nan")
        spread = {n: (min(s), max(s)) for n, s in samples.items() if s}
        print(f"{archive_name}: medians of {n_runs}: "
              + ", ".join(f"{n} {m:.2f} s ({spread[n][0]:.2f}-{spread[n][1]:.2f})"
                          for n, m in med.items())
              + (f"; dockyard / {faster} = {ratio:.2f} (target <= 0.67: "
                 f"{'met' if ratio <= 0.67 else 'NOT met'})" if faster else ""))
        cpu_med = {n: statistics.median(s) for n, s in cpu.items() if s}
        print(f"{'':{len(archive_name)}s}  CPU seconds (medians; dockyard: client + daemon; "
              f"docker: client + dockerd + containerd): " + ", ".join(f"{n} {m:.2f}" for n, m in cpu_med.items()))
        rows.append(f"| {date} | {machine} | load {archive_name}: "
                    f"{info['sizes'][archive_name] / 1e6:.0f} MB, busybox + 5 x 40 MiB layers"
                    f"{f' (settled {settle:.0f} s)' if settle else ''} | "
                    f"{n_runs} | {med['dockyard']:.2f} | {_fmt(med.get('docker'))} | "
                    f"{_fmt(med.get('podman'))} | {ratio:.2f} ({faster}) | "
                    + ", ".join(_fmt(cpu_med.get(n)) for n in ("dockyard", "docker", "podman"))
                    + f" | {_fmt(med.get('in-process'))} |")
    return rows


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


# ================================================================================================
# page cache: 20 containers read one 64 MiB file


def _runtime(root: Path, *args, check: bool = True, timeout: float = 60):
    return ed.run_cmd([RUNTIME, "--root", root, *args], timeout=timeout, check=check)


def memcg_cache(stat: Path) -> int:
    """Page cache charged to a v1 memory cgroup and its children (bytes)."""
    for line in stat.read_text().splitlines():
        if line.startswith("total_cache "):
            return int(line.split()[1])
    raise KeyError(f"total_cache in {stat}")


def resident(path: str) -> int:
    """Bytes of ``path`` in the page cache (util-linux fincore: mincore(2) over the file)."""
    out = ed.run_cmd(["fincore", "--bytes", "--noheadings", "--output", "RES", path])
    return int(out.stdout.split()[0])


def _lower_file(svc, ref: str, name: str) -> str:
    """The host path of ``name`` in the top snapshot of ``ref`` (a lower dir of every container)."""
    image = svc.resolve(ref)
    path = os.path.join(svc.store.snapshot_fs(image.layers[-1].snapshot_id), name)
    assert os.path.isfile(path), path
    return path


def _remove_cgroup_parent() -> None:
    ed.remove_empty_cgroups([CGROUP_PARENT])


def pagecache_bench(work: Path, containers: int) -> list[str]:
    from dockyard.image.bundle import create_bundle, remove_bundle
    from dockyard.image.service import ImageService
    from dockyard.oci.spec_builder import RunOptions

    store, state, bundles_dir = work / "pc-store", work / "pc-runtime", work / "pc-bundles"
    bundles_dir.mkdir()
    # sh as pid 1 waits; on SIGUSR1 it reads /big once and leaves a marker in its upper dir.
    script = ("trap 'cat /big > /dev/null && touch /tmp/read-done' USR1; "
              "while :; do sleep 1; done")
    bundles = []
    started: list[str] = []
    problems: list[str] = []
    svc = ImageService.open(str(store))
    try:
        images.bootstrap(svc)
        images.build(svc, images.PAGECACHE_REF, [images.big_entries()])
        for i in range(containers):
            b = create_bundle(svc, images.PAGECACHE_REF, str(bundles_dir / f"c{i:02d}"),
                              container_id=f"bench-pc-{i:02d}", args=["sh", "-c", script],
                              opts=RunOptions(cgroup_parent=f"/{CGROUP_PARENT}"))
            bundles.append(b)
        for b in bundles:
            ed.run_cmd([RUNTIME, "--root", state, "run", "--detach", "--bundle", b.path, b.id],
                       timeout=60)
            started.append(b.id)
        pids = [json.loads(_runtime(state, "state", b.id).stdout)["pid"] for b in bundles]
        time.sleep(1.5)  # every shell is in its loop, its trap set

        def read(subset) -> float:
            t0 = time.monotonic()
            for b, pid in subset:
                os.kill(pid, signal.SIGUSR1)  # from here: no runtime process, no file reads
            pending = {b.id: Path(b.upper) / "tmp/read-done" for b, _ in subset}
            while pending:
                pending = {k: v for k, v in pending.items() if not v.exists()}
                if time.monotonic() - t0 > 120:
                    raise AssertionError(f"no read-done after 120 s: {sorted(pending)}")
                time.sleep(0.05)
            return time.monotonic() - t0

        pairs = list(zip(bundles, pids))
        memcg = Path("/sys/fs/cgroup/memory") / CGROUP_PARENT / "memory.stat"
        lower = _lower_file(svc, images.PAGECACHE_REF, "big")
        drop_caches()
        time.sleep(1)
        before = (memcg_cache(memcg), resident(lower), meminfo("Cached"))
        t_one = read(pairs[:1])
        after_one = (memcg_cache(memcg), resident(lower), meminfo("Cached"))
        t_rest = read(pairs[1:])
        after_all = (memcg_cache(memcg), resident(lower), meminfo("Cached"))
        copies = [b.upper for b in bundles if os.path.lexists(os.path.join(b.upper, "big"))]
        assert not copies, f"/big was copied up into {copies}"
        big = images.BIG_BYTES / MIB
        one = [(a - b) / MIB for a, b in zip(after_one, before)]
        total = [(a - b) / MIB for a, b in zip(after_all, before)]
        print(f"read /big: 1 container {t_one:.1f} s, the other {containers - 1} {t_rest:.1f} s")
        print(f"{'':44s}{'after 1':>10s}{'after ' + str(containers):>10s}   (growth, MiB)")
        for k, label in enumerate(("memory cgroup of the containers: total_cache",
                                   f"resident pages of /big in the snapshot",
                                   "/proc/meminfo Cached (whole machine)")):
            print(f"{label:44s}{one[k]:10.1f}{total[k]:10.1f}"
                  f"   (before {before[k] / MIB:.1f})")
        print(f"no container has a copy of /big in its upper dir; without sharing the "
              f"{containers} reads would cache ~{containers * big:.0f} MiB")
        ratio = total[0] / big
        print(f"growth / {big:.0f} MiB (memory cgroup) = {ratio:.2f} (target <= 1.2: "
              f"{'met' if ratio <= 1.2 else 'NOT met'})")
    finally:
        for cid in started:
            _runtime(state, "delete", "--force", cid, check=False)
        for b in bundles:
            try:
                remove_bundle(svc, b)
            except Exception as e:  # noqa: BLE001
                problems.append(f"bundle {b.path}: {e}")
        svc.close()
        _remove_cgroup_parent()
        left = ed.processes_mentioning(str(work))
        problems += [f"process {pid}: {cmd}" for pid, cmd in left.items()]
        ed.kill_pids(left)
        problems += [f"mount {m}" for m in ed.unmount_under(work)]
        problems += [f"cgroup {c}" for c in ed.cgroup_dirs(CGROUP_PARENT)]
    assert not problems, "left behind:\n" + "\n".join(problems)
    date, machine = today_machine()
    return ["| date | machine | benchmark | containers | growth MiB: memory cgroup (containers) | "
            "/big resident | Cached (machine) | growth / 64 MiB |",
            "|---|---|---|---|---|---|---|---|"] + [
        f"| {date} | {machine} | page cache: containers read the same /big (64 MiB) | {n} | "
        f"{g[0]:.1f} | {g[1]:.1f} | {g[2]:.1f} | {g[0] / big:.2f} |"
        for n, g in ((1, one), (containers, total))]


# ================================================================================================
# on disk: two images, one base


def disk_bench(work: Path) -> list[str]:
    from dockyard.image.service import ImageService

    store = work / "disk-store"
    rows = []
    with ImageService.open(str(store)) as svc:
        images.bootstrap(svc)
        blobs, snaps = store / "content/blobs", store / "snapshots"

        def measure(label: str) -> tuple[int, int, int]:
            b, s = du(blobs, snaps)
            n = len([x for x in os.listdir(snaps) if x.isdigit()])
            print(f"{label:52s} blobs {b / MIB:7.1f} MiB   snapshots {s / MIB:7.1f} MiB "
                  f"({n} snapshot dirs)")
            return b, s, n

        # base = busybox + /big (64 MiB); A = base + /a (1 MiB); B = base + /b (1 MiB)
        image_a = images.build(svc, "bench/share-a:1", [images.big_entries(),
                                                       images.small_layer_entries("a")])
        one = measure("busybox + A (busybox, /big 64 MiB, /a 1 MiB)")
        base_layers = image_a.layers[:-1]
        images.build(svc, "bench/share-b:1", [images.small_layer_entries("b")],
                     base_layers=base_layers)
        two = measure("busybox + A + B (B = busybox, /big, /b 1 MiB)")
        b_alone = sum(la.blob_size for la in svc.resolve("bench/share-b:1").layers)
        print(f"B's own layers: {b_alone / MIB:.1f} MiB compressed; adding B grew blobs by "
              f"{(two[0] - one[0]) / MIB:.2f} MiB and snapshots by {(two[1] - one[1]) / MIB:.2f} "
              f"MiB ({two[2] - one[2]} new snapshot dir)")
        date, machine = today_machine()
        rows = ["| date | machine | store holds | content/blobs MiB | snapshots MiB | snapshot dirs |",
                "|---|---|---|---|---|---|",
                f"| {date} | {machine} | image A (busybox + 64 MiB + 1 MiB layer) | "
                f"{one[0] / MIB:.1f} | {one[1] / MIB:.1f} | {one[2]} |",
                f"| {date} | {machine} | A and B (B: same busybox + 64 MiB base, own 1 MiB layer) | "
                f"{two[0] / MIB:.1f} | {two[1] / MIB:.1f} | {two[2]} |"]
    assert not ed.mounts_under(store)
    return rows


# ================================================================================================
# profile of dockyard load


def profile(work: Path, cache: Path, archive_name: str) -> None:
    """Where `dockyard load` spends its time: the CLI's imports, the phases of
    ImageService.load timed without a profiler, cProfile's top functions, and floors for the
    same bytes on this machine (sha256, a plain copy, GNU tar)."""
    import cProfile
    import hashlib
    import pstats

    images.prepare(cache)
    archive = cache / archive_name
    size = archive.stat().st_size
    print(f"--- {archive_name} ({size / 1e6:.0f} MB)")

    # 1. the whole CLI against a private daemon, then the CLI's imports
    dy = Dockyard(work)
    try:
        cli_runs = []
        for _ in range(3):
            sync()
            t0 = time.perf_counter()
            dy.load(archive)
            cli_runs.append(time.perf_counter() - t0)
            dy.reset()
        out = subprocess.run([sys.executable, "-X", "importtime", DOCKYARD, "-H",
                              f"unix://{dy.sock}", "load", "-i", archive],
                             capture_output=True, text=True, check=True, env=dy.env)
        dy.reset()
    finally:
        problems = dy.stop()
    assert not problems, problems
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    bare = time.perf_counter() - t0
    top = []
    for line in out.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            _, cum, raw = line.removeprefix("import time:").split("|", 2)
            if cum.strip().isdigit() and raw.startswith(" ") and not raw.startswith("  "):
                top.append((raw.strip(), int(cum)))
    top.sort(key=lambda kv: -kv[1])
    print(f"CLI `dockyard -H unix://... load -i` (private daemon): "
          + ", ".join(f"{t:.2f}" for t in cli_runs) + f" s; python -c pass {bare * 1000:.0f} ms; "
          f"imports of the CLI {sum(us for _, us in top) / 1000:.0f} ms (top: "
          + ", ".join(f"{n} {us / 1000:.0f} ms" for n, us in top[:4]) + ")")

    # 2. the phases, timed in this process without a profiler (the archive file read by offset;
    #    layers extracted on worker threads while it is read)
    import tempfile

    from dockyard.image import load as load_mod
    from dockyard.image import staging as staging_mod
    from dockyard.image.service import ImageService

    phases: dict[str, float] = {}

    def timed(name, fn):
        def wrapper(*a, **k):
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                phases[name] = phases.get(name, 0.0) + time.perf_counter() - t
        return wrapper

    names = {
        "read": "1. read the archive: blobs into the content store (copy + sha256 + fsync); "
                "layers staged meanwhile",
        "unpack": "2. wait for the staged layers, adopt them into snapshots, one syncfs",
        "record": "3. record the image (one SQLite transaction)",
        "stage": "   (worker threads: extracting the staged layers, summed over both)"}
    saved = (load_mod.Archive.read, load_mod._unpack_staged, ImageService.record,
             staging_mod.Stager._extract)
    load_mod.Archive.read = timed(names["read"], saved[0])
    load_mod._unpack_staged = timed(names["unpack"], saved[1])
    ImageService.record = timed(names["record"], saved[2])
    staging_mod.Stager._extract = timed(names["stage"], saved[3])
    try:
        for how in ("the archive file", "a spooled copy (as the daemon)"):
            phases.clear()
            root = work / f"phase-store-{len(how)}"
            sync()
            t0 = time.perf_counter()
            if how == "the archive file":
                f = open(archive, "rb")
            else:
                os.makedirs(root / "tmp", exist_ok=True)
                f = tempfile.TemporaryFile(dir=root / "tmp")
                with open(archive, "rb") as src:
                    shutil.copyfileobj(src, f, MIB)
                f.seek(0)
                phases["0. spool a copy of the upload (as the daemon does)"] = \
                    time.perf_counter() - t0
            try:
                with ImageService.open(str(root)) as svc:
                    svc.load(f)
            finally:
                f.close()
            total = time.perf_counter() - t0
            print(f"  in process, from {how}:")
            for name, t in sorted(phases.items()):
                print(f"    {name:92s} {t:6.2f} s")
            print(f"    {'total (ImageService.open + load)':92s} {total:6.2f} s")
    finally:
        (load_mod.Archive.read, load_mod._unpack_staged, ImageService.record,
         staging_mod.Stager._extract) = saved

    # 3. cProfile
    prof = cProfile.Profile()
    sync()
    prof.enable()
    with ImageService.open(str(work / "prof-store")) as svc, open(archive, "rb") as f:
        svc.load(f)
    prof.disable()
    stats = pstats.Stats(prof, stream=sys.stdout)
    print("cProfile of the main thread (the worker threads' extraction is not in it), by own "
          "time (profiler overhead inflates Python-level calls):")
    stats.sort_stats("tottime").print_stats(15)

    # 4. floors for the same bytes
    data_mb = size / 1e6
    h = hashlib.sha256()
    t0 = time.perf_counter()
    with open(archive, "rb") as f:
        while chunk := f.read(MIB):
            h.update(chunk)
    t_hash = time.perf_counter() - t0
    sync()
    t0 = time.perf_counter()
    with open(archive, "rb") as f, open(work / "copy", "wb") as g:
        shutil.copyfileobj(f, g, MIB)
        g.flush()
        os.fsync(g.fileno())
    t_copy = time.perf_counter() - t0
    os.unlink(work / "copy")
    (work / "tar-x").mkdir()
    sync()
    t0 = time.perf_counter()
    subprocess.run(["tar", "-xf", archive, "-C", work / "tar-x"], check=True)
    layers = [work / "tar-x" / n for n in json.loads(
        (work / "tar-x/manifest.json").read_text())[0]["Layers"]]
    t_outer = time.perf_counter() - t0
    (work / "tar-x/rootfs").mkdir()
    t0 = time.perf_counter()
    for la in layers:
        subprocess.run(["tar", "-xf", la, "-C", work / "tar-x/rootfs"], check=True)
    t_inner = time.perf_counter() - t0
    entries = sum(len(subprocess.run(["tar", "-tf", la], capture_output=True, text=True,
                                     check=True).stdout.splitlines()) for la in layers)
    shutil.rmtree(work / "tar-x")
    t_create = {n: _create_files(work / f"create-{n}", entries, n) for n in (1, 2)}
    print(f"floors for {data_mb:.0f} MB on this machine: sha256 in Python {t_hash:.2f} s "
          f"({data_mb / t_hash:.0f} MB/s); read + write + fsync a copy {t_copy:.2f} s; GNU tar: "
          f"unpack the archive {t_outer:.2f} s, then its layers {t_inner:.2f} s; creating "
          f"{entries} empty files (the layers' entries) on this filesystem: "
          f"{t_create[1]:.2f} s on 1 thread, {t_create[2]:.2f} s on 2 "
          f"({t_create[1] / entries * 1e6:.0f} us each: the kernel's inode creation)")


def _create_files(top: Path, count: int, threads: int) -> float:
    """Seconds to create ``count`` empty files with O_CREAT|O_EXCL, spread over ``threads``
    threads, each in its own directory (as the layers are unpacked)."""
    import threading

    def work(d: Path, n: int) -> None:
        fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
        try:
            for i in range(n):
                os.close(os.open(f"f{i}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644, dir_fd=fd))
        finally:
            os.close(fd)

    dirs = [top / str(k) for k in range(threads)]
    for d in dirs:
        d.mkdir(parents=True)
    sync()
    t0 = time.perf_counter()
    ts = [threading.Thread(target=work, args=(d, count // threads)) for d in dirs]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    elapsed = time.perf_counter() - t0
    shutil.rmtree(top)
    return elapsed


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    lo = sub.add_parser("load")
    lo.add_argument("work", type=Path)
    lo.add_argument("--cache", type=Path, required=True)
    lo.add_argument("--runs", type=int, default=5)
    lo.add_argument("--warmup", type=int, default=1)
    lo.add_argument("--budget", type=float, default=1200.0,
                    help="seconds: no new round starts after this (default 1200)")
    lo.add_argument("--archives", default="load.tar,load-gzip.tar")
    lo.add_argument("--rest", type=float, default=61.0,
                    help="seconds of rest after a sync before the first round (default 61)")
    lo.add_argument("--settle", type=float, default=0.0,
                    help="seconds of rest after each round's removals (default 0: each engine "
                         "removes its image right after its load)")
    pc = sub.add_parser("pagecache")
    pc.add_argument("work", type=Path)
    pc.add_argument("--containers", type=int, default=20)
    di = sub.add_parser("disk")
    di.add_argument("work", type=Path)
    pr = sub.add_parser("profile")
    pr.add_argument("work", type=Path)
    pr.add_argument("--cache", type=Path, required=True)
    pr.add_argument("--archive", default="load.tar")
    a = p.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench: needs root")
    a.work.mkdir(parents=True, exist_ok=True)
    if a.cmd == "load":
        rows = load_bench(a.work, a.cache, a.runs, a.warmup, a.budget, a.archives.split(","),
                          a.settle, a.rest)
    elif a.cmd == "pagecache":
        rows = pagecache_bench(a.work, a.containers)
    elif a.cmd == "disk":
        rows = disk_bench(a.work)
    else:
        profile(a.work, a.cache, a.archive)
        return
    print("\n".join(["", *rows]))


if __name__ == "__main__":
    main()
