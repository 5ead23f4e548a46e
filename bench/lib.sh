# Sourced by bench/*/run.sh (from the repository's root): what every benchmark driver needs first.
#
# bench_setup NAME [EXECUTABLE...]: root, the venv's programs (and EXECUTABLEs), sources
# byte-compiled (with PYTHONDONTWRITEBYTECODE a module without a current .pyc is compiled on every
# CLI start: tens of ms), and a fresh work dir /tmp/dockyard-bench-NAME.XXXXXX in $work whose
# mounts are unmounted and which is removed on exit (the bench programs remove what they made;
# this is the last resort if one was killed). Sets PY.
# bench_machine: one line about the machine (kernel, CPUs, RAM, load).

PY=.venv/bin/python

bench_setup() {
  local name=$1 exe
  shift
  [ "$(id -u)" -eq 0 ] || { echo "bench: needs root" >&2; exit 1; }
  for exe in "$PY" .venv/bin/dockyard .venv/bin/dockyard-runtime "$@"; do
    [ -x "$exe" ] || { echo "bench: $exe not found (make deps)" >&2; exit 1; }
  done
  "$PY" -m compileall -q src >/dev/null
  work=$(mktemp -d "/tmp/dockyard-bench-$name.XXXXXX")
  trap bench_cleanup EXIT
}

bench_cleanup() {
  local m
  for m in $(awk -v p="$work" '$5 == p || index($5, p "/") == 1 {print $5}' /proc/self/mountinfo |
             sort -r); do
    umount -l "$m" 2>/dev/null || true
  done
  rm -rf "$work"
}

bench_machine() {
  echo "$(uname -r), $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.0f GiB RAM", $2/1048576}' /proc/meminfo), load $(cut -d' ' -f1-3 /proc/loadavg)"
}
