"""C-CDA in, against real processes: a partner's drop posted to `interop serve` on loopback, and
`interop ccda import` / `interop ccda watch` run as commands on the same database; what they
stored is read back through the server's FHIR API (issue 12, item 4)."""

import hashlib
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from interop.services.partners import NewPartner, PartnerService
from interop.store.database import make_engine
from interop.store.migrate import upgrade
from tests.adapters.ccda.test_writer import part2
from tests.conftest import REPOSITORY
from tests.e2e.conftest import LiveServer
from tests.interop.inbound.test_ccda_intake import (
    PART2_LABELS,
    RECEIVER_NPI,
    labels,
    referral_note,
    transfer_summary,
)
from tests.keys import rsa_key


@pytest.fixture
def program(live_server: LiveServer) -> str:
    body = {
        "resourceType": "Organization",
        "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": RECEIVER_NPI}],
        "name": "Northshore IOP",
    }
    answer = httpx.post(f"{live_server.base}/Organization", json=body, headers=live_server.headers)
    assert answer.status_code == 201, answer.text
    return f"Organization/{answer.json()['id']}"


@pytest.fixture
def sender(database_url: str) -> tuple[str, str]:
    """A partner registered as an operator would, whose documents the commands take in."""
    engine = make_engine(database_url)
    upgrade(engine)  # as the server does; commands run without one too
    partner = PartnerService(engine).register(
        NewPartner(
            name="Harbor Recovery & Wellness",
            identifiers=[("http://hl7.org/fhir/sid/us-npi", "1234567893")],
            scopes="system/ServiceRequest.c system/Task.c",
            jwks=rsa_key().jwks(),
            part2_program=True,
        )
    )
    engine.dispose()
    return partner.client_id, partner.organization


def interop(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "interop", *args],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def read(live_server: LiveServer, path: str, **params: str) -> Any:
    answer = httpx.get(f"{live_server.base}/{path}", params=params, headers=live_server.headers)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_a_partner_drop_posted_to_the_server_becomes_its_referral(
    live_server: LiveServer, program: str
) -> None:
    headers = {
        "Authorization": live_server.authorization,
        "Content-Type": "application/xml",
        "Idempotency-Key": '"referral-note-doc-1.xml"',
    }
    root = live_server.base.removesuffix("/fhir")
    raw = referral_note(part2=part2())
    answers = [httpx.post(f"{root}/inbound/ccda", content=raw, headers=headers) for _ in "12"]
    assert [a.status_code for a in answers] == [201, 201]
    assert answers[1].headers["idempotent-replayed"] == "true"
    kept = read(live_server, answers[0].headers["location"].removeprefix("/fhir/"))
    assert kept["type"]["coding"][0]["code"] == "57133-1"
    bundle = read(live_server, "Task", owner=program, status="requested")
    assert bundle["total"] == 1
    task = bundle["entry"][0]["resource"]
    assert task["requester"]["reference"] == live_server.organization
    assert labels(task) >= PART2_LABELS


def test_import_and_watch_take_documents_from_files(
    live_server: LiveServer,
    program: str,
    sender: tuple[str, str],
    database_url: str,
    tmp_path: Path,
) -> None:
    client_id, organization = sender
    note = tmp_path / "referral.xml"
    note.write_bytes(referral_note())
    imported = interop(
        "ccda", "import", str(note), "--from", client_id, "--database-url", database_url
    )
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.startswith("processed #")
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "transfer-summary-1.xml").write_bytes(transfer_summary(part2=part2()))
    (inbox / "garbage.xml").write_bytes(b"<ClinicalDocument><unclosed>")
    (inbox / ".transfer-summary-2.xml.1f2e.part").write_bytes(b"<still being written")
    watched = interop(
        "ccda", "watch", str(inbox), "--from", client_id, "--once", "--database-url", database_url
    )
    assert watched.returncode == 0, watched.stderr
    lines = sorted(watched.stdout.splitlines())
    assert lines[0].startswith("processed #")
    assert lines[1].startswith("refused #")
    assert lines[1].endswith("held for staff, see GET /inbound/held")
    digest = hashlib.sha256(b"<ClinicalDocument><unclosed>").hexdigest()[:12]
    assert f"sha256:{digest}" in lines[1]  # the operator finds the file by its digest
    assert "inbound #" in watched.stderr
    for name in ("garbage", "transfer-summary"):  # senders name files after patients
        assert name not in watched.stdout
        assert name not in watched.stderr
    assert sorted(p.name for p in inbox.iterdir()) == [
        ".transfer-summary-2.xml.1f2e.part",
        "held",
        "processed",
    ]
    assert [p.name for p in (inbox / "processed").iterdir()] == ["transfer-summary-1.xml"]
    assert [p.name for p in (inbox / "held").iterdir()] == ["garbage.xml"]
    statements = read(live_server, "MedicationStatement", source=organization)
    assert statements["total"] == 1
    assert statements["entry"][0]["resource"]["status"] == "active"
    unknown = interop(
        "ccda", "import", str(note), "--from", "nobody", "--database-url", database_url
    )
    assert unknown.returncode == 2
    assert "no partner has client_id 'nobody'" in unknown.stderr


def test_watch_prints_no_file_names(
    sender: tuple[str, str], database_url: str, tmp_path: Path
) -> None:
    """Probe 11 M5: partners name files after patients, and the watch's stdout ends up in the
    service manager's journal; each line names our inbound row and the file's digest."""
    client_id, _ = sender
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "Jordan Rivers DOB 1991-08-14 referral.xml").write_bytes(referral_note())
    watched = interop(
        "ccda", "watch", str(inbox), "--from", client_id, "--once", "--database-url", database_url
    )
    assert watched.returncode == 0, watched.stderr
    for said in (watched.stdout, watched.stderr):
        assert "Jordan" not in said
        assert "1991" not in said
        assert "referral.xml" not in said
    digest = hashlib.sha256(referral_note()).hexdigest()[:12]
    assert watched.stdout.splitlines() == [
        f"held #1 sha256:{digest}: held for staff, see GET /inbound/held"
    ]


def test_import_prints_why_staff_hold_a_document(
    sender: tuple[str, str], database_url: str, tmp_path: Path
) -> None:
    """Probe 11 L1: the operator is staff and is told why a document is held (the partner, who
    posts it over HTTP, is told only that it is held)."""
    client_id, _ = sender
    note = tmp_path / "referral.xml"
    note.write_bytes(referral_note())  # its recipient names no program here: no `program`
    imported = interop(
        "ccda", "import", str(note), "--from", client_id, "--database-url", database_url
    )
    assert imported.returncode == 1, imported.stderr
    assert imported.stdout.strip() == (
        "held #1: the document's intended recipient "
        "(informationRecipient/receivedOrganization) names no program here"
    )
