"""The ``--change`` parser of ``dockyard import``: Dockerfile instructions applied to an image config
(docker's semantics for JSON and shell forms, quoting, variable expansion, and refusals)."""

import pytest

from dockyard.errors import InvalidArgument
from dockyard.image.importer import apply_changes, parse_duration, rfc3339, split_instruction, words
from dockyard.oci.image_config import ContainerConfig, Healthcheck

EMPTY = ContainerConfig()


def apply(*changes: str, base: ContainerConfig = EMPTY) -> ContainerConfig:
    return apply_changes(base, changes)


# ---------------------------------------------------------------- words


@pytest.mark.parametrize("text, env, expected", [
    ("a b  c", None, ["a", "b", "c"]),
    ('"a b" c', None, ["a b", "c"]),
    ("'a $X' \"b $X\" $X", {"X": "1"}, ["a $X", "b 1", "1"]),
    (r"a\ b \$X", {"X": "1"}, ["a b", "$X"]),
    ("${X:-def} ${Y:-def} ${X:+alt} ${Y:+alt}x", {"X": "1"}, ["1", "def", "alt", "x"]),
    ('""', None, [""]),
    ("$ lone", {}, ["$", "lone"]),
    ("${X}y$Xy", {"X": "1", "Xy": "2"}, ["1y2"]),
])
def test_words(text, env, expected):
    assert words(text, env) == expected


def test_words_without_split_keeps_spaces():
    assert words('a  "b  c"', {}, split=False) == ["a  b  c"]


@pytest.mark.parametrize("text", ['"open', "'open", "${X"])
def test_words_unterminated(text):
    with pytest.raises(InvalidArgument):
        words(text, {})


# ---------------------------------------------------------------- instructions


def test_keyword_is_case_insensitive():
    assert split_instruction("  cmd  echo hi ") == ("CMD", "echo hi")


@pytest.mark.parametrize("change", ["RUN echo hi", "FROM busybox", "ADD a b", "COPY a b",
                                    "SHELL [\"sh\"]", "MAINTAINER me", "ARG X", "BOGUS x"])
def test_other_instructions_are_refused_by_name(change):
    with pytest.raises(InvalidArgument, match=change.split()[0]):
        apply(change)


def test_empty_change_refused():
    with pytest.raises(InvalidArgument, match="empty"):
        apply("   ")


def test_cmd_json_and_shell_forms():
    assert apply('CMD ["echo", "hi"]').cmd == ("echo", "hi")
    assert apply("CMD echo $HOME").cmd == ("/bin/sh", "-c", "echo $HOME")  # no expansion in CMD
    assert apply("CMD []").cmd == ()
    assert apply('CMD ["a", 1]').cmd == ("/bin/sh", "-c", '["a", 1]')  # not a string array: shell form
    with pytest.raises(InvalidArgument, match="CMD requires"):
        apply("CMD")


def test_entrypoint_resets_cmd_unless_cmd_came_first():
    base = ContainerConfig(cmd=("old",))
    assert apply('ENTRYPOINT ["/x"]', base=base) == ContainerConfig(entrypoint=("/x",), cmd=None)
    both = apply('CMD ["a"]', 'ENTRYPOINT ["/x"]', base=base)
    assert both.entrypoint == ("/x",) and both.cmd == ("a",)
    assert apply("ENTRYPOINT top -b").entrypoint == ("/bin/sh", "-c", "top -b")


def test_env_forms_and_expansion():
    c = apply('ENV A=1 B="two words" C=x\\ y', "ENV PATH=/bin:$A", "env LEGACY some value here")
    assert c.env == ("A=1", "B=two words", "C=x y", "PATH=/bin:1", "LEGACY=some value here")
    # one instruction expands against the env before it (docker's rule); a key is replaced in place
    c = apply("ENV A=1", "ENV A=2 B=$A")
    assert c.env == ("A=2", "B=1")
    assert apply("ENV E=").env == ("E=",)


@pytest.mark.parametrize("change", ["ENV", "ENV ONLYKEY", "ENV =v", "ENV A=1 junk"])
def test_env_errors(change):
    with pytest.raises(InvalidArgument):
        apply(change)


