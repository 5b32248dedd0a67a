"""The `interop` command given what an external tester gave it: a partner's Bulk Data manifest
without counts, names that are blank or malformed, files that are already there and paths
that lead nowhere. Each is a clean exit: 0 with a summary, or 2 with one line, nothing
written."""

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.builders import patient
from tests.e2e.conftest import LiveServer
from tests.e2e.test_cli import NPI, interop, one_line_error
from tests.keys import rsa_key

pytestmark = pytest.mark.e2e


@dataclass
class BulkServer:
    """A partner's Bulk Data server on loopback: kick-off, one poll, files; the manifest is
    whatever the test gives it, and each file request's Authorization header is noted."""

    manifest: dict[str, Any]
    files: dict[str, bytes]
    port: int = 0
    authorizations: list[str | None] = field(default_factory=list)

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextmanager
def bulk_server(manifest: dict[str, Any], files: dict[str, bytes]) -> Iterator[BulkServer]:
    served = BulkServer(manifest, files)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?")[0]
            if path.endswith("/$export"):
                self.send_response(202)
                self.send_header("Content-Location", f"{served.root}/status/1")
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif path == "/status/1":
                self._answer(json.dumps(served.manifest).encode(), "application/json")
            elif path in served.files:
                served.authorizations.append(self.headers.get("Authorization"))
                self._answer(served.files[path], "application/fhir+ndjson")
            else:
                self.send_error(404)

        def _answer(self, body: bytes, media_type: str) -> None:
            self.send_response(200)
            self.send_header("Content-Type", media_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    served.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield served
    finally:
        server.shutdown()
        server.server_close()


def _line(family: str) -> bytes:
    return json.dumps({"resourceType": "Patient", "name": [{"family": family}]}).encode() + b"\n"


def test_export_of_a_manifest_without_counts_saves_every_file(tmp_path: Path) -> None:
    """Defect 1: `count` (and `error`) are optional in the IG; a partner's manifest leaves
    them out, splits a type into two files and carries an extension. Every file is saved
    under its own name, and the summary counts what arrived."""
    manifest = {
        "transactionTime": "2026-12-07T20:00:00Z",
        "request": "http://partner/fhir/$export?_type=Patient,Condition",
        "requiresAccessToken": True,
        "output": [
            {"type": "Patient", "url": "{root}/files/p1.ndjson"},
            {"type": "Patient", "url": "{root}/files/p2.ndjson"},
            {"type": "Condition", "url": "{root}/files/c.ndjson", "extension": {"x": 1}},
        ],
        "extension": {"https://partner.example/ext": True},
    }
    files = {
        "/files/p1.ndjson": _line("One") + _line("Two"),
        "/files/p2.ndjson": _line("Three"),
        "/files/c.ndjson": b'{"resourceType": "Condition"}',  # no final newline
    }
    with bulk_server(manifest, files) as partner:
        for item in manifest["output"]:
            item["url"] = item["url"].replace("{root}", partner.root)
        exported = interop(
            "export", "--server", partner.root, "--token", "partner-token",
            "--type", "Patient,Condition", "--output", str(tmp_path / "out"),
        )  # fmt: skip

    assert exported.returncode == 0, exported.stderr
    summary = json.loads(exported.stdout)
    assert summary["files"] == {"Patient": 3, "Condition": 1}
    assert summary["errors"] == 0
    assert summary["uncounted_by_server"] == [
        "Patient.ndjson",
        "Patient-2.ndjson",
        "Condition.ndjson",
    ]
    out = tmp_path / "out"
    assert sorted(path.name for path in out.iterdir()) == [
        "Condition.ndjson",
        "Patient-2.ndjson",
        "Patient.ndjson",
        "manifest.json",
    ]
    assert (out / "Patient-2.ndjson").read_bytes() == _line("Three")
    assert partner.authorizations == ["Bearer partner-token"] * 3


def test_export_fetches_files_without_the_token_when_the_manifest_says_so(
    tmp_path: Path,
) -> None:
    """requiresAccessToken false (files behind signed storage URLs): no Authorization."""
    manifest: dict[str, Any] = {
        "transactionTime": "2026-12-07T20:00:00Z",
        "request": "http://partner/fhir/$export",
        "requiresAccessToken": False,
        "output": [{"type": "Patient", "url": "{root}/files/p.ndjson", "count": 1}],
        "error": [],
    }
    with bulk_server(manifest, {"/files/p.ndjson": _line("One")}) as partner:
        manifest["output"][0]["url"] = f"{partner.root}/files/p.ndjson"
        exported = interop(
            "export", "--server", partner.root, "--token", "t", "--output", str(tmp_path / "out")
        )

    assert exported.returncode == 0, exported.stderr
    assert json.loads(exported.stdout)["uncounted_by_server"] == []
    assert partner.authorizations == [None]


def test_a_partners_export_from_the_readme_exits_0(
    live_server: LiveServer, database_url: str, tmp_path: Path
) -> None:
    """The README's partner export, end to end: a partner's manifest carries no counts (its
    files are decided again at download), and the export still succeeds."""
    root = live_server.base.removesuffix("/fhir")
    created = httpx.post(
        f"{live_server.base}/Patient", json=patient(family="Shown"), headers=live_server.headers
    )
    assert created.status_code == 201, created.text
    database = database_url  # the live server's
    assert interop("partners", "keygen", "bayview", "--dir", str(tmp_path)).returncode == 0
    added = interop(
        "partners", "add", "Bayview", "--identifier", f"{NPI}|1234567893",
        "--jwks", str(tmp_path / "bayview.jwks.json"), "--scope", "system/*.rs",
        "--quiet", "--database-url", database,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    token = interop(
        "token", added.stdout.strip(), "--key", str(tmp_path / "bayview.key.pem"),
        "--server", root,
    )  # fmt: skip
    assert token.returncode == 0, token.stderr

    exported = interop(
        "export", "--server", root, "--token", token.stdout.strip(),
        "--type", "Patient,Condition", "--output", str(tmp_path / "out"),
    )  # fmt: skip

    assert exported.returncode == 0, exported.stderr
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert all("count" not in item for item in manifest["output"])
    summary = json.loads(exported.stdout)
    assert set(summary["uncounted_by_server"]) == {
        item["type"] + ".ndjson" for item in manifest["output"]
    }


def test_keygen_never_overwrites_a_key(tmp_path: Path) -> None:
    """Defect 2: an existing NAME.key.pem or NAME.jwks.json is refused; nothing is written."""
    for existing in ("partner.key.pem", "partner.jwks.json"):
        folder = tmp_path / existing
        folder.mkdir()
        (folder / existing).write_text("kept\n")
        refused = interop("partners", "keygen", "partner", "--dir", str(folder))

        assert refused.returncode == 2
        assert f"{folder / existing} already exists" in one_line_error(refused)
        assert [path.name for path in folder.iterdir()] == [existing]
        assert (folder / existing).read_text() == "kept\n"


def test_keygen_makes_its_folder_only_when_it_writes(tmp_path: Path) -> None:
    made = interop("partners", "keygen", "partner", "--dir", str(tmp_path / "a" / "b"))
    assert made.returncode == 0, made.stderr
    assert sorted(path.name for path in (tmp_path / "a" / "b").iterdir()) == [
        "partner.jwks.json",
        "partner.key.pem",
    ]
    (tmp_path / "file").write_text("")
    refused = interop("partners", "keygen", "partner", "--dir", str(tmp_path / "file"))
    assert refused.returncode == 2
    assert "is a file, not a folder" in one_line_error(refused)


@pytest.mark.parametrize("name", ["", "   "])
def test_partners_add_refuses_a_blank_name(tmp_path: Path, name: str) -> None:
    """Defect 3: a blank name is a usage error, and nothing is stored (no database made)."""
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(rsa_key().jwks()))
    database = tmp_path / "cli.sqlite3"
    refused = interop(
        "partners", "add", name, "--identifier", f"{NPI}|1234567893", "--jwks", str(jwks),
        "--scope", "system/*.rs", "--database-url", f"sqlite:///{database}",
    )  # fmt: skip

    assert refused.returncode == 2
    assert "the partner's name is blank" in one_line_error(refused)
    assert not database.exists()


def test_partners_add_strips_the_name(tmp_path: Path) -> None:
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(rsa_key().jwks()))
    database = f"sqlite:///{tmp_path / 'cli.sqlite3'}"
    added = interop(
        "partners", "add", "  Bayview Outpatient \t", "--identifier", f"{NPI}|1234567893",
        "--jwks", str(jwks), "--scope", "system/*.rs", "--database-url", database,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    listed = json.loads(interop("partners", "list", "--database-url", database).stdout)
    assert [partner["name"] for partner in listed] == ["Bayview Outpatient"]


def program(tmp_path: Path, database: str) -> str:
    """A stored program (an Organization, made by registering it), as its id."""
    jwks = tmp_path / "program.jwks.json"
    jwks.write_text(json.dumps(rsa_key().jwks()))
    added = interop(
        "partners", "add", "Harbor", "--identifier", f"{NPI}|1093817462", "--jwks", str(jwks),
        "--scope", "system/*.rs", "--part2-program", "--database-url", database,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    return str(json.loads(added.stdout)["organization"]).removeprefix("Organization/")


def _usernames(database: Path) -> list[str]:
    with sqlite3.connect(database) as connection:
        return [row[0] for row in connection.execute("SELECT username FROM staff_user")]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["", "--role", "administrator"], "'' is not a username"),
        (["   ", "--role", "administrator"], "'   ' is not a username"),
        (["casey manager", "--role", "administrator"], "'casey manager' is not a username"),
        (["casey!", "--role", "administrator"], "'casey!' is not a username"),
        (["casey", "--role", "case-manager"], "a case manager needs --program ID"),
        (["casey", "--role", "case-manager", "--program", " "], "--program is blank"),
        (
            ["casey", "--role", "case-manager", "--program", "nope"],
            "no program Organization/nope is stored",
        ),
    ],
)
def test_users_add_refuses(tmp_path: Path, args: list[str], message: str) -> None:
    """Defect 4: refused in one line before the password is read, and no account made."""
    database = tmp_path / "cli.sqlite3"
    url = f"sqlite:///{database}"
    program(tmp_path, url)
    refused = interop(
        "users", "add", *args, "--password-stdin", "--database-url", url,
        stdin="a long enough passphrase\n",
    )  # fmt: skip

    assert refused.returncode == 2, refused.stderr
    assert message in one_line_error(refused)
    assert _usernames(database) == []


