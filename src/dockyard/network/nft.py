"""Apply dockyard's nftables table with the ``nft`` tool (one ``nft -f -`` transaction each)."""

from __future__ import annotations

import subprocess

from dockyard.errors import KernelError, Unavailable
from dockyard.network.firewall import FAMILY, TABLE, removal

NFT = "/usr/sbin/nft"


def _run(args: list[str], text: str | None, what: str, nft: str) -> str:
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


def apply(text: str, nft: str = NFT) -> None:
    """Run ``text`` (from ``firewall.render``) as one atomic transaction."""
    _run(["-f", "-"], text, f"apply nftables table {FAMILY} {TABLE}", nft)


def remove(table: str = TABLE, nft: str = NFT) -> None:
    """Delete dockyard's table; nothing happens when it is absent."""
    _run(["-f", "-"], removal(table), f"remove nftables table {FAMILY} {table}", nft)


def current(table: str = TABLE, nft: str = NFT) -> str | None:
    """``nft list table inet dockyard`` output, or None when the table does not exist."""
    proc = subprocess.run([nft, "list", "table", FAMILY, table], capture_output=True, text=True)
    if proc.returncode != 0:
        return None
    return proc.stdout
