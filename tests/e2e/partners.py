"""Partner systems on loopback for delivery tests: a FHIR server with a SMART token endpoint,
a C-CDA HTTP drop, and an MLLP listener, each able to be down, slow or wrong on demand.

They are real servers on real sockets, speaking the protocols as partners' systems do; only
their storage is a dictionary.
"""

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode

import jwt
import orjson

from adapters.hl7v2 import MllpServer, read_message, serve_mllp
from adapters.hl7v2.ack import build_ack, encode_ack
from adapters.hl7v2.errors import AckCode


@dataclass
class FhirPartner:
    """A partner's FHIR server. `mode` is how it answers the next transactions: ok, slow,
    garbage, reject (422 with an OperationOutcome) or busy (503, Retry-After)."""

    jwks: dict[str, Any]
    client_id: str = "recovery-interop-at-partner"
    mode: str = "ok"
    delay: float = 2.0
    stored: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    transactions: list[dict[str, Any]] = field(default_factory=list)
    tokens_issued: int = 0
    searches: int = 0
    subscriptions: list[dict[str, Any]] = field(default_factory=list)
    port: int = 0
    refuse: str = ""
    """The end of a fullUrl: a transaction carrying such an entry is refused (422)."""
    refused: int = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}/fhir"

    @property
    def token_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    def resources(self, kind: str) -> list[dict[str, Any]]:
        return [resource for (k, _), resource in self.stored.items() if k == kind]

    def token(self, form: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        """SMART Backend Services, checked for real: signature, iss, sub, aud, exp."""
        signed = form.get("client_assertion", [""])[0]
        header = jwt.get_unverified_header(signed)
        keys = {key["kid"]: key for key in self.jwks["keys"]}
        try:
            key = jwt.PyJWK(keys[header["kid"]])
            claims = jwt.decode(
                signed,
                key.key,
                algorithms=[header["alg"]],
                audience=self.token_url,
                issuer=self.client_id,
                options={"require": ["exp", "jti", "sub"]},
            )
        except (KeyError, jwt.InvalidTokenError):
            return 400, {"error": "invalid_client"}
        if claims["sub"] != self.client_id:
            return 400, {"error": "invalid_client"}
        self.tokens_issued += 1
        return 200, {"access_token": uuid.uuid4().hex, "token_type": "bearer", "expires_in": 300}

    def transaction(self, bundle: dict[str, Any]) -> tuple[int, bytes, dict[str, str]]:
        if self.mode == "slow":
            time.sleep(self.delay)
        if self.mode == "garbage":
            return 200, b"<html>oops</html>", {}
        if self.mode == "busy":
            return 503, b"", {"Retry-After": "120"}
        if self.mode == "reject" or self._carries_refused(bundle):
            self.refused += 1
            outcome = {
                "resourceType": "OperationOutcome",
                "issue": [{"severity": "error", "code": "invalid", "diagnostics": "bad Task"}],
            }
            return 422, orjson.dumps(outcome), {}
        self.transactions.append(bundle)
        return 200, orjson.dumps(self._apply(bundle)), {}

    def _carries_refused(self, bundle: dict[str, Any]) -> bool:
        return bool(self.refuse) and any(
            entry["fullUrl"].endswith(self.refuse) for entry in bundle["entry"]
        )

    def work(self, kind: str, **changes: Any) -> dict[str, Any]:
        """The partner's own staff change their copy (the only one of `kind`), as in its EHR."""
        [(key, current)] = [(k, r) for k, r in self.stored.items() if k[0] == kind]
        version = int(current["meta"]["versionId"]) + 1
        meta = {**current["meta"], "versionId": str(version), "lastUpdated": _now()}
        self.stored[key] = {**current, **changes, "meta": meta}
        return self.stored[key]

    def search(self, kind: str, query: dict[str, list[str]]) -> dict[str, Any]:
        """A searchset of `kind` by _lastUpdated=ge..., oldest first, two per page."""
        since = query.get("_lastUpdated", ["ge"])[0].removeprefix("ge")
        offset = int(query.get("_offset", ["0"])[0])
        matches = sorted(
            (r for r in self.resources(kind) if r["meta"]["lastUpdated"] >= since),
            key=lambda r: str(r["meta"]["lastUpdated"]),
        )
        page = matches[offset : offset + 2]
        links = []
        if offset + 2 < len(matches):
            params = urlencode({"_lastUpdated": f"ge{since}", "_offset": offset + 2})
            links.append({"relation": "next", "url": f"{self.base}/{kind}?{params}"})
        self.searches += 1
        return {
            "resourceType": "Bundle",
            "type": "searchset",
            "total": len(matches),
            "link": links,
            "entry": [{"resource": r, "search": {"mode": "match"}} for r in page],
        }

    def _apply(self, bundle: dict[str, Any]) -> dict[str, Any]:
        """Conditional updates on identifier, with fullUrl references resolved (R4 §3.1.0.11)."""
        local: dict[str, str] = {}
        for entry in bundle["entry"]:
            kind, _, query = entry["request"]["url"].partition("?")
            key = (kind, unquote(parse_qs(query, keep_blank_values=True)["identifier"][0]))
            current = self.stored.get(key)
            local[entry["fullUrl"]] = f"{kind}/{current['id'] if current else uuid.uuid4()}"
        answers = []
        for entry in bundle["entry"]:
            kind, ident = local[entry["fullUrl"]].split("/")
            query = entry["request"]["url"].partition("?")[2]
            key = (kind, unquote(parse_qs(query)["identifier"][0]))
            created = key not in self.stored
            resource = _resolved(entry["resource"], local)
            version = 1 if created else int(self.stored[key]["meta"]["versionId"]) + 1
            self.stored[key] = {
                **resource,
                "id": ident,
                "meta": {
                    **resource.get("meta", {}),
                    "versionId": str(version),
                    "lastUpdated": _now(),
                },
            }
            answers.append(
                {
                    "response": {
                        "status": "201 Created" if created else "200 OK",
                        "location": f"{kind}/{ident}/_history/{version}",
                    }
                }
            )
        return {"resourceType": "Bundle", "type": "transaction-response", "entry": answers}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _resolved(value: Any, local: dict[str, str]) -> Any:
    if isinstance(value, dict):
        copied = {key: _resolved(item, local) for key, item in value.items()}
        if copied.get("reference") in local:
            copied["reference"] = local[copied["reference"]]
        return copied
    if isinstance(value, list):
        return [_resolved(item, local) for item in value]
    return value


@dataclass
class Hook:
    """A partner's rest-hook endpoint for Subscription notifications; answers `status`."""

    received: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    status: int = 200
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/notifications"


@dataclass
class DocumentDrop:
    """A partner's HTTP endpoint taking C-CDA documents; dedupes by Idempotency-Key."""

    received: dict[str, bytes] = field(default_factory=dict)
    posts: int = 0
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/documents"


def _handler(partner: Any) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: test output stays readable."""

        def do_GET(self) -> None:
            path, _, query = self.path.partition("?")
            if isinstance(partner, DocumentDrop) or not path.startswith("/fhir/"):
                self._answer(404, b"", {})
            elif not self.headers.get("Authorization", "").startswith("Bearer "):
                self._answer(401, b"", {})
            else:
                bundle = partner.search(path.removeprefix("/fhir/"), parse_qs(query))
                self._answer(200, orjson.dumps(bundle), {"Content-Type": "application/fhir+json"})

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if isinstance(partner, Hook):
                partner.received.append(orjson.loads(body))
                partner.headers.append(dict(self.headers.items()))
                self._answer(partner.status, b"", {})
            elif isinstance(partner, DocumentDrop):
                partner.posts += 1
                partner.received[self.headers.get("Idempotency-Key", "")] = body
                self._answer(201, b"", {"Location": f"/documents/{partner.posts}"})
            elif self.path == "/token":
                status, answer = partner.token(parse_qs(body.decode()))
                self._answer(status, orjson.dumps(answer), {"Content-Type": "application/json"})
            elif not self.headers.get("Authorization", "").startswith("Bearer "):
                self._answer(401, b"", {})
            elif self.path == "/fhir/Subscription":
                partner.subscriptions.append(orjson.loads(body))
                location = f"{partner.base}/Subscription/{len(partner.subscriptions)}"
                self._answer(201, b"", {"Location": location})
            else:
                status, payload, headers = partner.transaction(orjson.loads(body))
                self._answer(status, payload, {"Content-Type": "application/fhir+json", **headers})

        def _answer(self, status: int, body: bytes, headers: dict[str, str]) -> None:
            try:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (slow mode)
                pass

    return Handler


@contextmanager
def serving(partner: FhirPartner | DocumentDrop | Hook) -> Iterator[None]:
    """The partner listening on a free loopback port until the block ends."""
    server = ThreadingHTTPServer(("127.0.0.1", partner.port), _handler(partner))
    server.daemon_threads = True
    partner.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class MllpPartner:
    """A partner's interface engine on MLLP: acknowledges with `answer` (AA, AE or AR)."""

    answer: AckCode = AckCode.ACCEPT
    received: list[bytes] = field(default_factory=list)
    port: int = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


@contextmanager
def listening(partner: MllpPartner) -> Iterator[None]:
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    holder: list[MllpServer] = []

    async def handle(payload: bytes) -> tuple[bytes, ...]:
        partner.received.append(payload)
        inbound = read_message(payload)
        ack = build_ack(
            inbound.header,
            partner.answer,
            inbound.problems,
            control_id=f"ACK{len(partner.received)}",
            at=datetime.now(UTC),
        )
        return (encode_ack(ack),)

    async def start() -> None:
        server = await serve_mllp(
            "127.0.0.1", partner.port, handle, max_message_bytes=1_000_000, idle_timeout=5
        )
        holder.append(server)
        partner.port = server.port
        ready.set()

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(start(), loop)
    ready.wait(5)
    try:
        yield
    finally:
        asyncio.run_coroutine_threadsafe(holder[0].close(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()
