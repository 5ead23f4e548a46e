#!/usr/bin/env bash
# Network benchmarks (issue 5, acceptance item 3): dockyard vs a private dockerd (bridge, iptables
# DNAT; userland proxy off, then on) and a private podman (CNI bridge): run --rm busybox true on
# the default bridge, iperf3 through a published port, connect() latency to a published port.
# Root only; run by hand (`make bench-network`), never in CI. Env: RUNS (15), IPERF_SECS (5),
# IPERF_RUNS (3), CONNECTS (2000), ONLY (run,iperf,proxy). See README.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=.venv/bin/python

[ "$(id -u)" -eq 0 ] || { echo "bench: needs root" >&2; exit 1; }
for exe in "$PY" .venv/bin/dockyard .venv/bin/dockyard-runtime /usr/bin/iperf3; do
  [ -x "$exe" ] || { echo "bench: $exe not found" >&2; exit 1; }
done
"$PY" -m compileall -q src >/dev/null

work=$(mktemp -d /tmp/dockyard-bench-net.XXXXXX)
cleanup() {
  local m
  for m in $(awk -v p="$work" '$5 == p || index($5, p "/") == 1 {print $5}' /proc/self/mountinfo |
             sort -r); do
    umount -l "$m" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

echo "$(uname -r), $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.0f GiB RAM", $2/1048576}' /proc/meminfo), load $(cut -d' ' -f1-3 /proc/loadavg)"
"$PY" bench/network/netbench.py all "$work/all" --runs "${RUNS:-15}" \
  --iperf-secs "${IPERF_SECS:-5}" --iperf-runs "${IPERF_RUNS:-3}" --connects "${CONNECTS:-2000}" \
  --only "${ONLY:-run,iperf,proxy}"
echo
echo "Paste the results into bench/RESULTS.md (section network)."
