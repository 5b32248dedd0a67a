"""Staff sign-in through an OpenID Connect provider: a real provider on loopback, PKCE, nonce."""

import base64
import hashlib
import json
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
from fastapi.testclient import TestClient

from interop.app import create_app
from interop.services.staff import Role, StaffService
from interop.settings import Settings
from tests.keys import rsa_key

CLIENT_ID = "recovery-interop"
CLIENT_SECRET = "provider-issued-secret"


class Provider:
    """A minimal OpenID provider: discovery, JWKS, and a token endpoint checking PKCE."""

    def __init__(self) -> None:
        self.key = rsa_key("idp-1")
        self.codes: dict[str, dict[str, str]] = {}
        self.nonce_override: str | None = None
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/.well-known/openid-configuration":
                    owner._json(
                        self,
                        {
                            "issuer": owner.issuer,
                            "authorization_endpoint": f"{owner.issuer}/authorize",
                            "token_endpoint": f"{owner.issuer}/token",
                            "jwks_uri": f"{owner.issuer}/jwks",
                        },
                    )
                elif self.path == "/jwks":
                    public = owner.key.public_jwk() | {"alg": "RS256"}
                    owner._json(self, {"keys": [public]})
                else:
                    owner._json(self, {"error": "not_found"}, 404)

            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                expected = (
                    "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
                )
                grant = owner.codes.pop(form.get("code", ""), None)
                if self.headers.get("Authorization") != expected or grant is None:
                    owner._json(self, {"error": "invalid_grant"}, 400)
                    return
                digest = hashlib.sha256(form["code_verifier"].encode()).digest()
                if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != grant["challenge"]:
                    owner._json(self, {"error": "invalid_grant"}, 400)
                    return
                now = int(time.time())
                id_token = jwt.encode(
                    {
                        "iss": owner.issuer,
                        "aud": CLIENT_ID,
                        "sub": str(uuid.uuid4()),
                        "iat": now,
                        "exp": now + 300,
                        "nonce": owner.nonce_override or grant["nonce"],
                        "preferred_username": grant["username"],
                    },
                    owner.key.private,
                    algorithm="RS256",
                    headers={"kid": owner.key.kid},
                )
                owner._json(
                    self, {"access_token": "opaque", "token_type": "Bearer", "id_token": id_token}
                )

            def log_message(self, *_args: Any) -> None:
                return

        self._server = HTTPServer(("127.0.0.1", 0), Handler)
        self.issuer = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def authorize(self, location: str, username: str) -> tuple[str, str]:
        """What the browser does at the provider: sign in, come back with a code."""
        query = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
        assert query["code_challenge_method"] == "S256"
        assert query["client_id"] == CLIENT_ID
        code = str(uuid.uuid4())
        self.codes[code] = {
            "challenge": query["code_challenge"],
            "nonce": query["nonce"],
            "username": username,
        }
        return code, query["state"]

    @staticmethod
    def _json(handler: BaseHTTPRequestHandler, body: dict[str, Any], status: int = 200) -> None:
        data = json.dumps(body).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def provider() -> Iterator[Provider]:
    running = Provider()
    yield running
    running.close()


@pytest.fixture
def browser(database_url: str, provider: Provider) -> Iterator[TestClient]:
    settings = Settings(
        database_url=database_url,
        public_base_url="http://testserver",
        oidc_issuer=provider.issuer,
        oidc_client_id=CLIENT_ID,
        oidc_client_secret=CLIENT_SECRET,
    )
    with TestClient(create_app(settings)) as client:
        service: StaffService = client.app.state.staff  # type: ignore[attr-defined]
        service.add(
            "cora.compliance",
            "unused local passphrase",
            Role.COMPLIANCE_OFFICER,
            (),
            datetime.now(UTC),
        )
        yield client


def start(browser: TestClient) -> str:
    response = browser.get("/auth/oidc/login", follow_redirects=False)
    assert response.status_code == 302
    location: str = response.headers["location"]
    return location


def test_provider_sign_in_opens_a_session_for_a_known_account(
    browser: TestClient, provider: Provider
) -> None:
    code, state = provider.authorize(start(browser), "cora.compliance")
    response = browser.get("/auth/oidc/callback", params={"code": code, "state": state})
    assert response.status_code == 200, response.text
    assert response.json()["role"] == "compliance-officer"
    assert browser.get("/auth/session").json()["username"] == "cora.compliance"


def test_unknown_account_is_refused(browser: TestClient, provider: Provider) -> None:
    code, state = provider.authorize(start(browser), "someone.else")
    response = browser.get("/auth/oidc/callback", params={"code": code, "state": state})
    assert response.status_code == 401
    assert browser.get("/auth/session").status_code == 401


def test_forged_state_is_refused(browser: TestClient, provider: Provider) -> None:
    code, _state = provider.authorize(start(browser), "cora.compliance")
    response = browser.get("/auth/oidc/callback", params={"code": code, "state": "forged"})
    assert response.status_code == 401
    assert "state" in response.json()["detail"]


def test_id_token_with_another_nonce_is_refused(browser: TestClient, provider: Provider) -> None:
    provider.nonce_override = "replayed-from-elsewhere"
    code, state = provider.authorize(start(browser), "cora.compliance")
    response = browser.get("/auth/oidc/callback", params={"code": code, "state": state})
    assert response.status_code == 401
    assert "nonce" in response.json()["detail"]


def test_oidc_routes_are_absent_when_not_configured(anonymous: TestClient) -> None:
    response = anonymous.get("/auth/oidc/login", follow_redirects=False)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
