"""Docker image references: the grammar of distribution/reference and Docker's normalization.

Grammar (distribution/reference)::

    reference        := name [ ":" tag ] [ "@" digest ]
    name             := [ domain "/" ] path
    domain           := host [ ":" port ]
    host             := domain-name | "[" IPv6address "]"
    domain-name      := domain-component ( "." domain-component )*
    domain-component := [a-zA-Z0-9] | [a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]
    port             := [0-9]+
    path             := path-component ( "/" path-component )*
    path-component   := [a-z0-9]+ ( separator [a-z0-9]+ )*
    separator        := "." | "_" | "__" | "-"+
    tag              := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
    digest           := algorithm ":" hex     (here: only what :class:`Digest` accepts)

Normalization (what ``docker pull busybox`` does): the first ``/``-separated component is a
*domain* only when it contains ``.`` or ``:``, is ``localhost``, or has an uppercase letter;
otherwise the domain is ``docker.io``. On ``docker.io`` a one-component path gets ``library/``
in front, and ``index.docker.io`` is an alias of ``docker.io``. So::

    busybox                   -> docker.io/library/busybox          (+ :latest by with_default_tag)
    user/repo                 -> docker.io/user/repo
    localhost:5000/x          -> localhost:5000/x
    host.example:443/ns/n:t@sha256:... keeps everything

A bare 64-hex string is an image id, never a name (``looks_like_id``).
"""

from __future__ import annotations

import re

from dockyard.errors import InvalidArgument
from dockyard.oci.digest import Digest
from dockyard.record import Record

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_PREFIX = "library/"
DEFAULT_TAG = "latest"
NAME_MAX = 255  # characters of the path (the name without its domain), as distribution counts

_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])"
_DOMAIN_RE = re.compile(rf"{_HOST}(?::[0-9]+)?\Z")
_PATH_COMPONENT_RE = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*\Z")
_TAG_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}\Z")
_DIGEST_SHAPE_RE = re.compile(
    r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}\Z")
_ID_RE = re.compile(r"(?:sha256:)?[a-f0-9]{64}\Z")


def _invalid(text: str, why: str) -> InvalidArgument:
    return InvalidArgument(f"invalid reference format {text!r}: {why}")


class Reference(Record):
    """A normalized image reference. ``domain`` and ``path`` are always set (``docker.io``,
    ``library/busybox``); ``tag`` is ``""`` and ``digest`` None when the text had none."""

    domain: str
    path: str
    tag: str = ""
    digest: Digest | None = None

    def name(self) -> str:
        """The full repository name: ``docker.io/library/busybox``."""
        return f"{self.domain}/{self.path}"

    def string(self) -> str:
        """The full reference: ``docker.io/library/busybox:latest@sha256:...``."""
        return self.name() + self._suffix()

    def __str__(self) -> str:
        return self.string()

    def familiar_name(self) -> str:
        """Docker's short name: ``busybox``, ``user/repo``, ``localhost:5000/x``."""
        if self.domain != DEFAULT_DOMAIN:
            return self.name()
        path = self.path
        if path.startswith(OFFICIAL_PREFIX) and "/" not in path[len(OFFICIAL_PREFIX):]:
            return path[len(OFFICIAL_PREFIX):]
        return path

    def familiar_string(self) -> str:
        """The short name with tag and digest: ``busybox:latest``, ``user/repo@sha256:...``."""
        return self.familiar_name() + self._suffix()

    def _suffix(self) -> str:
        out = f":{self.tag}" if self.tag else ""
        if self.digest is not None:
            out += f"@{self.digest}"
        return out

    def is_name_only(self) -> bool:
        """True when neither a tag nor a digest was given (``busybox``, not ``busybox:1``)."""
        return not self.tag and self.digest is None

    def with_tag(self, tag: str) -> Reference:
        """The same repository with ``tag`` (the digest, if any, is kept)."""
        _check_tag(tag, f"{self.name()}:{tag}")
        return Reference(self.domain, self.path, tag, self.digest)

    def with_digest(self, digest: Digest | None) -> Reference:
        return Reference(self.domain, self.path, self.tag, digest)

    def name_only(self) -> Reference:
        """The repository without tag or digest."""
        return Reference(self.domain, self.path)

    def with_default_tag(self) -> Reference:
        """``latest`` added to a name-only reference (``busybox`` -> ``busybox:latest``)."""
        return self.with_tag(DEFAULT_TAG) if self.is_name_only() else self


