"""Staff accounts: argon2 hashes, sessions in secure cookies, CSRF, lockout, roles, admin API."""

from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from interop.services.staff import Role, StaffService
from interop.store.database import unit_of_work
from interop.store.tables import StaffUserRow
from tests.keys import rsa_key

PASSWORD = "correct horse battery staple"


def add_user(client: TestClient, username: str, role: Role, password: str = PASSWORD) -> None:
    service: StaffService = client.app.state.staff  # type: ignore[attr-defined]
    service.add(username, password, role, (), datetime.now(UTC))


def sign_in(client: TestClient, username: str, password: str = PASSWORD) -> Any:
    form = client.get("/auth/login")
    csrf = form.text.split('name="csrf_token" value="')[1].split('"')[0]
    return client.post(
        "/auth/login", data={"username": username, "password": password, "csrf_token": csrf}
    )


@pytest.fixture
def admin(anonymous: TestClient) -> str:
    add_user(anonymous, "ada.admin", Role.ADMINISTRATOR)
    response = sign_in(anonymous, "ada.admin")
    assert response.status_code == 200
    csrf: str = response.json()["csrf_token"]
    return csrf


class TestAccounts:
    def test_passwords_are_stored_as_argon2_hashes(self, anonymous: TestClient) -> None:
        add_user(anonymous, "casey.manager", Role.CASE_MANAGER)
        engine = anonymous.app.state.staff._engine  # type: ignore[attr-defined]
        with unit_of_work(engine, writes=False) as session:
            row = session.execute(select(StaffUserRow)).scalars().one()
        assert row.password_hash is not None
        assert row.password_hash.startswith("$argon2id$")
        assert PASSWORD not in row.password_hash

    def test_session_cookie_is_httponly_and_samesite_strict(self, anonymous: TestClient) -> None:
        add_user(anonymous, "casey.manager", Role.CASE_MANAGER)
        response = sign_in(anonymous, "casey.manager")
        cookie = response.headers["set-cookie"].lower()
        assert "interop_session=" in cookie
        assert "httponly" in cookie
        assert "samesite=strict" in cookie
        assert anonymous.get("/auth/session").json()["role"] == "case-manager"

    def test_login_without_the_form_csrf_token_is_refused(self, anonymous: TestClient) -> None:
        add_user(anonymous, "casey.manager", Role.CASE_MANAGER)
        anonymous.get("/auth/login")
        response = anonymous.post(
            "/auth/login",
            data={"username": "casey.manager", "password": PASSWORD, "csrf_token": "forged"},
        )
        assert response.status_code == 403
        assert response.headers["content-type"] == "application/problem+json"
        assert "interop_session" not in response.headers.get("set-cookie", "")

    def test_lockout_after_repeated_failures_even_with_the_right_password(
        self, anonymous: TestClient
    ) -> None:
        add_user(anonymous, "casey.manager", Role.CASE_MANAGER)
        for _ in range(5):
            assert sign_in(anonymous, "casey.manager", "wrong password!!").status_code == 401
        locked = sign_in(anonymous, "casey.manager")
        assert locked.status_code == 401
        assert locked.json()["detail"] == "the name or password is wrong, or the account is locked"

    def test_unknown_user_and_wrong_password_read_the_same(self, anonymous: TestClient) -> None:
        add_user(anonymous, "casey.manager", Role.CASE_MANAGER)
        unknown = sign_in(anonymous, "nobody.here", PASSWORD)
        wrong = sign_in(anonymous, "casey.manager", "not the password")
        assert unknown.status_code == wrong.status_code == 401
        assert unknown.json() == wrong.json()

    def test_reset_password_ends_sessions_and_disable_blocks_login(
        self, anonymous: TestClient
    ) -> None:
        add_user(anonymous, "casey.manager", Role.CASE_MANAGER)
        sign_in(anonymous, "casey.manager")
        service: StaffService = anonymous.app.state.staff  # type: ignore[attr-defined]
        service.reset_password("casey.manager", "a brand new passphrase")
        assert anonymous.get("/auth/session").status_code == 401
        service.set_enabled("casey.manager", False)
        assert sign_in(anonymous, "casey.manager", "a brand new passphrase").status_code == 401

    def test_short_passwords_are_refused(self, anonymous: TestClient) -> None:
        service: StaffService = anonymous.app.state.staff  # type: ignore[attr-defined]
        with pytest.raises(Exception, match="at least 12"):
            service.add("short.pw", "tooshort", Role.CASE_MANAGER, (), datetime.now(UTC))


