"""Content digests (``algorithm:hex``), validated once before anything uses them.

A ``Digest`` is only ever made by ``Digest.parse`` (or from bytes/a hasher), which refuses
anything but ``sha256:`` + 64 or ``sha512:`` + 128 lowercase hex characters: such a string is
safe to use as a path component (checklist item 3: ``sha256:../../x``, uppercase, wrong length).
"""

from __future__ import annotations

import hashlib

from dockyard.errors import InvalidArgument
from dockyard.record import Record

_HEX = frozenset("0123456789abcdef")
_LENGTHS = {"sha256": 64, "sha512": 128}


class Digest(Record):
    algorithm: str
    hex: str

    @classmethod
    def parse(cls, text: str) -> Digest:
        if not isinstance(text, str):
            raise InvalidArgument(f"invalid digest {text!r}: not a string")
        algorithm, sep, hexpart = text.partition(":")
        if not sep:
            raise InvalidArgument(f"invalid digest {text!r}: expected algorithm:hex")
        want = _LENGTHS.get(algorithm)
        if want is None:
            raise InvalidArgument(f"invalid digest {text!r}: unsupported algorithm {algorithm!r}")
        if len(hexpart) != want or not _HEX.issuperset(hexpart):
            raise InvalidArgument(f"invalid digest {text!r}: expected {want} lowercase hex characters")
        return cls(algorithm, hexpart)

    @classmethod
    def of_bytes(cls, data: bytes, algorithm: str = "sha256") -> Digest:
        return cls(algorithm, hashlib.new(algorithm, data).hexdigest())

    @classmethod
    def of_hasher(cls, hasher: hashlib._Hash) -> Digest:  # type: ignore[name-defined]
        return cls(hasher.name, hasher.hexdigest())

    def hasher(self) -> hashlib._Hash:  # type: ignore[name-defined]
        return hashlib.new(self.algorithm)

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"

    @property
    def short(self) -> str:
        """The 12-character id docker prints."""
        return self.hex[:12]
