"""Apply dockyard's nftables table: one atomic transaction each, through libnftables in this
process (``kernel/nftables.py``: no process per change) or, where the library is missing, the
``nft`` tool (``nft -f -``). Both give the same errors: "<what>: nft failed: <nft's text>"."""

from __future__ import annotations

import subprocess

from dockyard.errors import KernelError, Unavailable
from dockyard.network.firewall import FAMILY, TABLE, removal

NFT = "/usr/sbin/nft"


def _tool(args: list[str], text: str | None, what: str, nft: str) -> str:
    try:
        proc = subprocess.run([nft, *args], input=text, capture_output=True, text=True,
                              timeout=30)
    except FileNotFoundError:
        raise Unavailable(f"{what}: {nft} not found (install nftables)") from None
    if proc.returncode != 0:
        err = KernelError(what, 22)
        err.args = (f"{what}: nft failed: {proc.stderr.strip()}",)
        raise err
    return proc.stdout


def _run(text: str, what: str, nft: str) -> str:
    """``text`` as one transaction: the library when this is the default ``nft`` (a test may
    name another executable), else the tool."""
    if nft == NFT:
        from dockyard.kernel import nftables

        if nftables.available():
            return nftables.libnftables().run(text, what)
    return _tool(["-f", "-"], text, what, nft)


def apply(text: str, nft: str = NFT) -> None:
    """Run ``text`` (from ``firewall.render``) as one atomic transaction."""
    _run(text, f"apply nftables table {FAMILY} {TABLE}", nft)


def remove(table: str = TABLE, nft: str = NFT) -> None:
    """Delete dockyard's table; nothing happens when it is absent."""
    _run(removal(table), f"remove nftables table {FAMILY} {table}", nft)


def current(table: str = TABLE, nft: str = NFT) -> str | None:
    """``nft list table inet dockyard`` output, or None when the table does not exist."""
    try:
        return _run(f"list table {FAMILY} {table}", f"list nftables table {FAMILY} {table}", nft)
    except KernelError:
        return None
