"""Image references: docker's grammar and normalization (cases written for dockyard, modelled on
what distribution/reference accepts and refuses)."""

from __future__ import annotations

import pytest

from dockyard import errors
from dockyard.oci.digest import Digest
from dockyard.oci.reference import Reference, looks_like_id, parse_normalized, parse_reference

H1 = "0123456789abcdef" * 4
H2 = "fedcba9876543210" * 4
H512 = "ab" * 64

# input -> (domain, path, tag, digest, familiar string)
VALID = [
    ("alpine", "docker.io", "library/alpine", "", None, "alpine"),
    ("alpine:3.19", "docker.io", "library/alpine", "3.19", None, "alpine:3.19"),
    ("alpine:Edge_1", "docker.io", "library/alpine", "Edge_1", None, "alpine:Edge_1"),
    (f"alpine@sha256:{H1}", "docker.io", "library/alpine", "", H1, f"alpine@sha256:{H1}"),
    (f"alpine:3@sha256:{H1}", "docker.io", "library/alpine", "3", H1, f"alpine:3@sha256:{H1}"),
    ("someone/tool", "docker.io", "someone/tool", "", None, "someone/tool"),
    ("someone/tool:v2.0.1", "docker.io", "someone/tool", "v2.0.1", None, "someone/tool:v2.0.1"),
    ("docker.io/alpine", "docker.io", "library/alpine", "", None, "alpine"),
    ("docker.io/library/alpine:1", "docker.io", "library/alpine", "1", None, "alpine:1"),
    ("index.docker.io/alpine", "docker.io", "library/alpine", "", None, "alpine"),
    ("index.docker.io/someone/tool", "docker.io", "someone/tool", "", None, "someone/tool"),
    ("library/alpine", "docker.io", "library/alpine", "", None, "alpine"),
    # library/ with a nested path is not an official image: it stays spelled out
    ("library/a/b", "docker.io", "library/a/b", "", None, "library/a/b"),
    ("docker.io/other/library", "docker.io", "other/library", "", None, "other/library"),
    ("localhost/app", "localhost", "app", "", None, "localhost/app"),
    ("localhost:5000/app", "localhost:5000", "app", "", None, "localhost:5000/app"),
    ("localhost:5000/team/app:dev", "localhost:5000", "team/app", "dev", None,
     "localhost:5000/team/app:dev"),
    (f"host.example:443/ns/name:tag@sha256:{H1}", "host.example:443", "ns/name", "tag", H1,
     f"host.example:443/ns/name:tag@sha256:{H1}"),
    ("registry.example.org/a/b/c/d", "registry.example.org", "a/b/c/d", "", None,
     "registry.example.org/a/b/c/d"),
    ("quay.io/org/img:latest", "quay.io", "org/img", "latest", None, "quay.io/org/img:latest"),
    ("10.0.0.7:5000/img", "10.0.0.7:5000", "img", "", None, "10.0.0.7:5000/img"),
    ("10.0.0.7/img", "10.0.0.7", "img", "", None, "10.0.0.7/img"),
    ("[::1]:5000/img", "[::1]:5000", "img", "", None, "[::1]:5000/img"),
    ("[fd00:1:2::3]/img:t", "[fd00:1:2::3]", "img", "t", None, "[fd00:1:2::3]/img:t"),
    ("reg-istry:8080/img", "reg-istry:8080", "img", "", None, "reg-istry:8080/img"),
    ("xn--bcher-kva.example/img", "xn--bcher-kva.example", "img", "", None,
     "xn--bcher-kva.example/img"),
    # an uppercase first component can only be a host
    ("MyRegistry/img", "MyRegistry", "img", "", None, "MyRegistry/img"),
    # a name with no slash is never a host: "x.y:80" is repository x.y with tag 80
    ("example.com:80", "docker.io", "library/example.com", "80", None, "example.com:80"),
    ("10.0.0.7", "docker.io", "library/10.0.0.7", "", None, "10.0.0.7"),
    ("localhost", "docker.io", "library/localhost", "", None, "localhost"),
    # no dot, no colon, lowercase, not localhost: a namespace, not a host
    ("my_ns/img", "docker.io", "my_ns/img", "", None, "my_ns/img"),
    ("mirror/foo.bar:1", "docker.io", "mirror/foo.bar", "1", None, "mirror/foo.bar:1"),
    # separators
    ("a__b/c---d/e.f_g", "docker.io", "a__b/c---d/e.f_g", "", None, "a__b/c---d/e.f_g"),
    ("x/y", "docker.io", "x/y", "", None, "x/y"),
    ("tag-max:" + "t" * 128, "docker.io", "library/tag-max", "t" * 128, None, "tag-max:" + "t" * 128),
    ("under:_private", "docker.io", "library/under", "_private", None, "under:_private"),
    # 63 hex characters and hex plus a tag are names, not ids
    (H1[:63], "docker.io", "library/" + H1[:63], "", None, H1[:63]),
    (f"{H1}:latest", "docker.io", "library/" + H1, "latest", None, f"{H1}:latest"),
    (f"docker.io/{H1}", "docker.io", "library/" + H1, "", None, H1),
    (f"example.com/img@sha512:{H512}", "example.com", "img", "", None, f"example.com/img@sha512:{H512}"),
    # 255 characters of path on docker.io is the maximum
    ("docker.io/" + "n/" * 126 + "abc", "docker.io", "n/" * 126 + "abc", "", None, "n/" * 126 + "abc"),
]


