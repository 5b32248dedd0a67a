"""SMART Backend Services token endpoint: real keys, real JWTs, every way to get it wrong."""

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from fastapi.testclient import TestClient

from interop.services.partners import NewPartner, Partner, PartnerService
from tests.conftest import RegisteredPartner, bearer, register_partner
from tests.keys import ClientKey, assertion, ec_key, rsa_key, token_form

TOKEN_URL = "http://testserver/auth/token"


def ask(client: TestClient, signed: str, scope: str = "system/Patient.rs") -> Any:
    return client.post("/auth/token", data=token_form(signed, scope))


def refused(response: Any, error: str = "invalid_client") -> str:
    assert response.status_code in (400, 401), response.text
    body = response.json()
    assert body["error"] == error
    assert "access_token" not in body
    assert response.headers["cache-control"] == "no-store"
    description: str = body["error_description"]
    return description


@pytest.fixture
def partner(anonymous: TestClient) -> RegisteredPartner:
    return register_partner(anonymous, scope="system/Patient.rs system/Task.cru")


class TestDiscovery:
    def test_smart_configuration_names_the_token_endpoint(self, anonymous: TestClient) -> None:
        config = anonymous.get("/fhir/.well-known/smart-configuration").json()
        assert config["token_endpoint"] == TOKEN_URL
        assert config["token_endpoint_auth_methods_supported"] == ["private_key_jwt"]
        assert set(config["token_endpoint_auth_signing_alg_values_supported"]) == {"RS384", "ES384"}
        assert "client-confidential-asymmetric" in config["capabilities"]


class TestIssue:
    def test_rs384_assertion_gets_a_token_with_the_granted_scopes(
        self, anonymous: TestClient, partner: RegisteredPartner
    ) -> None:
        response = ask(
            anonymous, assertion(partner.key, partner.client_id, TOKEN_URL), "system/*.rs"
        )
        assert response.status_code == 200
        body = response.json()
        assert body["token_type"] == "bearer"
        assert body["expires_in"] == 300
        assert set(body["scope"].split()) == {"system/Patient.rs", "system/Task.r"}
        claims = jwt.decode(body["access_token"], options={"verify_signature": False})
        assert claims["purpose_of_use"] == ["TREAT"]
        assert claims["org"] == partner.organization

    def test_es384_keys_work_too(self, anonymous: TestClient) -> None:
        key = ec_key()
        service: PartnerService = anonymous.app.state.partners  # type: ignore[attr-defined]
        registered = service.register(
            NewPartner(
                "County Clinic", [("urn:oid:1.2.3", "cc")], "system/Patient.rs", jwks=key.jwks()
            )
        )
        response = ask(anonymous, assertion(key, registered.client_id, TOKEN_URL))
        assert response.status_code == 200, response.text

    def test_scope_outside_the_registration_is_refused(
        self, anonymous: TestClient, partner: RegisteredPartner
    ) -> None:
        signed = assertion(partner.key, partner.client_id, TOKEN_URL)
        assert "can be granted" in refused(
            ask(anonymous, signed, "system/Consent.rs"), "invalid_scope"
        )

    def test_other_grant_types_are_refused(
        self, anonymous: TestClient, partner: RegisteredPartner
    ) -> None:
        form = {
            **token_form(assertion(partner.key, partner.client_id, TOKEN_URL), "system/Patient.rs")
        }
        form["grant_type"] = "password"
        refused(anonymous.post("/auth/token", data=form), "unsupported_grant_type")


class TestRefusedAssertions:
    def test_wrong_audience(self, anonymous: TestClient, partner: RegisteredPartner) -> None:
        signed = assertion(partner.key, partner.client_id, "https://elsewhere.example.org/token")
        assert "aud" in refused(ask(anonymous, signed))

    def test_expired(self, anonymous: TestClient, partner: RegisteredPartner) -> None:
        signed = assertion(partner.key, partner.client_id, TOKEN_URL, lifetime=-10)
        assert "expired" in refused(ask(anonymous, signed))

    def test_exp_more_than_five_minutes_ahead(
        self, anonymous: TestClient, partner: RegisteredPartner
    ) -> None:
        signed = assertion(partner.key, partner.client_id, TOKEN_URL, lifetime=3600)
        assert "at most 300 seconds" in refused(ask(anonymous, signed))

    def test_replayed_jti(self, anonymous: TestClient, partner: RegisteredPartner) -> None:
        first = assertion(partner.key, partner.client_id, TOKEN_URL, jti="once-only")
        assert ask(anonymous, first).status_code == 200
        again = assertion(partner.key, partner.client_id, TOKEN_URL, jti="once-only")
        assert "already used" in refused(ask(anonymous, again))

    def test_unknown_kid(self, anonymous: TestClient, partner: RegisteredPartner) -> None:
        stranger = ClientKey("not-registered", "RS384", rsa_key().private)
        assert "kid" in refused(ask(anonymous, assertion(stranger, partner.client_id, TOKEN_URL)))

    def test_signed_by_another_key_with_the_registered_kid(
        self, anonymous: TestClient, partner: RegisteredPartner
    ) -> None:
        impostor = ClientKey(partner.key.kid, "RS384", rsa_key().private)
        assert "signature" in refused(
            ask(anonymous, assertion(impostor, partner.client_id, TOKEN_URL))
        )

    def test_alg_none(self, anonymous: TestClient, partner: RegisteredPartner) -> None:
        claims = {
            "iss": partner.client_id,
            "sub": partner.client_id,
            "aud": TOKEN_URL,
            "exp": int(time.time()) + 60,
            "jti": "none-1",
        }
        header = {"alg": "none", "typ": "JWT", "kid": partner.key.kid}
        unsigned = ".".join(_b64(part) for part in (header, claims)) + "."
        assert "RS384 or ES384" in refused(ask(anonymous, unsigned))

    def test_hs256_with_the_public_key_as_secret(
        self, anonymous: TestClient, partner: RegisteredPartner
    ) -> None:
        public_pem = partner.key.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        claims = {
            "iss": partner.client_id,
            "sub": partner.client_id,
            "aud": TOKEN_URL,
            "exp": int(time.time()) + 60,
            "jti": "hs-1",
        }
        header = {"alg": "HS256", "typ": "JWT", "kid": partner.key.kid}
        signing_input = f"{_b64(header)}.{_b64(claims)}"
        mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
        forged = signing_input + "." + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()
        assert "RS384 or ES384" in refused(ask(anonymous, forged))

    def test_disabled_partner(self, anonymous: TestClient, partner: RegisteredPartner) -> None:
        service: PartnerService = anonymous.app.state.partners  # type: ignore[attr-defined]
        service.set_enabled(partner.client_id, False)
        assert "disabled" in refused(
            ask(anonymous, assertion(partner.key, partner.client_id, TOKEN_URL))
        )

    def test_sub_differs_from_iss(self, anonymous: TestClient, partner: RegisteredPartner) -> None:
        signed = assertion(partner.key, partner.client_id, TOKEN_URL, extra={"sub": "someone-else"})
        assert "sub" in refused(ask(anonymous, signed))