class TestAdministration:
    def test_administrator_registers_and_disables_a_partner(
        self, anonymous: TestClient, admin: str
    ) -> None:
        body = {
            "name": "Lakeside Recovery Center",
            "identifiers": ["http://hl7.org/fhir/sid/us-npi|1234567893"],
            "scope": "system/Task.cru system/ServiceRequest.rs",
            "jwks": rsa_key().jwks(),
            "part2_program": True,
        }
        created = anonymous.post("/admin/partners", json=body, headers={"X-CSRF-Token": admin})
        assert created.status_code == 201, created.text
        partner = created.json()
        assert partner["token_url"] == "http://testserver/auth/token"
        assert partner["organization"].startswith("Organization/")
        assert partner["part2_program"] is True
        listed = anonymous.get("/admin/partners").json()
        assert [p["client_id"] for p in listed] == [partner["client_id"]]
        disabled = anonymous.post(
            f"/admin/partners/{partner['client_id']}/disable", headers={"X-CSRF-Token": admin}
        )
        assert disabled.json()["enabled"] is False

    def test_unsafe_admin_requests_need_the_csrf_header(
        self, anonymous: TestClient, admin: str
    ) -> None:
        response = anonymous.post("/admin/partners", json={"name": "x"})
        assert response.status_code == 403
        assert response.json()["title"] == "Forbidden"  # about:blank: the status's phrase
        assert response.json()["detail"].startswith("CSRF check failed")

    def test_other_roles_and_strangers_are_kept_out(self, anonymous: TestClient) -> None:
        assert anonymous.get("/admin/partners").status_code == 401
        add_user(anonymous, "cora.compliance", Role.COMPLIANCE_OFFICER)
        sign_in(anonymous, "cora.compliance")
        response = anonymous.get("/admin/partners")
        assert response.status_code == 403
        assert response.headers["content-type"] == "application/problem+json"

    def test_bad_registration_is_a_problem_detail(self, anonymous: TestClient, admin: str) -> None:
        body = {"name": "No Keys Clinic", "identifiers": ["urn:oid:1.2|x"], "scope": "system/*.rs"}
        response = anonymous.post("/admin/partners", json=body, headers={"X-CSRF-Token": admin})
        assert response.status_code == 400
        assert response.json()["detail"] == "give either a JWKS or a JWKS URL"


def test_registration_creates_the_organization_and_its_endpoint(
    anonymous: TestClient, admin: str, client: TestClient
) -> None:
    body = {
        "name": "Northside Primary Care",
        "identifiers": ["http://hl7.org/fhir/sid/us-npi|1234567893"],
        "scope": "system/Task.cru",
        "jwks": rsa_key().jwks(),
        "covered_entity": True,
        "channel": {"kind": "fhir", "address": "https://fhir.northside.example.org/r4"},
    }
    partner = anonymous.post("/admin/partners", json=body, headers={"X-CSRF-Token": admin}).json()
    organization = client.get(f"/fhir/{partner['organization']}").json()
    assert organization["identifier"] == [
        {"system": "http://hl7.org/fhir/sid/us-npi", "value": "1234567893"}
    ]
    endpoint = client.get(f"/fhir/{organization['endpoint'][0]['reference']}").json()
    assert endpoint["address"] == "https://fhir.northside.example.org/r4"
    assert endpoint["managingOrganization"]["reference"] == partner["organization"]
    assert endpoint["connectionType"]["code"] == "hl7-fhir-rest"
