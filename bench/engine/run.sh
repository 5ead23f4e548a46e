#!/usr/bin/env bash
# Engine benchmarks (issue 4, acceptance item 4): dockyard's daemon + CLI vs a private dockerd and
# a private podman: run --rm true, 100 create/start/stop/rm cycles, memory per container with 50
# running, ps with 50 running. Root only; run by hand (`make bench-engine`), never in CI.
# Env: RUNS (15), CYCLES (100), PEER_CYCLES (100), CONTAINERS (50), PS_RUNS (15), ONLY
# (run,cycle,memory,ps), PROFILE=1 (also: where dockyard's time goes). See README.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=.venv/bin/python

[ "$(id -u)" -eq 0 ] || { echo "bench: needs root" >&2; exit 1; }
for exe in "$PY" .venv/bin/dockyard .venv/bin/dockyard-runtime; do
  [ -x "$exe" ] || { echo "bench: $exe not found (make deps)" >&2; exit 1; }
done
# byte-compile: with PYTHONDONTWRITEBYTECODE a module without a current .pyc is compiled on every
# CLI start (tens of ms); `make deps` does the same
"$PY" -m compileall -q src >/dev/null

work=$(mktemp -d /tmp/dockyard-bench-engine.XXXXXX)
cleanup() {
  # bench.py removes what it started; this is the last resort if it was killed
  local m
  for m in $(awk -v p="$work" '$5 == p || index($5, p "/") == 1 {print $5}' /proc/self/mountinfo |
             sort -r); do
    umount -l "$m" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

echo "$(uname -r), $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.0f GiB RAM", $2/1048576}' /proc/meminfo), load $(cut -d' ' -f1-3 /proc/loadavg)"
"$PY" bench/engine/bench.py all "$work/all" --runs "${RUNS:-15}" --cycles "${CYCLES:-100}" \
  --peer-cycles "${PEER_CYCLES:-100}" --containers "${CONTAINERS:-50}" --ps-runs "${PS_RUNS:-15}" \
  --only "${ONLY:-run,cycle,memory,ps}"
if [ "${PROFILE:-0}" = 1 ]; then
  echo
  "$PY" bench/engine/bench.py profile "$work/profile"
fi
echo
echo "Paste the table rows into bench/RESULTS.md."
