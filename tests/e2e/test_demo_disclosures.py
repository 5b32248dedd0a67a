"""The demo story as partners and compliance staff meet it, against a real server process:
an unrelated partner learns nothing, the program a referral was sent to reads it, and the
patient's accounting lists exactly the disclosures that happened (issue 10)."""

import contextlib
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from interop.services.demo import CLIENT
from interop.services.errors import InvalidRequest
from interop.services.partners import NewPartner, PartnerService
from interop.services.staff import LoginPolicy, Role, StaffService
from interop.store.database import make_engine
from tests.conftest import REPOSITORY
from tests.e2e.conftest import LiveServer
from tests.e2e.test_demo_story import PASSWORD, run_demo
from tests.keys import ClientKey, assertion, rsa_key, token_form

pytestmark = pytest.mark.e2e

STORY_TYPES = (
    "Patient",
    "CarePlan",
    "Goal",
    "Condition",
    "Task",
    "ServiceRequest",
    "EpisodeOfCare",
    "Consent",
)


def partner_token(root: str, database_url: str, name: str, purpose: str = "TREAT") -> str:
    """A partner registered with no flags and no consent naming it, and its token."""
    key: ClientKey = rsa_key()
    engine = make_engine(database_url)
    partner = PartnerService(engine).register(
        NewPartner(
            name=name,
            identifiers=[("urn:oid:2.16.840.1.113883.3.9999.10", name)],
            scopes="system/*.rs",
            jwks=key.jwks(),
        )
    )
    engine.dispose()
    signed = assertion(
        key,
        partner.client_id,
        f"{root}/auth/token",
        extra={
            "extensions": {
                "hl7-b2b": {
                    "version": "1",
                    "organization_id": "urn:oid:2.16.840.1.113883.3.9999.10",
                    "purpose_of_use": [f"urn:oid:2.16.840.1.113883.5.8#{purpose}"],
                }
            }
        },
    )
    answer = httpx.post(f"{root}/auth/token", data=token_form(signed, "system/*.rs"))
    answer.raise_for_status()
    return f"Bearer {answer.json()['access_token']}"


def test_an_unrelated_partner_learns_nothing_of_the_story(
    live_server: LiveServer, database_url: str, tmp_path: Path
) -> None:
    root = live_server.base.removesuffix("/fhir")
    assert run_demo(database_url, tmp_path / "keys", root).returncode == 0
    headers = {"Authorization": partner_token(root, database_url, "Unrelated Clinic")}
    with httpx.Client(base_url=live_server.base, headers=headers) as fhir:
        for resource_type in STORY_TYPES:
            bundle = fhir.get(f"/{resource_type}", params={"patient": f"Patient/{CLIENT}"}).json()
            assert bundle.get("total") == 0, (resource_type, bundle)
            assert "Jordan" not in str(bundle)
        hidden = fhir.get(f"/Patient/{CLIENT}")
        unknown = fhir.get("/Patient/no-such-client")
        assert hidden.status_code == unknown.status_code == 404
        assert hidden.text.replace(CLIENT, "X") == unknown.text.replace("no-such-client", "X")
        assert fhir.get(f"/Patient/{CLIENT}/_history").status_code == 404
        everything = fhir.get("/_history").json()
        assert "Jordan" not in str(everything)
        assert "Buprenorphine" not in str(everything)


def test_the_accounting_lists_exactly_the_disclosures_that_happened(
    live_server: LiveServer, database_url: str, tmp_path: Path
) -> None:
    root = live_server.base.removesuffix("/fhir")
    keys = tmp_path / "keys"
    assert run_demo(database_url, keys, root).returncode == 0
    before = accounting(root, database_url)
    assert before == [], "seeding the story is the programs' own use, not a disclosure"

    unrelated = {"Authorization": partner_token(root, database_url, "Unrelated Clinic")}
    assert httpx.get(f"{live_server.base}/Patient/{CLIENT}", headers=unrelated).status_code == 404
    # The program the referral went to reads it: a disclosure by the detox unit, with consent.
    riverside = riverside_token(root, keys)
    sent = httpx.get(
        f"{live_server.base}/ServiceRequest/referral-residential",
        headers={"Authorization": riverside},
    )
    assert sent.status_code == 200, sent.text

    after = accounting(root, database_url)
    assert {entry["recipient"] for entry in after} == {"riverside-residential"}
    assert any("ServiceRequest/referral-residential" in entry["what"] for entry in after)


def compliance_session(root: str, database_url: str) -> httpx.Client:
    """A compliance officer signed in through the login form (cookie and CSRF), once."""
    engine = make_engine(database_url)
    staff = StaffService(engine, LoginPolicy(5, timedelta(minutes=15), timedelta(hours=1)))
    with contextlib.suppress(InvalidRequest):  # signed up by an earlier call of this test
        staff.add("cora.compliance", PASSWORD, Role.COMPLIANCE_OFFICER, (), datetime.now(UTC))
    engine.dispose()
    browser = httpx.Client(base_url=root)
    form = browser.get("/auth/login")
    csrf = form.text.split('name="csrf_token" value="')[1].split('"')[0]
    login = browser.post(
        "/auth/login",
        data={"username": "cora.compliance", "password": PASSWORD, "csrf_token": csrf},
    )
    assert login.status_code == 200, login.text
    return browser


def riverside_token(root: str, keys: Path) -> str:
    """The token the demo's printed command gets for Riverside Residential."""
    client_id = (keys / "riverside-residential.client-id").read_text().strip()
    token = subprocess.run(
        [sys.executable, "-m", "interop", "token", client_id, "--purpose", "TREAT",
         "--key", str(keys / "riverside-residential.key.pem"), "--server", root],
        cwd=REPOSITORY, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert token.returncode == 0, token.stderr
    return f"Bearer {token.stdout.strip()}"


def accounting(root: str, database_url: str) -> list[dict[str, str]]:
    """The patient's accounting as compliance staff fetch it (FHIR form): who received what."""
    browser = compliance_session(root, database_url)
    try:
        answer = browser.get(f"/audit/accounting/Patient/{CLIENT}", params={"format": "fhir"})
    finally:
        browser.close()
    bundle = answer.json()
    entries = []
    for entry in bundle.get("entry", []):
        event = entry["resource"]
        recipient = next(
            agent["who"]["reference"].split("/")[-1]
            for agent in event["agent"]
            if agent.get("requestor")
        )
        what = " ".join(e.get("what", {}).get("reference", "") for e in event.get("entity", []))
        entries.append({"recipient": recipient, "what": what})
    return entries
