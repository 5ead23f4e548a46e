"""Terminals: a pty made inside the container's devpts, its master sent over a console socket.

runc's protocol: the caller passes ``--console-socket PATH`` (a listening unix socket); the runtime
connects, and the init sends the pty master as SCM_RIGHTS ancillary data. When no console socket is
given (foreground ``run -t``/``exec -t``), the runtime itself receives the master through a
socketpair and copies between its own stdio and the pty.
"""

from __future__ import annotations

import fcntl
import os
import socket
import struct
import termios

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

TIOCGPTN = 0x80045430
TIOCSPTLCK = 0x40045431


def open_pty() -> tuple[int, str]:
    """A new pty pair in the devpts mounted at /dev/pts of the current root: (master fd, slave path)."""
    master = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))
    (n,) = struct.unpack("I", fcntl.ioctl(master, TIOCGPTN, struct.pack("I", 0)))
    return master, f"/dev/pts/{n}"


def set_size(fd: int, height: int, width: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))


def send_master(sock: socket.socket, master: int) -> None:
    socket.send_fds(sock, [b"/dev/ptmx"], [master])


def send_master_fd(sock_fd: int, master: int) -> None:
    """Send over a connected unix socket given as a bare fd (the fd stays open)."""
    sock = socket.socket(fileno=os.dup(sock_fd))
    try:
        send_master(sock, master)
    finally:
        sock.close()


def recv_master(sock: socket.socket) -> int:
    _msg, fds, _flags, _addr = socket.recv_fds(sock, 4096, 1)
    if not fds:
        raise OSError("console socket: no pty master received")
    return fds[0]


def connect_console_socket(path: str) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    return s


def become_controlling(slave_path: str) -> None:
    """In the container process: new session, the slave as controlling tty and stdio."""
    if os.getsid(0) != os.getpid():
        os.setsid()
    fd = os.open(slave_path, os.O_RDWR)
    fcntl.ioctl(fd, termios.TIOCSCTTY, 0)
    for n in (0, 1, 2):
        os.dup2(fd, n)
    if fd > 2:
        os.close(fd)


def copy_loop(master: int, child_done: Callable[[], bool]) -> None:
    """Copy our stdin to the pty and the pty to our stdout until the pty closes.

    Our terminal (if stdin is one) is in raw mode meanwhile and its size follows ours (SIGWINCH).
    """
    import selectors
    import signal
    import tty

    stdin_tty = os.isatty(0)
    saved = termios.tcgetattr(0) if stdin_tty else None

    def resize(*_a: object) -> None:
        try:
            packed = fcntl.ioctl(0 if stdin_tty else 1, termios.TIOCGWINSZ, b"\0" * 8)
            fcntl.ioctl(master, termios.TIOCSWINSZ, packed)
        except OSError:
            pass

    if stdin_tty:
        tty.setraw(0)
        resize()
        signal.signal(signal.SIGWINCH, resize)
    sel = selectors.DefaultSelector()
    sel.register(master, selectors.EVENT_READ)
    stdin_open = True
    try:
        sel.register(0, selectors.EVENT_READ)
    except (ValueError, PermissionError, OSError):
        stdin_open = False
    try:
        while True:
            for key, _ev in sel.select(0.5):
                if key.fd == master:
                    try:
                        data = os.read(master, 65536)
                    except OSError:
                        data = b""
                    if not data:
                        return
                    os.write(1, data)
                elif stdin_open:
                    data = os.read(0, 65536)
                    if not data:
                        sel.unregister(0)
                        stdin_open = False
                        os.write(master, b"\x04")  # EOF at the line discipline
                    else:
                        os.write(master, data)
            if child_done():
                # drain what is left, then stop
                while True:
                    try:
                        data = os.read(master, 65536) if sel.select(0) else b""
                    except OSError:
                        data = b""
                    if not data:
                        return
                    os.write(1, data)
    finally:
        sel.close()
        if saved is not None:
            termios.tcsetattr(0, termios.TCSADRAIN, saved)
