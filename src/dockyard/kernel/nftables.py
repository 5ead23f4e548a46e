"""libnftables through ctypes: nft command text run in this process, as ``nft -f -`` would.

Why: a published port changes dockyard's table at every start and exit of its container, and an
``nft`` process (fork, exec, loading its libraries and parsing the ruleset) took ~17 ms of each;
the library call is the same parser and the same netlink transaction without the process. Why by
hand: the upstream Python binding (python3-nftables) ships only as a Debian package for the
system's Python, not on PyPI, and the C API it wraps is the six functions below
(``/usr/include/nftables/libnftables.h``).

Each ``run`` uses its own context (``nft_ctx_new``), so threads never share one. ``ctypes`` and the
library are loaded on first use; ``available()`` says whether the library is there at all (the
caller falls back to the ``nft`` tool when it is not).
"""

from __future__ import annotations

from dockyard.errors import FailedPrecondition, KernelError

SONAME = "libnftables.so.1"
NFT_CTX_DEFAULT = 0


class LibNftables:
    """The loaded library with typed entry points."""

    def __init__(self) -> None:
        import ctypes

        try:
            lib = ctypes.CDLL(SONAME, use_errno=True)
        except OSError as e:
            raise FailedPrecondition(f"nftables: cannot load {SONAME} ({e}); "
                                     "install libnftables1 or the nftables package") from None
        lib.nft_ctx_new.restype = ctypes.c_void_p
        lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
        lib.nft_ctx_free.restype = None
        lib.nft_ctx_free.argtypes = [ctypes.c_void_p]
        for name in ("nft_ctx_buffer_output", "nft_ctx_buffer_error"):
            getattr(lib, name).restype = ctypes.c_int
            getattr(lib, name).argtypes = [ctypes.c_void_p]
        for name in ("nft_ctx_get_output_buffer", "nft_ctx_get_error_buffer"):
            getattr(lib, name).restype = ctypes.c_char_p
            getattr(lib, name).argtypes = [ctypes.c_void_p]
        lib.nft_run_cmd_from_buffer.restype = ctypes.c_int
        lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        self.lib = lib

    def run(self, text: str, what: str) -> str:
        """Run ``text`` (one transaction, like ``nft -f -``); its output. On failure a
        ``KernelError`` "<what>: nft failed: <nft's error text>"."""
        lib = self.lib
        ctx = lib.nft_ctx_new(NFT_CTX_DEFAULT)
        if not ctx:
            raise KernelError(f"{what}: nft_ctx_new", 12)
        try:
            if lib.nft_ctx_buffer_output(ctx) or lib.nft_ctx_buffer_error(ctx):
                raise KernelError(f"{what}: nft_ctx_buffer_output", 12)
            rc = lib.nft_run_cmd_from_buffer(ctx, text.encode())
            out = (lib.nft_ctx_get_output_buffer(ctx) or b"").decode(errors="replace")
            if rc != 0:
                err = (lib.nft_ctx_get_error_buffer(ctx) or b"").decode(errors="replace")
                e = KernelError(what, 22)
                e.args = (f"{what}: nft failed: {err.strip() or f'status {rc}'}",)
                raise e
            return out
        finally:
            lib.nft_ctx_free(ctx)


_LIB: LibNftables | None = None


def libnftables() -> LibNftables:
    """The process-wide binding, loaded on first use. Raises ``FailedPrecondition`` if absent."""
    global _LIB
    if _LIB is None:
        _LIB = LibNftables()
    return _LIB


def available() -> bool:
    try:
        libnftables()
    except FailedPrecondition:
        return False
    return True
