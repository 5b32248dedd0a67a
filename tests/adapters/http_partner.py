"""A partner on 127.0.0.1 for the HTTP channels, served from a background thread.

`/token` is a SMART Backend Services token endpoint that checks client assertions for real (the
signature with the registered public key, alg, kid, typ, aud, iss, sub, exp at most five minutes
ahead, jti never reused) and issues bearer tokens; any other path requires one of those tokens
(when `protected`) and answers what the test scripted, recording what it received.
"""

import secrets
import socket
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs

import jwt
import orjson
from cryptography.hazmat.primitives import serialization

from adapters.fhir_http import BackendServicesConfig
from tests.keys import ASSERTION_TYPE, ClientKey

CLIENT_ID = "recovery-interop-test"
SCOPE = "system/Bundle.c system/*.u"
DESCRIPTION = f"assertion of {CLIENT_ID} refused"  # free text a refusal must not repeat


@dataclass(frozen=True)
class Scripted:
    """One answer: `delay` before it; `trickle` sends the body a byte at a time, without end,
    until the client hangs up; `endless` sends 64 KiB chunks the same way."""

    status: int
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0
    trickle: bool = False
    endless: bool = False


def json_answer(status: int, value: Any, **headers: str) -> Scripted:
    return Scripted(status, orjson.dumps(value), {"Content-Type": "application/json", **headers})


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]  # names in lower case
    body: bytes


class Refused(Exception):
    def __init__(self, status: int, error: str) -> None:
        super().__init__(error)
        self.status = status
        self.error = error


class Partner:
    """Use as a context manager; `url(path)` addresses it."""

    def __init__(self, key: ClientKey, *, protected: bool = True, expires_in: int = 300) -> None:
        self.key = key
        self.protected = protected
        self.expires_in = expires_in
        self.answers: deque[Scripted] = deque()
        self.token_answers: deque[Scripted] = deque()  # answered before any verification
        self.received: list[Received] = []
        self.token_forms: list[dict[str, str]] = []
        self.assertions: list[tuple[dict[str, Any], dict[str, Any]]] = []  # (header, claims)
        self.hung_up = threading.Event()  # a client hung up on an endless or trickled body
        self._tokens: set[str] = set()
        self._seen_jti: set[str] = set()
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def url(self, path: str) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}{path}"

    @property
    def token_url(self) -> str:
        return self.url("/token")

    def revoke_tokens(self) -> None:
        self._tokens.clear()

    @property
    def tokens_issued(self) -> int:
        return len(self.assertions)

    def answer(self, path: str, headers: dict[str, str], body: bytes) -> Scripted:
        if path == "/token":
            return self._token(body)
        self.received.append(Received(path, headers, body))
        bearer = headers.get("authorization", "").removeprefix("Bearer ")
        if self.protected and bearer not in self._tokens:
            return Scripted(401, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        return self.answers.popleft()

    def _token(self, body: bytes) -> Scripted:
        if self.token_answers:
            return self.token_answers.popleft()
        form = {name: values[0] for name, values in parse_qs(body.decode()).items()}
        self.token_forms.append(form)
        try:
            self._verify(form)
        except Refused as refused:
            return json_answer(
                refused.status,
                {"error": refused.error, "error_description": DESCRIPTION},
            )
        token = secrets.token_urlsafe(24)
        self._tokens.add(token)
        return json_answer(
            200,
            {
                "access_token": token,
                "token_type": "bearer",
                "expires_in": self.expires_in,
                "scope": form["scope"],
            },
        )

    def _verify(self, form: dict[str, str]) -> None:
        """SMART Backend Services, "Signature verification" and "Response"."""
        if form.get("grant_type") != "client_credentials":
            raise Refused(400, "unsupported_grant_type")
        if form.get("client_assertion_type") != ASSERTION_TYPE or not form.get("scope"):
            raise Refused(400, "invalid_request")
        signed = form.get("client_assertion", "")
        try:
            header = jwt.get_unverified_header(signed)
            claims = jwt.decode(
                signed,
                self.key.private.public_key(),
                algorithms=[self.key.algorithm],
                audience=self.token_url,
                issuer=CLIENT_ID,
                options={"require": ["iss", "sub", "aud", "exp", "jti"]},
            )
        except jwt.PyJWTError:
            raise Refused(401, "invalid_client") from None
        if (
            header.get("kid") != self.key.kid
            or header.get("typ") != "JWT"
            or claims["sub"] != CLIENT_ID
            or claims["exp"] > time.time() + 300
            or claims["jti"] in self._seen_jti
        ):
            raise Refused(401, "invalid_client")
        self._seen_jti.add(claims["jti"])
        self.assertions.append((header, claims))


class _Server(ThreadingHTTPServer):
    def __init__(self, partner: Partner) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.partner = partner


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        """A search: scripted like a POST, with an empty body."""
        self.do_POST()

    def do_POST(self) -> None:
        assert isinstance(self.server, _Server)
        partner = self.server.partner
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        headers = {name.lower(): value for name, value in self.headers.items()}
        scripted = partner.answer(self.path, headers, body)
        time.sleep(scripted.delay)
        try:
            self.send_response(scripted.status)
            for name, value in scripted.headers.items():
                self.send_header(name, value)
            if not (scripted.trickle or scripted.endless or "Content-Length" in scripted.headers):
                self.send_header("Content-Length", str(len(scripted.body)))
            self.end_headers()
            self.wfile.write(scripted.body)
            self._keep_sending(scripted, partner)
        except ConnectionError:
            partner.hung_up.set()

    def _keep_sending(self, scripted: Scripted, partner: Partner) -> None:
        deadline = time.monotonic() + 30  # a client that never hangs up fails its test by then
        while (scripted.trickle or scripted.endless) and time.monotonic() < deadline:
            self.wfile.write(b"x" * 65536 if scripted.endless else b"x")
            self.wfile.flush()
            if scripted.trickle:
                time.sleep(0.05)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the tests read what the partner received, not its log."""


def unused_url(path: str = "/") -> str:
    """An address on loopback where nothing listens (a port just freed)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"


def pem(key: ClientKey) -> bytes:
    encoded: bytes = key.private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return encoded


def auth_config(partner: Partner, key: ClientKey | None = None) -> BackendServicesConfig:
    """Our registration with the partner, signing with `key` (by default the registered one)."""
    signing = key or partner.key
    return BackendServicesConfig(
        token_url=partner.token_url,
        client_id=CLIENT_ID,
        private_key_pem=pem(signing),
        kid=signing.kid,
        alg="ES384" if signing.algorithm == "ES384" else "RS384",
        scope=SCOPE,
    )