def test_users_add_takes_a_stored_program_and_an_email_username(tmp_path: Path) -> None:
    database = tmp_path / "cli.sqlite3"
    url = f"sqlite:///{database}"
    harbor = program(tmp_path, url)
    for username, flags in (
        ("demo.harbor-detox", ["--role", "case-manager", "--program", harbor]),
        ("jo+ops@example.org", ["--role", "case-manager", "--program", f"Organization/{harbor}"]),
        ("ada_admin", ["--role", "administrator"]),
    ):
        added = interop(
            "users", "add", username, *flags, "--password-stdin", "--database-url", url,
            stdin="a long enough passphrase\n",
        )  # fmt: skip
        assert added.returncode == 0, added.stderr
    assert sorted(_usernames(database)) == ["ada_admin", "demo.harbor-detox", "jo+ops@example.org"]


@pytest.mark.parametrize("purpose", ["", "  ", "TR EAT"])
def test_token_refuses_a_blank_purpose(tmp_path: Path, purpose: str) -> None:
    """Defect 5: refused before anything is signed or sent (the server here answers nothing,
    which would be exit 1)."""
    assert interop("partners", "keygen", "partner", "--dir", str(tmp_path)).returncode == 0
    refused = interop(
        "token", "some-client", "--key", str(tmp_path / "partner.key.pem"),
        "--purpose", "TREAT", "--purpose", purpose, "--server", "http://127.0.0.1:1",
    )  # fmt: skip

    assert refused.returncode == 2
    assert "is not a purpose of use" in one_line_error(refused)


