"""store.lock: one writer per store (checklist 44), also against a second process."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from dockyard import errors
from dockyard.store import Store
from dockyard.store.lock import StoreLock, lock_store


@pytest.fixture
def store(tmp_path) -> Store:
    s = Store(str(tmp_path / "root"))
    s.ensure()
    return s


def test_second_exclusive_lock_fails_at_once_naming_the_holder(store):
    with lock_store(store) as held:
        assert held.held
        t0 = time.monotonic()
        with pytest.raises(errors.Unavailable) as e:
            lock_store(store)
        assert time.monotonic() - t0 < 0.5
        assert str(e.value) == f"another dockyard process holds {store.lock} (pid {os.getpid()})"
        assert oct(os.stat(store.lock).st_mode & 0o777) == "0o600"
    lock_store(store).release()  # free again


def test_timeout_waits_then_fails(store):
    with lock_store(store):
        t0 = time.monotonic()
        with pytest.raises(errors.Unavailable, match=r"waited 0.3s"):
            lock_store(store, timeout=0.3)
        assert 0.25 <= time.monotonic() - t0 < 2


def test_blocking_acquire_gets_the_lock_once_released(store):
    first = lock_store(store)
    threading.Timer(0.2, first.release).start()
    second = lock_store(store, timeout=None)
    assert second.held
    second.release()


def test_shared_locks_coexist_and_keep_writers_out(store):
    a = lock_store(store, shared=True)
    b = lock_store(store, shared=True)
    with pytest.raises(errors.Unavailable):
        lock_store(store)
    a.release()
    b.release()
    with lock_store(store):
        with pytest.raises(errors.Unavailable):
            lock_store(store, shared=True)


def test_the_lock_dies_with_its_holder(store):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: take the lock, say so, wait to be killed
        try:
            os.close(r)
            lock_store(store)
            os.write(w, b"1")
            time.sleep(60)
        finally:
            os._exit(0)
    os.close(w)
    assert os.read(r, 1) == b"1"
    os.close(r)
    with pytest.raises(errors.Unavailable, match=f"pid {pid}"):
        lock_store(store)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    lock_store(store).release()  # no stale lock after a SIGKILL


def test_misuse(store):
    lock = StoreLock(store.lock)
    lock.acquire()
    with pytest.raises(RuntimeError):
        lock.acquire()
    lock.release()
    lock.release()  # idempotent
    assert not lock.held
