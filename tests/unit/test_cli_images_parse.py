"""The image verbs of the CLI against a fake service: argument parsing, docker's output shapes and
exit codes (0 ok, 1 failure, 125 bad flag), and the renderers of image diff, system df and check."""

from __future__ import annotations

import io
import json
import re
import time

import pytest

from dockyard.archive.diff import Change, FileInfo
from dockyard.cli import images as cli_images
from dockyard.cli.common import Context, parse_time
from dockyard.cli.main import run
from dockyard.errors import Conflict, NotFound
from dockyard.image import diff as image_diff
from dockyard.image import importer, maintenance
from dockyard.image.importer import rfc3339
from dockyard.image.service import HistoryEntry, ImageSummary
from dockyard.oci.digest import Digest

BUSYBOX = Digest("sha256", "a" * 64)
OTHER = Digest("sha256", "b" * 64)
DANGLING = Digest("sha256", "c" * 64)
WEEKS_AGO = rfc3339(time.time() - 15 * 86400)
HOURS_AGO = rfc3339(time.time() - 3 * 3600)


class FakeService:
    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.closed = False
        self.summaries = [
            ImageSummary(OTHER, ("app:1", "app:latest"), ("app@sha256:" + "d" * 64,), HOURS_AGO,
                         1_500_000, 0),
            ImageSummary(BUSYBOX, ("busybox:latest",), (), WEEKS_AGO, 4_261_550, 2),
            ImageSummary(DANGLING, (), (), "", 999, 0),
        ]

    def list(self, *, all=False, dangling=None, reference=None):
        self.calls.append(("list", all, dangling, reference))
        rows = self.summaries
        if dangling is not None:
            rows = [s for s in rows if (not s.repo_tags) == dangling]
        if reference is not None:
            rows = [s for s in rows if any(t.startswith(reference) for t in s.repo_tags)]
        return rows

    def inspect(self, name):
        if name != "busybox":
            raise NotFound(f"No such image: {name}")
        return {"Id": str(BUSYBOX), "RepoTags": ["busybox:latest"], "Config": {"Cmd": ["sh"]}}

    def resolve(self, name):
        if name != "busybox":
            raise NotFound(f"No such image: {name}")
        return object()

    def history(self, name):
        self.resolve(name)
        return [HistoryEntry(str(BUSYBOX), HOURS_AGO, "/bin/sh -c #(nop)  CMD [\"sh\"]", 0, "", True),
                HistoryEntry("<missing>", WEEKS_AGO, "/bin/sh -c #(nop) ADD file:" + "f" * 64 + " in / ",
                             4_261_550, "imported", False)]

    def tag(self, source, target):
        self.calls.append(("tag", source, target))

    def remove(self, name, *, force=False, no_prune=False):
        self.calls.append(("remove", name, force, no_prune))
        if name == "busybox":
            return [("Untagged", "busybox:latest"), ("Deleted", str(BUSYBOX))]
        if name == "app":
            raise Conflict("conflict: unable to delete bbbbbbbbbbbb (must be forced)")
        raise NotFound(f"No such image: {name}")

    def save(self, names, out, *, fmt="docker"):
        self.calls.append(("save", tuple(names), fmt))
        out.write(b"TAR:" + fmt.encode())

    def load(self, stream):
        data = stream.read()
        self.calls.append(("load", data))
        return ["Loaded image: busybox:latest"]

    def close(self):
        self.closed = True


class Harness:
    def __init__(self, tty=None) -> None:
        self.svc = FakeService()
        self.opened: list[str] = []
        self.out, self.err, self.bin = io.StringIO(), io.StringIO(), io.BytesIO()
        self.stdin = io.BytesIO()
        self.tty = tty or {}

    def _open(self, root):
        self.opened.append(root)
        return self.svc

    def __call__(self, *argv: str, stdin: bytes = b"") -> int:
        self.out.seek(0), self.out.truncate(), self.err.seek(0), self.err.truncate()
        ctx = Context("/root-x", out=self.out, err=self.err, inp=io.BytesIO(stdin),
                      out_binary=self.bin, open_service=self._open, tty=self.tty)
        return run(list(argv), ctx)

    @property
    def stdout(self) -> str:
        return self.out.getvalue()

    @property
    def stderr(self) -> str:
        return self.err.getvalue()


@pytest.fixture
def cli():
    return Harness()


# ---------------------------------------------------------------- images


