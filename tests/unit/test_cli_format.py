"""The CLI's output helpers: docker-compatible sizes, durations, tables and --format templates."""

import pytest

from dockyard.cli.format import Template, ago, human_duration, human_size, render, table
from dockyard.errors import InvalidArgument

IMAGES = [
    {"ID": "0123456789ab", "Repository": "busybox", "Tag": "latest", "Size": 4261550,
     "Labels": {"a": "1"}, "RepoTags": ["busybox:latest", "bb:1"]},
    {"ID": "ba9876543210", "Repository": "alpine-long-name", "Tag": "3.19", "Size": 7_800_000,
     "Labels": {}, "RepoTags": []},
]


@pytest.mark.parametrize("n, text", [(0, "0B"), (999, "999B"), (1000, "1kB"), (4261550, "4.262MB"),
                                     (1_500_000_000, "1.5GB"), (128_000, "128kB")])
def test_human_size_is_docker_decimal(n, text):
    assert human_size(n) == text


@pytest.mark.parametrize("s, text", [(0.2, "Less than a second"), (1, "1 second"), (42, "42 seconds"),
                                     (60, "About a minute"), (600, "10 minutes"),
                                     (3600, "About an hour"), (5 * 3600, "5 hours"),
                                     (3 * 86400, "3 days"), (20 * 86400, "2 weeks"),
                                     (100 * 86400, "3 months"), (800 * 86400, "2 years")])
def test_human_duration(s, text):
    assert human_duration(s) == text


def test_ago():
    assert ago(1000.0, now=1300.0) == "5 minutes ago"


def test_table_has_docker_min_width():
    assert table(["TAG", "IMAGE ID"], []) == "TAG       IMAGE ID\n"


def test_table_aligns_with_three_spaces():
    out = table(["REPOSITORY", "TAG"], [["busybox", "latest"], ["a", "b"]])
    assert out == "REPOSITORY   TAG\nbusybox      latest\na            b\n"


def test_plain_fields_one_line_per_object():
    assert render("{{.Repository}}:{{.Tag}}", IMAGES) == "busybox:latest\nalpine-long-name:3.19\n"


def test_table_prefix_adds_headers_and_aligns_tabs():
    out = render("table {{.ID}}\\t{{.Repository}}", IMAGES, headers={"ID": "IMAGE ID"})
    assert out.splitlines() == [
        "IMAGE ID       REPOSITORY",
        "0123456789ab   busybox",
        "ba9876543210   alpine-long-name",
    ]


def test_default_header_splits_camel_case():
    assert Template("table {{.RepoTags}}").header() == "REPO TAGS"


def test_json_of_whole_object_and_field():
    assert render("{{json .Labels}}", IMAGES[:1]) == '{"a":"1"}\n'
    assert render("{{json .}}", [{"x": 1}]) == '{"x":1}\n'


def test_functions():
    assert render('{{join .RepoTags ","}}', IMAGES[:1]) == "busybox:latest,bb:1\n"
    assert render("{{upper .Repository}}", IMAGES[:1]) == "BUSYBOX\n"
    assert render('{{index .Labels "a"}}', IMAGES[:1]) == "1\n"
    assert render('{{printf "%s-%s" .Repository .Tag}}', IMAGES[:1]) == "busybox-latest\n"
    assert render("{{len .RepoTags}}", IMAGES[:1]) == "2\n"


def test_go_style_values():
    assert render("{{.A}} {{.B}} {{.C}}", [{"A": True, "B": None, "C": [1, 2]}]) == "true <no value> [1 2]\n"


def test_nested_fields_of_objects_and_dicts():
    class Status:
        Status = "running"

    class Obj:
        State = Status()

    assert render("{{.State.Status}}", [Obj()]) == "running\n"
    assert render("{{.Config.Image}}", [{"Config": {"Image": "busybox"}}]) == "busybox\n"


@pytest.mark.parametrize("tpl, msg", [
    ("{{.Nope}}", "no field 'Nope'"),
    ("{{.ID", "unclosed action"),
    ("{{bogus .ID}}", "function 'bogus' not defined"),
    ('{{printf "%s"', "unclosed action"),
    ("{{}}", "empty action"),
    ("{{.ID .Tag}}", "unexpected arguments"),
])
def test_errors_name_the_template(tpl, msg):
    with pytest.raises(InvalidArgument, match=msg):
        render(tpl, IMAGES)
