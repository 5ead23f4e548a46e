"""The image verbs of the CLI against a fake API client: argument parsing, the requests they make,
docker's output shapes and exit codes (0 ok, 1 failure, 125 bad flag), and the renderers of image
diff, system df and check."""

from __future__ import annotations

import io
import json
import re
import time

import pytest

from dockyard.archive.diff import Change, FileInfo
from dockyard.cli.client import APIError, DaemonUnavailable
from dockyard.cli.common import Context, parse_time
from dockyard.cli.images import diff_lines
from dockyard.cli.main import run
from dockyard.image import diff as image_diff
from dockyard.oci.digest import Digest

BUSYBOX = Digest("sha256", "a" * 64)
OTHER = Digest("sha256", "b" * 64)
DANGLING = Digest("sha256", "c" * 64)
WEEKS_AGO = int(time.time() - 15 * 86400)
HOURS_AGO = int(time.time() - 3 * 3600)


def _summary(image_id, tags, digests, created, size, containers):
    return {"Id": str(image_id), "RepoTags": list(tags), "RepoDigests": list(digests),
            "Created": created, "Size": size, "VirtualSize": size, "SharedSize": -1,
            "Containers": containers, "Labels": None, "ParentId": ""}


class Stream(io.BytesIO):
    """What ``Client.stream`` returns: a readable, closable response."""


