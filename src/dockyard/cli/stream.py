"""The terminal side of ``run``/``attach``/``exec``: a hijacked stream pumped both ways.

Output (the socket) goes to stdout/stderr: raw with a TTY, demultiplexed from Docker's 8-byte
frames without one. Input (stdin, when attached) goes to the socket on a thread; its end closes
the socket's write side (the container sees EOF). With ``-t`` and a terminal on stdin, the
terminal is put in raw mode for the stream's life and restored after, the window size is sent
at start and on SIGWINCH, and the detach keys (default ctrl-p,ctrl-q) leave the container
running. Without a TTY, ``--sig-proxy`` forwards SIGINT/SIGTERM/SIGHUP/SIGQUIT/SIGUSR1/SIGUSR2 to
the container through ``kill``.
"""

from __future__ import annotations

import os

import _signal  # the C module: signal.py's enums cost ~2 ms per command
import _socket  # socket.py's enums and selectors cost ~4 ms per command; the C module is all we use

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket
    from collections.abc import Callable

DEFAULT_DETACH_KEYS = "ctrl-p,ctrl-q"
_PROXIED = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2")


def parse_detach_keys(text: str) -> bytes:
    """``ctrl-p,ctrl-q`` → b"\\x10\\x11" (docker's term.ToBytes: ``ctrl-a``..``ctrl-z``,
    ``ctrl-@``, ``ctrl-[``, ``ctrl-\\``, ``ctrl-]``, ``ctrl-^``, ``ctrl-_`` and single characters)."""
    out = bytearray()
    for key in text.split(","):
        k = key.strip().lower()
        if k.startswith("ctrl-") and len(k) == 6:
            c = k[5]
            if "a" <= c <= "z":
                out.append(ord(c) - ord("a") + 1)
            elif c in "@[\\]^_":
                out.append(ord(c) - ord("@"))
            else:
                raise ValueError(f"invalid detach keys: {text}")
        elif len(key) == 1:
            out += key.encode()
        else:
            raise ValueError(f"invalid detach keys: {text}")
    return bytes(out)


def terminal_size(fd: int = 1) -> tuple[int, int]:
    """(rows, columns) of the terminal on ``fd``; (0, 0) when it is not one."""
    try:
        size = os.get_terminal_size(fd)
    except OSError:
        return 0, 0
    return size.lines, size.columns


class RawTerminal:
    """Context manager: ``fd`` in raw mode (when it is a terminal), restored on exit."""

    def __init__(self, fd: int, enabled: bool = True) -> None:
        self.fd, self.enabled, self._saved = fd, enabled, None

    def __enter__(self) -> RawTerminal:
        if self.enabled and os.isatty(self.fd):
            import termios
            import tty

            self._saved = termios.tcgetattr(self.fd)
            tty.setraw(self.fd)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._saved is not None:
            import termios

            termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)
            self._saved = None


class Signals:
    """Install handlers for a stream's life; the previous handlers come back on exit."""

    def __init__(self) -> None:
        self._saved: list[tuple[int, object]] = []

    def on(self, name: str, handler: Callable[[str], None]) -> None:
        num = getattr(_signal, name, None)
        if num is None:
            return
        try:
            old = _signal.signal(num, lambda *_: handler(name))
        except ValueError:  # not the main thread: signals stay as they are
            return
        self._saved.append((num, old))

    def __enter__(self) -> Signals:
        return self

    def __exit__(self, *exc: object) -> None:
        for num, old in reversed(self._saved):
            _signal.signal(num, old)  # type: ignore[arg-type]
        self._saved.clear()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


class Pump:
    """Copy a hijacked stream to (out_fd, err_fd) and, when ``in_fd`` is given, ``in_fd`` to it."""

    def __init__(self, sock: socket.socket, buffered: bytes, *, tty: bool, out_fd: int = 1,
                 err_fd: int = 2, in_fd: int | None = None, detach_keys: bytes = b"") -> None:
        self.sock, self.buffered, self.tty = sock, buffered, tty
        self.out_fd, self.err_fd, self.in_fd = out_fd, err_fd, in_fd
        self.detach_keys = detach_keys
        self.detached = False
        self._stop_r, self._stop_w = os.pipe()

    def run(self) -> None:
        """Until the daemon ends the stream (or the detach keys are typed)."""
        feeder = None
        if self.in_fd is not None:
            import threading  # only with stdin attached: ~2 ms to import

            feeder = threading.Thread(target=self._feed, name="stdin", daemon=True)
            feeder.start()
        try:
            if self.tty:
                self._copy_raw()
            else:
                self._copy_frames()
        except OSError:
            if not self.detached:
                raise
        finally:
            os.write(self._stop_w, b"x")
            if feeder is not None:
                feeder.join(0.5)
            os.close(self._stop_r)
            os.close(self._stop_w)

    def _recv(self, n: int = 65536) -> bytes:
        if self.buffered:
            out, self.buffered = self.buffered[:n], self.buffered[n:]
            return out
        return self.sock.recv(n)

    def _copy_raw(self) -> None:
        while True:
            chunk = self._recv()
            if not chunk:
                return
            _write_all(self.out_fd, chunk)

    def _copy_frames(self) -> None:
        buf = b""
        while True:
            chunk = self._recv()
            if not chunk:
                return
            buf += chunk
            while len(buf) >= 8:
                size = int.from_bytes(buf[4:8], "big")
                if len(buf) < 8 + size:
                    break
                stream, data, buf = buf[0], buf[8:8 + size], buf[8 + size:]
                if data:
                    _write_all(self.err_fd if stream == 2 else self.out_fd, data)

    def _feed(self) -> None:
        import select

        keys, held = self.detach_keys, b""
        try:
            while True:
                ready, _, _ = select.select([self.in_fd, self._stop_r], [], [])
                if self._stop_r in ready:
                    return
                data = os.read(self.in_fd, 65536)  # type: ignore[arg-type]
                if not data:
                    self.sock.shutdown(_socket.SHUT_WR)
                    return
                if keys:
                    out = bytearray()
                    for b in data:
                        candidate = held + bytes((b,))
                        if keys.startswith(candidate):
                            held = candidate
                            if held == keys:
                                if out:  # what was typed before the keys still goes
                                    self.sock.sendall(bytes(out))
                                self.detached = True
                                self.sock.shutdown(_socket.SHUT_RDWR)
                                return
                        else:
                            out += candidate
                            held = b""
                    data = bytes(out)
                if data:
                    self.sock.sendall(data)
        except OSError:
            return
