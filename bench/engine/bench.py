"""Engine benchmarks (issue 4, acceptance item 4): dockyard's daemon + CLI side by side with a
private dockerd and a private podman on this machine.

    bench.py all WORK [--runs N] [--cycles N] [--containers N] [--ps-runs N]

Three engines, each on its own root under WORK, all running the same busybox image (dockyard's
bootstrapped one, `dockyard save` into `docker load` and `podman load`), every container with
`--network none`:

  run     `run --rm --network none busybox true`, alternating, medians
  cycle   N x create + start + stop -t 5 + rm of `sh -c 'trap exit TERM; sleep 1000 & wait'`
  memory  M detached `sleep` containers: monitors' PSS/RSS + daemon growth, per container
  ps      `ps` with those M containers running (alternating medians, and hyperfine)

Clients: `dockyard` (the project's CLI), `docker>dockyard` (the docker CLI on dockyard's socket:
separates the CLI's start cost from the engine's), `docker` (private dockerd 20.10, runc),
`podman` (private storage, podman's default runtime). Everything started here is removed in
`Engines.close` (also on failure); run.sh is the last resort for mounts in WORK.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
for p in (REPO / "src", REPO / "tests", REPO / "tests" / "interop", HERE):
    sys.path.insert(0, str(p))

import engine_drive as ed  # noqa: E402  (tests/interop: command runner, host cleanup helpers)

DOCKYARD = Path(sys.executable).parent / "dockyard"
DOCKER = shutil.which("docker") or "/usr/bin/docker"
PODMAN = shutil.which("podman") or "/usr/bin/podman"
IMAGE = "busybox:latest"
STOP_CMD = ["sh", "-c", "trap exit TERM; sleep 1000 & wait"]
#: Host paths dockerd/containerd/podman create outside their given roots (as bench/images);
#: removed afterwards if they were not there before.
HOST_PATHS = ("/var/lib/containers", "/var/lib/containers/cache", "/etc/cni/net.d/cni.lock",
              "/etc/containers/networks", "/run/containers", "/run/containers/networks",
              "/run/docker", "/run/docker/plugins", "/run/containerd", "/run/containerd/s",
              "/etc/docker/key.json", "/run/dockyard-runtime", "/run/libpod")
MIB = 1 << 20


def log(msg: str) -> None:
    print(msg, flush=True)


# ================================================================================================
# processes


def timed(argv: list[str], env: dict[str, str], *, check: bool = True) -> tuple[float, str]:
    """Wall seconds of one command (fork to reap) and its stdout. Output goes to temporary files:
    a monitor that inherits a pipe would hold it open past the command's exit."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env)
        code = p.wait()  # blocking waitpid: wait(timeout) polls with sleeps of up to 50 ms
        dt = time.perf_counter() - t0
        out.seek(0)
        err.seek(0)
        text = out.read().decode(errors="replace")
        if check and code != 0:
            msg = err.read().decode(errors="replace")
            raise RuntimeError(f"{' '.join(argv)} exited {code}: {msg}")
    return dt, text


def mem_kib(pid: int) -> tuple[int, int]:
    """(Rss, Pss) of a process in KiB from /proc/PID/smaps_rollup; (0, 0) if it is gone."""
    rss = pss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Rss:"):
                    rss = int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss = int(line.split()[1])
    except OSError:
        pass
    return rss, pss


def exe_name(pid: int) -> str:
    try:
        return os.path.basename(os.readlink(f"/proc/{pid}/exe"))
    except OSError:
        return ""


def api_get(sock: Path, path: str) -> bytes:
    """One GET over a unix socket from this process (no client start): the engine's own time."""
    import http.client
    import socket

    conn = http.client.HTTPConnection("localhost", timeout=60)
    conn.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.sock.connect(str(sock))
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        body = r.read()
        assert r.status == 200, (path, r.status, body[:200])
        return body
    finally:
        conn.close()


# ================================================================================================
# the engines