@pytest.mark.parametrize("text,domain,path,tag,digest,familiar", VALID, ids=[v[0][:60] for v in VALID])
def test_valid(text, domain, path, tag, digest, familiar):
    ref = parse_reference(text)
    assert (ref.domain, ref.path, ref.tag) == (domain, path, tag)
    if digest is None and "@sha512:" not in text:
        assert ref.digest is None
    elif digest is not None:
        assert ref.digest == Digest("sha256", digest)
    assert ref.familiar_string() == familiar
    # the full form parses back to the same reference, and so does the familiar form
    assert parse_reference(ref.string()) == ref
    if not looks_like_id(ref.familiar_string()):  # docker.io/<64 hex> has no parseable short form
        assert parse_reference(ref.familiar_string()) == ref
    assert str(ref) == ref.string()


# input -> a fragment the message must contain
INVALID = [
    ("", "at least one component"),
    ("Alpine", "must be lowercase"),
    ("Alpine:3", "must be lowercase"),
    ("someone/Tool", "must be lowercase"),
    ("docker.io/Someone/tool", "must be lowercase"),
    ("example.com:5000/Team/app:v1", "must be lowercase"),
    ("alpine:", "empty tag"),
    ("alpine:-x", "invalid tag '-x'"),
    ("alpine:.x", "invalid tag '.x'"),
    ("alpine:a+b", "invalid tag 'a+b'"),
    ("alpine:" + "t" * 129, "longer than 128"),
    ("alpine:tag:more", "invalid repository name component 'alpine:tag'"),
    ("alpine@sha256:abc", "invalid digest"),
    ("alpine@sha256:" + H1.upper(), "lowercase hex"),
    ("alpine@md5:" + "a" * 32, "unsupported algorithm"),
    ("alpine@sha256:" + H1 + "00", "64 lowercase hex"),
    ("alpine@", "invalid digest"),
    ("alpine@sha256:" + H1 + "@sha256:" + H2, "invalid digest"),
    ("a/" * 128 + "a", "not be more than 255"),
    ("docker.io/" + "n/" * 126 + "abcd", "not be more than 255"),
    (H1, "64-byte hexadecimal"),
    ("-lead", "invalid repository name component '-lead'"),
    ("trail-/x", "invalid repository name component 'trail-'"),
    ("a..b", "invalid repository name component"),
    ("a_.b", "invalid repository name component"),
    ("a___b", "invalid repository name component"),
    ("_a/b", "invalid repository name component"),
    ("img/", "empty path component"),
    ("a//b", "empty path component"),
    ("/img", "empty path component"),
    (":tagonly", "at least one component"),
    ("@sha256:" + H1, "at least one component"),
    ("http://example.com/img", "invalid registry host 'http:'"),
    ("-host.example/img", "invalid registry host '-host.example'"),
    ("host-.example/img", "invalid registry host"),
    ("host.example:/img", "invalid registry host"),
    ("host.example:80a/img", "invalid registry host"),
    ("[fe80::1%eth0]:5000/img", "invalid registry host"),
    ("[::1]", "must be followed by /repository"),
    ("[::1]:5000", "must be followed by /repository"),
    ("fd00::1:5000/img", "invalid registry host"),
    ("img name", "invalid repository name component"),
    ("ns/img name:1", "invalid repository name component"),
    ("img\n", "invalid repository name component"),
    ("ïmg", "invalid repository name component"),
    ("host.example/img$", "invalid repository name component"),
]


