#!/usr/bin/env bash
# Install what dockyard's tests, demo and benchmarks need; idempotent and quick when done already.
#   - Debian packages: installed only when missing (dpkg-query first; apt-get update only then).
#   - .venv: created with a Python >= 3.11 if missing; `pip install -e .[test]` re-run only when
#     pyproject.toml is newer than .venv/.installed-stamp.
# Run as root from anywhere; set PYTHON=/path/to/python3 to choose the interpreter.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'install-deps: %s\n' "$*"; }

PACKAGES=(
  busybox-static   # test images and the demo's rootfs
  runc             # the reference runtime (interop tests, bench)
  podman conmon    # foreign engine driving dockyard-runtime; conmon is also dockyard's monitor
  uidmap iproute2 procps util-linux nftables
  libseccomp2
  docker.io        # brings containerd: dockerd as a foreign engine
  skopeo
  hyperfine        # bench
  iperf3           # bench: throughput through a published port
  python3-venv     # lets Debian's python3 make .venv when no pyenv Python is there
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
  [ "$status" = installed ] || missing+=("$pkg")
done

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    say "missing packages: ${missing[*]}; run this script as root" >&2
    exit 1
  fi
  say "installing ${missing[*]}"
  # Keep package scripts from starting services (dockerd, containerd) while installing.
  policy=/usr/sbin/policy-rc.d
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    trap 'rm -f "$policy"' EXIT
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq -o Dpkg::Use-Pty=0 "${missing[@]}" >/dev/null
  say "packages installed"
else
  say "Debian packages present"
fi

find_python() {
  local candidate
  for candidate in ${PYTHON:-} python3.13 python3.12 python3.11 python3 "$HOME/.pyenv/shims/python3"; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      command -v "$candidate"
      return 0
    fi
  done
  return 1
}

if [ ! -x .venv/bin/python ]; then
  py=$(find_python) || { say "no Python >= 3.11 with venv and ensurepip found; set PYTHON=" >&2; exit 1; }
  say "creating .venv with $py ($("$py" -c 'import platform; print(platform.python_version())'))"
  "$py" -m venv .venv
fi

stamp=.venv/.installed-stamp
if [ ! -e "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ ! -x .venv/bin/dockyard-runtime ]; then
  say "pip install -e .[test]"
  .venv/bin/pip install -q --disable-pip-version-check -e '.[test]'
  touch "$stamp"
else
  say ".venv up to date"
fi

# Byte-compile the sources: dockyard-runtime starts once per container, and without .pyc files
# (PYTHONDONTWRITEBYTECODE, read-only checkouts) every start recompiles every module (~30 ms).
.venv/bin/python -m compileall -q src >/dev/null
