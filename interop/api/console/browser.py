"""A browser opening a /fhir URL gets JSON it can show, not a download.

Browsers ask for `text/html, application/xhtml+xml, application/xml;q=0.9, */*;q=0.8`, which
content negotiation reads as XML (`application/fhir+xml`, which browsers download), and even
FHIR JSON's media type is one they offer to save. A top-level browser navigation (HTML first
in Accept, no `_format`) is answered as FHIR JSON labelled `application/json`, which every
browser displays as text; API clients, which never put HTML first, are untouched.
"""

from urllib.parse import parse_qs

from starlette.types import ASGIApp, Message, Receive, Scope, Send

_FHIR_JSON = b"application/fhir+json"
_SHOWN_AS = b"application/json; charset=utf-8"


class BrowserFhirView:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not _browser_reading_fhir(scope):
            await self.app(scope, receive, send)
            return
        headers = [(k, v) for k, v in scope["headers"] if k != b"accept"]
        scope = {**scope, "headers": [*headers, (b"accept", _FHIR_JSON)]}

        async def shown(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [_relabel(h) for h in message["headers"]]}
            await send(message)

        await self.app(scope, receive, shown)


def _browser_reading_fhir(scope: Scope) -> bool:
    if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD"):
        return False
    if not (scope["path"] == "/fhir" or scope["path"].startswith("/fhir/")):
        return False
    if "_format" in parse_qs(scope.get("query_string", b"").decode("latin-1")):
        return False
    accept: bytes = dict(scope["headers"]).get(b"accept", b"")
    if b"fhirversion" in accept.lower():
        return False  # a FHIR client naming its version is no browser: negotiation decides
    return accept.split(b",")[0].split(b";")[0].strip() == b"text/html"


def _relabel(header: tuple[bytes, bytes]) -> tuple[bytes, bytes]:
    name, value = header
    if name == b"content-type" and value.startswith(_FHIR_JSON):
        return name, _SHOWN_AS
    return header