def test_images_table(cli):
    assert cli("images") == 0
    lines = cli.stdout.splitlines()
    assert re.split(r"\s{2,}", lines[0]) == ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]
    assert [ln.split()[:3] for ln in lines[1:]] == [
        ["app", "1", "b" * 12], ["app", "latest", "b" * 12], ["busybox", "latest", "a" * 12],
        ["<none>", "<none>", "c" * 12]]
    assert "3 hours ago" in lines[1] and "2 weeks ago" in lines[3] and "N/A" in lines[4]
    assert lines[3].endswith("4.262MB") and lines[1].endswith("1.5MB") and lines[4].endswith("999B")
    assert cli.svc.closed and cli.opened == ["/root-x"]


def test_images_columns_align(cli):
    cli("images")
    lines = cli.stdout.splitlines()
    col = lines[0].index("IMAGE ID")
    assert all(ln[col:col + 12] in ("b" * 12, "a" * 12, "c" * 12) for ln in lines[1:])


def test_images_quiet_no_trunc_digests_format(cli):
    cli("images", "-q")
    assert cli.stdout == f"{'b' * 12}\n{'b' * 12}\n{'a' * 12}\n{'c' * 12}\n"
    cli("images", "-q", "--no-trunc")
    assert cli.stdout.splitlines()[2] == str(BUSYBOX)
    cli("images", "--digests")
    lines = cli.stdout.splitlines()
    assert lines[0].split()[:4] == ["REPOSITORY", "TAG", "DIGEST", "IMAGE"]
    assert lines[1].split()[2] == "sha256:" + "d" * 64 and lines[3].split()[2] == "<none>"
    cli("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}")
    assert cli.stdout.splitlines()[2] == f"busybox:latest {'a' * 12}"
    cli("images", "--format", "table {{.ID}}\t{{.Size}}")
    assert cli.stdout.splitlines()[0].split("   ")[0] == "IMAGE ID"
    cli("images", "--format", "json")
    assert json.loads(cli.stdout.splitlines()[2])["Repository"] == "busybox"


def test_images_filters_reach_the_service(cli):
    assert cli("images", "--filter", "dangling=true") == 0
    assert cli.svc.calls[-1] == ("list", False, True, None)
    assert cli.stdout.splitlines()[1].startswith("<none>")
    assert cli("image", "ls", "-a", "-f", "reference=busy*", "-f", "dangling=false") == 0
    assert cli.svc.calls[-1] == ("list", True, False, "busy*")
    assert cli("images", "busybox") == 0
    assert cli.svc.calls[-1] == ("list", False, None, "busybox")
    assert len(cli.stdout.splitlines()) == 2


@pytest.mark.parametrize("argv, code, message", [
    (("images", "--filter", "bogus=1"), 1, "invalid filter 'bogus'"),
    (("images", "--filter", "dangling=maybe"), 1, "invalid filter 'dangling=maybe'"),
    (("images", "--filter", "since=x"), 1, "not supported yet"),
    (("images", "--bogus"), 125, "unknown flag: --bogus\nSee 'dockyard images --help'."),
    (("images", "a", "b"), 1, '"dockyard images" requires at most 1 argument'),
    (("images", "--format", "{{.Nope}}"), 1, "Error: template"),
])
def test_images_errors(cli, argv, code, message):
    assert cli(*argv) == code
    assert message in cli.stderr


# ---------------------------------------------------------------- inspect, tag, rmi


def test_image_inspect(cli):
    assert cli("image", "inspect", "busybox") == 0
    assert json.loads(cli.stdout) == [cli.svc.inspect("busybox")]
    assert cli.stdout.startswith("[\n    {\n")  # docker's 4-space indent
    assert cli("image", "inspect", "-f", "{{json .Config.Cmd}}", "busybox") == 0
    assert cli.stdout == '["sh"]\n'
    assert cli("inspect", "--format", "{{.Id}}", "busybox", "missing") == 1
    assert cli.stdout == f"{BUSYBOX}\n"
    assert cli.stderr == "Error: No such object: missing\n"
    assert cli("image", "inspect", "missing") == 1
    assert cli.stdout == "[]\n" and cli.stderr == "Error: No such image: missing\n"
    assert cli("inspect", "--type", "container", "x") == 1
    assert "needs the engine" in cli.stderr


def test_tag(cli):
    assert cli("tag", "busybox", "mine:1") == 0
    assert cli.svc.calls[-1] == ("tag", "busybox", "mine:1") and cli.stdout == ""
    assert cli("tag", "busybox") == 1
    assert cli.stderr.startswith('"dockyard tag" requires exactly 2 arguments.\n'
                                 "See 'dockyard tag --help'.\n\nUsage:  dockyard tag ")
    assert not cli.opened[1:]  # the store is not opened for a usage error


