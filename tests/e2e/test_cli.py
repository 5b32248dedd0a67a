"""The `interop` command as an operator runs it, in its own process."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from interop.settings import Settings
from tests.conftest import REPOSITORY
from tests.e2e.sync_world import refer
from tests.keys import rsa_key

pytestmark = pytest.mark.e2e


def interop(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "interop", *args],
        cwd=REPOSITORY,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


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
    assert "public RSA or EC keys only" in refused.stderr


def test_users_add_reads_the_password_from_the_prompt(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'cli.sqlite3'}"
    secret = "a long enough passphrase"
    added = interop(
        "users",
        "add",
        "casey.manager",
        "--role",
        "case-manager",
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
