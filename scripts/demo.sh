#!/usr/bin/env bash
# Part 1: run one busybox container with dockyard-runtime and explain what it shows from inside.
# Part 2: bootstrap a busybox image into a dockyard image store and serve a web page from it on
# 127.0.0.1. Root only. RUNTIME=/usr/sbin/runc bash scripts/demo.sh runs part 1 with runc.
# Exits 0 only if the container saw itself as PID 1 and the web page answered.
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
store="$bundle/store"          # a private image store (dockyard daemon --root)
sock="$bundle/dockyard.sock"   # its daemon's private socket
daemon_pid=
stop_daemon() {
  if [ -n "$daemon_pid" ]; then kill -TERM "$daemon_pid" 2>/dev/null || true; wait "$daemon_pid" || true; fi
  daemon_pid=
}
cleanup() {
  stop_daemon
  "$RT" --root "$state" delete --force "$id" >/dev/null 2>&1 || true
  "$RT" --root "$state" delete --force demo-web >/dev/null 2>&1 || true
  rmdir /sys/fs/cgroup/*/dockyard-demo /sys/fs/cgroup/dockyard-demo 2>/dev/null || true
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

DY=.venv/bin/dockyard
heading "5. an image: dockyard daemon --root $store, then dockyard -H unix://$sock image bootstrap busybox"
"$DY" daemon --root "$store" -H "unix://$sock" --log-level warn &
daemon_pid=$!
for _ in $(seq 100); do "$DY" -H "unix://$sock" version >/dev/null 2>&1 && break; sleep 0.1; done
"$DY" -H "unix://$sock" version >/dev/null || die "the daemon did not start"
"$DY" -H "unix://$sock" image bootstrap busybox
"$DY" -H "unix://$sock" images
"$DY" -H "unix://$sock" history busybox
stop_daemon                    # demo_web.py opens the store itself (one user at a time)

heading "6. a web service from that image (httpd on 127.0.0.1:18080, overlay rootfs)"
"$PY" scripts/demo_web.py "$store" "$state" "$RT" 18080 || die "the web page did not answer"
echo
echo "demo: ok"