class Engine:
    """One client of one engine: argv prefix and environment."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        self.name = name
        self.argv = argv
        self.env = env

    def cmd(self, *args: str) -> list[str]:
        return [*self.argv, *args]

    def __call__(self, *args: str, check: bool = True) -> tuple[float, str]:
        return timed(self.cmd(*args), self.env, check=check)


class Engines:
    """The private dockyard daemon, dockerd (+ its containerd) and podman storage under ``work``,
    busybox in each; ``close`` removes every container, stops the daemons and checks the host."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.host = ed.HostPaths(HOST_PATHS)
        self.had_parent = {p: bool(ed.cgroup_dirs(p))
                           for p in ("docker", "libpod_parent", "dockyard")}
        self.dy_proc: subprocess.Popen | None = None
        self.dk_proc: subprocess.Popen | None = None
        self.drt = self.prt = self.d = self.p = None
        self.clients: dict[str, Engine] = {}
        self.versions: dict[str, str] = {}

    # ------------------------------------------------------------------ start

    def start(self, peers: bool = True) -> None:
        self._start_dockyard()
        if peers:
            archive = self.work / "busybox.tar"
            self.clients["dockyard"]("save", "-o", str(archive), IMAGE)
            self._start_docker(archive)
            self._start_podman(archive)

    def _start_dockyard(self) -> None:
        t = self.work / "dockyard"
        t.mkdir()
        (t / "daemon.json").write_text("{}")
        self.dy_sock = t / "d.sock"
        self.dy_root = t
        argv = [str(DOCKYARD), "daemon", "--root", str(t / "root"), "--exec-root", str(t / "exec"),
                "-H", f"unix://{self.dy_sock}", "--config", str(t / "daemon.json")]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKYARD_", "DOCKER_"))}
        with open(t / "daemon.log", "wb") as f:
            self.dy_proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=f,
                                            stderr=subprocess.STDOUT, env=env,
                                            start_new_session=True)
        dy = Engine("dockyard", [str(DOCKYARD), "-H", f"unix://{self.dy_sock}"], env)
        deadline = time.monotonic() + 30
        while ed.run_cmd(dy.cmd("version"), env=env, check=False, timeout=30).returncode != 0:
            if self.dy_proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("dockyard daemon did not start:\n"
                                   + (t / "daemon.log").read_text(errors="replace"))
            time.sleep(0.1)
        dy("image", "bootstrap", "busybox")
        self.clients["dockyard"] = dy
        (t / "docker-config").mkdir()
        self.clients["docker>dockyard"] = Engine(
            "docker>dockyard", [DOCKER, "-H", f"unix://{self.dy_sock}"],
            {**env, "DOCKER_CONFIG": str(t / "docker-config")})
        self.versions["dockyard"] = subprocess.run(
            ["git", "-C", str(REPO), "log", "-1", "--format=%h"], capture_output=True,
            text=True).stdout.strip()

    def _start_docker(self, archive: Path) -> None:
        import test_dockerd_runtime as drt  # private dockerd: start and teardown

        self.drt = drt
        root = self.work / "dockerd"
        root.mkdir()
        self.d = drt.Docker(root)
        self.dk_proc = drt.start_dockerd(self.d)
        self.d("load", "-i", archive, timeout=120)
        self.clients["docker"] = Engine("docker", self.d.argv(), self.d.env)
        self.versions["docker"] = self.d("version", "--format",
                                         "{{.Server.Version}}").stdout.strip()

    def _start_podman(self, archive: Path) -> None:
        import test_podman_runtime as prt  # private podman config and teardown

        class Podman(prt.Podman):  # podman's own default runtime, not dockyard-runtime
            def argv(self, *args) -> list[str]:
                return [PODMAN, "--cgroup-manager", "cgroupfs", "--events-backend", "file",
                        *map(str, args)]

        self.prt = prt
        root = self.work / "podman"
        root.mkdir()
        prt.write_config(root)
        self.p = Podman(root)
        self.p("load", "-i", archive, timeout=120)
        self.clients["podman"] = Engine("podman", self.p.argv(), self.p.env)
        self.versions["podman"] = self.p("version", "--format",
                                         "{{.Client.Version}}").stdout.strip()
        self.versions["podman runtime"] = self.p(
            "info", "--format", "{{.Host.OCIRuntime.Name}} {{.Host.OCIRuntime.Version}}"
        ).stdout.strip().splitlines()[0]

    # ------------------------------------------------------------------ what is running

    def daemon_pids(self, name: str) -> list[int]:
        if name == "dockyard":
            return [self.dy_proc.pid] if self.dy_proc else []
        if name == "docker":
            pids = [self.dk_proc.pid] if self.dk_proc else []
            return pids + [pid for pid in ed.processes_mentioning(str(self.d.root))
                           if exe_name(pid) == "containerd"]
        return []  # podman: no daemon

    def monitor_pids(self, name: str) -> list[int]:
        """The per-container monitors: conmon (dockyard, podman), containerd-shim (docker)."""
        root = {"dockyard": self.dy_root, "docker": self.d.root, "podman": self.p.root}[name]
        want = "containerd-shim-runc-v2" if name == "docker" else "conmon"
        return [pid for pid in ed.processes_mentioning(str(root)) if exe_name(pid) == want]

    # ------------------------------------------------------------------ stop

    def close(self) -> list[str]:
        """Remove everything; each step runs even when an earlier one failed. Problems found."""
        problems: list[str] = []
        if self.dy_proc is not None:
            problems += self._close_dockyard()
        if self.d is not None:
            problems += self.drt.teardown(self.d, self.dk_proc, self.had_parent["docker"])
            problems += [f"mount {m}" for m in ed.unmount_under(self.d.root)]
        if self.p is not None:
            # podman removes a container's leftovers in a `podman container cleanup` process of its
            # own (conmon's exit command): let those finish before teardown counts processes
            try:
                self.p("rm", "--all", "--force", "--time", "0", timeout=300, check=False)
            except subprocess.TimeoutExpired:
                problems.append("podman rm --all --force: no exit in 300s")
            ed.wait_gone(ed.processes_mentioning(str(self.p.root)), timeout=30)
            problems += self.prt.teardown(self.p, self.had_parent["libpod_parent"])
            problems += [f"mount {m}" for m in ed.unmount_under(self.p.root)]
        self.host.remove_created(trees=["/var/lib/containers"])
        return problems

    def _close_dockyard(self) -> list[str]:
        problems: list[str] = []
        dy = self.clients.get("dockyard")
        ids: list[str] = []
        if dy is not None and self.dy_proc.poll() is None:
            try:
                ids = dy("ps", "-aq", "--no-trunc", check=False)[1].split()
                if ids:
                    dy("rm", "-f", *ids, check=False)
            except (subprocess.TimeoutExpired, OSError) as e:
                problems.append(f"dockyard rm -f: {e}")
        if self.dy_proc.poll() is None:
            self.dy_proc.send_signal(signal.SIGTERM)
            try:
                self.dy_proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                problems.append("dockyard daemon ignored SIGTERM for 60s; killed")
                self.dy_proc.kill()
                self.dy_proc.wait()
        left = ed.processes_mentioning(str(self.dy_root))
        if left:
            problems += [f"process {pid}: {cmd}" for pid, cmd in left.items()]
            ed.kill_pids(left)
            ed.wait_gone(left)
        problems += [f"mount {m}" for m in ed.unmount_under(self.dy_root)]
        for cid in ids:
            problems += [f"cgroup {c}" for c in ed.cgroup_dirs(f"dockyard/{cid}")]
            ed.remove_empty_cgroups([f"dockyard/{cid}"])
        if not self.had_parent["dockyard"]:
            ed.remove_empty_cgroups(["dockyard"])
        return problems


