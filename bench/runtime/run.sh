#!/usr/bin/env bash
# runc vs dockyard-runtime: `run` of a busybox `true`, and create/start/delete. Root only.
# Env: RUNS (default 30), RUNC, DOCKYARD (executables). See bench/runtime/README.
set -euo pipefail
cd "$(dirname "$0")/../.."

RUNS=${RUNS:-30}
RUNC=${RUNC:-$(command -v runc || echo /usr/sbin/runc)}
DOCKYARD=${DOCKYARD:-$PWD/.venv/bin/dockyard-runtime}
PY=.venv/bin/python

[ "$(id -u)" -eq 0 ] || { echo "bench: needs root" >&2; exit 1; }
for exe in "$RUNC" "$DOCKYARD" "$PY"; do
  [ -x "$exe" ] || { echo "bench: $exe not found (make deps)" >&2; exit 1; }
done

dir=$(mktemp -d /tmp/dockyard-bench.XXXXXX)
cleanup() {
  local name rt state
  for name in runc dockyard; do
    rt=$([ $name = runc ] && echo "$RUNC" || echo "$DOCKYARD")
    for state in "$dir/state-$name"/*/; do
      [ -d "$state" ] || continue
      "$rt" --root "$dir/state-$name" delete --force "$(basename "$state")" >/dev/null 2>&1 || true
    done
  done
  rmdir /sys/fs/cgroup/*/dockyard-bench /sys/fs/cgroup/dockyard-bench 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT

"$PY" bench/runtime/bench.py prepare "$dir"
echo "bundle: $dir/bundle (busybox, process: true); $(uname -r), $(nproc) CPUs"

# One run each first, so a runtime that cannot run the bundle says why (hyperfine would not).
for name in runc dockyard; do
  rt=$([ $name = runc ] && echo "$RUNC" || echo "$DOCKYARD")
  out=$("$rt" --root "$dir/state-$name" run --bundle "$dir/bundle" "check-$name" 2>&1 </dev/null) ||
    { echo "bench: $name cannot run the bundle: $out" >&2; exit 1; }
done

if command -v hyperfine >/dev/null; then
  echo
  echo "== hyperfine (each command's runs back to back, not interleaved)"
  hyperfine -N --warmup 2 --runs "$RUNS" --export-markdown "$dir/hyperfine.md" \
    -n runc "$RUNC --root $dir/state-runc run --bundle $dir/bundle hf-runc" \
    -n dockyard-runtime "$DOCKYARD --root $dir/state-dockyard run --bundle $dir/bundle hf-dockyard"
  cat "$dir/hyperfine.md"
else
  echo "(hyperfine not installed: skipping its run)"
fi

echo
echo "== alternating, $RUNS runs each"
"$PY" bench/runtime/bench.py compare "$dir" --runs "$RUNS" --runc "$RUNC" --dockyard "$DOCKYARD"
echo
echo "Paste the table rows into bench/RESULTS.md."