class TestKeyRotationAndJwksUrl:
    def test_rotated_key_replaces_the_old(
        self, anonymous: TestClient, partner: RegisteredPartner
    ) -> None:
        service: PartnerService = anonymous.app.state.partners  # type: ignore[attr-defined]
        new_key = ec_key("ec-rotated")
        service.rotate_key(partner.client_id, new_key.jwks(), None)
        assert ask(anonymous, assertion(new_key, partner.client_id, TOKEN_URL)).status_code == 200
        refused(ask(anonymous, assertion(partner.key, partner.client_id, TOKEN_URL)))

    def test_jwks_fetched_from_a_url_over_real_http(
        self, anonymous: TestClient, jwks_server: "JwksServer"
    ) -> None:
        key = rsa_key("served-1")
        jwks_server.document = key.jwks()
        service: PartnerService = anonymous.app.state.partners  # type: ignore[attr-defined]
        registered = remote_keys_clinic(service, jwks_server.url)
        assert ask(anonymous, assertion(key, registered.client_id, TOKEN_URL)).status_code == 200
        rotated = rsa_key("served-2")
        jwks_server.document = rotated.jwks()
        assert (
            ask(anonymous, assertion(rotated, registered.client_id, TOKEN_URL)).status_code == 200
        )
        assert jwks_server.hits == 2

    def test_a_rotation_ends_a_stolen_key_still_in_the_fetched_key_set(
        self, anonymous: TestClient, jwks_server: "JwksServer"
    ) -> None:
        """Review 9 #10: the key set fetched from the partner's URL is kept for minutes; a
        rotation (by an operator, in another process) must not leave the stolen key in it
        minting tokens until then."""
        stolen = rsa_key("served-stolen")
        jwks_server.document = stolen.jwks()
        service: PartnerService = anonymous.app.state.partners  # type: ignore[attr-defined]
        registered = remote_keys_clinic(service, jwks_server.url)
        assert ask(anonymous, assertion(stolen, registered.client_id, TOKEN_URL)).status_code == 200
        replacement = rsa_key("served-new")
        jwks_server.document = replacement.jwks()
        service.rotate_key(registered.client_id, None, jwks_server.url)
        refused(ask(anonymous, assertion(stolen, registered.client_id, TOKEN_URL)))
        assert (
            ask(anonymous, assertion(replacement, registered.client_id, TOKEN_URL)).status_code
            == 200
        )
        assert jwks_server.hits == 2


def remote_keys_clinic(service: PartnerService, jwks_url: str) -> Partner:
    """A partner that publishes its keys at a URL rather than registering them."""
    return service.register(
        NewPartner("Remote Keys Clinic", [("urn:oid:1.2.3", "rk")], "system/Patient.rs",
                   jwks_url=jwks_url)
    )  # fmt: skip


class JwksServer:
    def __init__(self) -> None:
        self.document: dict[str, Any] = {"keys": []}
        self.hits = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.hits += 1
                body = json.dumps(owner.document).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: Any) -> None:
                return

        self._server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/jwks.json"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def jwks_server() -> Iterator[JwksServer]:
    server = JwksServer()
    yield server
    server.close()


def _b64(part: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=").decode()


def test_token_reaches_the_fhir_api_only_within_its_scopes(
    anonymous: TestClient, partner: RegisteredPartner
) -> None:
    anonymous.headers["Authorization"] = bearer(anonymous, partner, scope="system/Patient.rs")
    assert anonymous.get("/fhir/Patient").status_code == 200
    forbidden = anonymous.get("/fhir/Task")
    assert forbidden.status_code == 403
    assert forbidden.json()["issue"][0]["code"] == "forbidden"
    write = anonymous.post(
        "/fhir/Patient",
        json={"resourceType": "Patient"},
        headers={"Content-Type": "application/fhir+json"},
    )
    assert write.status_code == 403
