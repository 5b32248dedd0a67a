"""`Cache-Control: no-store` on every answer that does not say otherwise, in one place.

What this service answers is patient data, or a refusal about it, or a credential: staff
routes (the console, `/audit`, `/cases`, `/inbound/held`, `/admin`) are authenticated by a
cookie, which shared caches do not treat as private the way they treat `Authorization` (RFC
9111 §3.5), and a browser's own cache would keep a client's record after sign-out; the FHIR
API's partners are no browsers, but the records are the same. So every response is marked
`no-store` (RFC 9111 §5.2.2.5) unless its route chose its caching itself (the JWKS is public);
only static assets, the same for everyone (the console's stylesheet, the API docs' scripts),
are left cacheable.
"""

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_PUBLIC_ASSETS = ("/console/static/", "/static-offline-docs/")


class NoStore:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(_PUBLIC_ASSETS):
            await self.app(scope, receive, send)
            return

        async def marked(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if "cache-control" not in headers:
                    headers["Cache-Control"] = "no-store"
            await send(message)

        await self.app(scope, receive, marked)