@pytest.fixture
def database(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'cli.sqlite3'}"
    assert interop("db", "upgrade", "--database-url", url).returncode == 0
    return url


def test_checkpoint_into_a_missing_folder_is_a_usage_error(tmp_path: Path, database: str) -> None:
    """Defect 6: one line saying the folder is missing; none is made."""
    output = tmp_path / "missing" / "dir" / "head.jws"
    refused = interop("audit", "checkpoint", "--database-url", database, "--output", str(output))

    assert refused.returncode == 2
    assert f"the folder {output.parent} does not exist" in one_line_error(refused)
    assert not (tmp_path / "missing").exists()
    into_folder = interop(
        "audit", "checkpoint", "--database-url", database, "--output", str(tmp_path)
    )
    assert into_folder.returncode == 2
    assert "is a folder" in one_line_error(into_folder)


@pytest.mark.parametrize(
    ("output", "message"),
    [("existing-file", "is a file, not a folder"), ("missing/out", "does not exist")],
)
def test_export_to_an_unusable_output_is_refused_before_the_kickoff(
    tmp_path: Path, output: str, message: str
) -> None:
    """Refused in one line before any server is asked (this one answers nothing, which
    would be exit 1), and no folder made."""
    (tmp_path / "existing-file").write_text("kept\n")
    refused = interop(
        "export", "--server", "http://127.0.0.1:1", "--token", "t",
        "--output", str(tmp_path / output),
    )  # fmt: skip

    assert refused.returncode == 2
    assert message in one_line_error(refused)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["existing-file"]
    assert (tmp_path / "existing-file").read_text() == "kept\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["db", "attribute-origin", "Organization/nope"], "Organization/nope is not a stored"),
        (["audit", "accounting", "nope"], "Patient/nope is not known: give the id of a stored"),
    ],
)
def test_an_argument_that_names_nothing_is_a_usage_error(
    database: str, args: list[str], message: str
) -> None:
    refused = interop(*args, "--database-url", database)

    assert refused.returncode == 2
    assert message in one_line_error(refused)
