"""The `interop` command as an operator runs it, in its own process."""

import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from interop.cli.common import ChannelChoice, RoleChoice
from interop.services.outbox import ChannelKind
from interop.services.partners import is_npi
from interop.services.staff import Role
from interop.settings import Settings
from tests.conftest import REPOSITORY, corpus
from tests.e2e.conftest import LiveServer, free_port
from tests.e2e.sync_world import refer
from tests.keys import rsa_key

pytestmark = pytest.mark.e2e

NPI = "http://hl7.org/fhir/sid/us-npi"


def interop(
    *args: str, stdin: str | None = None, env: dict[str, str] | None = None, cwd: Path = REPOSITORY
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "interop", *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **(env or {})},
    )


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """The refusal an operator sees: exactly one line on stderr, no traceback."""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_partners_add_prints_what_the_partner_needs(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'cli.sqlite3'}"
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(rsa_key().jwks()))
    added = interop(
        "partners",
        "add",
        "Bayview Outpatient",
        "--identifier",
        "http://hl7.org/fhir/sid/us-npi|1234567893",
        "--jwks",
        str(jwks),
        "--scope",
        "system/*.rs system/Task.cru",
        "--part2-program",
        "--database-url",
        database,
    )
    assert added.returncode == 0, added.stderr
    printed = json.loads(added.stdout)
    assert set(printed) == {"client_id", "token_url", "fhir_base", "organization"}
    assert printed["token_url"] == "http://127.0.0.1:8080/auth/token"
    assert printed["organization"].startswith("Organization/")
    listed = json.loads(interop("partners", "list", "--database-url", database).stdout)
    assert listed[0]["part2_program"] is True
    assert listed[0]["scope"] == "system/*.rs system/Task.cru"
    disabled = interop("partners", "disable", printed["client_id"], "--database-url", database)
    assert disabled.returncode == 0
    assert (
        json.loads(interop("partners", "list", "--database-url", database).stdout)[0]["enabled"]
        is False
    )


def test_partners_enable_undoes_disable(tmp_path: Path) -> None:
    """Probe 11 L4: a disabled partner is enabled again from the command line, as through
    `POST /admin/partners/{client_id}/enable`."""
    database = f"sqlite:///{tmp_path / 'cli.sqlite3'}"
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(rsa_key().jwks()))
    added = interop(
        "partners", "add", "Bayview Outpatient", "--identifier", "urn:oid:1.2.3|bayview",
        "--jwks", str(jwks), "--scope", "system/*.rs", "--database-url", database,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    client_id = json.loads(added.stdout)["client_id"]

    def enabled() -> bool:
        listed = json.loads(interop("partners", "list", "--database-url", database).stdout)
        return bool(listed[0]["enabled"])

    assert interop("partners", "disable", client_id, "--database-url", database).returncode == 0
    assert enabled() is False
    again = interop("partners", "enable", client_id, "--database-url", database)
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == f"enabled {client_id}"
    assert enabled() is True
    unknown = interop("partners", "enable", "nobody", "--database-url", database)
    assert unknown.returncode != 0
    assert "nobody" in one_line_error(unknown)


def test_partners_add_refuses_a_private_key(tmp_path: Path) -> None:
    key = rsa_key()
    private_jwk = {**key.public_jwk(), "d": "not-for-sharing"}
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [private_jwk]}))
    refused = interop(
        "partners",
        "add",
        "Leaky Clinic",
        "--identifier",
        "urn:oid:1.2.3|x",
        "--jwks",
        str(jwks),
        "--scope",
        "system/*.rs",
        "--database-url",
        f"sqlite:///{tmp_path / 'cli.sqlite3'}",
    )
    assert refused.returncode == 2
    assert "holds private key material" in one_line_error(refused)


def _program(tmp_path: Path, database: str) -> str:
    """A stored program for a case manager to work for: an Organization, made by registering
    it as a partner; its id."""
    added = _add(database, _jwks(tmp_path, "program.jwks.json"), "1093817462", "--part2-program")
    assert added.returncode == 0, added.stderr
    return str(json.loads(added.stdout)["organization"]).removeprefix("Organization/")