def test_label():
    c = apply('LABEL "com.example.vendor"="ACME Inc" version=1.0', "LABEL legacy a b")
    assert c.labels == (("com.example.vendor", "ACME Inc"), ("legacy", "a b"), ("version", "1.0"))
    assert apply("LABEL a=1", "LABEL a=2").labels == (("a", "2"),)


def test_expose():
    c = apply("EXPOSE 80 53/udp", "EXPOSE 8000-8002/TCP 80/tcp")
    assert c.exposed_ports == ("53/udp", "80/tcp", "8000/tcp", "8001/tcp", "8002/tcp")
    for bad in ("EXPOSE", "EXPOSE http", "EXPOSE 80/icmp", "EXPOSE 70000", "EXPOSE 9-3"):
        with pytest.raises(InvalidArgument):
            apply(bad)


def test_volume():
    assert apply('VOLUME ["/data", "/logs"]').volumes == ("/data", "/logs")
    assert apply("VOLUME /a /b", "VOLUME /a").volumes == ("/a", "/b")
    with pytest.raises(InvalidArgument, match="empty"):
        apply('VOLUME [""]')


def test_user_workdir_stopsignal():
    assert apply("USER nobody:nogroup").user == "nobody:nogroup"
    assert apply("ENV U=app", "USER $U").user == "app"
    with pytest.raises(InvalidArgument):
        apply("USER a b")
    assert apply("WORKDIR /srv", "WORKDIR app", "WORKDIR sub").working_dir == "/srv/app/sub"
    assert apply("WORKDIR rel").working_dir == "/rel"
    assert apply("ENV D=/opt", "WORKDIR $D/x").working_dir == "/opt/x"
    for sig in ("SIGTERM", "TERM", "9", "sigkill", "SIGRTMIN+3"):
        assert apply(f"STOPSIGNAL {sig}").stop_signal == sig
    for bad in ("STOPSIGNAL SIGNOPE", "STOPSIGNAL 0", "STOPSIGNAL 99", "STOPSIGNAL a b"):
        with pytest.raises(InvalidArgument):
            apply(bad)


def test_onbuild():
    c = apply("ONBUILD RUN make", "ONBUILD COPY . /src")
    assert c.on_build == ("RUN make", "COPY . /src")
    for bad in ("ONBUILD ONBUILD RUN x", "ONBUILD FROM x", "ONBUILD"):
        with pytest.raises(InvalidArgument):
            apply(bad)


def test_healthcheck():
    assert apply("HEALTHCHECK NONE").healthcheck == Healthcheck(test=("NONE",))
    hc = apply("HEALTHCHECK --interval=30s --timeout=1m30s --retries=3 CMD curl -f http://x/").healthcheck
    assert hc == Healthcheck(test=("CMD-SHELL", "curl -f http://x/"), interval=30_000_000_000,
                             timeout=90_000_000_000, retries=3)
    assert apply('HEALTHCHECK CMD ["true"]').healthcheck.test == ("CMD", "true")
    for bad in ("HEALTHCHECK", "HEALTHCHECK --bogus=1 CMD x", "HEALTHCHECK --interval=soon CMD x",
                "HEALTHCHECK --retries=-1 CMD x", "HEALTHCHECK RUN x"):
        with pytest.raises(InvalidArgument):
            apply(bad)


@pytest.mark.parametrize("text, ns", [("0", 0), ("1s", 10**9), ("1.5s", 1_500_000_000),
                                      ("500ms", 500_000_000), ("1h2m3s", 3723 * 10**9)])
def test_parse_duration(text, ns):
    assert parse_duration(text) == ns


def test_changes_apply_in_order_and_leave_the_rest():
    c = apply('CMD ["sh"]', "ENV A=1", "WORKDIR /w", "USER 1000", "LABEL x=y", "EXPOSE 80",
              "VOLUME /v", "STOPSIGNAL SIGINT")
    assert c.to_obj() == {"Cmd": ["sh"], "Env": ["A=1"], "WorkingDir": "/w", "User": "1000",
                          "Labels": {"x": "y"}, "ExposedPorts": {"80/tcp": {}},
                          "Volumes": {"/v": {}}, "StopSignal": "SIGINT"}


def test_rfc3339():
    assert rfc3339(0) == "1970-01-01T00:00:00Z"
    assert rfc3339(1714564800.5) == "2024-05-01T12:00:00.5Z"