# ================================================================================================
# the benchmarks


def med_ms(xs: list[float]) -> float:
    return statistics.median(xs) * 1000


def rotate(names: list[str], i: int) -> list[str]:
    k = i % len(names)
    return names[k:] + names[:k]


def bench_run(eng: Engines, runs: int, warmup: int) -> dict[str, list[float]]:
    names = ["dockyard", "docker>dockyard", "docker", "podman"]
    times: dict[str, list[float]] = {n: [] for n in names}
    args = ("run", "--rm", "--network", "none", IMAGE, "true")
    for i in range(warmup + runs):
        for n in rotate(names, i):
            dt, _ = eng.clients[n](*args)
            if i >= warmup:
                times[n].append(dt)
    return times


def bench_cycles(eng: Engines, cycles: int, block: int, peer_cycles: int
                 ) -> dict[str, dict[str, list[float]]]:
    """create + start + stop -t 5 + rm, ``block`` cycles per engine in turn. dockerd and podman
    run ``peer_cycles`` (scaled to ``cycles`` in the report when fewer)."""
    names = ["dockyard", "docker>dockyard", "docker", "podman"]
    target = {n: (cycles if n.startswith("dockyard") or n == "docker>dockyard" else peer_cycles)
              for n in names}
    verbs: dict[str, dict[str, list[float]]] = {
        n: {"create": [], "start": [], "stop": [], "rm": [], "cycle": []} for n in names}
    for n in names:  # warm-up: one cycle each
        _cycle(eng.clients[n])
    i = 0
    while any(len(verbs[n]["cycle"]) < target[n] for n in names):
        for n in rotate(names, i):
            for _ in range(block):
                if len(verbs[n]["cycle"]) >= target[n]:
                    break
                for verb, dt in _cycle(eng.clients[n]).items():
                    verbs[n][verb].append(dt)
        i += 1
    return verbs


