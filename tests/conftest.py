"""Fixtures shared by every test directory, and the session's leak check.

Fixtures (see tests/helpers.py for the classes):
  busybox_rootfs  session  Path of a read-only busybox rootfs (host /bin/busybox + applet links)
  make_bundle     function factory: make_bundle(args=None, *, id=None, private_rootfs=False,
                           **overrides) -> Bundle(path, id, config, rootfs)
  bundle          function the same factory as make_bundle
  runtime         function Runtime for dockyard-runtime (or runc via indirect parametrization:
                           @pytest.mark.parametrize("runtime", ["runc"], indirect=True))
  any_runtime     function Runtime, parametrized over dockyard and runc (runc marked interop)
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from helpers import (  # noqa: E402
    Runtime,
    build_busybox_rootfs,
    host_snapshot,
    make_bundle as _make_bundle,
    new_objects,
    remove_test_cgroup_parents,
    runtime_binary,
)

TESTS = Path(__file__).parent
NEEDS_ROOT = ("integration", "interop")
_LEAKS = pytest.StashKey[dict]()


# --------------------------------------------------------------------------------------------------
# collection: root-only directories skip cleanly; tests/interop is marked interop

def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    not_root = os.geteuid() != 0
    for item in items:
        try:
            top = item.path.relative_to(TESTS).parts[0]
        except ValueError:
            continue
        if top == "interop":
            item.add_marker(pytest.mark.interop)
        if not_root and top in NEEDS_ROOT:
            item.add_marker(pytest.mark.skip(reason=f"tests/{top} needs root"))


# --------------------------------------------------------------------------------------------------
# the leak check

@pytest.fixture(scope="session", autouse=True)
def _leak_check(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """Snapshot dockyard's kinds of host objects; after the session, record any new ones."""
    basetemp = tmp_path_factory.getbasetemp()
    before = host_snapshot(basetemp)
    yield
    if os.geteuid() == 0:
        remove_test_cgroup_parents()
    request.config.stash[_LEAKS] = new_objects(before, basetemp)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if session.config.stash.get(_LEAKS, None) and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    leaks = config.stash.get(_LEAKS, None)
    if not leaks:
        return
    tr = terminalreporter
    tr.write_sep("=", "LEAK CHECK FAILED: the session left these behind", red=True, bold=True)
    for kind, items in sorted(leaks.items()):
        tr.write_line(f"{kind}:")
        for item in sorted(items):
            tr.write_line(f"    {item}")
    tr.write_line("(new since the session started and still there after a few seconds; "
                  "the run fails even if every test passed)")


# --------------------------------------------------------------------------------------------------
# rootfs, bundles, runtimes

@pytest.fixture(scope="session")
def busybox_rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A busybox rootfs built once per session. Shared: treat it as read-only."""
    if not Path("/bin/busybox").exists():
        pytest.skip("needs host /bin/busybox (Debian package busybox-static)")
    return build_busybox_rootfs(tmp_path_factory.mktemp("busybox") / "rootfs")


@pytest.fixture
def make_bundle(tmp_path: Path, busybox_rootfs: Path):
    """Factory: make_bundle(args=None, *, id=None, private_rootfs=False, **overrides) -> Bundle.

    Each call writes a new bundle directory under tmp_path; see helpers.make_bundle.
    """
    count = 0

    def factory(args: list[str] | None = None, **kwargs):
        nonlocal count
        count += 1
        return _make_bundle(tmp_path / f"bundle{count}", busybox_rootfs, args, **kwargs)

    return factory


@pytest.fixture
def bundle(make_bundle):
    """The same factory as make_bundle, under the shorter name."""
    return make_bundle


def _runtime(name: str, tmp_path: Path):
    binary = runtime_binary(name)
    if not binary.exists():
        pytest.skip(f"{name} runtime not installed at {binary}")
    rt = Runtime(binary, tmp_path / f"{name}-state", name=name)
    yield rt
    rt.cleanup()


@pytest.fixture
def runtime(request: pytest.FixtureRequest, tmp_path: Path):
    """dockyard-runtime with a private --root; indirect-parametrize with "runc" to get runc."""
    yield from _runtime(getattr(request, "param", "dockyard"), tmp_path)


@pytest.fixture(params=["dockyard", pytest.param("runc", marks=pytest.mark.interop)])
def any_runtime(request: pytest.FixtureRequest, tmp_path: Path):
    """The same test against dockyard-runtime and runc."""
    yield from _runtime(request.param, tmp_path)
