"""Member names, whiteout spelling and the xattr policy shared by extraction and writing.

Pure: no I/O. Names are ``str`` decoded from the tar as UTF-8 with ``surrogateescape``, so any byte
string round-trips to the same file name; limits are counted in those bytes.
"""

from __future__ import annotations

WHITEOUT_PREFIX = ".wh."
WHITEOUT_META_PREFIX = ".wh..wh."  # AUFS metadata (.wh..wh.plnk, .wh..wh.aufs): skipped on extraction
OPAQUE_MARKER = ".wh..wh..opq"
OVERLAY_OPAQUE_XATTR = "trusted.overlay.opaque"

# Which extended attributes cross the layer boundary, in both directions.
#  kept:    user.*, security.capability (file capabilities, e.g. ping), system.posix_acl_{access,default},
#           trusted.* except trusted.overlay.*
#  dropped: trusted.overlay.* -- overlayfs' own metadata (opaque, redirect, metacopy, origin): an image
#           must not steer overlay lookups; opaque dirs travel as .wh..wh..opq and are converted by us.
#           security.selinux and every other security.* (ima, evm, apparmor, SMACK64): labels are the
#           host's policy, not the image's to choose.
#           anything else (unknown namespaces).
_KEPT_EXACT = frozenset({"security.capability", "system.posix_acl_access", "system.posix_acl_default"})


def xattr_allowed(name: str) -> bool:
    if name in _KEPT_EXACT or name.startswith("user."):
        return True
    return name.startswith("trusted.") and not name.startswith("trusted.overlay.")


class Refused(Exception):
    """A member is refused; the message is the reason. The extractor adds the member's name."""


def encoded_len(text: str) -> int:
    return len(text.encode("utf-8", "surrogateescape"))


def clean_name(name: str, *, max_path: int, max_component: int, what: str = "name") -> tuple[str, ...]:
    """Components of ``name`` relative to the layer root, cleaned as Docker does.

    A leading ``/`` is stripped (absolute names and kaniko's absolute hardlink targets are taken
    relative to the root, which confines them), empty and ``.`` components vanish, ``..`` removes
    the previous component. A ``..`` that would climb above the root is refused rather than
    clamped: such a member was made to escape, and the image is better rejected than reinterpreted.
    The empty tuple is the root itself.
    """
    if "\x00" in name:
        raise Refused(f"{what} contains a NUL byte")
    if encoded_len(name) > max_path:
        raise Refused(f"{what} is longer than {max_path} bytes")
    parts: list[str] = []
    for comp in name.split("/"):
        if comp == "" or comp == ".":
            continue
        if comp == "..":
            if not parts:
                raise Refused(f"{what} {name!r} escapes the layer root")
            parts.pop()
            continue
        if encoded_len(comp) > max_component:
            raise Refused(f"{what} has a component longer than {max_component} bytes")
        parts.append(comp)
    return tuple(parts)


def sort_key(path: str) -> tuple[bytes, ...]:
    """Byte order of components: a directory's subtree follows it directly, whatever the locale.

    The opaque marker sorts first among a directory's children, right after the directory entry,
    as Docker writes it (so a streaming reader sees it before the children it must keep).
    """
    parts = path.split("/")
    key = [p.encode("utf-8", "surrogateescape") for p in parts]
    if parts[-1] == OPAQUE_MARKER:
        key[-1] = b""
    return tuple(key)