def test_users_add_reads_the_password_from_the_prompt(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'cli.sqlite3'}"
    secret = "a long enough passphrase"
    added = interop(
        "users",
        "add",
        "casey.manager",
        "--role",
        "case-manager",
        "--program",
        _program(tmp_path, database),
        "--database-url",
        database,
        stdin=f"{secret}\n{secret}\n",
    )
    assert added.returncode == 0, added.stderr
    assert "added casey.manager (case-manager)" in added.stdout
    assert secret not in added.stdout
    again = interop(
        "users",
        "add",
        "casey.manager",
        "--role",
        "administrator",
        "--database-url",
        database,
        stdin=f"{secret}\n{secret}\n",
    )
    assert again.returncode == 2


def test_sync_dispatch_delivers_what_is_queued_and_status_shows_it(
    client: TestClient, settings: Settings, tmp_path: Path
) -> None:
    """An operator's round: a partner with a drop directory, a referral to it, one
    `interop sync dispatch --once` in its own process, and `sync status` telling how it went."""
    drop = tmp_path / "drop"
    drop.mkdir()
    database = settings.database_url
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(rsa_key().jwks()))
    added = interop(
        "partners", "add", "Coastal Primary Care",
        "--identifier", "http://hl7.org/fhir/sid/us-npi|1234567893",
        "--jwks", str(jwks), "--scope", "system/*.rs",
        "--channel", "ccda-directory", "--channel-address", str(drop),
        "--database-url", database,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    program = json.loads(added.stdout)["organization"].split("/")[1]
    refer(client, program)
    dispatched = interop("sync", "dispatch", "--once", "--database-url", database)
    assert dispatched.returncode == 0, dispatched.stderr
    assert [entry["state"] for entry in json.loads(dispatched.stdout)] == ["sent"]
    assert [path.name for path in drop.iterdir()] == ["referral-note-task-1-v1.xml"]
    status = json.loads(interop("sync", "status", "--database-url", database).stdout)
    assert [(row["event"], row["state"], row["resource"]) for row in status] == [
        ("referral-sent", "sent", "Task/task-1")
    ]
    assert "Quill" not in dispatched.stdout + dispatched.stderr + json.dumps(status)


def test_the_cli_lists_the_services_choices() -> None:
    assert [c.value for c in ChannelChoice] == [k.value for k in ChannelKind]
    assert [c.value for c in RoleChoice] == [r.value for r in Role]


def test_help_and_the_token_client_load_no_web_app_database_or_services() -> None:
    """What keeps `interop --help` under 0.3 s: the command tree imports none of them."""
    probe = (
        "import sys, interop.cli, interop.cli.token, interop.cli.keys; "
        "print(sorted(m for m in ('fastapi', 'sqlalchemy', 'interop.app', 'interop.services',"
        " 'fhir.resources', 'httpx') if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=REPOSITORY
    )
    assert loaded.stdout.strip() == "[]"
    shown = interop("--help")
    assert shown.returncode == 0
    assert "partners" in shown.stdout
    assert "token" in shown.stdout


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("1234567893", True),
        ("1184627390", True),
        ("1184627395", False),
        ("12345", False),
        ("123456789a", False),
        ("١٢٣٤٥٦٧٨٩٣", False),
    ],
)
def test_npi_check_digit(value: str, valid: bool) -> None:
    assert is_npi(value) is valid


def _jwks(tmp_path: Path, name: str, **changes: object) -> Path:
    key = {**rsa_key().public_jwk(), **changes}
    path = tmp_path / name
    path.write_text(json.dumps({"keys": [key]}))
    return path


