"""Platforms (os/architecture/variant): parsing, normalization, matching, this machine's."""

from __future__ import annotations

import os

from dockyard.errors import InvalidArgument
from dockyard.record import Record

_ARCH_ALIASES = {
    "x86_64": ("amd64", ""), "x86-64": ("amd64", ""), "amd64": ("amd64", ""),
    "aarch64": ("arm64", "v8"), "arm64": ("arm64", "v8"),
    "armv8l": ("arm", "v8"), "armv7l": ("arm", "v7"), "armv7": ("arm", "v7"),
    "armhf": ("arm", "v7"),
    "armv6l": ("arm", "v6"), "armv6": ("arm", "v6"), "armel": ("arm", "v6"),
    "armv5tel": ("arm", "v5"), "armv5tejl": ("arm", "v5"), "armv5l": ("arm", "v5"),
    "i386": ("386", ""), "i486": ("386", ""), "i586": ("386", ""), "i686": ("386", ""),
    "ppc64le": ("ppc64le", ""), "ppc64": ("ppc64", ""), "s390x": ("s390x", ""),
    "riscv64": ("riscv64", ""), "loongarch64": ("loong64", ""), "mips64": ("mips64", ""),
    "mips64el": ("mips64le", ""), "mipsel": ("mipsle", ""),
}
# The variant a platform has when it names none; an older-or-equal variant runs on a host.
# Spelled out when normalizing arm and arm64 (docker prints linux/arm64/v8), left implied for
# amd64 (docker prints linux/amd64, not linux/amd64/v1).
_DEFAULT_VARIANT = {"arm64": "v8", "arm": "v7"}
_IMPLIED_VARIANT = {"amd64": "v1"}


class Platform(Record):
    os: str
    architecture: str
    variant: str = ""
    os_version: str = ""
    os_features: tuple[str, ...] = ()

    def __str__(self) -> str:
        return "/".join(x for x in (self.os, self.architecture, self.variant) if x)

    def to_obj(self) -> dict:
        out: dict = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            out["variant"] = self.variant
        if self.os_version:
            out["os.version"] = self.os_version
        if self.os_features:
            out["os.features"] = list(self.os_features)
        return out


def parse_platform(text: str) -> Platform:
    """``linux/arm64/v8``, ``linux/amd64`` or an architecture alone (``arm64``: os linux)."""
    parts = text.strip().split("/")
    if len(parts) == 1 and parts[0]:
        parts = ["linux", parts[0]]
    if not 2 <= len(parts) <= 3 or not all(parts):
        raise InvalidArgument(f"invalid platform {text!r}: expected os/architecture[/variant]")
    return normalize_platform(Platform(parts[0], parts[1], parts[2] if len(parts) == 3 else ""))


def normalize_platform(p: Platform) -> Platform:
    """Canonical names: ``x86_64`` -> amd64, ``aarch64`` -> arm64, arm variant ``7`` -> ``v7``;
    the default variant spelled out for arm64 (v8) and arm (v7), dropped for amd64 (v1)."""
    arch, implied = _ARCH_ALIASES.get(p.architecture.lower(), (p.architecture.lower(), ""))
    variant = p.variant.lower()
    if variant and variant[0].isdigit():
        variant = "v" + variant
    if arch == "arm64" and variant == "v8.0":
        variant = "v8"
    variant = variant or implied or _DEFAULT_VARIANT.get(arch, "")
    if variant == _IMPLIED_VARIANT.get(arch):
        variant = ""
    return Platform(p.os.lower(), arch, variant, p.os_version, p.os_features)


def variant_rank(arch: str, variant: str) -> tuple[int, ...] | None:
    """``v7`` -> (7,), ``v8.2`` -> (8, 2); the implied variant for ""; None if not ordered."""
    variant = variant or _IMPLIED_VARIANT.get(arch, "v0")
    if not variant.startswith("v"):
        return None
    try:
        return tuple(int(x) for x in variant[1:].split("."))
    except ValueError:
        return None


def platform_matches(p: Platform, want: Platform) -> bool:
    """True when an image built for ``p`` runs on ``want``: same os and architecture, and the
    variant equal or older (a linux/arm/v7 host runs arm/v6 images; arm64 without a variant is
    arm64/v8)."""
    p, want = normalize_platform(p), normalize_platform(want)
    if p.os != want.os or p.architecture != want.architecture:
        return False
    if p.variant == want.variant:
        return True
    have = variant_rank(p.architecture, p.variant)
    can = variant_rank(want.architecture, want.variant)
    return have is not None and can is not None and have <= can


def platform_from_machine(machine: str, os_name: str = "linux") -> Platform:
    """The platform of a ``uname -m`` machine name (``aarch64`` -> linux/arm64/v8)."""
    arch, variant = _ARCH_ALIASES.get(machine.lower(), (machine.lower(), ""))
    return Platform(os_name, arch, variant)


def current_platform() -> Platform:
    u = os.uname()
    return platform_from_machine(u.machine, u.sysname.lower())
