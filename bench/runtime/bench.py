"""runc vs dockyard-runtime on one busybox bundle, the two commands alternated.

  bench.py prepare DIR            DIR/rootfs (busybox) and DIR/bundle/config.json running `true`
  bench.py compare DIR [--runs N] time both runtimes in turn, N runs each per cycle; print
                                  medians, the ratio dockyard/runc and rows for bench/RESULTS.md

Cycles: `run --bundle B id`; and `create` (stdio to /dev/null) -> `start` -> poll `state` until
stopped -> `delete`. Each runtime keeps its state in DIR/state-<name>.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
from helpers import build_busybox_rootfs, make_bundle  # noqa: E402

CGROUP_PARENT = "dockyard-bench"


def prepare(directory: Path) -> None:
    rootfs = build_busybox_rootfs(directory / "rootfs")
    make_bundle(directory / "bundle", rootfs, ["true"], hostname="bench",
                linux={"cgroupsPath": f"/{CGROUP_PARENT}/run"})


class Runtime:
    def __init__(self, name: str, binary: str, directory: Path):
        self.name, self.binary = name, binary
        self.bundle = str(directory / "bundle")
        self.root = str(directory / f"state-{name}")
        self.err = tempfile.TemporaryFile()

    def call(self, *args: str, capture: bool = False) -> str:
        # stderr goes to a file, not a pipe: after `create` the container holds it open.
        self.err.seek(0)
        self.err.truncate()
        proc = subprocess.run([self.binary, "--root", self.root, *args], stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
                              stderr=self.err, text=True)
        if proc.returncode != 0:
            self.err.seek(0)
            sys.exit(f"bench: {self.name} {' '.join(args)} exited {proc.returncode}: "
                     f"{self.err.read().decode(errors='replace').strip()}")
        return proc.stdout

    def run_cycle(self, cid: str) -> None:
        self.call("run", "--bundle", self.bundle, cid)

    def lifecycle(self, cid: str) -> None:
        self.call("create", "--bundle", self.bundle, cid)
        self.call("start", cid)
        deadline = time.monotonic() + 30
        while json.loads(self.call("state", cid, capture=True))["status"] != "stopped":
            if time.monotonic() > deadline:
                sys.exit(f"bench: {self.name}: {cid} still not stopped after 30 s")
            time.sleep(0.001)
        self.call("delete", cid)


def timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def compare(directory: Path, runc: str, dockyard: str, runs: int, warmup: int) -> list[str]:
    runtimes = [Runtime("runc", runc, directory), Runtime("dockyard", dockyard, directory)]
    rows = []
    for cycle in ("run_cycle", "lifecycle"):
        samples: dict[str, list[float]] = {rt.name: [] for rt in runtimes}
        for i in range(warmup + runs):
            # Alternate, and swap the order every round so neither runtime always goes first.
            for rt in (runtimes if i % 2 == 0 else runtimes[::-1]):
                elapsed = timed(getattr(rt, cycle), f"bench-{rt.name}-{i}")
                if i >= warmup:
                    samples[rt.name].append(elapsed)
        med = {name: statistics.median(s) * 1000 for name, s in samples.items()}
        label = "run true" if cycle == "run_cycle" else "create, start, state until stopped, delete"
        print(f"{label:45s} runc {med['runc']:8.1f} ms   dockyard {med['dockyard']:8.1f} ms   "
              f"ratio {med['dockyard'] / med['runc']:.2f}  (median of {runs})")
        rows.append((label, med["runc"], med["dockyard"]))
    today = datetime.date.today().isoformat()
    machine = f"{platform.release()}, {os.cpu_count()} CPUs"
    return ["| date | machine | benchmark | runs | runc ms | dockyard-runtime ms | dockyard/runc |",
            "|---|---|---|---|---|---|---|"] + [
        f"| {today} | {machine} | runtime: {label} | {runs} | {r:.1f} | {d:.1f} | {d / r:.2f} |"
        for label, r, d in rows]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("prepare").add_argument("dir", type=Path)
    c = sub.add_parser("compare")
    c.add_argument("dir", type=Path)
    c.add_argument("--runs", type=int, default=30)
    c.add_argument("--warmup", type=int, default=2)
    c.add_argument("--runc", default="/usr/sbin/runc")
    c.add_argument("--dockyard", default=str(Path(sys.executable).parent / "dockyard-runtime"))
    a = p.parse_args()
    if a.cmd == "prepare":
        prepare(a.dir)
    else:
        print("\n".join(["", *compare(a.dir, a.runc, a.dockyard, a.runs, a.warmup)]))


if __name__ == "__main__":
    main()