def _cycle(c: Engine) -> dict[str, float]:
    t_create, out = c("create", "--network", "none", IMAGE, *STOP_CMD)
    cid = out.strip().splitlines()[-1]
    t_start, _ = c("start", cid)
    t_stop, _ = c("stop", "-t", "5", cid)
    t_rm, _ = c("rm", cid)
    return {"create": t_create, "start": t_start, "stop": t_stop, "rm": t_rm,
            "cycle": t_create + t_start + t_stop + t_rm}


def bench_memory(eng: Engines, n: int) -> dict[str, dict[str, float]]:
    """Start ``n`` detached sleep containers in each engine (in turn); per engine: monitors' RSS
    and PSS, daemon growth (RSS and PSS). The containers stay running for bench_ps."""
    result: dict[str, dict[str, float]] = {}
    for name in ("dockyard", "docker", "podman"):
        c = eng.clients[name]
        time.sleep(1)
        before = [mem_kib(pid) for pid in eng.daemon_pids(name)]
        monitors_before = eng.monitor_pids(name)
        assert not monitors_before, f"{name}: monitors before the start: {monitors_before}"
        t0 = time.perf_counter()
        for i in range(n):
            c("run", "-d", "--network", "none", "--name", f"bench-sleep-{i}", IMAGE,
              "sleep", "100000")
        t_start = time.perf_counter() - t0
        time.sleep(3)  # let the monitors and daemons settle
        after = [mem_kib(pid) for pid in eng.daemon_pids(name)]
        mons = eng.monitor_pids(name)
        mon = [mem_kib(pid) for pid in mons]
        running = len(c("ps", "-q")[1].split())
        result[name] = {
            "containers": running, "monitors": len(mons),
            "monitor_rss": sum(r for r, _ in mon) / 1024,
            "monitor_pss": sum(p for _, p in mon) / 1024,
            "daemon_rss_before": sum(r for r, _ in before) / 1024,
            "daemon_rss_after": sum(r for r, _ in after) / 1024,
            "daemon_pss_before": sum(p for _, p in before) / 1024,
            "daemon_pss_after": sum(p for _, p in after) / 1024,
            "start_s": t_start,
        }
        r = result[name]
        r["per_rss"] = (r["monitor_rss"] + r["daemon_rss_after"] - r["daemon_rss_before"]) / n
        r["per_pss"] = (r["monitor_pss"] + r["daemon_pss_after"] - r["daemon_pss_before"]) / n
        log(f"  {name}: {running} running, {len(mons)} monitors, monitors RSS "
            f"{r['monitor_rss']:.1f} MiB PSS {r['monitor_pss']:.1f} MiB, daemon RSS "
            f"{r['daemon_rss_before']:.1f} -> {r['daemon_rss_after']:.1f} MiB, PSS "
            f"{r['daemon_pss_before']:.1f} -> {r['daemon_pss_after']:.1f} MiB; per container "
            f"RSS {r['per_rss']:.2f} MiB, PSS {r['per_pss']:.2f} MiB "
            f"({t_start:.1f} s to start {n})")
    return result


