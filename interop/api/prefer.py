"""Several `Prefer` header lines read as one (RFC 7240 §2: "a client MAY use multiple
instances of the Prefer header field in a single message, or ... a single header field with
comma-separated values" to the same effect).

Every route reads Prefer as one value (`handling=strict`, `return=minimal`, `respond-async`),
so the lines are joined once, before routing, instead of each reader knowing that the first
line may not be the one that says what it looks for.
"""

from starlette.types import ASGIApp, Receive, Scope, Send

_PREFER = b"prefer"


class CombinedPrefer:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope = _combined(scope)
        await self.app(scope, receive, send)


def _combined(scope: Scope) -> Scope:
    lines = [value for name, value in scope["headers"] if name == _PREFER]
    if len(lines) < 2:
        return scope
    others = [(name, value) for name, value in scope["headers"] if name != _PREFER]
    return {**scope, "headers": [*others, (_PREFER, b", ".join(lines))]}