def test_rmi_prints_docker_lines_and_continues_after_errors(cli):
    assert cli("rmi", "busybox") == 0
    assert cli.stdout == f"Untagged: busybox:latest\nDeleted: {BUSYBOX}\n"
    assert cli("rmi", "-f", "--no-prune", "missing", "busybox", "app") == 1
    assert cli.stdout == f"Untagged: busybox:latest\nDeleted: {BUSYBOX}\n"
    assert cli.stderr == ("Error: No such image: missing\n"
                          "Error: conflict: unable to delete bbbbbbbbbbbb (must be forced)\n")
    assert ("remove", "busybox", True, True) in cli.svc.calls
    assert cli("image", "rm") == 1 and "requires at least 1 argument" in cli.stderr


# ---------------------------------------------------------------- history


def test_history(cli):
    assert cli("history", "busybox") == 0
    lines = cli.stdout.splitlines()
    assert re.split(r"\s{2,}", lines[0]) == ["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"]
    assert lines[1].startswith("a" * 12) and "3 hours ago" in lines[1] and lines[1].endswith("0B")
    assert lines[2].startswith("<missing>")
    by = "/bin/sh -c #(nop) ADD file:" + "f" * 17 + "…"
    assert by in lines[2] and len(by) == 45 and lines[2].endswith("4.262MB   imported")
    assert cli("history", "--no-trunc", "-q", "busybox") == 0
    assert cli.stdout == f"{BUSYBOX}\n<missing>\n"
    assert cli("history", "--human=false", "--format", "{{.CreatedSince}}|{{.Size}}", "busybox") == 0
    assert cli.stdout.splitlines()[1] == f"{WEEKS_AGO}|4261550"
    assert cli("history", "missing") == 1 and cli.stderr == "Error: No such image: missing\n"
    assert cli("history", "-H=maybe", "busybox") == 125


# ---------------------------------------------------------------- save, load, import, export


def test_save(cli, tmp_path):
    assert cli("save", "busybox") == 0
    assert cli.bin.getvalue() == b"TAR:docker"
    assert cli("save", "--format", "oci", "-o", str(tmp_path / "x.tar"), "busybox") == 0
    assert (tmp_path / "x.tar").read_bytes() == b"TAR:oci"
    assert [p.name for p in tmp_path.iterdir()] == ["x.tar"]  # no temporary left
    assert cli("save", "-o", str(tmp_path / "y.tar"), "missing") == 1
    assert not (tmp_path / "y.tar").exists() and cli.stderr == "Error: No such image: missing\n"
    assert cli("save", "--format", "zip", "busybox") == 125


def test_save_refuses_a_terminal():
    cli = Harness(tty={"out": True})
    assert cli("save", "busybox") == 1
    assert cli.stderr == "cowardly refusing to save to a terminal. Use the -o flag or redirect\n"
    assert cli.bin.getvalue() == b""


def test_load(cli, tmp_path):
    assert cli("load", stdin=b"archive") == 0
    assert cli.stdout == "Loaded image: busybox:latest\n" and cli.svc.calls[-1] == ("load", b"archive")
    (tmp_path / "a.tar").write_bytes(b"file")
    assert cli("load", "-q", "-i", str(tmp_path / "a.tar")) == 0
    assert cli.svc.calls[-1] == ("load", b"file")
    assert cli("load", "-i", str(tmp_path / "none.tar")) == 1
    assert cli.stderr == f"Error: No such file or directory: {tmp_path / 'none.tar'}\n"
    tty = Harness(tty={"in": True})
    assert tty("load") == 1 and tty.stderr == "requested load from stdin, but stdin is empty\n"


def test_import_parses_flags_and_checks_before_opening(cli, monkeypatch, tmp_path):
    seen = {}

    class Rec:
        id = OTHER

    def fake_import(svc, stream, **kw):
        seen.update(kw, data=stream.read())
        return Rec()

    monkeypatch.setattr(importer, "import_image", fake_import)
    assert cli("import", "-c", "CMD [\"sh\"]", "--change", "ENV A=1", "-m", "msg", "-", "mine:1",
               stdin=b"tar") == 0
    assert cli.stdout == f"{OTHER}\n"
    assert seen == {"ref": "mine:1", "changes": ["CMD [\"sh\"]", "ENV A=1"], "message": "msg",
                    "platform": None, "data": b"tar"}
    (tmp_path / "f.tar").write_bytes(b"F")
    assert cli("import", str(tmp_path / "f.tar")) == 0 and seen["data"] == b"F" and seen["ref"] is None
    opened = len(cli.opened)
    assert cli("import", "-c", "RUN make", "-") == 1
    assert cli.stderr == ("Error: RUN is not a valid change command (use one of CMD, ENTRYPOINT, ENV, "
                          "EXPOSE, HEALTHCHECK, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR)\n")
    assert cli("import", "-", "Bad:Ref") == 1 and "invalid reference format" in cli.stderr
    assert cli("import", "http://example.com/x.tar") == 1 and "URL" in cli.stderr
    assert cli("import") == 1 and "requires at least 1 argument" in cli.stderr
    assert len(cli.opened) == opened  # none of the refusals opened the store


