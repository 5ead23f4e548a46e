"""Where dockyard's time goes (bench.py profile WORK): client start and imports, `run --rm true`
as its API calls with dockyard-runtime and with runc, and the programs the daemon starts during
one run (strace). A dockyard daemon alone, on a private root; see README."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench import DOCKYARD, IMAGE, Engines, log, med_ms, rotate, timed


#: runtime verbs, to name a runtime process by what it does (its --root/--log come first)
VERBS = ("create", "start", "state", "kill", "delete", "exec", "run", "pause", "resume", "update")


def api(sock: Path, method: str, path: str, body: dict | None = None) -> tuple[int, bytes]:
    import http.client
    import json
    import socket

    conn = http.client.HTTPConnection("localhost", timeout=120)
    conn.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.sock.connect(str(sock))
    try:
        data = json.dumps(body).encode() if body is not None else None
        conn.request(method, path, body=data,
                     headers={"Content-Type": "application/json"} if data else {})
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def api_run(sock: Path, runtime: str | None) -> dict[str, float]:
    """`run --rm true` as four API calls from a warm client (what the CLI asks for, without its
    start, attach and events): seconds per call."""
    import json

    host: dict = {"NetworkMode": "none"}
    if runtime:
        host["Runtime"] = runtime
    t = {}
    t0 = time.perf_counter()
    code, body = api(sock, "POST", "/containers/create",
                     {"Image": IMAGE, "Cmd": ["true"], "HostConfig": host})
    assert code == 201, body
    cid = json.loads(body)["Id"]
    t["create"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    code, body = api(sock, "POST", f"/containers/{cid}/start")
    assert code == 204, body
    t["start"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    code, body = api(sock, "POST", f"/containers/{cid}/wait")
    assert code == 200, body
    t["wait"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    code, body = api(sock, "DELETE", f"/containers/{cid}")
    assert code == 204, body
    t["delete"] = time.perf_counter() - t0
    t["total"] = sum(t.values())
    return t


def strace_run(eng: Engines, out: Path) -> None:
    """Every program the daemon starts during one `dockyard run --rm true` and how long each ran
    (execve to exit), from strace -f on the daemon (execve and exits only; slows forks a little)."""
    st = subprocess.Popen(["strace", "-f", "-q", "-ttt", "-s", "200", "--seccomp-bpf",
                           "-e", "trace=execve", "-e", "signal=none", "-o", str(out),
                           "-p", str(eng.dy_proc.pid)],
                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # attach to every thread
    t0 = time.time()
    dt, _ = eng.clients["dockyard"]("run", "--rm", "--network", "none", IMAGE, "true")
    time.sleep(0.5)
    st.send_signal(signal.SIGINT)
    st.wait(timeout=30)
    starts: dict[int, tuple[float, str]] = {}
    rows = []
    for line in out.read_text(errors="replace").splitlines():
        m = re.match(r"(\d+)\s+([\d.]+)\s+(.*)", line)
        if not m:
            continue
        pid, ts, rest = int(m[1]), float(m[2]), m[3]
        if rest.startswith("execve(") and rest.rstrip().endswith("= 0"):
            argv = re.findall(r'"((?:[^"\\]|\\.)*)"', rest.split("[", 1)[1])
            verbs = [a for a in argv[1:] if a in VERBS][:1]
            starts[pid] = (ts, " ".join([os.path.basename(argv[0]), *(verbs or argv[1:3])])[:90])
        elif rest.startswith("+++ exited") and pid in starts:
            t_exec, name = starts.pop(pid)
            rows.append((t_exec - t0, ts - t_exec, name))
    log(f"  one `dockyard run --rm true` under strace: {dt * 1000:.0f} ms; programs the daemon ran "
        f"(ms after the CLI started, ms running):")
    for at, took, name in sorted(rows):
        log(f"    +{at * 1000:6.1f}  {took * 1000:6.1f}  {name}")
    for pid, (t_exec, name) in starts.items():
        log(f"    +{(t_exec - t0) * 1000:6.1f}  (still running)  {name}")


def import_profile(argv: list[str], env: dict[str, str], top: int = 12) -> None:
    """-X importtime of a CLI command: the total and the largest top-level imports (cumulative)."""
    p = subprocess.run([sys.executable, "-X", "importtime", *argv], env=env, capture_output=True,
                       text=True, stdin=subprocess.DEVNULL)
    rows = []
    for line in p.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line or "self [us]" in line:
            continue
        _, cum, name = line.split("|")
        if not name.startswith("   "):  # a top-level import (nested ones are indented)
            rows.append((int(cum), name.strip()))
    total = sum(c for c, _ in rows)
    log(f"  imports of `dockyard {' '.join(argv[3:])}`: {total / 1000:.1f} ms "
        "(under -X importtime), "
        "largest: " + ", ".join(f"{n} {c / 1000:.1f}" for c, n in sorted(rows, reverse=True)[:top]))


def profile(work: Path, runs: int) -> None:
    work.mkdir(parents=True, exist_ok=True)
    eng = Engines(work)
    try:
        log("== profile: dockyard daemon alone (private root), busybox")
        eng.start(peers=False)
        dy = eng.clients["dockyard"]
        env = dy.env
        py = sys.executable
        cmds = {
            "python -c pass": [py, "-c", "pass"],
            "python -c 'import http.client'": [py, "-c", "import http.client"],
            "dockyard --version (no request)": [str(DOCKYARD), "--version"],
            "dockyard version": dy.cmd("version"),
            "dockyard ps (empty)": dy.cmd("ps"),
            "docker CLI > dockyard: ps (empty)": eng.clients["docker>dockyard"].cmd("ps"),
            "dockyard run --rm true": dy.cmd("run", "--rm", "--network", "none", IMAGE, "true"),
            "docker CLI > dockyard: run --rm true": eng.clients["docker>dockyard"].cmd(
                "run", "--rm", "--network", "none", IMAGE, "true"),
            "docker CLI > dockyard: run --rm --runtime runc true":
                eng.clients["docker>dockyard"].cmd("run", "--rm", "--network", "none",
                                                   "--runtime", "runc", IMAGE, "true"),
        }
        envs = {n: (eng.clients["docker>dockyard"].env if "docker CLI" in n else env) for n in cmds}
        times: dict[str, list[float]] = {n: [] for n in cmds}
        for i in range(2 + runs):
            for n in rotate(list(cmds), i):
                dt, _ = timed(cmds[n], envs[n], check=n != "dockyard --version (no request)")
                if i >= 2:
                    times[n].append(dt)
        log(f"  client commands, median of {runs} (alternating):")
        for n, v in times.items():
            log(f"    {med_ms(v):6.1f} ms  {n}")
        import_profile([str(DOCKYARD), "-H", f"unix://{eng.dy_sock}", "ps"], env)
        import_profile([str(DOCKYARD), "-H", f"unix://{eng.dy_sock}", "run", "--rm", "--network",
                        "none", IMAGE, "true"], env)
        for runtime in (None, "runc"):
            rs = [api_run(eng.dy_sock, runtime) for _ in range(2 + runs)][2:]
            log(f"  `run --rm true` as API calls from a warm client, "
                f"runtime {runtime or 'default'}, "
                f"median ms: " + ", ".join(f"{k} {med_ms([r[k] for r in rs]):.1f}"
                                           for k in ("create", "start", "wait", "delete", "total")))
        if shutil.which("strace"):
            strace_run(eng, work / "strace.txt")
            strace_run(eng, work / "strace2.txt")
    finally:
        problems = eng.close()
        for p in problems:
            log(f"  left behind (cleaned): {p}")
