#!/usr/bin/env bash
# Network benchmarks (issue 5, acceptance item 3): dockyard vs a private dockerd (bridge, iptables
# DNAT; userland proxy off, then on) and a private podman (CNI bridge): run --rm busybox true on
# the default bridge, iperf3 through a published port, connect() latency to a published port.
# Root only; run by hand (`make bench-network`), never in CI. Env: RUNS (15), IPERF_SECS (5),
# IPERF_RUNS (3), CONNECTS (2000), ONLY (run,iperf,proxy). See README.
set -euo pipefail
cd "$(dirname "$0")/../.."
. bench/lib.sh
bench_setup net /usr/bin/iperf3

bench_machine
"$PY" bench/network/netbench.py all "$work/all" --runs "${RUNS:-15}" \
  --iperf-secs "${IPERF_SECS:-5}" --iperf-runs "${IPERF_RUNS:-3}" --connects "${CONNECTS:-2000}" \
  --only "${ONLY:-run,iperf,proxy}"
echo
echo "Paste the results into bench/RESULTS.md (section network)."
