#!/usr/bin/env bash
# Part 1: run one busybox container with dockyard-runtime and explain what it shows from inside.
# Part 2: the engine: a private `dockyard daemon`, a busybox image bootstrapped through it, a busybox
# httpd web container (`dockyard run -d --network host -v ...`) serving a page on 127.0.0.1, seen
# in `dockyard ps`, fetched from the host, stopped and removed; the daemon is stopped at the end.
# Root only. RUNTIME=/usr/sbin/runc bash scripts/demo.sh runs part 1 with runc.
# Exits 0 (and prints "demo: ok") only if the container saw itself as PID 1 and the page answered.
# Everything lives in one temporary directory and is removed on the way out, whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."

RT=${RUNTIME:-.venv/bin/dockyard-runtime}
PY=.venv/bin/python
heading() { printf '\n== %s\n' "$*"; }
die() { printf 'demo: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "needs root (namespaces, cgroups, mounts)"
[ -x /bin/busybox ] || die "needs /bin/busybox (apt-get install busybox-static, or make deps)"
[ -x "$RT" ] || die "no runtime at $RT (make deps)"

bundle=$(mktemp -d /tmp/dockyard-demo.XXXXXX)
state="$bundle/state"          # a private --root, so the demo touches no shared runtime state
id="demo-$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')"
store="$bundle/store"          # the demo daemon's private --root
exec_root="$bundle/exec"       # ... its private --exec-root (runtime state, exit files)
sock="$bundle/dockyard.sock"   # ... and its private socket
web="$bundle/www"              # the host directory the web container serves (bind-mounted)
PORT=18080
DY=.venv/bin/dockyard
dy() { "$DY" -H "unix://$sock" "$@"; }
daemon_pid=
# the container monitors (conmon) of the demo daemon: their command line names its exit dir
monitors() {
  local f
  for f in /proc/[0-9]*/cmdline; do
    case "$( { tr '\0' ' ' <"$f"; } 2>/dev/null)" in
      *"--exit-dir $exec_root/exits "*) f=${f#/proc/}; echo "${f%/cmdline}" ;;
    esac
  done
}
stop_daemon() {
  if [ -n "$daemon_pid" ]; then kill -TERM "$daemon_pid" 2>/dev/null || true; wait "$daemon_pid" || true; fi
  daemon_pid=
}
cleanup() {
  set +e  # best effort: every step runs
  if [ -n "$daemon_pid" ]; then dy rm -f web >/dev/null 2>&1 || true; fi
  stop_daemon
  "$RT" --root "$state" delete --force "$id" >/dev/null 2>&1 || true
  # a daemon that died mid-demo: end its container's runtime state and monitor, unmount its rootfs
  for st in "$exec_root"/runtimes/*/*; do
    [ -d "$st" ] || continue
    .venv/bin/dockyard-runtime --root "$(dirname "$st")" delete --force "$(basename "$st")" >/dev/null 2>&1 || true
  done
  for pid in $(monitors); do kill -KILL "$pid" 2>/dev/null || true; done
  grep -o " $bundle/[^ ]*" /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m"; done
  rmdir /sys/fs/cgroup/*/dockyard-demo /sys/fs/cgroup/dockyard-demo 2>/dev/null || true
  rmdir /sys/fs/cgroup/*/dockyard /sys/fs/cgroup/dockyard 2>/dev/null || true  # only if empty
  rm -rf "$bundle"
}
trap cleanup EXIT

heading "1. a busybox root filesystem in $bundle/rootfs"
mkdir -p "$bundle/rootfs/bin"
cp /bin/busybox "$bundle/rootfs/bin/busybox"
for applet in $(/bin/busybox --list); do
  [ "$applet" = busybox ] || ln -s busybox "$bundle/rootfs/bin/$applet"
done
mkdir -p "$bundle"/rootfs/{proc,sys,dev,tmp,etc}
echo "bin/busybox (static) + $(find "$bundle/rootfs/bin" -type l | wc -l) applet links; empty proc sys dev tmp etc"

heading "2. config.json: '$(basename "$RT") spec', then our changes"
"$RT" spec --bundle "$bundle"
# What the container runs. Single quotes: $(hostname) and $$ are expanded inside the container.
cmd='echo hostname: $(hostname)
echo pid: $$
echo memory limit: $(cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max)
grep Cap /proc/self/status
echo network:
ip link 2>/dev/null | head -3'
"$PY" - "$bundle/config.json" "$cmd" "$id" <<'PY'
import json, sys
path, cmd, cid = sys.argv[1:]
with open(path) as f:
    spec = json.load(f)
spec["process"]["args"] = ["sh", "-c", cmd]
spec["process"]["terminal"] = False
spec["hostname"] = "dockyard-demo"
spec["linux"].setdefault("resources", {})["memory"] = {"limit": 64 * 1024 * 1024}
spec["linux"]["cgroupsPath"] = f"/dockyard-demo/{cid}"
with open(path, "w") as f:
    json.dump(spec, f, indent=2)
print(f"args: sh -c <the commands below>\nhostname: dockyard-demo\nmemory limit: 64 MiB\n"
      f"cgroupsPath: /dockyard-demo/{cid}\n\n{cmd}")
PY

heading "3. $(basename "$RT") run --bundle $bundle $id"
"$RT" --root "$state" run --bundle "$bundle" "$id" </dev/null | tee "$bundle/out"

heading "4. what that shows"
out="$bundle/out"
field() { sed -n "s/^$1:[[:space:]]*//p" "$out" | head -1; }
ncaps() { "$PY" -c 'import sys; print(bin(int(sys.argv[1], 16)).count("1"))' "${1:-0}"; }
echo "hostname: $(field hostname)  - its own UTS namespace; the host is still $(hostname)"
echo "pid: $(field pid)  - the shell is PID 1 of a new PID namespace (on the host it has another pid)"
echo "memory limit: $(field 'memory limit')  - 64 MiB, enforced by the cgroup /dockyard-demo/$id"
inside=$(field CapBnd)
host=$(sed -n 's/^CapBnd:[[:space:]]*//p' /proc/self/status)
echo "CapBnd: $inside  - $(ncaps "$inside") capabilities left in the bounding set;" \
     "the host has $host ($(ncaps "$host"))"
echo "network: only the loopback device - a network namespace of its own, nothing attached yet"

grep -qx 'pid: 1' "$out" || die "the container did not report pid: 1"

heading "5. the engine: dockyard daemon --root $store --exec-root $exec_root -H unix://$sock"
if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
  die "something already listens on 127.0.0.1:$PORT; stop it and run the demo again"
fi
"$DY" daemon --root "$store" --exec-root "$exec_root" -H "unix://$sock" --log-level warn &
daemon_pid=$!
for _ in $(seq 100); do dy version >/dev/null 2>&1 && break; sleep 0.1; done
dy version >/dev/null || die "the daemon did not start"
echo "daemon pid $daemon_pid; every command below is a client of it (the Docker Engine API)"

heading "6. dockyard image bootstrap busybox (an image from the host's static busybox)"
dy image bootstrap busybox
dy images

heading "7. a web container: busybox httpd serving $web on 127.0.0.1:$PORT"
mkdir -p "$web"
echo '<h1>hello from a dockyard container</h1>' > "$web/index.html"
echo "\$ dockyard run -d --name web --init --network host -v $web:/www:ro busybox httpd -f -p 127.0.0.1:$PORT -h /www"
dy run -d --name web --init --network host -v "$web:/www:ro" busybox \
  httpd -f -p "127.0.0.1:$PORT" -h /www
echo '$ dockyard ps'
dy ps

heading "8. the page, fetched from the host"
echo "GET http://127.0.0.1:$PORT/ (from the host, Python's urllib)"
page=$("$PY" - "$PORT" <<'PY'
import sys, time, urllib.request
url = f"http://127.0.0.1:{sys.argv[1]}/"
for _ in range(100):  # httpd needs a moment to listen
    try:
        print(urllib.request.urlopen(url, timeout=2).read().decode().strip())
        break
    except OSError:
        time.sleep(0.05)
PY
)
echo "$page"
[ "$page" = "$(cat "$web/index.html")" ] || die "the web page did not answer"

heading "9. dockyard stop web, dockyard rm web, stop the daemon"
echo '$ dockyard stop web'
dy stop web
echo "\$ dockyard ps -a --format 'table {{.Names}}\t{{.Status}}'"
dy ps -a --format 'table {{.Names}}\t{{.Status}}'
echo '$ dockyard rm web'
dy rm web
[ -z "$(dy ps -aq)" ] || die "a container is left"
stop_daemon
[ -z "$(monitors)" ] || die "a container monitor is left"
echo "stopped; nothing left running"
echo
echo "demo: ok"