def _add(database: str, jwks: Path, value: str, *flags: str) -> subprocess.CompletedProcess[str]:
    return interop(
        "partners", "add", "Clinic", "--identifier", f"{NPI}|{value}", "--jwks", str(jwks),
        "--scope", "system/*.rs", "--database-url", database, *flags,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("changes", "npi", "message"),
    [
        ({}, "12345", "'12345' is not an NPI"),
        ({}, "1234567890", "'1234567890' is not an NPI"),
        ({"alg": "HS256"}, "1234567893", "is marked alg 'HS256'"),
        ({"kty": "oct", "k": "c2VjcmV0"}, "1234567893", "is a 'oct' key"),
        ({"d": "cHJpdmF0ZQ"}, "1234567893", "holds private key material"),
    ],
)
def test_partners_add_refuses(
    tmp_path: Path, changes: dict[str, str], npi: str, message: str
) -> None:
    refused = _add(
        f"sqlite:///{tmp_path / 'cli.sqlite3'}", _jwks(tmp_path, "k.json", **changes), npi
    )

    assert refused.returncode == 2
    assert message in one_line_error(refused)


def test_partners_add_refuses_a_second_registration_of_an_identifier(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'cli.sqlite3'}"
    jwks = _jwks(tmp_path, "k.json")
    first = _add(database, jwks, "1234567893", "--quiet")
    assert first.returncode == 0, first.stderr
    again = _add(database, jwks, "1234567893")

    assert again.returncode == 2
    assert f"already registered for {NPI}|1234567893 (client_id {first.stdout.strip()})" in (
        one_line_error(again)
    )
    assert len(json.loads(interop("partners", "list", "--database-url", database).stdout)) == 1


@pytest.mark.parametrize(
    ("system", "message"),
    [
        ("urn:oid:2.16.840.1.113883.4.6", "already registered for"),
        ("HTTP://hl7.org/fhir/sid/us-npi", "the NPI's system is written"),
        ("https://hl7.org/fhir/sid/us-npi", "the NPI's system is written"),
        ("http://hl7.org/fhir/sid/us-npi/", "the NPI's system is written"),
    ],
)
def test_an_npi_in_another_spelling_is_the_same_npi(
    tmp_path: Path, system: str, message: str
) -> None:
    """Probe 9 H1: consents name an NPI by its OID too, so a registration under the OID is
    the organization registered under the URL, checked as an NPI (Luhn) like it."""
    database = f"sqlite:///{tmp_path / 'cli.sqlite3'}"
    jwks = _jwks(tmp_path, "k.json")
    assert _add(database, jwks, "1184627390", "--quiet").returncode == 0
    twin = interop(
        "partners", "add", "Twin", "--identifier", f"{system}|1184627390", "--jwks", str(jwks),
        "--scope", "system/*.rs", "--database-url", database,
    )  # fmt: skip
    assert twin.returncode == 2
    assert message in one_line_error(twin)
    bad = interop(
        "partners", "add", "Bad", "--identifier", "urn:oid:2.16.840.1.113883.4.6|1234567890",
        "--jwks", str(jwks), "--scope", "system/*.rs", "--database-url", database,
    )  # fmt: skip
    assert "'1234567890' is not an NPI" in one_line_error(bad)


def test_a_partner_with_a_stored_organizations_identifier_is_that_organization(
    tmp_path: Path,
) -> None:
    """The demo's programs are Organizations; registering Harbor Detox's EHR by its NPI links
    the registration to Organization/harbor-detox rather than making a second one."""
    database = f"sqlite:///{tmp_path / 'cli.sqlite3'}"
    seeded = interop("demo", "--database-url", database, "--keys-dir", str(tmp_path / "keys"))
    assert seeded.returncode == 0, seeded.stderr
    jwks = _jwks(tmp_path, "k.json")
    unflagged = _add(database, jwks, "1093817462")
    assert unflagged.returncode == 2
    assert "is a Part 2 program: register it with --part2-program" in one_line_error(unflagged)

    linked = _add(database, jwks, "1093817462", "--part2-program", "--first-party")
    assert linked.returncode == 0, linked.stderr
    assert json.loads(linked.stdout)["organization"] == "Organization/harbor-detox"
    riverside = _add(database, jwks, "1184627390", "--part2-program")
    assert riverside.returncode == 2
    assert "already registered" in one_line_error(riverside)
    listed = json.loads(interop("partners", "list", "--database-url", database).stdout)
    assert sorted(p["organization"] for p in listed) == [
        "Organization/bayview-iop",
        "Organization/harbor-detox",
        "Organization/lakeside-recovery",
        "Organization/northside-primary",
        "Organization/riverside-residential",
    ]