def bench_ps(eng: Engines, runs: int, hf_runs: int
             ) -> tuple[dict[str, list[float]], dict[str, float]]:
    names = ["dockyard", "docker>dockyard", "docker", "podman"]
    times: dict[str, list[float]] = {n: [] for n in names}
    for i in range(3 + runs):
        for n in rotate(names, i):
            dt, out = eng.clients[n]("ps")
            if i >= 3:
                times[n].append(dt)
    for name, sock in (("dockyard API", eng.dy_sock), ("dockerd API", eng.d.sock)):
        times[name] = []
        for i in range(3 + runs):
            t0 = time.perf_counter()
            api_get(sock, "/containers/json")
            if i >= 3:
                times[name].append(time.perf_counter() - t0)
    hf: dict[str, float] = {}
    if shutil.which("hyperfine"):
        import json

        env = {**eng.clients["docker"].env, **eng.clients["podman"].env}
        env.pop("DOCKER_HOST", None)
        env["DOCKER_CONFIG"] = str(eng.d.root / "client")
        cmds = {
            "dockyard": eng.clients["dockyard"].cmd("ps"),
            "docker>dockyard": eng.clients["docker>dockyard"].cmd("ps"),
            "docker": [DOCKER, "-H", f"unix://{eng.d.sock}", "ps"],
            "podman": eng.clients["podman"].cmd("ps"),
        }
        out = eng.work / "hyperfine.json"
        subprocess.run(["hyperfine", "-N", "--warmup", "3", "--runs", str(hf_runs),
                        "--export-json", str(out), "--style", "none",
                        *[" ".join(c) for c in cmds.values()]],
                       env=env, check=True, stdout=subprocess.DEVNULL)
        for n, r in zip(cmds, json.loads(out.read_text())["results"]):
            hf[n] = r["median"]
    return times, hf


# ================================================================================================
# report


def machine() -> str:
    return f"{platform.release()}, {os.cpu_count()} CPUs"


