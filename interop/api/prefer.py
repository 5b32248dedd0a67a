"""`Prefer` read as RFC 7240 §2 has it: several header lines mean what one comma-separated
line does, and "if any preference is specified more than once, only the first instance is to
be considered".

Every route reads Prefer as one value (`handling=strict`, `return=minimal`, `respond-async`),
so the lines are normalized once, before routing, into one line holding the first instance
of each preference: no reader then takes a later line, or a repeated preference, for the one
that counts.
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
    if not lines:
        return scope
    combined = first_of_each(b",".join(lines))
    if lines == [combined]:
        return scope
    others = [(name, value) for name, value in scope["headers"] if name != _PREFER]
    return {**scope, "headers": [*others, (_PREFER, combined)]}


def first_of_each(value: bytes) -> bytes:
    """The preferences of a Prefer value, the first instance of each name only."""
    seen: set[bytes] = set()
    kept: list[bytes] = []
    for preference in value.split(b","):
        text = preference.strip()
        name = text.split(b";", 1)[0].split(b"=", 1)[0].strip().lower()
        if name and name not in seen:
            seen.add(name)
            kept.append(text)
    return b", ".join(kept)
