#!/usr/bin/env bash
# Engine benchmarks (issue 4, acceptance item 4): dockyard's daemon + CLI vs a private dockerd and
# a private podman: run --rm true, 100 create/start/stop/rm cycles, memory per container with 50
# running, ps with 50 running. Root only; run by hand (`make bench-engine`), never in CI.
# Env: RUNS (15), CYCLES (100), PEER_CYCLES (100), CONTAINERS (50), PS_RUNS (15), ONLY
# (run,cycle,memory,ps), PROFILE=1 (also: where dockyard's time goes). See README.
set -euo pipefail
cd "$(dirname "$0")/../.."
. bench/lib.sh
bench_setup engine

bench_machine
"$PY" bench/engine/bench.py all "$work/all" --runs "${RUNS:-15}" --cycles "${CYCLES:-100}" \
  --peer-cycles "${PEER_CYCLES:-100}" --containers "${CONTAINERS:-50}" --ps-runs "${PS_RUNS:-15}" \
  --only "${ONLY:-run,cycle,memory,ps}"
if [ "${PROFILE:-0}" = 1 ]; then
  echo
  "$PY" bench/engine/bench.py profile "$work/profile"
fi
echo
echo "Paste the table rows into bench/RESULTS.md."