def print_report(eng: Engines, res: dict, args: argparse.Namespace) -> None:
    today = datetime.date.today().isoformat()
    m = machine()
    log("\n== versions: " + ", ".join(f"{k} {v}" for k, v in eng.versions.items()))
    log(f"== load average: {open('/proc/loadavg').read().split()[:3]}")
    log("\n| date | machine | benchmark | runs | dockyard | docker CLI > dockyard | docker "
        "| podman | dockyard / faster peer | target |")
    log("|---|---|---|---|---|---|---|---|---|---|")
    if "run" in res:
        t = {n: med_ms(v) for n, v in res["run"].items()}
        faster = min(("docker", "podman"), key=t.get)
        log(f"| {today} | {m} | `run --rm --network none busybox true`, ms | {args.runs} "
            f"| {t['dockyard']:.0f} | {t['docker>dockyard']:.0f} | {t['docker']:.0f} "
            f"| {t['podman']:.0f} | {t['dockyard'] / t[faster]:.2f} ({faster}) | <= 0.35 |")
    if "cycle" in res:
        v = res["cycle"]
        per = {n: med_ms(v[n]["cycle"]) for n in v}
        tot = {n: sum(v[n]["cycle"]) * args.cycles / len(v[n]["cycle"]) for n in v}
        scaled = "" if args.peer_cycles == args.cycles else (
            f" (docker, podman: {args.peer_cycles} cycles, total scaled "
            f"x{args.cycles / args.peer_cycles:g})")
        log(f"| {today} | {m} | {args.cycles} x create+start+stop+rm, total s{scaled} "
            f"| {args.cycles} | {tot['dockyard']:.1f} | {tot['docker>dockyard']:.1f} "
            f"| {tot['docker']:.1f} | {tot['podman']:.1f} "
            f"| {tot['dockyard'] / tot['podman']:.2f} (podman) | <= 0.3 |")
        log(f"| {today} | {m} | one cycle, median ms | {args.cycles} | {per['dockyard']:.0f} "
            f"| {per['docker>dockyard']:.0f} | {per['docker']:.0f} | {per['podman']:.0f} "
            f"| {per['dockyard'] / per['podman']:.2f} (podman) | |")
        for verb in ("create", "start", "stop", "rm"):
            p = {n: med_ms(v[n][verb]) for n in v}
            log(f"| {today} | {m} | `{verb}`, median ms | {args.cycles} | {p['dockyard']:.0f} "
                f"| {p['docker>dockyard']:.0f} | {p['docker']:.0f} | {p['podman']:.0f} "
                f"| {p['dockyard'] / p['podman']:.2f} (podman) | |")
    if "memory" in res:
        r = res["memory"]
        for key, label in (("per_pss", "PSS"), ("per_rss", "RSS")):
            log(f"| {today} | {m} | {args.containers} detached sleep: MiB per container "
                f"(monitors' {label} + daemon {label} growth) / {args.containers} | 1 "
                f"| {r['dockyard'][key]:.2f} | | {r['docker'][key]:.2f} | {r['podman'][key]:.2f} "
                f"| | <= 4 MiB |")
    if "ps" in res:
        times, hf = res["ps"]
        t = {n: med_ms(v) for n, v in times.items()}
        log(f"| {today} | {m} | `ps` with {args.containers} running, ms (alternating) "
            f"| {args.ps_runs} | {t['dockyard']:.0f} | {t['docker>dockyard']:.0f} "
            f"| {t['docker']:.0f} | {t['podman']:.0f} | {t['dockyard'] / t['docker']:.2f} (docker) "
            f"| <= 0.5 |")
        log(f"| {today} | {m} | `GET /containers/json` ({args.containers} running) from a warm "
            f"client (the engine alone), ms | {args.ps_runs} | {t['dockyard API']:.1f} | "
            f"| {t['dockerd API']:.1f} | | {t['dockyard API'] / t['dockerd API']:.2f} (docker) | |")
        if hf:
            h = {n: v * 1000 for n, v in hf.items()}
            log(f"| {today} | {m} | `ps` with {args.containers} running, ms (hyperfine -N median) "
                f"| {args.hf_runs} | {h['dockyard']:.0f} | {h['docker>dockyard']:.0f} "
                f"| {h['docker']:.0f} | {h['podman']:.0f} "
                f"| {h['dockyard'] / h['docker']:.2f} (docker) "
                f"| <= 0.5 |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("what", choices=("all", "profile"))
    ap.add_argument("work", type=Path)
    ap.add_argument("--runs", type=int, default=15, help="run --rm true: rounds (default 15)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--cycles", type=int, default=100)
    ap.add_argument("--peer-cycles", type=int, default=100,
                    help="cycles for docker and podman (scaled to --cycles when fewer)")
    ap.add_argument("--block", type=int, default=10, help="cycles per engine in turn")
    ap.add_argument("--containers", type=int, default=50)
    ap.add_argument("--ps-runs", type=int, default=15)
    ap.add_argument("--hf-runs", type=int, default=20)
    ap.add_argument("--only", default="run,cycle,memory,ps")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench: needs root", file=sys.stderr)
        return 1
    if args.what == "profile":
        from engine_profile import profile  # bench/engine/engine_profile.py

        profile(args.work, args.runs)
        return 0
    which = args.only.split(",")
    args.work.mkdir(parents=True, exist_ok=True)
    eng = Engines(args.work)
    res: dict = {}
    problems: list[str] = []
    try:
        log("== starting: private dockyard daemon, dockerd, podman storage; busybox into each")
        eng.start()
        log("   " + ", ".join(f"{k} {v}" for k, v in eng.versions.items()))
        if "run" in which:
            log(f"== run --rm true: {args.runs} rounds (+{args.warmup} warm-up), alternating")
            res["run"] = bench_run(eng, args.runs, args.warmup)
            for n, v in res["run"].items():
                log(f"  {n}: median {med_ms(v):.0f} ms "
                    f"(min {min(v) * 1000:.0f}, max {max(v) * 1000:.0f})")
        if "cycle" in which:
            log(f"== {args.cycles} x create+start+stop+rm (peers {args.peer_cycles}), "
                f"blocks of {args.block}")
            res["cycle"] = bench_cycles(eng, args.cycles, args.block, args.peer_cycles)
            for n, v in res["cycle"].items():
                log(f"  {n}: {len(v['cycle'])} cycles, {sum(v['cycle']):.1f} s, median "
                    + ", ".join(f"{k} {med_ms(x):.0f}" for k, x in v.items()) + " ms")
        if "memory" in which or "ps" in which:
            log(f"== {args.containers} detached sleep containers per engine")
            res["memory"] = bench_memory(eng, args.containers)
            if "memory" not in which:
                del res["memory"]
        if "ps" in which:
            log(f"== ps with {args.containers} running: {args.ps_runs} rounds alternating, "
                "hyperfine")
            res["ps"] = bench_ps(eng, args.ps_runs, args.hf_runs)
            for n, v in res["ps"][0].items():
                hf = res["ps"][1].get(n)
                log(f"  {n}: median {med_ms(v):.1f} ms"
                    + (f"; hyperfine {hf * 1000:.1f} ms" if hf is not None else ""))
        print_report(eng, res, args)
    finally:
        log("== cleaning up")
        problems = eng.close()
        for p in problems:
            log(f"  left behind (cleaned): {p}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
