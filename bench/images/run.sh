#!/usr/bin/env bash
# Image benchmarks (issue 3, acceptance items 5 and 2): load of a 200 MB, 5-layer image vs
# `docker load` and `podman load`; page cache of 20 containers reading one 64 MiB file; layer
# sharing on disk. Root only. Env: RUNS (5), WARMUP (1), BUDGET (1200 s for the load rounds),
# CACHE (/var/tmp/dockyard-bench-images: the generated archives, kept between runs),
# ARCHIVES (load.tar,load-gzip.tar), SETTLE (0: seconds of rest after each round's removals),
# PROFILE=1 (also profile `dockyard load`). See README.
set -euo pipefail
cd "$(dirname "$0")/../.."

RUNS=${RUNS:-5}
WARMUP=${WARMUP:-1}
BUDGET=${BUDGET:-1200}
CACHE=${CACHE:-/var/tmp/dockyard-bench-images}
ARCHIVES=${ARCHIVES:-load.tar,load-gzip.tar}
SETTLE=${SETTLE:-0}
. bench/lib.sh
bench_setup images

echo "== images ($CACHE; made once, then reused)"
"$PY" bench/images/images.py prepare "$CACHE" | "$PY" -c \
  'import json,sys; i=json.load(sys.stdin); print(i["ref"], i["image_id"], i["sizes"])'
bench_machine

echo
echo "== load: $RUNS rounds (+$WARMUP warm-up), alternating, budget ${BUDGET}s"
"$PY" bench/images/bench.py load "$work/load" --cache "$CACHE" --runs "$RUNS" \
  --warmup "$WARMUP" --budget "$BUDGET" --archives "$ARCHIVES" --settle "$SETTLE"

echo
echo "== page cache: 20 containers read the same 64 MiB file"
"$PY" bench/images/bench.py pagecache "$work/pagecache"

echo
echo "== on disk: two images on one base"
"$PY" bench/images/bench.py disk "$work/disk"

if [ "${PROFILE:-0}" = 1 ]; then
  echo
  echo "== profile: dockyard load"
  "$PY" bench/images/bench.py profile "$work/profile" --cache "$CACHE" --archive load.tar
  "$PY" bench/images/bench.py profile "$work/profile-gz" --cache "$CACHE" --archive load-gzip.tar
fi
echo
echo "Paste the table rows into bench/RESULTS.md."
