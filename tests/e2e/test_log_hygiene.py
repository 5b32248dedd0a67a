"""What the server writes to its log never holds a token, an assertion, a password or PHI."""

import httpx
import pytest

from tests.builders import patient
from tests.e2e.conftest import LiveServer

pytestmark = pytest.mark.e2e

SYNTHETIC_NAME = "Zebulonia"
SYNTHETIC_BIRTH_DATE = "1977-07-17"


def test_log_holds_no_secret_and_no_phi(live_server: LiveServer) -> None:
    headers = live_server.headers
    created = httpx.post(
        f"{live_server.base}/Patient",
        json=patient(family=SYNTHETIC_NAME, birthDate=SYNTHETIC_BIRTH_DATE, mrn="MRN-LOG-1"),
        headers=headers,
    )
    assert created.status_code == 201
    httpx.get(f"{live_server.base}/Patient", params={"family": SYNTHETIC_NAME}, headers=headers)
    httpx.get(f"{live_server.base}/Patient", params={"birthdate": "yesterday"}, headers=headers)
    httpx.post(
        f"{live_server.base}/Patient",
        content=b'{"resourceType": "Patient", "name": [{"family": "'
        + SYNTHETIC_NAME.encode()
        + b'"}], "gender": "sometimes"}',
        headers=headers,
    )
    root = live_server.base.removesuffix("/fhir")
    httpx.post(
        f"{root}/auth/token",
        data={
            "grant_type": "client_credentials",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": "eyJhbGciOiJSUzM4NCJ9.e30.c2ln",
        },
    )
    form = httpx.get(f"{root}/auth/login")
    httpx.post(
        f"{root}/auth/login",
        data={"username": "nobody", "password": "hunter2-secret-password", "csrf_token": "x"},
        cookies=form.cookies,
    )
    log = live_server.log.read_text()
    token = live_server.authorization.removeprefix("Bearer ")
    for forbidden in (
        token,
        token[:40],
        "hunter2-secret-password",
        SYNTHETIC_NAME,
        SYNTHETIC_BIRTH_DATE,
        "MRN-LOG-1",
        "eyJhbGciOiJSUzM4NCJ9",
    ):
        assert forbidden not in log, f"the log holds {forbidden[:12]}..."
    assert "Application startup complete" in log  # the log was captured at all