def test_export_needs_the_engine(cli):
    assert cli("export", "c1") == 1
    assert cli.stderr == f"Error: {cli_images.EXPORT_UNAVAILABLE}\n"


# ---------------------------------------------------------------- prune, df, check


def test_prune_prompts_and_no_tty_means_no(cli, monkeypatch):
    monkeypatch.setattr(maintenance, "prune", lambda *a, **k: pytest.fail("pruned without consent"))
    assert cli("image", "prune") == 0
    assert cli.stdout == ("WARNING! This will remove all dangling images.\n"
                          "Are you sure you want to continue? [y/N] \n")
    assert cli("image", "prune", "-a") == 0
    assert "all images without at least one container" in cli.stdout


def test_prune_yes_on_a_terminal_and_force(monkeypatch):
    result = maintenance.PruneResult((("Untagged", "x:1"), ("Deleted", str(OTHER))), 2_000_000)
    got = []
    monkeypatch.setattr(maintenance, "prune", lambda svc, all=False: got.append(all) or result)
    cli = Harness(tty={"in": True})
    assert cli("image", "prune", "-a", stdin=b"y\n") == 0
    assert got == [True]
    assert cli.stdout.endswith(f"[y/N] Deleted Images:\nuntagged: x:1\ndeleted: {OTHER}\n\n"
                               "Total reclaimed space: 2MB\n")
    assert cli("image", "prune", stdin=b"n\n") == 0 and got == [True]
    assert cli("image", "prune", "-f") == 0 and got == [True, False]
    monkeypatch.setattr(maintenance, "prune", lambda svc, all=False: maintenance.PruneResult())
    assert cli("image", "prune", "--force") == 0
    assert cli.stdout == "Total reclaimed space: 0B\n"


def test_system_df(cli, monkeypatch):
    rows = [maintenance.DfRow("Images", 2, 1, 4_000_000, 1_000_000),
            maintenance.DfRow("Containers", 1, 0, 0, 0),
            maintenance.DfRow("Local Volumes", 0, 0, 0, 0), maintenance.DfRow("Build Cache", 0, 0, 0, 0)]
    monkeypatch.setattr(maintenance, "disk_usage", lambda svc: rows)
    assert cli("system", "df") == 0
    assert [re.split(r"\s{2,}", line) for line in cli.stdout.splitlines()] == [
        ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"],
        ["Images", "2", "1", "4MB", "1MB (25%)"],
        ["Containers", "1", "0", "0B", "0B"],
        ["Local Volumes", "0", "0", "0B", "0B"],
        ["Build Cache", "0", "0", "0B", "0B"]]
    assert cli("system", "df", "--format", "{{.Type}}={{.Size}}") == 0
    assert cli.stdout.splitlines()[0] == "Images=4MB"


def test_system_check_exit_codes(cli, monkeypatch):
    clean = maintenance.CheckReport((("blobs", 3), ("images", 1)))
    monkeypatch.setattr(maintenance, "check", lambda svc, repair=False: clean)
    assert cli("system", "check") == 0
    assert cli.stdout == "checked 3 blobs, 1 image\nok: no problems\n"
    bad = maintenance.CheckReport((("blobs", 3),), ("blob sha256:x: bad",), (), ("blob sha256:x: bad",))
    monkeypatch.setattr(maintenance, "check", lambda svc, repair=False: bad)
    assert cli("system", "check") == 1
    assert cli.stdout.splitlines()[1:] == [
        "problem: blob sha256:x: bad",
        "1 problem found (run 'dockyard system check --repair' to remove what is broken)"]
    fixed = maintenance.CheckReport((("blobs", 3),), ("blob sha256:x: bad",), ("removed blob x",), ())
    monkeypatch.setattr(maintenance, "check", lambda svc, repair=False: fixed if repair else bad)
    assert cli("system", "check", "--repair") == 0
    assert cli.stdout.splitlines()[-2:] == ["repaired: removed blob x", "ok: no problems remain"]


# ---------------------------------------------------------------- image diff rendering