def looks_like_id(text: str) -> bool:
    """True for a full image id: 64 lowercase hex characters, optionally ``sha256:``-prefixed.

    Such text is never parsed as a repository name (docker refuses it as one); resolving a
    *prefix* of an id is the image store's business, since only it knows which ids exist.
    """
    return isinstance(text, str) and _ID_RE.match(text) is not None


def _check_tag(tag: str, text: str) -> None:
    if not _TAG_RE.match(tag):
        if not tag:
            raise _invalid(text, "empty tag")
        if len(tag) > 128:
            raise _invalid(text, f"tag is longer than 128 characters ({len(tag)})")
        raise _invalid(text, f"invalid tag {tag!r}: a tag is letters, digits, '_', '.' and '-', "
                             "and does not start with '.' or '-'")


def _check_path(path: str, text: str) -> None:
    if len(path) > NAME_MAX:
        raise _invalid(text, f"repository name must not be more than {NAME_MAX} characters "
                             f"(it has {len(path)})")
    for component in path.split("/"):
        if _PATH_COMPONENT_RE.match(component):
            continue
        if component and _PATH_COMPONENT_RE.match(component.lower()):
            raise _invalid(text, f"repository name must be lowercase (component {component!r})")
        if not component:
            raise _invalid(text, "repository name has an empty path component")
        raise _invalid(text, f"invalid repository name component {component!r}: lowercase letters, "
                             "digits and single '.', '_', '__' or '-' runs between them")


def _split_domain(name: str, text: str) -> tuple[str, str]:
    """Docker's rule for telling a registry host from the first path component."""
    first, slash, rest = name.partition("/")
    if not slash:
        return DEFAULT_DOMAIN, OFFICIAL_PREFIX + name
    if first == "localhost" or "." in first or ":" in first or first.lower() != first:
        if not _DOMAIN_RE.match(first):
            raise _invalid(text, f"invalid registry host {first!r}")
        domain, path = (DEFAULT_DOMAIN if first == LEGACY_DEFAULT_DOMAIN else first), rest
    else:
        domain, path = DEFAULT_DOMAIN, name
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = OFFICIAL_PREFIX + path
    return domain, path


def parse_reference(text: str) -> Reference:
    """Parse and normalize a reference as ``docker pull``/``docker tag`` accept it.

    The tag stays empty when none was given (see :meth:`Reference.with_default_tag`); a
    reference may carry both a tag and a digest. Raises ``InvalidArgument`` naming the problem.
    """
    if not isinstance(text, str):
        raise InvalidArgument(f"invalid reference format {text!r}: not a string")
    if not text:
        raise InvalidArgument("invalid reference format: repository name must have at least "
                              "one component")
    if looks_like_id(text) and not text.startswith("sha256:"):
        raise _invalid(text, "cannot specify 64-byte hexadecimal strings as a repository name; "
                             "that is an image id")
    rest, at, digest_text = text.partition("@")
    digest = None
    if at:
        if not _DIGEST_SHAPE_RE.match(digest_text):
            raise _invalid(text, f"invalid digest {digest_text!r}: expected algorithm:hex "
                                 "with at least 32 hex characters")
        try:
            digest = Digest.parse(digest_text)
        except InvalidArgument as e:
            raise _invalid(text, str(e)) from None
    if rest.startswith("[") and "/" not in rest:
        raise _invalid(text, "a registry host must be followed by /repository")
    # The tag's colon is the last one after the last slash (a port's colon precedes a slash).
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    tag = ""
    name = rest
    if colon > slash:
        name, tag = rest[:colon], rest[colon + 1:]
        _check_tag(tag, text)
    if not name:
        raise _invalid(text, "repository name must have at least one component")
    domain, path = _split_domain(name, text)
    _check_path(path, text)
    return Reference(domain, path, tag, digest)


def parse_normalized(text: str) -> Reference:
    """:func:`parse_reference` with ``latest`` added to a name-only reference: the image that
    ``docker pull``/``run``/``rmi`` of ``text`` means
    (``busybox`` -> ``docker.io/library/busybox:latest``)."""
    return parse_reference(text).with_default_tag()
