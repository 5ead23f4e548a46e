"""Network benchmarks (issue 5, acceptance item 3): dockyard side by side with a private dockerd
(bridge + DNAT) and a private podman (CNI bridge), on the default network of each.

    netbench.py all WORK [--runs N] [--iperf-secs S] [--iperf-runs N] [--connects N]
    netbench.py profile WORK [--runs N]     where dockyard's time on the bridge goes

  run      `run --rm busybox true` on the default bridge (no --network), alternating, medians;
           ratio dockyard / the faster of docker and podman (target <= 0.35)
  iperf3   `iperf3 -s` in a container of each engine publishing 5201 on 127.0.0.1, the client on
           the host (`iperf3 -c 127.0.0.1 -p HOSTPORT -t S`); dockyard (nftables DNAT) vs dockerd
           with --userland-proxy=false (iptables DNAT) and with its default userland proxy;
           target dockyard >= 1.0x docker's DNAT path. Also straight to the container's address
           (no NAT) as the ceiling
  connect  N x TCP connect()+close to a published port on 127.0.0.1 (busybox httpd in the
           container), median / p90 microseconds; and to the container address (no NAT)

The engines come from bench/engine/bench.py (``Engines``: private roots, busybox in each, full
teardown); only dockerd's start differs: a bridge of our own (``dkbench0``), iptables on,
--ip-forward=false (dockerd would set the host's FORWARD policy to DROP, breaking other bridges'
routed traffic), and the userland proxy per phase. What dockerd and podman's CNI plugins leave in
iptables (DOCKER*, CNI-* chains and the jumps to them) is removed afterwards.

iperf3 is the host's (/usr/bin/iperf3, dynamically linked): bind-mounted read-only into the
busybox container with the host's library directory.

Traffic: loopback and the engines' own bridges only.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "engine"))

import bench as eb  # noqa: E402  bench/engine/bench.py: Engines, timed, rotate, med_ms

IMAGE = eb.IMAGE
DK_BRIDGE = "dkbench0"
DK_BRIDGE_CIDR = "10.214.0.1/24"
PODMAN_BRIDGE = "cni-podman0"  # podman's default network (CNI), left behind by podman
IPERF_MOUNTS = ("-v", "/usr/bin/iperf3:/usr/bin/iperf3:ro",
                "-v", "/usr/lib/x86_64-linux-gnu:/lib/x86_64-linux-gnu:ro",
                "-v", "/usr/lib64:/lib64:ro", "-e", "LD_LIBRARY_PATH=/lib/x86_64-linux-gnu")
log = eb.log


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, check=check)


# ================================================================================================
# engines


class NetEngines(eb.Engines):
    """bench/engine's engines with dockerd on a bridge of its own (iptables DNAT), podman on its
    CNI bridge."""

    userland_proxy = False

    def __init__(self, work: Path) -> None:
        super().__init__(work)
        self.had_links = set(os.listdir("/sys/class/net"))
        self.had_tables = nft_tables()

    def _start_docker(self, archive: Path) -> None:
        import test_dockerd_runtime as drt

        self.drt = drt
        self.archive = archive
        if not Path(f"/sys/class/net/{DK_BRIDGE}").exists():
            sh("ip", "link", "add", DK_BRIDGE, "type", "bridge")
            sh("ip", "addr", "add", DK_BRIDGE_CIDR, "dev", DK_BRIDGE)
            sh("ip", "link", "set", DK_BRIDGE, "up")
        root = self.work / f"dockerd-proxy-{self.userland_proxy}".lower()
        root.mkdir()
        self.d = drt.Docker(root)
        (root / "daemon.json").write_text(json.dumps(
            {"deprecated-key-path": str(root / "key.json")}))
        argv = [drt.DOCKERD, "--config-file", root / "daemon.json", "--data-root", root / "docker",
                "--exec-root", root / "exec", "--pidfile", root / "docker.pid",
                "-H", f"unix://{self.d.sock}", "--bridge", DK_BRIDGE, "--iptables=true",
                "--ip6tables=false", "--ip-forward=false", "--ip-masq=true",
                f"--userland-proxy={str(self.userland_proxy).lower()}",
                "--storage-driver", "overlay2", "--exec-opt", "native.cgroupdriver=cgroupfs"]
        with open(root / "dockerd.log", "wb") as f:
            self.dk_proc = subprocess.Popen([str(a) for a in argv], stdin=subprocess.DEVNULL,
                                            stdout=f, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        deadline = time.monotonic() + 60
        while self.d("version", check=False, timeout=10).returncode != 0:
            if self.dk_proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("dockerd did not start:\n" + self.d.log_tail())
            time.sleep(0.2)
        self.d("load", "-i", archive, timeout=120)
        self.clients["docker"] = eb.Engine("docker", self.d.argv(), self.d.env)
        self.versions["docker"] = self.d("version", "--format",
                                         "{{.Server.Version}}").stdout.strip()

    def _start_podman(self, archive: Path) -> None:
        super()._start_podman(archive)
        # bench/engine's containers.conf says netns = "none": podman's bridge, asked for
        self.podman_net = ("--network", "bridge")

    def restart_docker(self, userland_proxy: bool) -> list[str]:
        """Another dockerd (fresh root) with the userland proxy on or off."""
        problems = self.drt.teardown(self.d, self.dk_proc, self.had_parent["docker"])
        self.userland_proxy = userland_proxy
        self._start_docker(self.archive)
        return problems

    def net_args(self, name: str) -> tuple[str, ...]:
        return self.podman_net if name == "podman" else ()

    def close(self) -> list[str]:
        problems = super().close()
        for bridge in (DK_BRIDGE, PODMAN_BRIDGE):
            if bridge not in self.had_links and Path(f"/sys/class/net/{bridge}").exists():
                sh("ip", "link", "del", bridge, check=False)
        problems += remove_iptables_chains(("DOCKER", "CNI-"), (DK_BRIDGE, PODMAN_BRIDGE),
                                           self.had_tables)
        return problems


def nft_tables() -> set[str]:
    return set(sh("nft", "list", "tables", check=False).stdout.splitlines())


def remove_iptables_chains(prefixes: tuple[str, ...], ifaces: tuple[str, ...] = (),
                           had_tables: set[str] | None = None) -> list[str]:
    """Delete the jumps to chains named ``prefix*`` and the rules naming ``ifaces`` from every
    chain, then those chains; then the iptables-nft tables that were not there before
    (``had_tables``) if nothing is left in them."""
    notes: list[str] = []
    for table in ("filter", "nat", "mangle"):
        p = sh("iptables", "-t", table, "-S", check=False)
        if p.returncode != 0:
            continue
        ours = [ln.split()[1] for ln in p.stdout.splitlines()
                if ln.startswith("-N ") and ln.split()[1].startswith(prefixes)]
        for ln in p.stdout.splitlines():
            parts = shlex.split(ln)
            if parts[:1] == ["-A"] and parts[1] not in ours and (any(
                    f"-j {c}" in ln or f"-g {c}" in ln for c in ours) or any(
                    i in parts for i in ifaces)):
                sh("iptables", "-t", table, "-D", *parts[1:], check=False)
        for c in ours:
            sh("iptables", "-t", table, "-F", c, check=False)
        for c in ours:
            if sh("iptables", "-t", table, "-X", c, check=False).returncode != 0:
                notes.append(f"iptables -t {table} -X {c} failed")
        left = sh("iptables", "-t", table, "-S", check=False).stdout.splitlines()
        if (had_tables is not None and f"table ip {table}" not in had_tables
                and all(ln.startswith("-P ") and ln.endswith(" ACCEPT") for ln in left)):
            sh("nft", "delete", "table", "ip", table, check=False)
    return notes


# ================================================================================================
# benchmarks


def bench_run(eng: NetEngines, runs: int, warmup: int) -> dict[str, list[float]]:
    """Each engine on its default bridge; dockyard also with --network none (the network's
    share of dockyard's time)."""
    names = ["dockyard", "docker>dockyard", "docker", "podman", "dockyard none",
             "docker>dockyard none"]
    times: dict[str, list[float]] = {n: [] for n in names}
    for i in range(warmup + runs):
        for n in eb.rotate(names, i):
            client, _, none = n.partition(" ")
            net = ("--network", "none") if none else eng.net_args(n)
            dt, _ = eng.clients[client]("run", "--rm", *net, IMAGE, "true")
            if i >= warmup:
                times[n].append(dt)
    return times


def published(eng: NetEngines, name: str, port: int, *cmd: str,
              extra: tuple[str, ...] = ()) -> tuple[str, int, str]:
    """A detached container publishing ``port`` on 127.0.0.1 (random host port): its id, the
    host port and its address on the engine's bridge."""
    c = eng.clients[name]
    _, out = c("run", "-d", *eng.net_args(name), "-p", f"127.0.0.1::{port}", *extra, IMAGE, *cmd)
    cid = out.strip().splitlines()[-1]
    _, out = c("port", cid, f"{port}/tcp")
    host_port = int(out.split()[0].rsplit(":", 1)[1])
    _, out = c("inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", cid)
    return cid, host_port, out.split()[0]


def wait_port(host: str, port: int, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def iperf(host: str, port: int, secs: int) -> float:
    """Gbit/s received, one TCP stream host -> server."""
    for attempt in range(20):  # the server may still be busy with the previous test's socket
        p = subprocess.run(["iperf3", "-c", host, "-p", str(port), "-t", str(secs), "-J"],
                           capture_output=True, text=True, timeout=secs + 30)
        if p.returncode == 0:
            return json.loads(p.stdout)["end"]["sum_received"]["bits_per_second"] / 1e9
        time.sleep(0.2)
    raise RuntimeError(f"iperf3 -c {host} -p {port}: {p.stdout[-500:]} {p.stderr[-500:]}")


def connect_us(host: str, port: int, n: int, pause: float = 0.002) -> list[float]:
    """Microseconds of each blocking connect() (then an RST close: no TIME_WAIT pile-up),
    ``pause`` s apart: busybox httpd forks per connection behind a listen backlog of 9, and a
    SYN dropped on a full backlog costs a 1 s retransmit (measured the server, not the path)."""
    out = []
    linger = (1).to_bytes(4, "little") + (0).to_bytes(4, "little")
    for _ in range(n):
        s = socket.socket()
        s.settimeout(5)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
        t0 = time.perf_counter()
        s.connect((host, port))
        out.append((time.perf_counter() - t0) * 1e6)
        s.close()
        time.sleep(pause)
    return out


def bench_data_path(eng: NetEngines, label: str, names: list[str], secs: int, runs: int,
                    connects: int, res: dict) -> None:
    """iperf3 and connect latency for ``names`` (results under ``label``/name)."""
    servers = {}
    for n in names:
        cid, port, addr = published(eng, n, 5201, "/usr/bin/iperf3", "-s", extra=IPERF_MOUNTS)
        web_cid, web_port, web_addr = published(eng, n, 80, "httpd", "-f", "-p", "80")
        wait_port("127.0.0.1", port)
        wait_port("127.0.0.1", web_port)
        servers[n] = (port, addr, web_port, web_addr, cid, web_cid)
    for n in names:
        iperf("127.0.0.1", servers[n][0], 1)  # warm-up
    for i in range(runs):
        for n in eb.rotate(names, i):
            port, addr = servers[n][:2]
            res.setdefault(f"iperf {label}{n}", []).append(iperf("127.0.0.1", port, secs))
            res.setdefault(f"iperf direct {n}", []).append(iperf(addr, 5201, secs))
    for n in names:
        web_port, web_addr = servers[n][2:4]
        connect_us("127.0.0.1", web_port, 100)  # warm-up
        res[f"connect {label}{n}"] = connect_us("127.0.0.1", web_port, connects)
        res[f"connect direct {n}"] = connect_us(web_addr, 80, connects)
    for n in names:
        eng.clients[n]("rm", "-f", *servers[n][4:])


# ================================================================================================
# profile: where dockyard's bridge time goes


def api_run(sock: Path, mode: str) -> dict[str, float]:
    """``run --rm true`` as its four API calls from a warm client, NetworkMode ``mode``."""
    from engine_profile import api  # bench/engine/engine_profile.py

    t: dict[str, float] = {}
    t0 = time.perf_counter()
    code, body = api(sock, "POST", "/containers/create",
                     {"Image": IMAGE, "Cmd": ["true"], "HostConfig": {"NetworkMode": mode}})
    assert code == 201, body
    cid = json.loads(body)["Id"]
    t["create"] = time.perf_counter() - t0
    for verb, method, path, want in (("start", "POST", "start", 204),
                                     ("wait", "POST", "wait", 200),
                                     ("delete", "DELETE", "", 204)):
        t0 = time.perf_counter()
        code, body = api(sock, method, f"/containers/{cid}/{path}".rstrip("/"))
        assert code == want, body
        t[verb] = time.perf_counter() - t0
    t["total"] = sum(t.values())
    return t


def kernel_steps(work: Path, n: int) -> dict[str, list[float]]:
    """The kernel operations of one container's start/exit, alone (a scratch bridge and
    nftables table): pin a namespace, veth into the bridge with address and route, unpin;
    one nftables table replace with 10 published ports."""
    from dockyard.network import driver, firewall, netns, nft

    bridge, table = "dynbprof0", "dockyard_netprof"
    t: dict[str, list[float]] = {k: [] for k in ("netns create", "veth connect",
                                                 "netns delete", "nft apply (10 ports)")}
    rules = firewall.Ruleset(
        networks=(firewall.NetRule(bridge=bridge, subnet="10.215.0.0/24", internal=False),),
        ports=tuple(firewall.PortRule(proto="tcp", host_ip="", host_port=20000 + i,
                                      container_ip="10.215.0.2", container_port=80,
                                      bridge=bridge) for i in range(10)))
    text = firewall.render(rules, table=table)
    driver.ensure_bridge(bridge, "10.215.0.1/24")
    try:
        for i in range(n):
            path = str(work / f"ns{i}")
            t0 = time.perf_counter()
            netns.create(path)
            t1 = time.perf_counter()
            driver.connect(path, bridge, driver.host_ifname(), "10.215.0.2/24", "10.215.0.1")
            t2 = time.perf_counter()
            netns.delete(path)
            t3 = time.perf_counter()
            nft.apply(text)
            t4 = time.perf_counter()
            for k, dt in zip(t, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                t[k].append(dt)
    finally:
        nft.remove(table)
        driver.delete_bridge(bridge)
    return t


def profile(work: Path, runs: int) -> None:
    work.mkdir(parents=True, exist_ok=True)
    eng = NetEngines(work)
    try:
        eng.start(peers=False)
        for mode in ("none", "bridge"):
            api_run(eng.dy_sock, mode)  # warm-up
        res: dict[str, dict[str, list[float]]] = {"none": {}, "bridge": {}}
        for i in range(runs):
            for mode in eb.rotate(["none", "bridge"], i):
                for k, v in api_run(eng.dy_sock, mode).items():
                    res[mode].setdefault(k, []).append(v)
        log(f"\nrun --rm true as API calls from a warm client, {runs} each (median ms):")
        log("| NetworkMode | create | start | wait | delete | total |")
        log("|---|---|---|---|---|---|")
        for mode, r in res.items():
            log(f"| {mode} | " + " | ".join(f"{eb.med_ms(r[k]):.1f}" for k in
                                            ("create", "start", "wait", "delete", "total"))
                + " |")
    finally:
        problems = eng.close()
    steps = kernel_steps(work, runs)
    log(f"\nkernel steps alone, {runs} each (median ms): " + ", ".join(
        f"{k} {eb.med_ms(v):.2f}" for k, v in steps.items()))
    if problems:
        log("PROBLEMS: " + "; ".join(problems))


def pct(xs: list[float], q: float) -> float:
    return sorted(xs)[min(len(xs) - 1, int(q * len(xs)))]


def report(eng: NetEngines, res: dict, args: argparse.Namespace) -> None:
    log("\n== versions: " + ", ".join(f"{k} {v}" for k, v in eng.versions.items()))
    log(f"== machine: {eb.machine()}, load {open('/proc/loadavg').read().split()[:3]}")
    if "run" in res:
        t = {n: eb.med_ms(v) for n, v in res["run"].items()}
        faster = min(("docker", "podman"), key=t.get)
        log(f"\nrun --rm busybox true, default bridge, {args.runs} rounds (median ms):")
        log("| dockyard | docker CLI > dockyard | docker | podman | dockyard / faster | target |")
        log("|---|---|---|---|---|---|")
        log(f"| {t['dockyard']:.0f} | {t['docker>dockyard']:.0f} | {t['docker']:.0f} "
            f"| {t['podman']:.0f} | {t['dockyard'] / t[faster]:.2f} ({faster}) | <= 0.35 |")
        log(f"  with --network none: dockyard {t['dockyard none']:.0f}, docker CLI > dockyard "
            f"{t['docker>dockyard none']:.0f} ms (the bridge's share: "
            f"{t['dockyard'] - t['dockyard none']:+.0f} / "
            f"{t['docker>dockyard'] - t['docker>dockyard none']:+.0f} ms)")
    if any(k.startswith("iperf") for k in res):
        log(f"\niperf3 host -> container, one stream, {args.iperf_secs} s x {args.iperf_runs} "
            "(median Gbit/s):")
        for k in sorted(k for k in res if k.startswith("iperf")):
            v = res[k]
            log(f"  {k:32s} {statistics.median(v):7.2f}  (min {min(v):.2f}, max {max(v):.2f})")
        dy = statistics.median(res["iperf dnat dockyard"])
        dk = res.get("iperf dnat docker")
        if dk:
            log(f"  dockyard / docker DNAT: {dy / statistics.median(dk):.2f} (target >= 1.0)")
        px = res.get("iperf proxy docker")
        if px:
            log(f"  dockyard / docker userland proxy: {dy / statistics.median(px):.2f}")
    if any(k.startswith("connect") for k in res):
        log(f"\nconnect() to a published port on 127.0.0.1, {args.connects} each (us):")
        for k in sorted(k for k in res if k.startswith("connect")):
            v = res[k]
            log(f"  {k:32s} median {statistics.median(v):6.1f}  p90 {pct(v, 0.9):6.1f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("what", choices=("all", "profile"))
    ap.add_argument("work", type=Path)
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--iperf-secs", type=int, default=5)
    ap.add_argument("--iperf-runs", type=int, default=3)
    ap.add_argument("--connects", type=int, default=2000)
    ap.add_argument("--only", default="run,iperf,proxy")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench: needs root", file=sys.stderr)
        return 1
    # SIGTERM (timeout, kill): through the finally blocks, so the engines are torn down
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.what == "profile":
        profile(args.work, args.runs)
        return 0
    which = args.only.split(",")
    args.work.mkdir(parents=True, exist_ok=True)
    eng = NetEngines(args.work)
    res: dict = {}
    problems: list[str] = []
    try:
        log("== starting: private dockyard daemon, dockerd (bridge dkbench0, iptables DNAT, "
            "--userland-proxy=false), podman (CNI bridge); busybox into each")
        eng.start()
        log("   " + ", ".join(f"{k} {v}" for k, v in eng.versions.items()))
        if "run" in which:
            log(f"== run --rm busybox true on the default bridge: {args.runs} rounds")
            res["run"] = bench_run(eng, args.runs, args.warmup)
            for n, v in res["run"].items():
                log(f"  {n}: median {eb.med_ms(v):.0f} ms (min {min(v) * 1000:.0f}, "
                    f"max {max(v) * 1000:.0f})")
        if "iperf" in which:
            log("== iperf3 + connect: dockyard vs dockerd DNAT (userland proxy off)")
            bench_data_path(eng, "dnat ", ["dockyard", "docker"], args.iperf_secs,
                            args.iperf_runs, args.connects, res)
        if "proxy" in which:
            log("== dockerd again, with its userland proxy (docker-proxy)")
            problems += eng.restart_docker(True)
            bench_data_path(eng, "proxy ", ["docker"], args.iperf_secs, args.iperf_runs,
                            args.connects, res)
    finally:
        log("== cleaning up")
        problems += eng.close()
    report(eng, res, args)
    if problems:
        log("\nPROBLEMS (left behind, now removed):\n  " + "\n  ".join(problems))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