@pytest.mark.parametrize("text,fragment", INVALID, ids=[i[0][:50] or "empty" for i in INVALID])
def test_invalid(text, fragment):
    with pytest.raises(errors.InvalidArgument) as e:
        parse_reference(text)
    assert fragment in str(e.value)
    assert "invalid reference format" in str(e.value)


def test_not_a_string():
    with pytest.raises(errors.InvalidArgument):
        parse_reference(None)  # type: ignore[arg-type]


def test_normalization_adds_latest_only_to_a_bare_name():
    assert parse_normalized("busybox").string() == "docker.io/library/busybox:latest"
    assert parse_normalized("busybox").familiar_string() == "busybox:latest"
    assert parse_normalized("user/repo").string() == "docker.io/user/repo:latest"
    assert parse_normalized("busybox:1.36").string() == "docker.io/library/busybox:1.36"
    by_digest = parse_normalized(f"busybox@sha256:{H1}")
    assert by_digest.tag == "" and by_digest.string() == f"docker.io/library/busybox@sha256:{H1}"


def test_familiar_name_and_name():
    ref = parse_reference(f"docker.io/library/busybox:1@sha256:{H1}")
    assert ref.familiar_name() == "busybox"
    assert ref.name() == "docker.io/library/busybox"
    assert parse_reference("user/repo:x").familiar_name() == "user/repo"
    assert parse_reference("localhost:5000/x:y").familiar_name() == "localhost:5000/x"


def test_is_name_only():
    assert parse_reference("busybox").is_name_only()
    assert not parse_reference("busybox:latest").is_name_only()
    assert not parse_reference(f"busybox@sha256:{H1}").is_name_only()


def test_with_tag_keeps_digest_and_validates():
    ref = parse_reference(f"example.com/a@sha256:{H1}")
    tagged = ref.with_tag("v1")
    assert tagged.string() == f"example.com/a:v1@sha256:{H1}"
    assert ref.with_tag("v1").with_digest(None).string() == "example.com/a:v1"
    assert tagged.name_only() == Reference("example.com", "a")
    with pytest.raises(errors.InvalidArgument, match="invalid tag"):
        ref.with_tag("bad tag")
    with pytest.raises(errors.InvalidArgument, match="empty tag"):
        ref.with_tag("")


def test_with_default_tag():
    assert parse_reference("a").with_default_tag().tag == "latest"
    assert parse_reference("a:b").with_default_tag().tag == "b"


def test_records_are_frozen_and_hashable():
    ref = parse_reference("busybox:1")
    with pytest.raises(AttributeError):
        ref.tag = "2"  # type: ignore[misc]
    assert {ref, parse_reference("docker.io/library/busybox:1")} == {ref}


@pytest.mark.parametrize("text,want", [
    (H1, True), (f"sha256:{H1}", True), (H1[:12], False), (H1.upper(), False),
    (H1 + "0", False), ("busybox", False), (f"sha512:{H1}", False), ("", False),
])
def test_looks_like_id(text, want):
    assert looks_like_id(text) is want
