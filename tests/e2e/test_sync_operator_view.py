"""What an operator sees of `interop sync`, each command in its own process: the dispatcher's
line per delivery on stderr (no patient data), and `sync status` saying when it truncates."""

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from interop.settings import Settings
from interop.store.database import make_engine, unit_of_work
from interop.store.tables import OutboxRow
from tests.e2e.sync_world import refer
from tests.e2e.test_cli import interop
from tests.keys import rsa_key

pytestmark = pytest.mark.e2e


def drop_partner(settings: Settings, tmp_path: Path) -> tuple[str, str]:
    """A partner that takes documents from a folder: its client id and Organization id."""
    drop = tmp_path / "drop"
    drop.mkdir()
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(rsa_key().jwks()))
    added = interop(
        "partners", "add", "Coastal Primary Care",
        "--identifier", "http://hl7.org/fhir/sid/us-npi|1234567893",
        "--jwks", str(jwks), "--scope", "system/*.rs",
        "--channel", "ccda-directory", "--channel-address", str(drop),
        "--database-url", settings.database_url,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    made: dict[str, str] = json.loads(added.stdout)
    return made["client_id"], made["organization"].removeprefix("Organization/")


def test_the_dispatcher_logs_each_delivery_without_patient_data(
    client: TestClient, settings: Settings, tmp_path: Path
) -> None:
    partner, program = drop_partner(settings, tmp_path)
    refer(client, program)
    dispatched = interop("sync", "dispatch", "--once", "--database-url", settings.database_url)
    assert dispatched.returncode == 0, dispatched.stderr
    pattern = (
        rf"delivery id=\d+ partner={re.escape(partner)} channel=ccda-directory"
        r" event=referral-sent state=sent attempt=1 elapsed_ms=\d+ cause=-$"
    )
    assert re.search(pattern, dispatched.stderr, re.MULTILINE), dispatched.stderr
    assert "Quill" not in dispatched.stderr
    assert "Robin" not in dispatched.stderr


def test_status_says_when_more_deliveries_match_than_it_shows(
    settings: Settings, tmp_path: Path
) -> None:
    partner, _program = drop_partner(settings, tmp_path)
    engine = make_engine(settings.database_url)
    now = datetime.now(UTC)
    with unit_of_work(engine) as session:
        for version in (1, 2):
            session.add(
                OutboxRow(
                    created_at=now,
                    partner_client_id=partner,
                    channel="ccda-directory",
                    event="referral-sent",
                    resource_type="Task",
                    resource_id="t1",
                    version_id=version,
                    state="queued",
                    next_attempt_at=now,
                )
            )
    engine.dispose()
    url = settings.database_url
    cut = interop("sync", "status", "--limit", "1", "--database-url", url)
    assert cut.returncode == 0, cut.stderr
    assert len(json.loads(cut.stdout)) == 1
    assert "truncated: the newest 1 deliveries are shown and more match" in cut.stderr
    whole = interop("sync", "status", "--limit", "2", "--database-url", url)
    assert len(json.loads(whole.stdout)) == 2
    assert "truncated" not in whole.stderr