def test_users_add_reads_the_password_from_stdin(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'cli.sqlite3'}"
    added = interop(
        "users", "add", "casey.manager", "--role", "case-manager",
        "--program", _program(tmp_path, database), "--password-stdin", "--database-url", database,
        stdin="a long enough passphrase\n",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert "added casey.manager (case-manager)" in added.stdout
    empty = interop(
        "users", "add", "riley", "--role", "administrator", "--password-stdin",
        "--database-url", database, stdin="",
    )  # fmt: skip
    assert empty.returncode == 2
    assert "--password-stdin read no password" in one_line_error(empty)


def test_keygen_writes_a_key_pair_whose_jwks_registers(tmp_path: Path) -> None:
    made = interop("partners", "keygen", "bayview", "--dir", str(tmp_path), "--algorithm", "ES384")
    assert made.returncode == 0, made.stderr
    jwks = json.loads((tmp_path / "bayview.jwks.json").read_text())
    assert [key["alg"] for key in jwks["keys"]] == ["ES384"]
    assert "d" not in jwks["keys"][0]
    assert (tmp_path / "bayview.key.pem").stat().st_mode & 0o077 == 0
    added = _add(
        f"sqlite:///{tmp_path / 'cli.sqlite3'}", tmp_path / "bayview.jwks.json", "1234567893"
    )
    assert added.returncode == 0, added.stderr


def test_hl7v2_import_says_why_a_message_was_refused(tmp_path: Path) -> None:
    messages = tmp_path / "messages.hl7"
    messages.write_bytes(
        b"MSH|^~\\&|EHR|CLINIC|INTEROP|HARBOR|20260101||REF^I12|1|P|2.5.1\rPID|1\r"
    )
    imported = interop(
        "hl7v2", "import", str(messages), "--database-url", f"sqlite:///{tmp_path / 'db.sqlite3'}"
    )
    assert imported.returncode == 1, imported.stderr
    line = imported.stdout.strip()
    assert line.startswith("message 1: AE ") or line.startswith("message 1: AR ")
    assert "PID-3" in line


def test_hl7v2_import_exits_1_unless_every_message_is_accepted(tmp_path: Path) -> None:
    """As `ccda import` does; the reason an old (v2.3) ACK gives in MSA-3 is printed too, as
    the operator reads it (`ADT^A04`, where the ACK escapes it as `ADT\\S\\A04`)."""
    database = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    folder = corpus("hl7v2")
    accepted = interop(
        "hl7v2", "import", str(folder / "ADT-A03-01.hl7"), "--database-url", database
    )
    assert (accepted.returncode, accepted.stdout) == (0, "message 1: AA\n"), accepted.stderr
    refused = interop("hl7v2", "import", str(folder / "ADT04-23.hl7"), "--database-url", database)
    assert refused.returncode == 1, refused.stderr
    assert refused.stdout == (
        "message 1: AR MSH-9: event ADT^A04 is not accepted "
        "(REF^I12, REF^I14, RRI^I12, ADT^A03 are)\n"
    )


@dataclass
class BadInput:
    """One way an operator gets it wrong, and the one line that must say so."""

    args: list[str]
    message: str
    exit_code: int
    env: dict[str, str] = field(default_factory=dict)
    prepare: Callable[[Path], None] | None = None


def _write(name: str, content: str) -> Callable[[Path], None]:
    def prepare(folder: Path) -> None:
        (folder / name).write_text(content)

    return prepare


def _keygen(folder: Path) -> None:
    assert interop("partners", "keygen", "partner", "--dir", str(folder)).returncode == 0


_PARTNER = ["partners", "add", "C", "--identifier", f"{NPI}|1234567893", "--scope", "system/*.rs"]
BAD_INPUTS = {
    "refused database": BadInput(
        ["audit", "verify", "--database-url", "postgresql+psycopg://nobody@127.0.0.1:1/none"],
        "error: cannot use the database: connection failed",
        1,
    ),
    "malformed database URL": BadInput(
        ["partners", "list", "--database-url", "not a url"],
        "error: unsupported database URL (no scheme)",
        2,
    ),
    "unparsable database URL": BadInput(
        ["partners", "list", "--database-url", "postgresql://nobody@localhost:port/db"],
        "error: not a usable database URL",
        2,
    ),
    "JWKS not JSON": BadInput(
        [*_PARTNER, "--jwks", "jwks.json"],
        "error: jwks.json is not JSON",
        2,
        prepare=_write("jwks.json", '{"keys": ['),
    ),
    "JWKS is a PEM": BadInput(
        [*_PARTNER, "--jwks", "key.pem"],
        "error: key.pem is a PEM key, not a JWKS",
        2,
        prepare=_write("key.pem", "-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----\n"),
    ),
    "missing --jwks file": BadInput(
        [*_PARTNER, "--jwks", "absent.json"], "error: JWKS file absent.json does not exist", 2
    ),
    "missing import file": BadInput(
        ["hl7v2", "import", "absent.hl7"], "error: message file absent.hl7 does not exist", 2
    ),
    "production without a key": BadInput(
        ["partners", "list"],
        "error: configuration: TOKEN_SIGNING_KEY of at least 32 characters is required",
        2,
        env={"ENVIRONMENT": "production"},
    ),
    "audit verify of a mistyped path": BadInput(
        ["audit", "verify", "--database-url", "sqlite:///typo.sqlite3"],
        "error: no database at typo.sqlite3",
        1,
    ),
    "missing option": BadInput(["partners", "add", "C"], "error: Missing option '--identifier'", 2),
    "token without a server": BadInput(
        ["token", "some-client", "--key", "partner.key.pem", "--server", "http://127.0.0.1:1"],
        "error: cannot reach http://127.0.0.1:1/fhir/.well-known/smart-configuration",
        1,
        prepare=_keygen,
    ),
    "token with a key that is not PEM": BadInput(
        ["token", "some-client", "--key", "key.pem"],
        "error: key.pem is not an unencrypted PEM private key",
        2,
        prepare=_write("key.pem", "not a key"),
    ),
}


@pytest.mark.parametrize("case", BAD_INPUTS.values(), ids=BAD_INPUTS.keys())
def test_bad_input_is_one_line_naming_the_fix(tmp_path: Path, case: BadInput) -> None:
    if case.prepare is not None:
        case.prepare(tmp_path)
    result = interop(*case.args, env=case.env, cwd=tmp_path)

    assert result.returncode == case.exit_code, result.stderr
    assert one_line_error(result).startswith(case.message)
    assert not (tmp_path / "typo.sqlite3").exists()


def test_mllp_and_serve_refuse_a_port_in_use(tmp_path: Path) -> None:
    port = free_port()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        for command in ("mllp", "serve"):
            refused = interop(
                command, "--port", str(port), "--database-url", f"sqlite:///{tmp_path / 'd.db'}"
            )
            assert refused.returncode == 1
            assert one_line_error(refused) == (
                f"error: port {port} on 127.0.0.1 is in use: stop what holds it or pick "
                "another --port"
            )


def test_make_run_serves_on_the_port_it_is_given() -> None:
    planned = subprocess.run(
        ["make", "-n", "run", "PORT=9999"],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        check=True,
    )

    assert ".venv/bin/interop serve --port 9999" in planned.stdout


def test_token_names_the_servers_refusal(live_server: LiveServer, tmp_path: Path) -> None:
    root = live_server.base.removesuffix("/fhir")
    _keygen(tmp_path)
    refused = interop(
        "token", "no-such-client", "--key", str(tmp_path / "partner.key.pem"), "--server", root
    )

    assert refused.returncode == 1
    assert one_line_error(refused).startswith(f"error: {root}/auth/token refused: invalid_client")