def _info(kind="file", mode=0o644, size=0, linkname="", uid=0):
    return FileInfo(kind, mode, uid, 0, size, 0, linkname)


CHANGES = [
    Change("/bin/ls", "deleted", _info("symlink", 0o777, 7, "busybox"), None),
    Change("/bin/x", "changed", _info(mode=0o755, size=1_200_000), _info(mode=0o755, size=1_300_000)),
    Change("/etc/motd", "changed", _info(size=20), _info(mode=0o600, size=20)),
    Change("/etc/new", "added", None, _info(size=12)),
    Change("/opt", "added", None, _info("dir", 0o755)),
    Change("/opt/sh", "added", None, _info("symlink", 0o777, 12, "/bin/busybox")),
    Change("/tmp", "changed", _info("dir", 0o1777), _info("dir", 0o1777, uid=1000)),
]


def test_image_diff_text():
    from dockyard.cli.format import human_size

    assert image_diff.render_text(CHANGES, human_size).splitlines() == [
        "D /bin/ls",
        "C /bin/x  (1.2MB → 1.3MB, -rwxr-xr-x)",
        "C /etc/motd  (20B, -rw-r--r-- → -rw-------)",
        "A /etc/new  (12B, -rw-r--r--)",
        "A /opt  (drwxr-xr-x)",
        "A /opt/sh -> /bin/busybox  (12B, lrwxrwxrwx)",
        "C /tmp  (drwxrwxrwt, 0:0 → 1000:0)",
    ]


def test_image_diff_json():
    out = json.loads(image_diff.render_json(CHANGES))
    assert out[0] == {"Path": "/bin/ls", "Kind": 2, "Action": "deleted", "New": None,
                      "Old": {"Type": "symlink", "Mode": "lrwxrwxrwx", "Size": 7, "Uid": 0, "Gid": 0,
                              "Linkname": "busybox"}}
    assert [c["Kind"] for c in out] == [2, 0, 0, 1, 1, 1, 0]


def test_image_diff_cli(cli, monkeypatch):
    monkeypatch.setattr(image_diff, "image_diff", lambda svc, a, b, thorough=False: CHANGES[3:4])
    assert cli("image", "diff", "a", "b") == 0 and cli.stdout == "A /etc/new  (12B, -rw-r--r--)\n"
    assert cli("image", "diff", "--format", "json", "a", "b") == 0
    assert json.loads(cli.stdout)[0]["Path"] == "/etc/new"
    assert cli("image", "diff", "a") == 1 and "requires exactly 2 arguments" in cli.stderr


# ---------------------------------------------------------------- dispatch and globals


def test_help_and_unknown_verbs(capsys):
    assert run(["--help"]) == 0
    out = capsys.readouterr().out
    for verb in ("images", "rmi", "save", "load", "import", "history", "tag", "inspect", "image",
                 "system", "version", "export"):
        assert f"  {verb} " in out
    assert run(["image", "--help"]) == 0 and "  bootstrap " in capsys.readouterr().out
    assert run(["nope"]) == 1
    assert capsys.readouterr().err == "dockyard: 'nope' is not a dockyard command.\nSee 'dockyard --help'.\n"
    assert run(["image", "nope"]) == 1
    assert run(["--bogus", "images"]) == 125


def test_verb_help_exits_zero(cli):
    assert cli("images", "--help") == 0
    assert cli.stdout.startswith("usage: dockyard images [OPTIONS] [REPOSITORY[:TAG]]")
    assert "--digests" in cli.stdout and not cli.opened


def test_root_flag_and_env(monkeypatch):
    roots = []

    def opener(root):
        roots.append(root)
        return FakeService()

    monkeypatch.setattr("dockyard.cli.common._open_image_service", opener)
    monkeypatch.setattr("sys.stdout", io.StringIO())
    assert run(["--root", "/srv/a", "images", "-q"]) == 0
    assert run(["--root=/srv/b", "images"]) == 0
    monkeypatch.setenv("DOCKYARD_ROOT", "/srv/env")
    assert run(["images"]) == 0
    assert run(["--root", "/srv/c", "images"]) == 0
    assert roots == ["/srv/a", "/srv/b", "/srv/env", "/srv/c"]


def test_parse_time():
    assert parse_time("2024-05-01T12:00:00Z") == 1714564800.0
    assert parse_time("2024-05-01T14:00:00.5+02:00") == 1714564800.5
    assert parse_time("2024-05-01T12:00:00.123456789Z") == pytest.approx(1714564800.123456789)
    assert parse_time("") is None and parse_time("yesterday") is None