class FakeClient:
    """Answers the image endpoints from a fixed set of images; records each request."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.summaries = [
            _summary(OTHER, ("app:1", "app:latest"), ("app@sha256:" + "d" * 64,), HOURS_AGO,
                     1_500_000, 0),
            _summary(BUSYBOX, ("busybox:latest",), (), WEEKS_AGO, 4_261_550, 2),
            _summary(DANGLING, (), (), 0, 999, 0),
        ]
        self.prune_answer: dict = {"ImagesDeleted": None, "SpaceReclaimed": 0}
        self.df_answer: dict = {}
        self.check_answer: dict = {}
        self.diff_answer: list = []
        self.bodies: list[bytes] = []

    @staticmethod
    def _missing(name):
        raise APIError(404, f"No such image: {name}")

    def _read(self, body):
        if body is not None and hasattr(body, "read"):
            body = body.read()
        self.bodies.append(body)

    def call(self, method, path, query=None, body=None, headers=None):
        self.calls.append((method, path, dict(query or {})))
        q = query or {}
        if (method, path) == ("GET", "/images/json"):
            filters = q.get("filters") or {}
            rows = self.summaries
            if "dangling" in filters:
                want = filters["dangling"] == ["true"]
                rows = [s for s in rows if (not s["RepoTags"]) == want]
            for ref in filters.get("reference", []):
                rows = [s for s in rows if any(t.startswith(ref.rstrip("*")) for t in s["RepoTags"])]
            return rows
        m = re.fullmatch(r"/images/(.+)/(json|history|tag)", path)
        if m:
            name, what = m.groups()
            if name != "busybox":
                self._missing(name)
            if what == "json":
                return {"Id": str(BUSYBOX), "RepoTags": ["busybox:latest"], "Config": {"Cmd": ["sh"]}}
            if what == "history":
                return [{"Id": str(BUSYBOX), "Created": HOURS_AGO, "Size": 0, "Comment": "",
                         "CreatedBy": "/bin/sh -c #(nop)  CMD [\"sh\"]", "Tags": ["busybox:latest"]},
                        {"Id": "<missing>", "Created": WEEKS_AGO, "Size": 4_261_550,
                         "CreatedBy": "/bin/sh -c #(nop) ADD file:" + "f" * 64 + " in / ",
                         "Comment": "imported", "Tags": None}]
            return None
        if path.startswith("/containers/"):
            raise APIError(404, "page not found")
        if method == "DELETE" and path.startswith("/images/"):
            name = path[len("/images/"):]
            if name == "busybox":
                return [{"Untagged": "busybox:latest"}, {"Deleted": str(BUSYBOX)}]
            if name == "app":
                raise APIError(409, "conflict: unable to delete bbbbbbbbbbbb (must be forced)")
            self._missing(name)
        if path == "/images/prune":
            return self.prune_answer
        if path == "/system/df":
            return self.df_answer
        if path == "/dockyard/system/check":
            return self.check_answer
        if path == "/dockyard/images/diff":
            return self.diff_answer
        if path == "/dockyard/images/bootstrap":
            return {"Id": str(BUSYBOX)}
        raise AssertionError(f"unexpected request {method} {path}")

    def get(self, path, query=None, body=None, headers=None):
        return self.call("GET", path, query, body, headers)

    def post(self, path, query=None, body=None, headers=None):
        return self.call("POST", path, query, body, headers)

    def delete(self, path, query=None, body=None, headers=None):
        return self.call("DELETE", path, query, body, headers)

    def stream(self, method, path, query=None, body=None, headers=None):
        self.calls.append((method, path, dict(query or {})))
        if path == "/images/get":
            for name in query["names"]:
                if name != "busybox":
                    self._missing(name)
            return Stream(b"TAR:" + (query.get("format") or "docker").encode())
        if path == "/images/load":
            self._read(body)
            return Stream(b'{"stream":"Loaded image: busybox:latest\\n"}\n')
        if path == "/images/create":
            self._read(body)
            if any(c.startswith("RUN") for c in query.get("changes") or ()):
                raise APIError(400, "RUN is not a valid change command")
            return Stream(f'{{"status":"{OTHER}"}}\n'.encode())
        if path.endswith("/export"):
            raise APIError(404, "No such container: c1")
        raise AssertionError(f"unexpected stream {method} {path}")


class Harness:
    def __init__(self, tty=None) -> None:
        self.client = FakeClient()
        self.made: list[str | None] = []
        self.out, self.err, self.bin = io.StringIO(), io.StringIO(), io.BytesIO()
        self.tty = tty or {}

    def _make(self, host):
        self.made.append(host)
        return self.client

    def __call__(self, *argv: str, stdin: bytes = b"") -> int:
        self.out.seek(0), self.out.truncate(), self.err.seek(0), self.err.truncate()
        ctx = Context("unix:///x.sock", out=self.out, err=self.err, inp=io.BytesIO(stdin),
                      out_binary=self.bin, make_client=self._make, tty=self.tty)
        return run(list(argv), ctx)

    @property
    def calls(self):
        return self.client.calls

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
    assert cli.calls == [("GET", "/images/json", {"all": None, "filters": None})]
    assert cli.made == ["unix:///x.sock"]


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
    cli("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}} {{.Containers}}")
    assert cli.stdout.splitlines()[2] == f"busybox:latest {'a' * 12} 2"
    cli("images", "--format", "table {{.ID}}\t{{.Size}}")
    assert cli.stdout.splitlines()[0].split("   ")[0] == "IMAGE ID"
    cli("images", "--format", "json")
    assert json.loads(cli.stdout.splitlines()[2])["Repository"] == "busybox"


def test_images_filters_become_api_filters(cli):
    assert cli("images", "--filter", "dangling=true") == 0
    assert cli.calls[-1][2] == {"all": None, "filters": {"dangling": ["true"]}}
    assert cli.stdout.splitlines()[1].startswith("<none>")
    assert cli("image", "ls", "-a", "-f", "reference=busy*", "-f", "dangling=false") == 0
    assert cli.calls[-1][2] == {"all": True, "filters": {"dangling": ["false"],
                                                         "reference": ["busy*"]}}
    assert cli("images", "busybox") == 0
    assert cli.calls[-1][2] == {"all": None, "filters": {"reference": ["busybox"]}}
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
    assert json.loads(cli.stdout) == [cli.client.get("/images/busybox/json")]
    assert cli.stdout.startswith("[\n    {\n")  # docker's 4-space indent
    assert cli("image", "inspect", "-f", "{{json .Config.Cmd}}", "busybox") == 0
    assert cli.stdout == '["sh"]\n'
    cli.calls.clear()
    assert cli("inspect", "--format", "{{.Id}}", "busybox", "missing") == 1
    assert cli.stdout == f"{BUSYBOX}\n"
    assert cli.stderr == "Error: No such object: missing\n"
    assert [c[1] for c in cli.calls] == ["/containers/busybox/json", "/images/busybox/json",
                                         "/containers/missing/json", "/images/missing/json"]
    assert cli("image", "inspect", "missing") == 1
    assert cli.stdout == "[]\n" and cli.stderr == "Error: No such image: missing\n"
    assert cli("inspect", "--type", "container", "x") == 1
    assert cli.stderr == "Error: No such container: x\n"
    assert cli("inspect", "--type", "network", "x") == 1 and "--type" in cli.stderr


def test_tag(cli):
    assert cli("tag", "busybox", "mine:1") == 0
    assert cli.calls[-1] == ("POST", "/images/busybox/tag", {"repo": "mine", "tag": "1"})
    assert cli.stdout == ""
    assert cli("tag", "busybox", "localhost:5000/x") == 0
    assert cli.calls[-1][2] == {"repo": "localhost:5000/x", "tag": None}
    n = len(cli.calls)
    assert cli("tag", "busybox") == 1
    assert cli.stderr.startswith('"dockyard tag" requires exactly 2 arguments.\n'
                                 "See 'dockyard tag --help'.\n\nUsage:  dockyard tag ")
    assert len(cli.calls) == n  # no request for a usage error
    assert cli("tag", "missing", "x") == 1
    assert cli.stderr == "Error response from daemon: No such image: missing\n"


def test_rmi_prints_docker_lines_and_continues_after_errors(cli):
    assert cli("rmi", "busybox") == 0
    assert cli.stdout == f"Untagged: busybox:latest\nDeleted: {BUSYBOX}\n"
    assert cli("rmi", "-f", "--no-prune", "missing", "busybox", "app") == 1
    assert cli.stdout == f"Untagged: busybox:latest\nDeleted: {BUSYBOX}\n"
    assert cli.stderr == ("Error response from daemon: No such image: missing\n"
                          "Error response from daemon: conflict: unable to delete bbbbbbbbbbbb "
                          "(must be forced)\n")
    assert ("DELETE", "/images/busybox", {"force": True, "noprune": True}) in cli.calls
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
    since, size = cli.stdout.splitlines()[1].split("|")
    assert parse_time(since) == WEEKS_AGO and size == "4261550"
    assert cli("history", "missing") == 1
    assert cli.stderr == "Error response from daemon: No such image: missing\n"
    assert cli("history", "-H=maybe", "busybox") == 125


# ---------------------------------------------------------------- save, load, import, export


def test_save(cli, tmp_path):
    assert cli("save", "busybox") == 0
    assert cli.bin.getvalue() == b"TAR:docker"
    assert cli.calls[-1] == ("GET", "/images/get", {"names": ["busybox"], "format": None})
    assert cli("save", "--format", "oci", "-o", str(tmp_path / "x.tar"), "busybox") == 0
    assert (tmp_path / "x.tar").read_bytes() == b"TAR:oci"
    assert [p.name for p in tmp_path.iterdir()] == ["x.tar"]  # no temporary left
    assert cli("save", "-o", str(tmp_path / "y.tar"), "missing") == 1
    assert not (tmp_path / "y.tar").exists()
    assert cli.stderr == "Error response from daemon: No such image: missing\n"
    assert cli("save", "--format", "zip", "busybox") == 125


def test_save_refuses_a_terminal():
    cli = Harness(tty={"out": True})
    assert cli("save", "busybox") == 1
    assert cli.stderr == "cowardly refusing to save to a terminal. Use the -o flag or redirect\n"
    assert cli.bin.getvalue() == b"" and cli.calls == []


def test_load(cli, tmp_path):
    assert cli("load", stdin=b"archive") == 0
    assert cli.stdout == "Loaded image: busybox:latest\n" and cli.client.bodies == [b"archive"]
    (tmp_path / "a.tar").write_bytes(b"file")
    assert cli("load", "-q", "-i", str(tmp_path / "a.tar")) == 0
    assert cli.client.bodies[-1] == b"file"
    assert cli.calls[-1] == ("POST", "/images/load", {"quiet": True})
    assert cli("load", "-i", str(tmp_path / "none.tar")) == 1
    assert cli.stderr == f"Error: No such file or directory: {tmp_path / 'none.tar'}\n"
    tty = Harness(tty={"in": True})
    assert tty("load") == 1 and tty.stderr == "requested load from stdin, but stdin is empty\n"


def test_load_error_message_fails(cli, monkeypatch):
    monkeypatch.setattr(cli.client, "stream", lambda *a, **k: Stream(
        b'{"stream":"Loaded image: a:1\\n"}\n{"errorDetail":{"message":"boom"},"error":"boom"}\n'))
    assert cli("load", stdin=b"x") == 1
    assert cli.stdout == "Loaded image: a:1\n" and cli.stderr == "Error: boom\n"


def test_import_sends_docker_query_and_streams_the_body(cli, tmp_path):
    assert cli("import", "-c", "CMD [\"sh\"]", "--change", "ENV A=1", "-m", "msg", "-", "mine:1",
               stdin=b"tar") == 0
    assert cli.stdout == f"{OTHER}\n"
    assert cli.calls[-1] == ("POST", "/images/create", {
        "fromSrc": "-", "repo": "mine:1", "changes": ["CMD [\"sh\"]", "ENV A=1"], "message": "msg",
        "platform": None})
    assert cli.client.bodies == [b"tar"]
    (tmp_path / "f.tar").write_bytes(b"F")
    assert cli("import", str(tmp_path / "f.tar")) == 0
    assert cli.client.bodies[-1] == b"F" and cli.calls[-1][2]["repo"] is None
    assert cli("import", "-c", "RUN make", "-") == 1
    assert cli.stderr == "Error response from daemon: RUN is not a valid change command\n"
    n = len(cli.calls)
    assert cli("import", "http://example.com/x.tar") == 1 and "URL" in cli.stderr
    assert cli("import") == 1 and "requires at least 1 argument" in cli.stderr
    assert len(cli.calls) == n  # the refusals made no request


def test_export_asks_the_daemon(cli):
    assert cli("export", "c1") == 1
    assert cli.stderr == "Error response from daemon: No such container: c1\n"
    assert cli.calls[-1][:2] == ("GET", "/containers/c1/export")


def test_bootstrap(cli):
    assert cli("image", "bootstrap", "busybox") == 0 and cli.stdout == f"{BUSYBOX}\n"
    assert cli.calls[-1] == ("POST", "/dockyard/images/bootstrap", {
        "name": "busybox", "tag": None, "busybox": "/bin/busybox", "mirror": None})
    assert cli("image", "bootstrap", "alpine") == 1 and "use busybox or debian" in cli.stderr


# ---------------------------------------------------------------- prune, df, check


def test_prune_prompts_and_no_tty_means_no(cli):
    assert cli("image", "prune") == 0
    assert cli.stdout == ("WARNING! This will remove all dangling images.\n"
                          "Are you sure you want to continue? [y/N] \n")
    assert cli("image", "prune", "-a") == 0
    assert "all images without at least one container" in cli.stdout
    assert cli.calls == []  # nothing pruned without consent


def test_prune_yes_on_a_terminal_and_force():
    cli = Harness(tty={"in": True})
    cli.client.prune_answer = {"ImagesDeleted": [{"Untagged": "x:1"}, {"Deleted": str(OTHER)}],
                               "SpaceReclaimed": 2_000_000}
    assert cli("image", "prune", "-a", stdin=b"y\n") == 0
    assert cli.calls == [("POST", "/images/prune", {"filters": {"dangling": ["false"]}})]
    assert cli.stdout.endswith(f"[y/N] Deleted Images:\nuntagged: x:1\ndeleted: {OTHER}\n\n"
                               "Total reclaimed space: 2MB\n")
    assert cli("image", "prune", stdin=b"n\n") == 0 and len(cli.calls) == 1
    assert cli("image", "prune", "-f") == 0
    assert cli.calls[-1] == ("POST", "/images/prune", {"filters": None})
    cli.client.prune_answer = {"ImagesDeleted": None, "SpaceReclaimed": 0}
    assert cli("image", "prune", "--force") == 0
    assert cli.stdout == "Total reclaimed space: 0B\n"


DF_ROWS = [["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"],
           ["Images", "2", "1", "4MB", "1MB (25%)"],
           ["Containers", "1", "0", "0B", "0B"],
           ["Local Volumes", "0", "0", "0B", "0B"],
           ["Build Cache", "0", "0", "0B", "0B"]]


def test_system_df(cli):
    cli.client.df_answer = {"DockyardSummary": [
        {"Type": "Images", "TotalCount": 2, "Active": 1, "Size": 4_000_000, "Reclaimable": 1_000_000},
        {"Type": "Containers", "TotalCount": 1, "Active": 0, "Size": 0, "Reclaimable": 0},
        {"Type": "Local Volumes", "TotalCount": 0, "Active": 0, "Size": 0, "Reclaimable": 0},
        {"Type": "Build Cache", "TotalCount": 0, "Active": 0, "Size": 0, "Reclaimable": 0}]}
    assert cli("system", "df") == 0
    assert [re.split(r"\s{2,}", line) for line in cli.stdout.splitlines()] == DF_ROWS
    assert cli("system", "df", "--format", "{{.Type}}={{.Size}}") == 0
    assert cli.stdout.splitlines()[0] == "Images=4MB"


def test_system_df_from_dockers_shape(cli):
    cli.client.df_answer = {"LayersSize": 4_000_000, "Images": [
        {"Size": 3_000_000, "SharedSize": 0, "Containers": 1}, {"Size": 1_000_000, "Containers": 0}],
        "Containers": [{"SizeRw": 0, "State": "exited"}], "Volumes": [], "BuildCache": []}
    assert cli("system", "df") == 0
    assert [re.split(r"\s{2,}", line) for line in cli.stdout.splitlines()] == DF_ROWS


def test_system_check_exit_codes(cli):
    cli.client.check_answer = {"Checked": [["blobs", 3], ["images", 1]], "Problems": [],
                               "Repairs": [], "Remaining": []}
    assert cli("system", "check") == 0
    assert cli.stdout == "checked 3 blobs, 1 image\nok: no problems\n"
    cli.client.check_answer = {"Checked": [["blobs", 3]], "Problems": ["blob sha256:x: bad"],
                               "Repairs": [], "Remaining": ["blob sha256:x: bad"]}
    assert cli("system", "check") == 1
    assert cli.stdout.splitlines()[1:] == [
        "problem: blob sha256:x: bad",
        "1 problem found (run 'dockyard system check --repair' to remove what is broken)"]
    cli.client.check_answer = {"Checked": [["blobs", 3]], "Problems": ["blob sha256:x: bad"],
                               "Repairs": ["removed blob x"], "Remaining": []}
    assert cli("system", "check", "--repair") == 0
    assert cli.calls[-1] == ("POST", "/dockyard/system/check", {"repair": True})
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
DIFF_TEXT = [
    "D /bin/ls",
    "C /bin/x  (1.2MB → 1.3MB, -rwxr-xr-x)",
    "C /etc/motd  (20B, -rw-r--r-- → -rw-------)",
    "A /etc/new  (12B, -rw-r--r--)",
    "A /opt  (drwxr-xr-x)",
    "A /opt/sh -> /bin/busybox  (12B, lrwxrwxrwx)",
    "C /tmp  (drwxrwxrwt, 0:0 → 1000:0)",
]


def test_image_diff_text():
    from dockyard.cli.format import human_size

    assert image_diff.render_text(CHANGES, human_size).splitlines() == DIFF_TEXT
    # the CLI renders the daemon's JSON the same way
    assert diff_lines(json.loads(image_diff.render_json(CHANGES)), human_size).splitlines() == DIFF_TEXT


def test_image_diff_json():
    out = json.loads(image_diff.render_json(CHANGES))
    assert out[0] == {"Path": "/bin/ls", "Kind": 2, "Action": "deleted", "New": None,
                      "Old": {"Type": "symlink", "Mode": "lrwxrwxrwx", "Size": 7, "Uid": 0, "Gid": 0,
                              "Linkname": "busybox"}}
    assert [c["Kind"] for c in out] == [2, 0, 0, 1, 1, 1, 0]


def test_image_diff_cli(cli):
    cli.client.diff_answer = json.loads(image_diff.render_json(CHANGES[3:4]))
    assert cli("image", "diff", "a", "b") == 0 and cli.stdout == "A /etc/new  (12B, -rw-r--r--)\n"
    assert cli.calls[-1] == ("GET", "/dockyard/images/diff", {"a": "a", "b": "b", "thorough": None})
    assert cli("image", "diff", "--thorough", "--format", "json", "a", "b") == 0
    assert json.loads(cli.stdout)[0]["Path"] == "/etc/new" and cli.calls[-1][2]["thorough"] is True
    assert cli("image", "diff", "a") == 1 and "requires exactly 2 arguments" in cli.stderr


# ---------------------------------------------------------------- dispatch and globals


def test_help_and_unknown_verbs(capsys):
    assert run(["--help"]) == 0
    out = capsys.readouterr().out
    for verb in ("images", "rmi", "save", "load", "import", "history", "tag", "inspect", "image",
                 "system", "version", "info", "export", "daemon"):
        assert f"  {verb} " in out
    assert "-H, --host string" in out
    assert run(["image", "--help"]) == 0 and "  bootstrap " in capsys.readouterr().out
    assert run(["nope"]) == 1
    assert capsys.readouterr().err == "dockyard: 'nope' is not a dockyard command.\nSee 'dockyard --help'.\n"
    assert run(["image", "nope"]) == 1
    assert run(["--bogus", "images"]) == 125


def test_verb_help_exits_zero(cli):
    assert cli("images", "--help") == 0
    assert cli.stdout.startswith("usage: dockyard images [OPTIONS] [REPOSITORY[:TAG]]")
    assert "--digests" in cli.stdout and not cli.made


def test_host_flag_and_env_choose_the_daemon(monkeypatch, tmp_path, capsys):
    made = []

    def factory(host):
        made.append(host)
        from dockyard.cli.client import Client

        return Client(host)

    monkeypatch.setattr("dockyard.cli.common._default_client", factory)
    monkeypatch.delenv("DOCKYARD_HOST", raising=False)
    assert run(["-H", f"unix://{tmp_path}/a.sock", "images"]) == 1
    assert capsys.readouterr().err.startswith(
        f"Cannot connect to the dockyard daemon at unix://{tmp_path}/a.sock.")
    assert run([f"--host=unix://{tmp_path}/b.sock", "images"]) == 1
    monkeypatch.setenv("DOCKYARD_HOST", f"unix://{tmp_path}/env.sock")
    assert run(["images"]) == 1
    assert f"unix://{tmp_path}/env.sock." in capsys.readouterr().err
    assert made == [f"unix://{tmp_path}/a.sock", f"unix://{tmp_path}/b.sock", None]
    assert run(["-H", "ftp://x", "images"]) == 125
    assert "invalid host 'ftp://x'" in capsys.readouterr().err
    assert run(["-H"]) == 125


def test_root_is_for_the_daemon_only(capsys):
    assert run(["--root", "/srv/a", "images"]) == 125
    err = capsys.readouterr().err
    assert err.startswith("--root is a flag of 'dockyard daemon'") and "-H/--host" in err


def test_daemon_unavailable_exits_one(cli, monkeypatch):
    def down(*a, **k):
        raise DaemonUnavailable("unix:///x.sock")

    monkeypatch.setattr(cli.client, "call", down)
    assert cli("images") == 1
    assert cli.stderr.startswith("Cannot connect to the dockyard daemon at unix:///x.sock. Is the "
                                 "dockyard daemon running?\nStart one with 'dockyard daemon'")


def test_version_prints_the_client_without_a_daemon(cli, monkeypatch):
    def down(*a, **k):
        raise DaemonUnavailable("unix:///x.sock")

    monkeypatch.setattr(cli.client, "call", down)
    assert cli("version") == 1
    assert cli.stdout.startswith("Client:\n Version:  ") and "API version:       1.45" in cli.stdout
    assert "Server" not in cli.stdout and cli.stderr.startswith("Cannot connect")


def test_parse_time():
    assert parse_time("2024-05-01T12:00:00Z") == 1714564800.0
    assert parse_time("2024-05-01T14:00:00.5+02:00") == 1714564800.5
    assert parse_time("2024-05-01T12:00:00.123456789Z") == pytest.approx(1714564800.123456789)
    assert parse_time("") is None and parse_time("yesterday") is None
